"""The ``runs`` commands: list workflow runs, show one (now or as of an offset), its
history and export, and the crash-recovery pair ``in-flight`` / ``abort-in-flight``
(docs/flowgraph.md, docs/recovery.md).

Imports typer and the bottom of the command line only; each command loads the views
and the renderers when it runs.
"""

# ruff: noqa: PLC0415

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from graphstore.cli.options import TenantOption, a_time, one_of
from graphstore.cli.session import Session, run_action

if TYPE_CHECKING:
    from domain import UnitOfWork
    from graphstore.archive import ArchivedRun
    from projections import Flowgraph, Replay
    from projections.recovery import AbortReport

__all__ = ["ViewsLag", "register", "runs_app"]

runs_app = typer.Typer(
    help="Workflow runs: list, show (now or as of an offset), history, export.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``runs`` group to the ``graphstore`` app."""
    app.add_typer(runs_app, name="runs")


def _flowgraph(session: Session, tenant: str) -> "Flowgraph":
    """The flowgraph views of a registered tenant (closed with the session)."""
    flowgraph = session.store.views(tenant)
    session.closers.append(flowgraph.close)
    return flowgraph


def _views(session: Session, tenant: str) -> "tuple[Flowgraph, Replay]":
    """The flowgraph views and the replay of a registered tenant (closed with the session)."""
    flowgraph = _flowgraph(session, tenant)
    replay = session.store.replay(tenant)
    session.closers.append(replay.close)
    return flowgraph, replay


@dataclass(frozen=True)
class ViewsLag:
    """How far the live flowgraph views of a tenant are behind its stream."""

    tenant: str
    consumer: str
    position: int  # the last offset the views reflect
    head: int  # the stream's last offset
    events: int  # entries in between

    def warning(self) -> str:
        """What a reader of the views must know, and how to catch up."""
        return (
            f"the flowgraph views of {self.tenant} are {self.events} events behind the "
            f"stream ({self.consumer} at offset {self.position} of {self.head}): what they "
            f"show may be missing or stale; catch up with `graphstore projector catch-up "
            f"--tenant {self.tenant}`, or keep `graphstore projector run` going"
        )


def _views_lag(flowgraph: "Flowgraph", tenant: str) -> ViewsLag | None:
    """How far ``flowgraph``'s live views are behind the stream; None when caught up
    (read through the reader pool: nothing is written)."""
    from projections import FlowgraphProjection
    from projections.rebuild import live_projection
    from streams import count_between, saved_position, stream_head

    datastore = flowgraph.datastore
    live = live_projection(datastore, FlowgraphProjection)
    position = saved_position(datastore, live.consumer, live.upstream) or 0
    head = stream_head(datastore, live.upstream).offset
    events = count_between(datastore, live.upstream, position, head)
    if events == 0:
        return None
    return ViewsLag(tenant, live.consumer, position, head, events)


def _ms(value: str | None, option: str) -> int | None:
    """An ISO 8601 time or ms since the epoch, as ms."""
    from domain.errors import ValidationError

    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{option} {value!r} is not a time: use ISO 8601 (2026-11-21T10:00:00Z) or "
            "milliseconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _archived(session: Session, tenant: str, run_id: str) -> "ArchivedRun | None":
    """Run ``run_id`` of ``tenant`` from its archive (the policy's, or the data
    directory's default), if it is there."""
    from graphstore.archive import Archive
    from graphstore.retention import archive_root
    from streams.reader import cipher_of

    metagraph = session.tenant(tenant)
    archive = Archive(archive_root(metagraph, session.data_dir), cipher_of(metagraph.env))
    return archive.find(tenant, run_id)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    tenant: TenantOption,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="running, completed, failed or aborted (repeatable).",
            callback=one_of("running", "completed", "failed", "aborted"),
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Started at or after (ISO 8601 or ms).", callback=a_time)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Started before (ISO 8601 or ms).", callback=a_time)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many runs.")] = 50,
) -> None:
    """List workflow runs, newest first, filtered by status and start time."""

    def action(session: Session) -> None:
        from graphstore.cli.render import runs_table

        flowgraph = _flowgraph(session, tenant)  # a list needs no replay
        page = flowgraph.runs(
            status=status or None,  # type: ignore[arg-type]  # checked by the views
            since=_ms(since, "--since"),
            until=_ms(until, "--until"),
            limit=limit,
        )
        lag = _views_lag(flowgraph, tenant)
        if lag is not None:
            session.output.warn(lag.warning())
        if session.output.as_json:
            session.output.data(page.runs)
        elif not page.runs and lag is not None:  # not "none": none projected yet
            session.output.line(f"(no runs in the views yet: {lag.events} events to project)")
        elif not page.runs:
            session.output.line("(no runs)")
        else:
            session.output.show(runs_table(page.runs))

    run_action(ctx, action)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    as_of: Annotated[
        int | None,
        typer.Option(min=0, max=2**63 - 1, help="Show the run as it was at this stream offset."),
    ] = None,
) -> None:
    """Show a run's call tree with statuses and durations (now, or as of an offset)."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError
        from graphstore.cli.render import run_tree

        flowgraph, replay = _views(session, tenant)
        if as_of is None:
            run = flowgraph.run(run_id)
            calls = flowgraph.call_tree(run_id) if run is not None else []
            lag = _views_lag(flowgraph, tenant)
            if lag is not None:  # the truth is in the stream: fold the run from it
                session.output.warn(f"{lag.warning()}; this run is read from the stream")
                snapshot = replay.run_as_of(run_id, lag.head)
                run, calls = (snapshot.run, snapshot.calls) if snapshot else (None, [])
        else:
            snapshot = replay.run_as_of(run_id, as_of)
            run, calls = (snapshot.run, snapshot.calls) if snapshot else (None, [])
        archived = _archived(session, tenant, run_id) if run is None and as_of is None else None
        if archived is not None:
            from graphstore.archive_view import archived_tree

            session.output.warn(
                f"run {run_id} is archived, not in {tenant}: read from the archive "
                f"(`graphstore archive restore {run_id} --tenant {tenant}` puts it back)"
            )
            run, calls = archived_tree(archived)
            if run is not None and not session.output.as_json:
                title = f"run {run.run_id} (archived)  "
                session.output.out.print(run_tree(run, calls, title=title))
                return
            session.output.result(
                {"run": run or archived, "calls": calls, "as_of": None, "archived": True},
                f"run {run_id} ({archived.status}, finished at {archived.finished_at} ms, "
                f"{len(archived.events)} events) is archived, not in {tenant}",
            )
            return
        if run is None:
            when = f" at offset {as_of}" if as_of is not None else ""
            raise NotFoundError(
                f"no run {run_id!r} in {tenant}{when}; `graphstore runs list --tenant "
                f"{tenant}` shows the runs",
                kind="run",
                name=run_id,
            )
        if session.output.as_json:
            session.output.data({"run": run, "calls": calls, "as_of": as_of})
        else:
            title = f"run {run.run_id}" + (f" as of offset {as_of}  " if as_of else "  ")
            session.output.out.print(run_tree(run, calls, title=title))

    run_action(ctx, action)


@runs_app.command("history")
def runs_history(ctx: typer.Context, run_id: str, tenant: TenantOption) -> None:
    """A run's ordered history: the stream events that touched its calls, with offsets."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError

        _, replay = _views(session, tenant)
        entries = replay.history(run_id)
        if not entries:
            raise NotFoundError(f"no run {run_id!r} in {tenant}", kind="run", name=run_id)
        session.output.table(
            [
                {
                    "offset": e.offset,
                    "time": e.time,
                    "event": e.event,
                    "call": e.request_id,
                    "status": e.status,
                    "protocol": [p.type for p in e.applied],
                }
                for e in entries
            ],
            ["offset", "time", "event", "call", "status", "protocol"],
            title=f"history of {run_id}",
        )

    run_action(ctx, action)


