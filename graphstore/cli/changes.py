"""The ``tail`` command: a projection's committed changes, printed as they happen
(docs/subscriptions.md).

Imports typer and the bottom of the command line only; the command loads the
subscription when it runs.
"""

# ruff: noqa: PLC0415

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from graphstore.cli.options import TenantOption, an_id, known_projections, one_of
from graphstore.cli.session import Session, run_action

if TYPE_CHECKING:
    from projections.changes import Change

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``tail`` to the ``graphstore`` app."""
    app.command("tail")(tail)


def _change_line(change: "Change") -> str:
    """One change as a line of text: position, time, event, then what it touched."""
    moment = datetime.fromtimestamp(change.time / 1000, UTC).isoformat(timespec="milliseconds")
    parts = [str(change.position), moment, change.event]
    for label, value in (
        ("graph", change.graph_id),
        ("node", change.node_key),
        ("edge", change.edge_id),
        ("call", change.call_id),
        ("status", change.status),
    ):
        if value is not None and not (label == "node" and change.call_id is not None):
            parts.append(f"{label}={value}")
    return "  ".join(parts)


def tail(
    ctx: typer.Context,
    tenant: TenantOption,
    graph: Annotated[
        str | None, typer.Option(help="Only this graph's changes (its id).", callback=an_id)
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="Only this workflow run's calls (flowgraph changes).")
    ] = None,
    projector: Annotated[
        str | None,
        typer.Option(
            help="metagraph or flowgraph (default: flowgraph with --run, else metagraph).",
            callback=one_of("metagraph", "flowgraph"),
        ),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Begin at the start of the history.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(help="A durable subscription: resume after its saved position."),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many changes.")] = None,
) -> None:
    """Print a projection's committed changes as they happen, until Ctrl-C (or --count).

    Each line: position (stream offset), time, event, and the graph, node, edge or call
    it touched (with a call's new status). With --json, one JSON object per line.
    """

    def action(session: Session) -> None:
        import msgspec

        from domain.errors import ValidationError
        from projections.changes import Subscription

        projections = known_projections()
        chosen = projector or ("flowgraph" if run is not None else "metagraph")
        if chosen not in projections:
            raise ValidationError(
                f"--projector {chosen!r}: use one of {', '.join(sorted(projections))}"
            )
        if run is not None and chosen != "flowgraph":
            raise ValidationError("--run follows the flowgraph projector: drop --projector")
        if run is not None and graph is not None:
            raise ValidationError("give --graph or --run, not both")
        session.store.authorize(tenant, "read", "tail its changes")
        subscription = Subscription.open(  # a class: follows the live version after a swap
            session.data.tenant_env(tenant),
            projections[chosen],
            name=name,
            graph=graph,
            run=run,
            from_start=from_start,
        )
        session.closers.append(subscription.close)
        seen = 0
        try:
            for change in subscription:
                if session.output.as_json:
                    line = msgspec.json.encode(change).decode()
                else:
                    line = _change_line(change)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                seen += 1
                if count is not None and seen >= count:
                    subscription.commit(change.position)  # printed: handled
                    break
        except KeyboardInterrupt:
            pass

    run_action(ctx, action)
