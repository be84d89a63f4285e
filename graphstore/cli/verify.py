"""The ``graphstore verify`` command: the store's fsck (docs/verify.md).

Imports typer and the bottom of the command line only; the command loads
:mod:`graphstore.verify` when it runs.
"""

# ruff: noqa: PLC0415

from pathlib import Path
from typing import Annotated

import typer

from graphstore.cli.session import ExitCode, Session, run_action

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the command line ``app``."""
    app.command("verify")(verify_command)


def verify_command(
    ctx: typer.Context,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeatable); default: all.")
    ] = None,
    backup: Annotated[
        Path | None, typer.Option(help="Verify this backup directory instead of the store.")
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option(
            "--nats",
            envvar="GRAPHSTORE_NATS_URL",
            help="Also compare each tenant's relayed JetStream subject with its stream.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output the report as JSON.")] = False,
) -> None:
    """Prove the store right: SQLite's integrity check, stream offsets without holes, the
    index agreeing with the stream, every aggregate replaying, every projection equal to
    a clean rebuild (by digest); with --nats the relayed subjects, with --backup a backup.
    Runs on a live directory without stopping writers. Exit 0 only if everything holds,
    else 1 with the list of problems (what, where, what to do)."""

    def action(session: Session) -> None:
        from graphstore.verify import verify

        if session.api_key is not None:  # the local operator may; a key needs admin
            session.store.authorize_operator("verify the store")
            # verify copies system.db with the standard library's SQLite: this process
            # must not keep it open through Honker meanwhile (streams.check.snapshot_file).
            session.store.close()
        if backup is None and not session.data_dir.is_dir():
            session.output.error(f"no data directory at {session.data_dir}: give --data-dir")
            raise typer.Exit(ExitCode.NOT_FOUND)
        if backup is not None and not backup.is_dir():
            session.output.error(f"no backup directory at {backup}: give --backup DIR")
            raise typer.Exit(ExitCode.NOT_FOUND)
        report = verify(session.data_dir, tenants=tenant or None, nats_url=nats_url, backup=backup)
        if as_json or session.output.as_json:
            import json

            typer.echo(json.dumps(report.as_json(), indent=2))
        else:
            _print(session, report)
        if not report.ok:
            raise typer.Exit(ExitCode.REFUSED)

    run_action(ctx, action)


def _print(session: Session, report: object) -> None:
    from graphstore.verify import VerifyReport

    assert isinstance(report, VerifyReport)
    for file in report.files:
        projections = ", ".join(f"{c} at {o}" for c, o in file.projections.items())
        line = (
            f"{file.name}: head {file.head}, {file.entries} entries, "
            f"{file.aggregates} aggregates replayed"
        )
        if projections:
            line += f", projections equal a clean rebuild ({projections})"
        if file.relayed is not None:
            line += f", JetStream checked up to {file.relayed}"
        typer.echo(line)
    if report.ok:
        typer.echo(f"verify: OK ({len(report.files)} files, {report.seconds:.1f} s)")
        return
    typer.echo(f"verify: {len(report.problems)} PROBLEMS")
    for problem in report.problems:
        typer.echo(f"- [{problem.check}] {problem.where}: {problem.what}")
        typer.echo(f"  what to do: {problem.todo}")
