"""``graphstore verify``: the store's fsck (docs/verify.md).

:func:`verify` proves a data directory right, file by file, on a consistent copy of each
file taken while writers keep writing (SQLite's online backup API: one read transaction,
which never blocks a writer in WAL mode). On each copy:

1. SQLite's ``integrity_check``;
2. the stream's offsets have no hole (or every hole is explained: ``explained``);
3. the aggregate index and the stream agree, both ways, and every payload is an
   envelope of the file's tenant;
4. every aggregate of the file replays from its events (no snapshot) without error;
5. (tenant files) each projection's tables equal a clean rebuild of it, made in the copy
   up to the offset the live projection has saved, compared by digest;
6. with ``nats_url``: the tenant's relayed subject holds exactly the stream's entries up
   to the relay's saved position, byte for byte;
7. with ``backup``: the backup's manifest and hashes (``graphstore.backup``), then
   checks 1-5 on the backed-up files.

The result is a :class:`VerifyReport`: what was checked and every :class:`Problem`,
each saying what is wrong, where, and what to do. It holds when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from streams import (
    HonkerDatastore,
    TenantReader,
    count_between,
    read_after,
    saved_position,
    stream_head,
)
from streams.check import (
    ExplainedGaps,
    Gap,
    StreamProblem,
    aggregate_ids,
    envelope_problems,
    explained_by_ranges,
    first_encoded,
    index_problems,
    integrity_problems,
    offset_gaps,
    snapshot_file,
)
from streams.directory import SYSTEM_FILE, Directory, tenant_settings_of
from streams.retirement import EncryptedRecordError, PlainState, retired_ranges

__all__ = ["FileReport", "Problem", "VerifyReport", "verify", "verify_file"]

TENANT_STREAM: Final = "metagraph"
SYSTEM_STREAM: Final = "identity"
RELAY_CONSUMER: Final = "relay@v1"

_TODO: Final = {
    "open": "check the path and the file's permissions; if the file is damaged, restore it "
    "(docs/backup.md)",
    "integrity": "the file is damaged below the store: stop its writers and restore it from a "
    "backup and JetStream (docs/backup.md); keep the damaged file for inspection",
    "gap": "entries were deleted from the stream: restore the tenant from a backup and "
    "JetStream (docs/backup.md); if a retention record removed them, pass it as explained",
    "index": "the index and the stream disagree: restore the tenant from a backup and "
    "JetStream (docs/backup.md)",
    "envelope": "stream payloads are damaged: restore the tenant from a backup and JetStream "
    "(docs/backup.md); `verify --nats` shows the relayed originals",
    "aggregate": "an aggregate no longer replays: restore the tenant (docs/backup.md); the "
    "offsets named show where its history breaks",
    "projection": "rebuild the projection (`graphstore projections rebuild`, "
    "docs/projections.md); if the stream is also reported damaged, restore first",
    "nats": "the relayed subject differs from the stream: if the stream is reported damaged, "
    "restore it from JetStream; otherwise check what else publishes on the subject "
    "(docs/scale.md)",
    "cipher": "the tenant's events are encrypted or compressed: run verify with the writers' "
    "settings (GRAPHSTORE_CIPHER_KEY / GRAPHSTORE_COMPRESSOR_TOPIC, docs/retention.md); the "
    "other checks of this file were skipped",
    "backup": "the backup is not usable: take a new one (`graphstore backup`), or use an "
    "older one that verifies",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: which ``check`` found it, ``where`` (file, offsets, table), what
    is wrong and what to do about it."""

    check: str
    where: str
    what: str
    todo: str

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "where": self.where, "what": self.what, "todo": self.todo}


@dataclass
class FileReport:
    """What was checked in one file."""

    name: str
    path: str
    head: int = 0
    entries: int = 0
    aggregates: int = 0
    projections: dict[str, int] = field(default_factory=dict)
    """Each projection's consumer and the offset it was compared at."""
    relayed: int | None = None
    """With ``nats_url``: the relay position up to which the subject was compared."""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "head": self.head,
            "entries": self.entries,
            "aggregates": self.aggregates,
            "projections": dict(self.projections),
            "relayed": self.relayed,
        }


@dataclass
class VerifyReport:
    """Everything :func:`verify` checked, and what it found wrong."""

    target: str
    files: list[FileReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check held."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "files": [f.as_json() for f in self.files],
            "problems": [p.as_json() for p in self.problems],
        }


