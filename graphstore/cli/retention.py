"""The ``retention`` commands: a tenant's retention policy (``set``, ``show``) and a pass
(``run``) that retires the finished runs it lets go (docs/retention.md).

Imports typer and the bottom of the command line only; each command loads the store's
retention module when it runs.
"""

# ruff: noqa: PLC0415

from pathlib import Path
from typing import Annotated

import typer

from graphstore.cli.options import TenantOption
from graphstore.cli.session import Session, run_action

__all__ = ["register", "retention_app"]

retention_app = typer.Typer(
    help="Retention: keep a tenant's history bounded (set, show, run a pass).",
    no_args_is_help=True,
)


def _a_duration(value: str | None) -> str | None:
    """An option callback refusing (exit 2, one line) a period that is not ``30d``-like."""
    if value is not None:
        from domain.errors import ValidationError
        from domain.retention import parse_duration

        try:
            parse_duration(value, "period")
        except ValidationError as error:
            raise typer.BadParameter(str(error)) from None
    return value


def register(app: typer.Typer) -> None:
    """Add the ``retention`` group to the ``graphstore`` app."""
    app.add_typer(retention_app, name="retention")


@retention_app.command("set")
def retention_set(
    ctx: typer.Context,
    tenant: TenantOption,
    finished_older_than: Annotated[
        str | None,
        typer.Option(
            help="Retire completed runs that finished this long ago: 30d, 12h, 2w.",
            callback=_a_duration,
        ),
    ] = None,
    failed_older_than: Annotated[
        str | None,
        typer.Option(
            help="The period for failed or aborted runs (default: the same).",
            callback=_a_duration,
        ),
    ] = None,
    keep_at_most: Annotated[
        int | None,
        typer.Option(min=0, help="Keep at most this many finished runs (the oldest go first)."),
    ] = None,
    archive: Annotated[
        str | None, typer.Option(help="Write retired runs to this directory first.")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Remove the policy: nothing is retired.")] = False,
) -> None:
    """Set the tenant's retention policy (an event, audited; needs `operate`)."""

    def action(session: Session) -> None:
        from domain.errors import ValidationError
        from domain.retention import RetentionPolicy, parse_duration
        from graphstore.retention import set_policy

        if clear:
            set_policy(session.tenant(tenant), None)
            session.output.result({"tenant": tenant, "policy": None}, f"{tenant}: no policy")
            return
        if finished_older_than is None:
            raise ValidationError(
                "give --finished-older-than (e.g. 30d), or --clear to remove the policy"
            )
        policy = RetentionPolicy(
            finished_older_than_s=parse_duration(finished_older_than, "--finished-older-than"),
            failed_older_than_s=None
            if failed_older_than is None
            else parse_duration(failed_older_than, "--failed-older-than"),
            keep_at_most=keep_at_most,
            # a directory as the operator typed it, kept absolute (the runner's cwd differs)
            archive=None if archive is None else str(Path(archive).resolve()),
        )
        done = set_policy(session.tenant(tenant), policy)
        session.output.result({"tenant": tenant, "policy": done}, f"{tenant}: {_describe(done)}")

    run_action(ctx, action)


def _describe(policy: object) -> str:
    from domain.retention import RetentionPolicy

    if not isinstance(policy, RetentionPolicy):
        return "no policy (nothing is retired)"
    parts = [f"finished runs kept {policy.finished_older_than_s}s after they finish"]
    if policy.failed_older_than_s is not None:
        parts.append(f"failed or aborted ones {policy.failed_older_than_s}s")
    if policy.keep_at_most is not None:
        parts.append(f"at most {policy.keep_at_most} finished runs")
    if policy.archive is not None:
        parts.append(f"archived to {policy.archive}")
    return ", ".join(parts)


@retention_app.command("show")
def retention_show(ctx: typer.Context, tenant: TenantOption) -> None:
    """The policy, the runs retired so far, and the runs that wait (for which consumer)."""

    def action(session: Session) -> None:
        from graphstore.retention import retention_status

        flowgraph = session.store.views(tenant)
        session.closers.append(flowgraph.close)
        status = retention_status(session.tenant(tenant), flowgraph, tenant)
        if session.output.as_json:
            session.output.data(status)
            return
        out = session.output.out
        out.print(f"{tenant}: {_describe(status.policy)}", markup=False)
        out.print(f"retired so far: {status.retired} runs; due now: {status.due}", markup=False)
        if status.note is not None:
            out.print(status.note, markup=False)
        for wait in status.waiting:
            out.print(
                f"run {wait.run_id} waits for consumer {wait.consumer} (at {wait.position}, "
                f"needs {wait.last_offset})",
                markup=False,
            )

    run_action(ctx, action)


@retention_app.command("run")
def retention_run(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option(help="One tenant's org id (default: every tenant).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only list what would go, and its bytes.")] = False,
) -> None:
    """Run a retention pass: retire the finished runs each tenant's policy lets go."""

    def action(session: Session) -> None:
        from graphstore.retention import run_pass

        tenants = [tenant] if tenant is not None else session.store.tenants()
        reports = []
        for org in tenants:
            flowgraph = session.store.views(org)
            try:
                reports.append(run_pass(session.tenant(org), flowgraph, org, dry_run=dry_run))
            finally:
                flowgraph.close()
        if session.output.as_json:
            session.output.data(reports if tenant is None else reports[0])
            return
        out = session.output.out
        for report in reports:
            verb = "would retire" if report.dry_run else "retired"
            line = f"{report.tenant}: {verb} {len(report.runs)} runs ({report.bytes} bytes)"
            if report.policy is None:
                line = f"{report.tenant}: no policy, nothing retired"
            if report.file_before is not None:
                line += f"; file {report.file_before} -> {report.file_after} bytes"
            out.print(line, markup=False)
            if report.note is not None:
                out.print(f"  {report.note}", markup=False)
            for run in report.runs if report.dry_run else []:
                out.print(f"  {run.run_id} {run.status} {run.bytes} bytes", markup=False)
            for wait in report.waiting:
                out.print(f"  {wait.run_id} waits for consumer {wait.consumer}", markup=False)

    run_action(ctx, action)
