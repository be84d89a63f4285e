"""The ``graphstore backup`` and ``graphstore restore`` commands (docs/backup.md).

Imports typer and the bottom of the command line only; each command loads the store
and the backup when it runs.
"""

# typer commands take their options as parameters
# ruff: noqa: PLC0415

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphstore.cli.session import ExitCode, Session, run_action, session_of

if TYPE_CHECKING:
    from graphstore.backup import Manifest, Progress
    from graphstore.store import Store

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the ``graphstore`` app."""
    app.command("backup")(backup)
    app.command("restore")(restore)


def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="The new backup directory (must not exist).")],
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeat); default: every one.")
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(help="A previous backup: tenants whose streams did not move are reused."),
    ] = None,
    method: Annotated[
        str, typer.Option(help="backup (SQLite's online backup API) or vacuum (VACUUM INTO).")
    ] = "backup",
    step_pages: Annotated[int, typer.Option(help="Pages copied per step (backup).")] = 1024,
    progress: Annotated[bool, typer.Option(help="Print each step's progress on stderr.")] = False,
    nice: Annotated[
        int, typer.Option(help="CPU niceness of the copy (0: none); writers keep theirs.")
    ] = 10,
) -> None:
    """Back up system.db and every tenant file (or those of --tenant) into DEST while
    writers keep running: a consistent snapshot of each file and manifest.json (heads,
    relay positions, SHA-256). DEST appears complete or not at all. Admins only; audited."""

    if method not in ("backup", "vacuum"):
        typer.echo(f"--method is backup or vacuum, not {method!r}", err=True)
        raise typer.Exit(ExitCode.USAGE)

    def action(session: Session) -> None:
        from domain.errors import NotFoundError
        from graphstore.backup import take_backup

        if not (session.data_dir / "system.db").is_file():
            raise NotFoundError(
                f"no store in {session.data_dir} (no system.db): give its --data-dir",
                kind="data directory",
                name=str(session.data_dir),
            )
        store = session.store
        store.authorize_operator("back up the store")
        registered = store.tenants()
        for org in tenant or []:
            store.data.tenant_path(org)  # a valid org id first
            if org not in registered:
                raise NotFoundError(
                    f"no tenant {org!r} in {session.data_dir}: `graphstore tenant list` "
                    "shows the tenants",
                    kind="tenant",
                    name=org,
                )
        principal = store.principal
        session.close_store()  # the snapshot reads the files with another SQLite library
        manifest = take_backup(
            session.data_dir,
            dest,
            tenants=tenant or None,
            since=since,
            method=method,  # type: ignore[arg-type]  # checked above
            step_pages=step_pages,
            progress=_printer(session) if progress else None,
            nice=nice,
        )
        session.store.identity.record_operation(
            principal, "backup", {"dest": str(manifest.path), **_summary(manifest)}
        )
        _print_manifest(session, manifest)

    run_action(ctx, action)


def restore(
    ctx: typer.Context,
    src: Annotated[
        Path | None, typer.Argument(help="The backup directory (with --nats: the base).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The data directory to restore into.")
    ] = None,
    tenant: Annotated[
        list[str] | None, typer.Option(help="Only this tenant (repeat); default: every one.")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Swap --tenant's file in an existing store (writers stopped).")
    ] = False,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", help="Restore --tenant to a point from JetStream at this URL."),
    ] = None,
    base: Annotated[
        Path | None, typer.Option(help="With --nats: the backup to start from.")
    ] = None,
    until_offset: Annotated[
        int | None, typer.Option(help="With --nats: restore up to this stream offset.")
    ] = None,
    until_time: Annotated[
        str | None,
        typer.Option(help="With --nats: up to this time (ISO 8601, or ms since the epoch)."),
    ] = None,
    system: Annotated[
        bool,
        typer.Option(
            "--system",
            help="With --nats: restore system.db (accounts, keys, registry) from JetStream "
            "first, up to --until-time.",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Print the copy's progress on stderr.")] = False,
) -> None:
    """Restore a backup into a new data directory (checked first: manifest and every
    hash; written beside it, then renamed into place), or one tenant of an existing
    store with --tenant ORG --replace. With --nats: a tenant to a point from JetStream."""

    target = data_dir if data_dir is not None else session_of(ctx).data_dir
    if nats_url is None and (base is not None or until_offset is not None or until_time or system):
        typer.echo("--base, --until-offset, --until-time and --system go with --nats URL", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if nats_url is None and src is None:
        typer.echo("give the backup directory: graphstore restore SRC --data-dir NEW", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if until_offset is not None and until_time is not None:
        typer.echo("give --until-offset or --until-time, not both", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if system and (base is not None or src is not None):
        typer.echo(
            "--system restores system.db from JetStream; with a base backup, system.db comes "
            "from the base: give one of them",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    until_ms = None if until_time is None else _parse_time(until_time)

    def action(session: Session) -> None:
        if nats_url is not None:
            _restore_from_nats(
                session,
                nats_url,
                target,
                tenant or [],
                base or src,
                until_offset,
                until_ms,
                system=system,
            )
            return
        from graphstore.backup import restore_backup

        assert src is not None
        store = _replacing_store(session, target, tenant or []) if replace else None
        try:
            report = restore_backup(
                src,
                target,
                tenants=tenant or None,
                replace=replace,
                progress=_printer(session) if progress else None,
            )
            if store is not None:
                store.identity.record_operation(
                    store.principal,
                    "restore --replace",
                    {"backup": str(report.backup), "tenants": [f.org for f in report.files]},
                )
        finally:
            if store is not None:
                store.close()
        if session.output.as_json:
            session.output.data(report.as_json())
            return
        out = session.output.out
        for entry in report.files:
            what = "system.db" if entry.org is None else f"tenant {entry.org}"
            out.print(f"restored {what}: head {entry.head}, {entry.size} bytes", markup=False)
        for old in report.replaced:
            out.print(
                f"replaced tenant {old.org}: it was at head {old.head} ({old.size} bytes), "
                f"kept as {old.kept_as}",
                markup=False,
            )
        for note in report.notes:
            out.print(f"note: {note}", markup=False)
        out.print(f"restored {report.backup} into {report.data_dir}", markup=False)

    run_action(ctx, action)


def _replacing_store(session: Session, target: Path, tenants: list[str]) -> "Store | None":
    """The existing store a ``--replace`` writes into, its principal authorized as an
    operator (the replace is then audited in it); None if there is no store there (the
    restore refuses that itself)."""
    from domain import Principal
    from graphstore.store import Store

    if not (target / "system.db").is_file():
        return None
    if session.api_key is None:
        store = Store(target, principal=Principal.system())
    else:
        store = Store(target, api_key=session.api_key)
    try:
        store.authorize_operator(f"replace tenant files ({', '.join(tenants)}) from a backup")
    except BaseException:
        store.close()
        raise
    return store


def _restore_from_nats(
    session: Session,
    url: str,
    target: Path,
    tenants: list[str],
    base: Path | None,
    until_offset: int | None,
    until_ms: int | None,
    *,
    system: bool,
) -> None:
    from graphstore.nats.restore import restore_from_nats, restore_system_from_nats
    from graphstore.nats.subjects import SYSTEM_KEY

    if not tenants and not system:
        session.output.error(
            "restore --nats restores named tenants (--tenant ORG) and/or system.db (--system)"
        )
        raise typer.Exit(ExitCode.USAGE)
    # system.db first: it registers the tenants restored after it (docs/backup.md).
    reports = [restore_system_from_nats(url, target, until_time_ms=until_ms)] if system else []
    reports += [
        restore_from_nats(
            url, org, target, base=base, until_offset=until_offset, until_time_ms=until_ms
        )
        for org in tenants
    ]
    if session.output.as_json:
        session.output.data([r.as_json() for r in reports])
        return
    for r in reports:
        session.output.out.print(
            f"restored {r.org if r.org == SYSTEM_KEY else 'tenant ' + r.org} to offset "
            f"{r.restored_to}: base head {r.base_head}, "
            f"{r.events_replayed} events replayed from JetStream",
            markup=False,
        )
        for note in r.notes:
            session.output.out.print(f"note: {note}", markup=False)


def _parse_time(value: str) -> int:

    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"--until-time {value!r}: give ISO 8601 or ms since the epoch", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _printer(session: Session) -> "Progress":
    err = session.output.err

    def show(name: str, done: int, total: int) -> None:
        err.print(f"progress {name} {done}/{total}", markup=False)

    return show


def _summary(manifest: "Manifest") -> dict[str, Any]:
    return {
        "formatVersion": manifest.format_version,
        "files": {
            f.file: {"head": f.head, "sha256": f.sha256, "reused": f.reused} for f in manifest.files
        },
    }


def _print_manifest(session: Session, manifest: "Manifest") -> None:
    if session.output.as_json:
        session.output.data({"path": str(manifest.path), **manifest.as_json()})
        return
    rows = [
        {
            "file": f.file,
            "org": f.org or "-",
            "head": f.head,
            "relay": "-" if f.relay_position is None else f.relay_position,
            "bytes": f.size,
            "how": "reused" if f.reused else "copied",
        }
        for f in manifest.files
    ]
    session.output.table(rows, ["file", "org", "head", "relay", "bytes", "how"], title="backup")
    session.output.out.print(
        f"backup written to {manifest.path} in {manifest.seconds:.2f} s", markup=False
    )