def _problem(check: str, where: str, what: str) -> Problem:
    return Problem(check, where, what, _TODO[check])


def _at(where: str, offsets: Sequence[int]) -> str:
    if not offsets:
        return where
    shown = ", ".join(str(o) for o in offsets)
    return f"{where}, offsets {shown}"


def verify(
    data_dir: Path,
    *,
    tenants: Sequence[str] | None = None,
    nats_url: str | None = None,
    backup: Path | None = None,
    explained: ExplainedGaps | None = None,
) -> VerifyReport:
    """Verify the data directory ``data_dir`` (``system.db`` and every registered tenant,
    or only ``tenants``), or with ``backup`` the backup directory instead; see the module
    docstring."""
    started = time.monotonic()
    target = backup if backup is not None else data_dir
    report = VerifyReport(str(target))
    with _scratch() as scratch:
        if backup is not None:
            _verify_backup(backup, scratch, report, tenants, explained)
        else:
            _verify_directory(
                data_dir, scratch, report, tenants=tenants, nats_url=nats_url, explained=explained
            )
    report.seconds = time.monotonic() - started
    return report


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="graphstore-verify-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _verify_directory(
    data_dir: Path,
    scratch: Path,
    report: VerifyReport,
    *,
    tenants: Sequence[str] | None,
    nats_url: str | None,
    explained: ExplainedGaps | None,
) -> None:
    live = Directory(data_dir, create=False)
    copies = Directory(scratch / "copy")
    system = live.system_path
    if tenants is None:
        if not _copy(system, copies.system_path, "system.db", report):
            return
        system_report = verify_file(
            copies.system_path, SYSTEM_STREAM, None, report, explained, name=SYSTEM_FILE
        )
        system_report.path = str(system)
        report.files.append(system_report)
        org_ids = _registered(copies)
    else:
        org_ids = list(tenants)
    for org_id in org_ids:
        path = live.tenant_path(org_id)
        copy = copies.tenant_path(org_id)
        if not _copy(path, copy, f"tenant {org_id}", report):
            continue
        file_report = verify_file(
            copy, TENANT_STREAM, org_id, report, explained, cipher=live.tenant_settings
        )
        file_report.path = str(path)
        report.files.append(file_report)
        if nats_url is not None:
            _compare_subject(nats_url, org_id, copy, file_report, report)
        for suffix in ("", "-wal", "-shm"):  # one tenant's copy on disk at a time
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _copy(path: Path, dest: Path, where: str, report: VerifyReport) -> bool:
    if not path.exists():
        report.problems.append(_problem("open", where, f"{path} is missing"))
        return False
    try:
        snapshot_file(path, dest)
    except Exception as exc:  # any SQLite refusal: the file cannot be read
        report.problems.append(
            _problem("open", where, f"{path} cannot be read as a database: {exc}")
        )
        return False
    return True


def _registered(copies: Directory) -> list[str]:
    # The registry, read from the copy of system.db (domain's identity application).
    from domain import Identity  # noqa: PLC0415 - the domain only when a registry is read

    identity = Identity(copies.system_env())
    try:
        return identity.tenants()
    finally:
        identity.close()