@runs_app.command("export")
def runs_export(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Export a run's history as call-protocol JSON Lines (re-ingestable with `ingest`)."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError

        _, replay = _views(session, tenant)
        export = replay.export_run(run_id)
        archived = None if export.events else _archived(session, tenant, run_id)
        if archived is not None:
            session.output.warn(f"run {run_id} is archived: exported from the archive")
            export = type(export)(
                run_id=run_id, events=archived.events, operation_types=archived.operation_types
            )
        if not export.events:
            raise NotFoundError(f"no run {run_id!r} in {tenant}", kind="run", name=run_id)
        if output is None:
            sys.stdout.buffer.write(export.jsonl())
            sys.stdout.flush()
        else:
            count = export.write(output)
            subscriptions = sorted(
                op for op, kind in export.operation_types.items() if kind == "subscription"
            )
            hint = "".join(f" --subscription {op}" for op in subscriptions)
            session.output.result(
                {"run_id": run_id, "events": count, "file": str(output)},
                f"exported {count} events of {run_id} to {output}; re-ingest with "
                f"`graphstore ingest {output} --tenant <org>{hint}`",
            )

    run_action(ctx, action)


# ------------------------------------------------------------------ runs: crash recovery


@runs_app.command("in-flight")
def runs_in_flight(ctx: typer.Context, tenant: TenantOption) -> None:
    """Runs left with pending or running calls (after a crash), read from the call graph."""

    def action(session: Session) -> None:
        from projections.recovery import in_flight_runs

        runs = in_flight_runs(session.tenant(tenant))
        if session.output.as_json:
            session.output.data(runs)
            return
        if not runs:
            session.output.out.print(f"(no run in flight in {tenant})")
            return
        session.output.table(
            [
                {
                    "run": r.run_id,
                    "root": r.root_operation,
                    "root status": r.root_status,
                    "calls": r.calls,
                    "active": len(r.active),
                    "abort targets": ", ".join(r.heads),
                }
                for r in runs
            ],
            ["run", "root", "root status", "calls", "active", "abort targets"],
            title=f"runs in flight in {tenant}",
        )

    run_action(ctx, action)


@runs_app.command("abort-in-flight")
def runs_abort_in_flight(
    ctx: typer.Context,
    tenant: TenantOption,
    run: Annotated[
        list[str] | None, typer.Option(help="Only this run (repeatable); default: every one.")
    ] = None,
) -> None:
    """Abort the runs in flight by ingesting call.aborted events (the abort cascade applies).

    Run it once the producers are known dead: a run still executing would be aborted too.
    """

    def action(session: Session) -> None:
        from projections.recovery import abort_in_flight

        metagraph = session.tenant(tenant)

        def abort(unit: "UnitOfWork") -> "AbortReport":  # the aborts and their audit record
            found = abort_in_flight(metagraph, runs=run)
            unit.describe(
                "in-flight runs aborted", {"runs": found.runs, "events": len(found.events)}
            )
            return found

        done = metagraph.atomic(abort)
        session.output.result(
            done,
            f"aborted {len(done.runs)} runs in flight in {tenant} "
            f"({done.aborted_calls} calls, {len(done.events)} call.aborted events)",
        )

    run_action(ctx, action)


@runs_app.command("forget")
def runs_forget(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    abort: Annotated[
        bool, typer.Option(help="Abort the run's calls in flight first, then forget it.")
    ] = False,
) -> None:
    """Erase one run now, whatever the retention policy: its events leave the file (and
    the archive), only a tombstone without payload stays. An admin or the owner; audited."""

    def action(session: Session) -> None:
        from graphstore.retention import forget_run

        report = forget_run(session.tenant(tenant), tenant, run_id, abort=abort)
        session.output.result(
            report,
            f"forgot run {run_id} of {tenant} ({report.runs[0].calls} calls); "
            f"file {report.file_before} -> {report.file_after} bytes",
        )

    run_action(ctx, action)
