"""The ``archive`` commands: the files of an archive of retired runs, their proof, and
bringing a run back (docs/archive.md).

Imports typer and the bottom of the command line only; each command loads the archive
when it runs.
"""

# ruff: noqa: PLC0415

from pathlib import Path
from typing import Annotated

import typer

from graphstore.cli.options import TenantOption
from graphstore.cli.session import Session, run_action

__all__ = ["archive_app", "register"]

archive_app = typer.Typer(
    help="The archive of retired runs: list its files, verify it, restore a run.",
    no_args_is_help=True,
)

ArchiveOption = Annotated[
    Path | None,
    typer.Option(
        "--archive",
        help="The archive directory (default: the tenant policy's, else <data-dir>/archive).",
        file_okay=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``archive`` group to the ``graphstore`` app."""
    app.add_typer(archive_app, name="archive")


def _root(session: Session, archive: Path | None) -> Path:
    from graphstore.archive import default_root

    return archive if archive is not None else default_root(session.data_dir)


def _authorize(session: Session, tenant: str | None, what: str) -> None:
    """With an API key: an operator of ``tenant`` (an admin for every tenant); the local
    operator, who has the files anyway, needs no store for an archive elsewhere."""
    if session.api_key is None:
        return
    if tenant is None:
        session.store.authorize_operator(what)
    else:
        session.store.authorize(tenant, "operate", what)


@archive_app.command("list")
def archive_list(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's files.")] = None,
    archive: ArchiveOption = None,
) -> None:
    """List the archive's files (tenant, month, runs, bytes, content digest), from its
    manifest (``sha256``: a file's whole SHA-256, from a version 1 manifest)."""

    def action(session: Session) -> None:
        from graphstore.archive import Archive

        _authorize(session, tenant, "list the archive")
        root = _root(session, archive)
        files = Archive(root).list(tenant)
        session.output.table(
            [
                {
                    "path": f.path,
                    "tenant": f.org,
                    "period": f.period,
                    "runs": f.runs,
                    "bytes": f.bytes,
                    "digest": f.digest or (f"sha256:{f.sha256}" if f.sha256 else ""),
                    "sha256": f.sha256,
                    "pending": f.pending,
                }
                for f in files
            ],
            ["path", "tenant", "period", "runs", "bytes", "digest"],
            title=f"files in archive {root}",
        )

    run_action(ctx, action)


@archive_app.command("verify")
def archive_verify(ctx: typer.Context, archive: ArchiveOption = None) -> None:
    """Check the manifest, each file's size and SHA-256, and that every run decodes;
    exit 1 naming the problems if any."""

    def action(session: Session) -> None:
        import os

        from graphstore.archive import Archive, ArchiveCorruptError
        from streams.directory import tenant_settings_of
        from streams.reader import cipher_of

        _authorize(session, None, "verify the archive")
        root = _root(session, archive)
        cipher = cipher_of(tenant_settings_of(os.environ))  # None: encrypted runs by hash
        found = Archive(root, cipher)
        problems = found.verify()
        if problems:
            listed = "; ".join(f"{p.path}: {p.problem}" for p in problems)
            raise ArchiveCorruptError(
                f"archive {root} has {len(problems)} problem(s): {listed}; bring the "
                "damaged files back from a copy"
            )
        files = found.list()
        runs = sum(f.runs for f in files)
        keyless = "" if cipher else " (encrypted runs by their digests: no key given)"
        session.output.result(
            {"archive": str(root), "files": len(files), "runs": runs, "problems": []},
            f"archive {root}: {len(files)} files, {runs} runs, all verified{keyless}",
        )

    run_action(ctx, action)


@archive_app.command("restore")
def archive_restore(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    archive: ArchiveOption = None,
) -> None:
    """Put an archived run back into its tenant by re-ingesting its events (one
    transaction, audited); refused if the run is live there."""

    def action(session: Session) -> None:
        from graphstore.archive import Archive, restore_run
        from graphstore.retention import archive_root
        from streams.reader import cipher_of

        metagraph = session.tenant(tenant)
        root = archive if archive is not None else archive_root(metagraph, session.data_dir)
        cipher = cipher_of(metagraph.env)
        run, report = restore_run(Archive(root, cipher), metagraph, tenant, run_id)
        session.output.result(
            {"run_id": run.run_id, "tenant": tenant, "status": run.status, "report": report},
            f"restored run {run.run_id} ({run.status}) into {tenant} from {root}: "
            f"{report.events} events, {report.applied} applied",
        )

    run_action(ctx, action)
