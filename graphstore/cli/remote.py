"""The ``graphstore project-remote`` and ``graphstore ingest-nats`` commands
(docs/scale.md, "Remote projections" and "Spokes").

Imports typer and the bottom of the command line only, nothing of the store or of
nats-py: each command loads what it needs when it runs.
"""

# ruff: noqa: PLC0415

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from graphstore.cli.options import MetricsPortOption, StatusEveryOption, nats_urls
from graphstore.cli.running import until_stopped
from graphstore.cli.session import Session, run_action

__all__ = ["ingest_nats", "project_remote", "register"]


def _json_lines(session: Session, status: Callable[[], list[Any]]) -> Callable[[], None]:
    """A report printing each of ``status()`` as one JSON line on stderr."""
    import msgspec

    def report() -> None:
        for line in status():
            session.output.err.print(msgspec.json.encode(line).decode(), markup=False)

    return report


@contextlib.contextmanager
def _metrics(port: int | None, kind: str, source: Any) -> Iterator[None]:
    """Serve ``source``'s metrics on ``port`` (None: not at all) while in the block."""
    if port is None:
        yield
        return
    from prometheus_client import CollectorRegistry

    from graphstore.metrics import IngesterCollector, RemoteCollector, serve_metrics

    registry = CollectorRegistry()
    registry.register(RemoteCollector(source) if kind == "remote" else IngesterCollector(source))
    stop = serve_metrics(registry, port)
    try:
        yield
    finally:
        stop()


_NatsOption = Annotated[
    str, typer.Option("--nats", help="The NATS server (nats://host:port).", callback=nats_urls)
]


def _or_unreachable(error: str | None, statuses: list[Any]) -> list[Any]:
    return [{"nats": "unreachable", "error": error}] if error else statuses


def project_remote(
    ctx: typer.Context,
    *,
    nats_url: _NatsOption,
    tenant: Annotated[
        list[str] | None,
        typer.Option(help="Follow this tenant (repeat); default: every tenant relayed."),
    ] = None,
    status_every: StatusEveryOption = 0.0,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Entries applied per transaction, at most.")
    ] = 500,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="This reader's own directory (default: graphstore's --data-dir).",
        ),
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Keep the flowgraph views and metagraph tables of relayed tenants in this machine's
    --data-dir (mirror-<tenant>.db), from JetStream, until interrupted. Never opens a
    tenant file; needs a relay publishing the tenants' streams."""

    def action(session: Session) -> None:
        from graphstore.nats.remote import RemoteProjector

        directory = data_dir or session.data_dir
        remote = RemoteProjector(nats_url, directory, tenants=tenant or None, batch_size=batch_size)
        with remote, _metrics(metrics_port, "remote", remote):
            until_stopped(
                session,
                f"projecting relayed tenants from {nats_url} into {directory}",
                _json_lines(
                    session, lambda: _or_unreachable(remote.connection_error, remote.status())
                ),
                status_every,
            )

    run_action(ctx, action)


def ingest_nats(
    ctx: typer.Context,
    *,
    nats_url: _NatsOption,
    tenant: Annotated[
        list[str] | None,
        typer.Option(help="Consume this tenant's calls (repeat); default: every tenant."),
    ] = None,
    status_every: StatusEveryOption = 0.0,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Fold spokes' call events (graphstore.<tenant>.calls on JetStream) into the tenants
    of --data-dir, exactly once, until interrupted (the hub's side of the spokes)."""

    def action(session: Session) -> None:
        from graphstore.nats.ingester import Ingester

        session.store.authorize_operator("ingest call events into every tenant")
        with (
            Ingester(nats_url, session.store, tenants=tenant or None) as ingester,
            _metrics(metrics_port, "ingester", ingester),
        ):
            until_stopped(
                session,
                f"ingesting call events from {nats_url} into {session.data_dir}",
                _json_lines(
                    session, lambda: _or_unreachable(ingester.connection_error, ingester.status())
                ),
                status_every,
            )

    run_action(ctx, action)


def register(app: typer.Typer) -> None:
    """Add both commands to the ``graphstore`` app."""
    app.command("project-remote")(project_remote)
    app.command("ingest-nats")(ingest_nats)