def verify_file(
    path: Path,
    stream: str,
    org_id: str | None,
    report: VerifyReport,
    explained: ExplainedGaps | None = None,
    *,
    name: str | None = None,
    cipher: Mapping[str, str] | None = None,
) -> FileReport:
    """Checks 1-5 on ``path``, a copy this call may write into (the clean rebuilds);
    problems are added to ``report``.

    ``cipher``: a tenant file's cipher and compressor settings (``CIPHER_KEY``,
    ``COMPRESSOR_TOPIC``); by default the process environment's
    (:func:`streams.directory.tenant_settings_of`). ``system.db`` is always plain."""
    where = name or (f"tenant {org_id}" if org_id else path.name)
    file_report = FileReport(where, str(path))
    if org_id is None:
        cipher = {}
    elif cipher is None:
        cipher = tenant_settings_of(os.environ)
    settings = {
        **cipher,
        "HONKER_DBNAME": str(path),
        **({"HONKER_TENANT": org_id} if org_id else {}),
    }
    try:
        reader = TenantReader(settings, stream)
    except Exception as exc:
        report.problems.append(_problem("integrity", where, f"the file does not open: {exc}"))
        return file_report
    datastore = reader.datastore
    try:
        try:
            broken = integrity_problems(datastore)
        except Exception as exc:  # SQLite gives up on a badly damaged file
            broken = [StreamProblem("integrity", f"the integrity check failed: {exc}")]
        for found in broken:
            report.problems.append(_problem("integrity", where, found.message))
        if broken:
            return file_report  # the rest would read a damaged file: restore first
        unreadable = _cipher_problem(datastore, stream, reader.plain_state)
        if unreadable is not None:
            report.problems.append(_problem("cipher", where, unreadable))
            return file_report  # every later check would fail on each encrypted event
        _stream_checks(
            datastore,
            stream,
            org_id,
            where,
            file_report,
            report=report,
            explained=explained,
            plain_state=reader.plain_state,
        )
    except EncryptedRecordError as exc:  # a record of a file that is otherwise plain
        report.problems.append(_problem("cipher", where, str(exc)))
        return file_report
    except Exception as exc:  # a read the damage made fail: said, not raised
        report.problems.append(_problem("integrity", where, f"reading the file failed: {exc}"))
        return file_report
    finally:
        reader.close()
    env = {**cipher, "PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    if org_id is not None:
        env["HONKER_TENANT"] = org_id
    _replay_aggregates(env, stream, where, file_report, report)
    if org_id is not None:
        _check_projections(env, where, file_report, report)
    return file_report


def _cipher_problem(
    datastore: HonkerDatastore, stream: str, plain_state: PlainState | None
) -> str | None:
    """What is wrong when the file's events are encrypted or compressed and the settings
    given do not undo them (none given, or another key), else None. The key is never
    named."""
    encoded = first_encoded(datastore, stream)
    if encoded is None:
        return None
    offset, state = encoded
    if plain_state is None:
        return (
            f"the events are encrypted or compressed (data_b64, first at offset {offset}) "
            "and verify was given no cipher settings"
        )
    try:
        plain_state(state)
    except Exception as exc:  # the cipher's own error: no detail that could carry the key
        return (
            f"the event at offset {offset} does not decrypt with the cipher settings given "
            f"({type(exc).__name__}): another key, or another compressor?"
        )
    return None


def _stream_checks(
    datastore: HonkerDatastore,
    stream: str,
    org_id: str | None,
    where: str,
    file_report: FileReport,
    *,
    report: VerifyReport,
    explained: ExplainedGaps | None,
    plain_state: PlainState | None,
) -> None:
    file_report.head = stream_head(datastore, stream).offset
    file_report.entries = count_between(datastore, stream, 0, file_report.head)
    retired = explained_by_ranges(retired_ranges(datastore, stream, plain_state))

    def explained_or_retired(gap: Gap) -> bool:  # a retention record's gap is no hole
        return retired(gap) or (explained is not None and explained(gap))

    for gap in offset_gaps(datastore, explained=explained_or_retired):
        span = str(gap.first) if gap.first == gap.last else f"{gap.first}-{gap.last}"
        report.problems.append(
            _problem(
                "gap",
                f"{where}, offsets {span}",
                f"{gap.last - gap.first + 1} stream entries are missing (a hole in the offsets)",
            )
        )
    for found in index_problems(datastore, stream):
        report.problems.append(_problem("index", _at(where, found.offsets), found.message))
    tenant = org_id if org_id is not None else datastore.tenant
    for found in envelope_problems(datastore, stream, tenant):
        report.problems.append(_problem("envelope", _at(where, found.offsets), found.message))


def _replay_aggregates(
    env: dict[str, str], stream: str, where: str, file_report: FileReport, report: VerifyReport
) -> None:
    from domain import Identity, Metagraph  # noqa: PLC0415

    application: Any
    try:
        application = Metagraph(env=env) if stream == TENANT_STREAM else Identity(env)
    except Exception as exc:
        report.problems.append(
            _problem("aggregate", where, f"the application does not open: {exc}")
        )
        return
    try:
        repository = application.repository
        repository.snapshot_store = None  # replay every event, never start from a cache
        ids = aggregate_ids(application.factory.datastore, stream)
        failed: list[str] = []
        for aggregate_id in ids:
            try:
                repository.get(aggregate_id)
            except Exception as exc:
                failed.append(f"{aggregate_id}: {type(exc).__name__}: {exc}")
        file_report.aggregates = len(ids) - len(failed)
        if failed:
            report.problems.append(
                _problem(
                    "aggregate",
                    where,
                    f"{len(failed)} of {len(ids)} aggregates do not replay: "
                    + "; ".join(failed[:5]),
                )
            )
    finally:
        application.close()


def _check_projections(
    env: dict[str, str], where: str, file_report: FileReport, report: VerifyReport
) -> None:
    from projections.digest import check_projections  # noqa: PLC0415

    try:
        checks = check_projections(env)
    except Exception as exc:
        report.problems.append(
            _problem("projection", where, f"the clean rebuild could not run: {exc}")
        )
        return
    for check in checks:
        file_report.projections[check.consumer] = check.position
        if check.error is not None:
            report.problems.append(
                _problem("projection", f"{where}, {check.consumer}", check.error)
            )
        elif check.differing:
            report.problems.append(
                _problem(
                    "projection",
                    f"{where}, {check.consumer}, tables {', '.join(check.differing)}",
                    f"the tables differ from a clean rebuild up to offset {check.position} "
                    "(compared by digest)",
                )
            )


# --------------------------------------------------------------------------- --nats


def _compare_subject(
    nats_url: str, org_id: str, copy: Path, file_report: FileReport, report: VerifyReport
) -> None:
    from graphstore.nats.relayed import relayed_upto  # noqa: PLC0415 - only with --nats

    where = f"tenant {org_id}, graphstore.{org_id}.events"
    with TenantReader({"HONKER_DBNAME": str(copy)}, TENANT_STREAM) as reader:  # bytes only
        datastore = reader.datastore
        position = saved_position(datastore, RELAY_CONSUMER, TENANT_STREAM) or 0
        stored = [
            (e.offset, e.payload.encode())
            for e in read_after(datastore, TENANT_STREAM, 0, upto=position)
        ]
    file_report.relayed = position
    try:
        relayed = asyncio.run(relayed_upto(nats_url, org_id, position))
    except Exception as exc:  # any connection failure: one problem, said plainly
        report.problems.append(_problem("nats", where, f"cannot read JetStream: {exc!r}"))
        return
    if relayed == stored:
        return
    stored_at = dict(stored)
    relayed_at = dict(relayed)
    missing = sorted(set(stored_at) - set(relayed_at))
    extra = sorted(set(relayed_at) - set(stored_at))
    differ = sorted(o for o in set(stored_at) & set(relayed_at) if stored_at[o] != relayed_at[o])
    order = [o for o, _ in relayed] != sorted(relayed_at)
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} entries up to the relay position {position} are not in "
            f"the subject (first: {missing[:5]})"
        )
    if extra:
        parts.append(f"{len(extra)} messages carry offsets the stream lacks (first: {extra[:5]})")
    if differ:
        parts.append(f"{len(differ)} payloads differ (offsets {differ[:5]})")
    if order or len(relayed) != len(relayed_at):
        parts.append("messages are out of order or duplicated")
    report.problems.append(_problem("nats", where, "; ".join(parts) or "the subject differs"))


