"""The ``ingest`` command: call-protocol events from a JSON Lines file into a tenant's
call graph, as one batch (docs/calls.md).

Imports typer and the bottom of the command line only; the command loads the domain
and rich's progress bar when it runs.
"""

# ruff: noqa: PLC0415

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from graphstore.cli.options import one_of
from graphstore.cli.session import Session, run_action

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the ``graphstore`` app."""
    app.command("ingest")(ingest)


def ingest(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="A JSON Lines file of call events, or - for stdin.")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant's org id.")],
    subscription: Annotated[
        list[str] | None,
        typer.Option(help="An operation id that is a subscription (repeatable)."),
    ] = None,
    abort_policy: Annotated[
        str,
        typer.Option(
            help="abort-dependents or continue-running.",
            callback=one_of("abort-dependents", "continue-running"),
        ),
    ] = "abort-dependents",
) -> None:
    """Ingest call-protocol events (docs/calls.md) into a tenant's call graph.

    The whole file is one batch: every line is checked first, and a malformed or refused
    line (reported with its line number) means nothing is written.
    """

    def action(session: Session) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from domain.calls import OperationType, read_jsonl
        from domain.errors import NotFoundError
        from graphstore.operations.ingest import ingest_calls

        if source != "-" and not Path(source).is_file():
            raise NotFoundError(f"no file {source!r}", kind="file", name=source)
        metagraph = session.tenant(tenant)
        operation_types: dict[str, OperationType] = dict.fromkeys(
            subscription or [], "subscription"
        )
        stream: Any = sys.stdin.buffer if source == "-" else source
        with Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=session.output.err,
            disable=not session.output.err.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("ingest", total=None)
            events = read_jsonl(stream)  # read once: a retried unit must not read it again

            report, _ = ingest_calls(  # the batch and its audit record, as every way in
                metagraph,
                [event for _, event in events],
                source=source,
                operation_types=operation_types,
                abort_policy=abort_policy,  # type: ignore[arg-type]  # checked by the domain
                lines=[line for line, _ in events],
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        session.output.result(
            report,
            f"ingested {report.events} events into {tenant}: {report.applied} applied, "
            f"{report.unchanged} unchanged ({report.writes} writes)",
        )

    run_action(ctx, action)
