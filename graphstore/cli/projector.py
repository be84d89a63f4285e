"""The ``projector`` commands: status, run, catch up, replay parked events, rebuild
side by side (docs/projections.md).

Imports typer and the bottom of the command line only; each command loads the
projections (and rich's progress bar, the runner) when it runs.
"""

# ruff: noqa: PLC0415

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphstore.cli.options import TenantOption, a_projector, known_projections, one_of
from graphstore.cli.running import until_stopped
from graphstore.cli.session import Session, run_action

if TYPE_CHECKING:
    from projections import ProjectorStatus, Runner
    from projections.rebuild import RebuildResult

__all__ = ["projector_app", "register"]

projector_app = typer.Typer(
    help="Projectors: status, catch up, replay parked events, rebuild.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``projector`` group to the ``graphstore`` app."""
    app.add_typer(projector_app, name="projector")


def _runner(session: Session, tenant: str | None) -> "Runner":
    from projections import Runner

    if tenant is None:
        session.store.authorize_operator("catch up the projectors of every tenant")
    else:
        session.store.authorize(tenant, "operate", "catch up its projectors")
    tenants = [tenant] if tenant else session.data.tenants()
    return Runner(session.data, tenants=lambda: tenants)


@projector_app.command("status")
def projector_status(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
) -> None:
    """Each projector's position, head, lag (events and seconds), state and parked events.

    Read from the files (saved offsets and streams): a runner's in-memory failures show in
    its own status, not here.
    """

    def action(session: Session) -> None:
        from graphstore.cli.render import status_table
        from projections.rebuild import open_live_projector

        if tenant is None:
            session.store.authorize_operator("read the projector status of every tenant")
        else:
            session.store.authorize(tenant, "read", "read its projector status")
        tenants = [tenant] if tenant else session.data.tenants()
        statuses = []
        for org_id in tenants:
            for projection in known_projections().values():
                projector = open_live_projector(session.data.tenant_env(org_id), projection)
                try:
                    statuses.append(projector.status())
                finally:
                    projector.close()
        if session.output.as_json:
            session.output.data(statuses)
        else:
            session.output.show(status_table(statuses))

    run_action(ctx, action)


@projector_app.command("run")
def projector_run(
    ctx: typer.Context,
    status_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Print every projector's status this often (seconds; default 0: never, quiet).",
        ),
    ] = 0.0,
) -> None:
    """Run the projectors of every tenant in this process until interrupted (Ctrl-C).

    New tenants are picked up from the registry as they are created. Wakes on commits
    from any process; idle tenants cost no thread and no connection. Quiet unless asked:
    one line when it starts, every projector's status when it stops, and with
    ``--status-every N`` that status every N seconds.
    """

    def action(session: Session) -> None:
        from graphstore.retention import RetentionSchedule
        from projections import Runner

        session.store.authorize_operator("run the projectors of every tenant")
        schedule = RetentionSchedule.from_env(session.store)  # docs/retention.md
        if schedule is not None:
            session.closers.append(schedule.stop)
            schedule.start()
        with Runner(session.data) as runner:
            until_stopped(
                session,
                f"projecting every tenant of {session.data_dir}",
                lambda: _print_statuses(session, runner.status()),
                status_every,
            )
            statuses = runner.status()
        _print_statuses(session, statuses)

    run_action(ctx, action)


def _print_statuses(session: Session, statuses: "list[ProjectorStatus]") -> None:
    from graphstore.cli.render import status_table

    if session.output.as_json:
        session.output.data(statuses)
    else:
        session.output.show(status_table(statuses))


@projector_app.command("catch-up")
def projector_catch_up(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds.")] = 600,
) -> None:
    """Run the projectors until every one has reached its stream's head."""

    def action(session: Session) -> None:
        with _runner(session, tenant) as runner:
            deadline = time.monotonic() + timeout
            for org_id in [tenant] if tenant else session.data.tenants():
                head = max((s.head for s in runner.status() if s.tenant == org_id), default=0)
                runner.wait_for(org_id, head, timeout=max(0.1, deadline - time.monotonic()))
            statuses = runner.status()
        _print_statuses(session, statuses)

    run_action(ctx, action)


@projector_app.command("replay-parked")
def projector_replay_parked(
    ctx: typer.Context,
    projector: Annotated[
        str,
        typer.Argument(
            help="metagraph or flowgraph, or the live consumer, e.g. metagraph@v1.",
            callback=a_projector,
        ),
    ],
    tenant: TenantOption,
) -> None:
    """Apply a projector's parked (dead-lettered) events again, in stream order."""

    def action(session: Session) -> None:
        from domain.errors import ValidationError
        from projections.rebuild import open_live_projector

        projections = known_projections()
        name = projector.split("@", 1)[0]
        if name not in projections:
            raise ValidationError(
                f"no projector {projector!r}: use one of {', '.join(sorted(projections))}"
            )
        session.store.authorize(tenant, "operate", f"replay the parked events of {projector}")
        opened = open_live_projector(session.data.tenant_env(tenant), projections[name])
        try:
            if projector not in (name, opened.consumer):
                raise ValidationError(
                    f"{projector} is not live on {tenant}: {opened.consumer} is (use it or {name})"
                )
            result = opened.replay_parked()
        finally:
            opened.close()
        session.output.result(
            result,
            f"{opened.consumer} on {tenant}: {len(result.replayed)} replayed, "
            f"{len(result.still_parked)} still parked",
        )

    run_action(ctx, action)


@projector_app.command("rebuild")
def projector_rebuild(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="metagraph or flowgraph.", callback=one_of("metagraph", "flowgraph")),
    ],
    tenant: TenantOption,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Drop the old version's tables after the swap.")
    ] = False,
) -> None:
    """Rebuild a projection side by side (version live+1, tables prefixed v<N>_) from the
    start of the stream while the live version serves reads, then swap it in atomically."""

    def action(session: Session) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from domain.errors import ValidationError
        from projections.rebuild import rebuild_next

        projections = known_projections()
        if name not in projections:
            raise ValidationError(
                f"no projection {name!r}: use one of {', '.join(sorted(projections))}"
            )
        session.store.authorize(tenant, "operate", f"rebuild the {name} projection")
        with Progress(
            TextColumn(f"rebuilding {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=session.output.err,
            disable=not session.output.err.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("rebuild", total=None)
            result = rebuild_next(
                session.data,
                projections[name],
                tenant=tenant,
                drop_old=drop_old,
                progress=lambda position, head: progress.update(
                    task, completed=position, total=head
                ),
            )
        session.output.result(_rebuild_report(tenant, result), _rebuild_line(tenant, result))

    run_action(ctx, action)


def _rebuild_report(tenant: str, result: "RebuildResult") -> dict[str, Any]:
    return {
        "tenant": tenant,
        "projection": result.projection,
        "version": result.version,
        "consumer": f"{result.projection}@v{result.version}",
        "table_prefix": result.table_prefix,
        "position": result.position,
        "swapped": True,
        "previous": {
            "version": result.previous.version,
            "table_prefix": result.previous.table_prefix,
        },
        "dropped": result.dropped,
    }


def _rebuild_line(tenant: str, result: "RebuildResult") -> str:
    previous = result.previous.version
    line = (
        f"{result.projection}@v{result.version} rebuilt on {tenant} up to offset "
        f"{result.position} (tables {result.table_prefix}*) and swapped in: live now, "
        f"replacing v{previous if previous is not None else 1}"
    )
    if result.dropped:
        line += f"; dropped {len(result.dropped)} old tables"
    return line