# --------------------------------------------------------------------------- backups


def _verify_backup(
    backup: Path,
    scratch: Path,
    report: VerifyReport,
    tenants: Sequence[str] | None,
    explained: ExplainedGaps | None,
) -> None:
    """The manifest and every hash (``graphstore.backup.check_backup``), then checks 1-5
    on a copy of each backed-up file."""
    from graphstore.backup import BackupError, check_backup, read_manifest  # noqa: PLC0415

    try:
        manifest = read_manifest(backup)
    except BackupError as exc:
        report.problems.append(_problem("backup", str(backup), str(exc)))
        return
    problems = check_backup(backup, tenants=tenants)
    for found in problems:
        where = f"{backup}, {found.file}" if found.file else str(backup)
        report.problems.append(Problem("backup", where, found.what, found.fix))
    if problems:
        return  # a file that does not match its manifest is not worth replaying
    for entry in manifest.files:
        if entry.org is not None and tenants is not None and entry.org not in tenants:
            continue
        copy = scratch / entry.path.name
        shutil.copyfile(entry.path, copy)
        stream = TENANT_STREAM if entry.org else SYSTEM_STREAM
        name = f"tenant {entry.org}" if entry.org else SYSTEM_FILE
        file_report = verify_file(copy, stream, entry.org, report, explained, name=name)
        file_report.path = str(entry.path)
        report.files.append(file_report)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
