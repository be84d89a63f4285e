"""The ``graphstore relay`` commands: relay every tenant's stream to NATS JetStream, and
show how far each tenant is relayed (docs/scale.md).

Imports typer and the bottom of the command line only, nothing of the store or of nats:
each command loads what it needs when it runs.
"""

# ruff: noqa: PLC0415

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from graphstore.cli.options import NATS_HELP, MetricsPortOption, nats_urls
from graphstore.cli.running import until_stopped
from graphstore.cli.session import ExitCode, Session, run_action

if TYPE_CHECKING:
    from graphstore.nats.relay import TenantRelayStatus

__all__ = ["register", "relay_app"]

relay_app = typer.Typer(
    help="Relay every tenant's stream to NATS JetStream (docs/scale.md); `relay status`.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``relay`` group to the ``graphstore`` app."""
    app.add_typer(relay_app, name="relay")


_JETSTREAM_TIMEOUT = 10.0  # seconds `relay status --nats` waits for JetStream


@relay_app.callback()
def relay_run(
    ctx: typer.Context,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", envvar="GRAPHSTORE_NATS_URL", help=NATS_HELP, callback=nats_urls),
    ] = None,
    consumer: Annotated[str, typer.Option(help="The relay's consumer name.")] = "relay@v1",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Entries read and published at once.")
    ] = 1000,
    status_every: Annotated[
        float,
        typer.Option(
            min=0, help="Print the relay's status this often (seconds; default 0: never, quiet)."
        ),
    ] = 0.0,
    identity: Annotated[
        bool,
        typer.Option(
            help="Also relay system.db's identity stream (accounts, keys, registry, audit) "
            "on graphstore.system.identity, for a restore to a point (docs/backup.md)."
        ),
    ] = True,
    *,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Relay every tenant's stream to JetStream until interrupted (Ctrl-C): each entry on
    graphstore.<tenant>.events, exactly once, in order. New tenants are followed as they
    are registered; a NATS server that is down is retried and caught up on."""
    if ctx.invoked_subcommand is not None:
        return

    if not nats_url:
        typer.echo("give the NATS server: --nats nats://HOST:PORT", err=True)
        raise typer.Exit(ExitCode.USAGE)

    def action(session: Session) -> None:
        from graphstore.nats.relay import Relay, RelayError

        session.store.authorize_operator("relay every tenant's stream")
        try:
            relay = Relay(
                session.data,
                _servers(nats_url),
                consumer=consumer,
                batch_size=batch_size,
                identity=identity,
            )
        except RelayError as exc:
            session.output.error(str(exc))
            raise typer.Exit(ExitCode.USAGE) from None
        stop_metrics = _serve_metrics(relay, metrics_port)
        with relay:
            try:
                until_stopped(
                    session,
                    f"relaying every tenant of {session.data_dir} to {nats_url}",
                    lambda: _print_running(session, relay),
                    status_every,
                )
            finally:
                stop_metrics()
        _print_running(session, relay)

    run_action(ctx, action)


@relay_app.command("status")
def relay_status_command(
    ctx: typer.Context,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", envvar="GRAPHSTORE_NATS_URL", help=NATS_HELP, callback=nats_urls),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    consumer: Annotated[str, typer.Option(help="The relay's consumer name.")] = "relay@v1",
) -> None:
    """Each tenant's relay position, head and lag (events, seconds), read from the files
    (no relay needs to run); with --nats also each subject's last relayed offset."""

    def action(session: Session) -> None:
        import asyncio

        from graphstore.nats.relay import relay_status, subject_offsets

        if tenant is None:
            session.store.authorize_operator("read the relay status of every tenant")
        else:
            session.store.authorize(tenant, "read", "read its relay status")
        from graphstore.nats.subjects import SYSTEM_KEY

        # system.db's identity stream too (relayed unless --no-identity): its lag is the
        # recovery point of accounts, keys and the registry (docs/backup.md).
        tenants = [tenant] if tenant else [*session.data.tenants(), SYSTEM_KEY]
        jetstream = None
        if nats_url:
            # nats-py logs each failed connect with a traceback, and may retry for ever:
            # one line and a bounded wait instead.
            logging.getLogger("nats").setLevel(logging.CRITICAL)
            reading = subject_offsets(_servers(nats_url), tenants)
            try:
                jetstream = asyncio.run(asyncio.wait_for(reading, _JETSTREAM_TIMEOUT))
            except TimeoutError:
                session.output.error(
                    f"cannot read JetStream at {nats_url}: no answer within "
                    f"{_JETSTREAM_TIMEOUT:g} s (is nats-server running there, with -js?)"
                )
                raise typer.Exit(ExitCode.STORAGE) from None
            except Exception as exc:  # any connection failure: say so, exit
                session.output.error(f"cannot read JetStream at {nats_url}: {exc!r}")
                raise typer.Exit(ExitCode.STORAGE) from None
        statuses = relay_status(session.data, tenants, consumer=consumer, jetstream=jetstream)
        _print_statuses(session, statuses, jetstream is not None)

    run_action(ctx, action)


def _serve_metrics(relay: object, port: int | None) -> Callable[[], None]:
    """Serve the relay's metrics on ``port`` (None: not at all); the stopper."""
    if port is None:
        return lambda: None
    from prometheus_client import CollectorRegistry

    from graphstore.metrics import RelayCollector, serve_metrics
    from graphstore.nats.relay import Relay

    assert isinstance(relay, Relay)
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay))
    return serve_metrics(registry, port)


def _servers(nats_url: str) -> list[str]:
    return [url.strip() for url in nats_url.split(",") if url.strip()]


def _print_running(session: Session, relay: object) -> None:
    from graphstore.nats.relay import Relay

    assert isinstance(relay, Relay)
    status = relay.status()
    if session.output.as_json:
        session.output.data(status)
        return
    state = "connected" if status.connected else f"DOWN ({status.error})"
    session.output.err.print(f"relay to {status.nats}: {state}", markup=False)
    _print_statuses(session, list(status.tenants), True, stream="err")


def _print_statuses(
    session: Session,
    statuses: "list[TenantRelayStatus]",
    with_jetstream: bool,
    *,
    stream: str = "out",
) -> None:
    if session.output.as_json and stream == "out":
        session.output.data(statuses)
        return
    columns = ["tenant", "position", "head", "lag_events", "lag_seconds"]
    if with_jetstream:
        columns.append("jetstream")
    rows = [
        {
            "tenant": s.tenant,
            "position": s.position,
            "head": s.head,
            "lag_events": s.lag_events,
            "lag_seconds": round(s.lag_seconds, 3),
            "jetstream": "-" if s.jetstream is None else s.jetstream,
        }
        for s in statuses
    ]
    if stream == "out":
        session.output.table(rows, columns, title="relay")
    else:
        for row in rows:
            session.output.err.print(
                "  " + "  ".join(f"{c}={row[c]}" for c in columns), markup=False
            )
