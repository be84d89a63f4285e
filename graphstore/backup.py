"""Backups of a data directory, and restores from them (docs/backup.md).

:func:`take_backup` writes a backup directory: a consistent snapshot of ``system.db``
and of each tenant file (:func:`streams.snapshot.snapshot_file`: each file as of one
commit, writers running) and ``manifest.json`` listing, per file, its org, its stream
head, the relay's position, its SHA-256 and size; with the store's format version, when
it was made and how long it took. It is written into a hidden directory beside the
destination (``.<name>.partial-<random>``), every file and the directory fsynced, and
only then renamed to the destination: a directory at the destination is always
complete, and a partial one is never read as a backup (:func:`read_manifest` refuses
it). With ``since`` (a previous backup), a tenant whose streams did not move since that
backup is hard-linked from it (copied if it is on another filesystem), so every backup
directory restores on its own.

:func:`restore_backup` checks the manifest and every file's hash first
(:func:`check_backup`), then copies into a hidden directory beside the target and renames
it into place: a restore killed at any point leaves no target directory (run it again).
With ``replace`` it swaps tenant files of an existing store, each only while no process
has it open, and says what it replaced.

The snapshot reads the files with Python's ``sqlite3``: call these from a process that
does not have the files open with the store (the command line closes its store first).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from domain import Identity, Metagraph
from domain.errors import DomainError
from graphstore.errors import GraphstoreError
from streams.directory import SYSTEM_FILE, Directory
from streams.snapshot import (
    FORMAT_VERSION,
    FileState,
    SnapshotError,
    SnapshotMethod,
    describe_file,
    file_in_use,
    fold_wal,
    fsync_path,
    live_heads,
    snapshot_file,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "RELAY_CONSUMER",
    "BackupError",
    "BackupFile",
    "BackupInvalidError",
    "BackupTargetError",
    "Manifest",
    "Problem",
    "Progress",
    "Replaced",
    "RestoreBusyError",
    "RestoreReport",
    "check_backup",
    "read_manifest",
    "restore_backup",
    "restore_lock",
    "take_backup",
]

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_VERSION: Final = 1
"""The layout of ``manifest.json`` itself (its keys); the files' format is
:data:`streams.snapshot.FORMAT_VERSION`."""
RELAY_CONSUMER: Final = "relay@v1"
"""The relay's consumer name (``graphstore.nats.relay.DEFAULT_CONSUMER``, repeated here
so a backup does not import nats; a test keeps the two equal)."""
TENANT_STREAM: Final = Metagraph.name
"""The tenant's stream: what a manifest's ``head`` is for a tenant file."""
SYSTEM_STREAM: Final = Identity.name
"""``system.db``'s stream (accounts, organizations, keys, audit)."""
_PARTIAL: Final = ".partial-"
_RESTORING: Final = ".restore-"
_CHUNK: Final = 1 << 16  # restore copies (and reports progress) 64 KiB at a time

Progress = Callable[[str, int, int], None]
"""``progress(file_name, done, total)``: pages of a snapshot, bytes of a restore copy."""


class BackupError(GraphstoreError, DomainError):
    """A backup or a restore was refused; nothing was written. The message says what
    was wrong and what to do. Also a :class:`~domain.errors.DomainError` (a refused
    command: the command line prints its one line and exits 1)."""


class BackupInvalidError(BackupError):
    """The backup does not pass its checks: a file damaged, truncated or missing, a
    manifest that does not match its files, or a format newer than this code's.
    ``problems`` lists each."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class BackupTargetError(BackupError):
    """The destination cannot take the backup or the restore (it exists, holds a store,
    or a process has its files open)."""


class RestoreBusyError(BackupTargetError):
    """Another restore is writing into the same data directory (its lock is held)."""


@contextlib.contextmanager
def restore_lock(data_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold, for the block, the one lock of restores into ``data_dir`` (from a backup,
    or from JetStream); :class:`RestoreBusyError` at once if another process holds it.

    Why: two restores into one directory would each check that the target is free,
    build their copy and rename it into place, the second over the first, and each
    removes the other's leftovers as a killed restore's. The lock is ``flock(2)`` on
    ``.<name>.restoring.lock`` beside the directory (the directory itself may not exist
    yet, and is renamed into place whole); the kernel releases it when its process
    ends, a kill -9 included, so a killed restore never leaves it held. The file stays
    (removing it would race with the next restore taking it) and names the last holder."""
    target = Path(os.path.realpath(data_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.restoring.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RestoreBusyError(
                f"another restore (process {holder}) is writing into {target}: wait for it "
                f"to end, or stop it, then run this one again. Nothing was written."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a backup: which file (None: the backup as a whole), what,
    and what to do."""

    file: str | None
    what: str
    fix: str = "take a new backup, or use another one"

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.what} ({self.fix})"


@dataclass(frozen=True)
class BackupFile:
    """One file of a backup, as its manifest lists it."""

    org: str | None
    """The tenant's org id; None for ``system.db``."""
    file: str
    """The file's name inside the backup directory."""
    path: Path
    """Its absolute path."""
    head: int
    """The offset of the last entry of the file's main stream (the tenant's
    ``metagraph`` stream, ``system.db``'s ``identity``) at the snapshot; 0 if empty."""
    relay_position: int | None
    """The relay's saved position in that stream; None if it never relayed it."""
    sha256: str
    size: int
    heads: dict[str, int] = field(default_factory=dict)
    """Every stream of the file and its head."""
    positions: dict[str, int] = field(default_factory=dict)
    """Every saved consumer position, as ``"<consumer> <stream>": offset``."""
    reused: bool = False
    """Hard-linked or copied from the ``since`` backup (its streams had not moved)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "file": self.file,
            "head": self.head,
            "relayPosition": self.relay_position,
            "sha256": self.sha256,
            "size": self.size,
            "heads": self.heads,
            "positions": self.positions,
            "reused": self.reused,
        }


@dataclass(frozen=True)
class Manifest:
    """A backup directory's ``manifest.json``."""

    path: Path
    """The backup directory (absolute)."""
    format_version: int
    created: str
    """When the backup was finished (ISO 8601, UTC)."""
    seconds: float
    """How long it took."""
    method: str
    since: str | None
    """The previous backup an incremental one reused files from."""
    files: tuple[BackupFile, ...]

    @property
    def tenants(self) -> list[str]:
        return [f.org for f in self.files if f.org is not None]

    def file_of(self, org: str | None) -> BackupFile:
        """The entry of tenant ``org`` (None: ``system.db``); BackupError if absent."""
        for entry in self.files:
            if entry.org == org:
                return entry
        what = "system.db" if org is None else f"tenant {org!r}"
        raise BackupError(
            f"backup {self.path} holds no {what}; it holds {self.tenants or 'no tenant'}: "
            "pick one of those, or another backup"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "manifestVersion": MANIFEST_VERSION,
            "formatVersion": self.format_version,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "method": self.method,
            "since": self.since,
            "files": [f.as_json() for f in self.files],
        }


# ------------------------------------------------------------------------------ backup


def take_backup(
    data_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    tenants: Sequence[str] | None = None,
    since: str | os.PathLike[str] | None = None,
    method: SnapshotMethod = "backup",
    step_pages: int = 1024,
    progress: Progress | None = None,
    nice: int = 10,
) -> Manifest:
    """Back up ``system.db`` and the tenant files of ``tenants`` (org ids, checked by
    the caller against the registry; None: every tenant file, so every tenant the
    backed-up ``system.db`` registers) of ``data_dir`` into the new directory ``dest``.

    With ``since`` (a previous backup directory), a tenant whose streams have the same
    heads as there is reused from it (hard link, or copy across filesystems). The
    directory appears at ``dest`` complete, or not at all. The copy runs at CPU
    niceness ``nice`` (0: as the caller), so writers keep their latency. This process
    must not have the files open with the store (see the module docstring)."""
    started = time.monotonic()
    data = Directory(data_dir, create=False)
    target = Path(dest).absolute()
    if target.exists():
        raise BackupTargetError(
            f"{target} exists: give a new directory for the backup (a backup is never "
            "written over another one)"
        )
    if not data.system_path.is_file():
        raise BackupError(f"{data.path} holds no store (no {SYSTEM_FILE}): check --data-dir")
    previous = _previous_files(since)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}{_PARTIAL}{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        # The copy runs in a thread of its own at a lower CPU priority: a backup yields
        # the CPU to the store's writers (on Linux, niceness is per thread).
        with ThreadPoolExecutor(1, initializer=_lower_priority, initargs=(nice,)) as pool:
            copying = pool.submit(
                _copy_files,
                data,
                partial,
                None if tenants is None else sorted(set(tenants)),
                previous,
                method=method,
                step_pages=step_pages,
                progress=progress,
            )
            entries = copying.result()
        manifest = Manifest(
            target,
            FORMAT_VERSION,
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            time.monotonic() - started,
            method,
            None if since is None else str(Path(since).absolute()),
            tuple(entries),
        )
        _write_manifest(partial, manifest)
        fsync_path(partial)
        if target.exists():
            raise BackupTargetError(f"{target} appeared while the backup was written")
        partial.rename(target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return _relocated(manifest, target)


def _lower_priority(nice: int) -> None:
    if nice > 0 and sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _copy_files(
    data: Directory,
    partial: Path,
    tenants: list[str] | None,
    previous: dict[str, BackupFile],
    *,
    method: SnapshotMethod,
    step_pages: int,
    progress: Progress | None,
) -> list[BackupFile]:
    """Snapshot system.db, then each tenant (or reuse it from ``previous``)."""
    options: dict[str, Any] = {"method": method, "step_pages": step_pages, "progress": progress}
    entries = [_snapshot(data.system_path, partial, None, **options)]
    for org in _tenant_files(data) if tenants is None else tenants:
        source = data.tenant_path(org)
        if not source.is_file():
            raise BackupError(
                f"tenant {org!r} is registered but has no file {source.name}: check --data-dir"
            )
        reuse = previous.get(org)
        if reuse is not None and _heads_unchanged(source, reuse):
            entries.append(_reuse(reuse, partial))
        else:
            entries.append(_snapshot(source, partial, org, **options))
    return entries


def _tenant_files(data: Directory) -> list[str]:
    """The org ids of the tenant files present: listed after ``system.db``'s snapshot,
    they include every tenant it registers (a tenant's file is made before its
    registration), and a file left by a creation that crashed, harmless."""
    from domain import check_org_id  # noqa: PLC0415
    from domain.errors import InvalidOrgIdError  # noqa: PLC0415

    found = []
    for path in sorted(data.path.iterdir()):
        name = data.tenant_name(path.name)
        if name is None or not path.is_file():
            continue
        with contextlib.suppress(InvalidOrgIdError):
            found.append(check_org_id(name))
    return found


def _snapshot(
    source: Path,
    partial: Path,
    org: str | None,
    *,
    method: SnapshotMethod,
    step_pages: int,
    progress: Progress | None,
) -> BackupFile:
    name = source.name
    report = None if progress is None else (lambda done, total: progress(name, done, total))
    try:
        state = snapshot_file(
            source, partial / name, method=method, step_pages=step_pages, progress=report
        )
    except SnapshotError as exc:
        raise BackupError(str(exc)) from exc
    (partial / name).chmod(0o444)  # a backup is read, never written (and may be linked)
    return _entry(org, state)


def _entry(org: str | None, state: FileState, *, reused: bool = False) -> BackupFile:
    stream = SYSTEM_STREAM if org is None else TENANT_STREAM
    return BackupFile(
        org,
        state.path.name,
        state.path,
        state.head(stream),
        state.position(RELAY_CONSUMER, stream),
        state.sha256,
        state.size,
        dict(state.heads),
        {f"{p.consumer} {p.stream}": p.offset for p in state.positions},
        reused,
    )


def _previous_files(since: str | os.PathLike[str] | None) -> dict[str, BackupFile]:
    if since is None:
        return {}
    manifest = read_manifest(since)
    problems = _size_problems(manifest)
    if problems:
        raise BackupInvalidError(
            f"the previous backup {manifest.path} is damaged: {problems[0]}; take a full "
            "backup (without --since)",
            problems,
        )
    return {f.org: f for f in manifest.files if f.org is not None}


def _heads_unchanged(source: Path, previous: BackupFile) -> bool:
    return live_heads(source) == previous.heads


def _reuse(previous: BackupFile, partial: Path) -> BackupFile:
    copy = partial / previous.file
    try:
        os.link(previous.path, copy)
    except OSError:  # another filesystem (or no hard links): a copy of its own
        shutil.copyfile(previous.path, copy)
        fsync_path(copy)
        copy.chmod(0o444)
    state = describe_file(copy)
    if state.sha256 != previous.sha256:
        raise BackupInvalidError(
            f"{previous.path} no longer matches its manifest (SHA-256 differs): take a full "
            "backup (without --since)"
        )
    return _entry(previous.org, state, reused=True)


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    path = directory / MANIFEST_NAME
    with open(path, "w", encoding="utf-8") as out:
        json.dump(manifest.as_json(), out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    path.chmod(0o444)


def _relocated(manifest: Manifest, directory: Path) -> Manifest:
    files = tuple(
        BackupFile(
            f.org,
            f.file,
            directory / f.file,
            f.head,
            f.relay_position,
            f.sha256,
            f.size,
            f.heads,
            f.positions,
            f.reused,
        )
        for f in manifest.files
    )
    return Manifest(
        directory,
        manifest.format_version,
        manifest.created,
        manifest.seconds,
        manifest.method,
        manifest.since,
        files,
    )


# ---------------------------------------------------------------------- reading, checks


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of the backup directory ``path``.

    ``NotFoundError`` if there is no such directory; :class:`BackupInvalidError` if it is
    a partial backup (``.<name>.partial-*``: a backup that did not finish), has no or a
    malformed ``manifest.json``, or was made by a newer format than this code reads."""
    from domain.errors import NotFoundError  # noqa: PLC0415

    directory = Path(path).absolute()
    if not directory.is_dir():
        raise NotFoundError(
            f"no backup directory at {directory}: give the directory `graphstore backup` made",
            kind="backup",
            name=str(directory),
        )
    if _PARTIAL in directory.name:
        raise BackupInvalidError(
            f"{directory} is an unfinished backup (a run that was interrupted); it is not a "
            "backup: delete it and use a complete one",
            [Problem(None, "unfinished backup", "delete it")],
        )
    manifest_path = directory / MANIFEST_NAME
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupInvalidError(
            f"{directory} has no {MANIFEST_NAME}: it is not a backup directory",
            [Problem(MANIFEST_NAME, "missing")],
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupInvalidError(
            f"{manifest_path} is not valid JSON ({exc}): the backup is damaged",
            [Problem(MANIFEST_NAME, "not valid JSON")],
        ) from None
    return _parse_manifest(directory, raw)


def _parse_manifest(directory: Path, raw: object) -> Manifest:
    def bad(what: str) -> BackupInvalidError:
        return BackupInvalidError(
            f"{directory / MANIFEST_NAME}: {what}; the backup is damaged or not one of "
            "graphstore's",
            [Problem(MANIFEST_NAME, what)],
        )

    if not isinstance(raw, dict):
        raise bad("not a JSON object")
    version = raw.get("formatVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("no formatVersion")
    if version > FORMAT_VERSION or raw.get("manifestVersion", 0) > MANIFEST_VERSION:
        raise BackupInvalidError(
            f"{directory} was made by a newer graphstore (format {version}, manifest "
            f"{raw.get('manifestVersion')}); this one reads format {FORMAT_VERSION}: "
            "restore it with that newer version",
            [Problem(None, f"format {version} is newer than {FORMAT_VERSION}", "upgrade")],
        )
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise bad("no files listed")
    entries = []
    seen: set[str] = set()
    for item in files:
        try:
            entries.append(_parse_file(directory, item))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"a file entry is malformed ({exc!r})") from None
        if entries[-1].file in seen:
            raise bad(f"{entries[-1].file} listed twice")
        seen.add(entries[-1].file)
    if sum(1 for e in entries if e.org is None) != 1:
        raise bad(f"it must list {SYSTEM_FILE} exactly once")
    try:
        return Manifest(
            directory,
            version,
            str(raw["created"]),
            float(raw["seconds"]),
            str(raw.get("method", "backup")),
            None if raw.get("since") is None else str(raw["since"]),
            tuple(entries),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"a field is missing or malformed ({exc!r})") from None


def _parse_file(directory: Path, item: Any) -> BackupFile:
    from domain import check_org_id  # noqa: PLC0415

    org = item["org"]
    if org is not None:
        org = check_org_id(str(org))
    expected = (
        SYSTEM_FILE if org is None else Directory(directory, create=False).tenant_path(org).name
    )
    if item["file"] != expected:
        raise ValueError(f"file {item['file']!r} of org {org!r} should be {expected!r}")
    relay = item["relayPosition"]
    sha = str(item["sha256"])
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"sha256 {sha!r} is not a SHA-256 in hex")
    return BackupFile(
        org,
        expected,
        directory / expected,
        int(item["head"]),
        None if relay is None else int(relay),
        sha,
        int(item["size"]),
        {str(k): int(v) for k, v in dict(item.get("heads", {})).items()},
        {str(k): int(v) for k, v in dict(item.get("positions", {})).items()},
        bool(item.get("reused", False)),
    )


def check_backup(
    path: str | os.PathLike[str], *, tenants: Sequence[str] | None = None
) -> list[Problem]:
    """Everything wrong with the backup at ``path`` (empty: it is sound): the manifest,
    and for ``system.db`` and each tenant file (those of ``tenants`` if given), that it
    is there, has the manifest's size and SHA-256, and holds the heads and relay
    position the manifest says. Reads every byte; writes nothing."""
    try:
        manifest = read_manifest(path)
    except BackupInvalidError as exc:
        return exc.problems or [Problem(None, str(exc))]
    selected = [manifest.file_of(None)] + [
        f for f in manifest.files if f.org is not None and (tenants is None or f.org in tenants)
    ]
    problems = []
    for entry in selected:
        problems += _file_problems(entry)
    return problems


def _size_problems(manifest: Manifest) -> list[Problem]:
    problems = []
    for entry in manifest.files:
        if not entry.path.is_file():
            problems.append(Problem(entry.file, "missing"))
        elif entry.path.stat().st_size != entry.size:
            problems.append(
                Problem(entry.file, f"size {entry.path.stat().st_size}, manifest says {entry.size}")
            )
    return problems


def _file_problems(entry: BackupFile) -> list[Problem]:
    if not entry.path.is_file():
        return [Problem(entry.file, "missing from the backup directory")]
    size = entry.path.stat().st_size
    if size != entry.size:
        return [
            Problem(entry.file, f"is {size} bytes, the manifest says {entry.size} (truncated?)")
        ]
    try:
        state = describe_file(entry.path)
    except SnapshotError as exc:
        return [Problem(entry.file, f"not readable: {exc}")]
    if state.sha256 != entry.sha256:
        return [Problem(entry.file, "SHA-256 differs from the manifest's (damaged)")]
    stream = SYSTEM_STREAM if entry.org is None else TENANT_STREAM
    problems = []
    if state.head(stream) != entry.head:
        problems.append(
            Problem(entry.file, f"head {state.head(stream)}, the manifest says {entry.head}")
        )
    if state.position(RELAY_CONSUMER, stream) != entry.relay_position:
        problems.append(
            Problem(
                entry.file,
                f"relay position {state.position(RELAY_CONSUMER, stream)}, the manifest "
                f"says {entry.relay_position}",
            )
        )
    return problems


# ----------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Replaced:
    """A tenant file a ``replace`` restore swapped out."""

    org: str
    head: int
    size: int
    kept_as: Path
    """The old file, kept under this name (delete it once the restore is verified)."""


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did."""

    data_dir: Path
    backup: Path
    files: list[BackupFile]
    """The files restored, as the manifest lists them."""
    replaced: list[Replaced] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dataDir": str(self.data_dir),
            "backup": str(self.backup),
            "files": [f.as_json() for f in self.files],
            "replaced": [
                {"org": r.org, "head": r.head, "size": r.size, "keptAs": str(r.kept_as)}
                for r in self.replaced
            ],
            "notes": list(self.notes),
        }


def restore_backup(
    src: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    tenants: Sequence[str] | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore the backup ``src`` into ``data_dir``: ``system.db`` and every tenant (or
    those of ``tenants``) into a new (or empty) directory; with ``replace``, the tenant
    files of ``tenants`` into an existing store, each only while no process has it open.

    Everything is checked first (:func:`check_backup`, the target); a refusal raises
    :class:`BackupError` and writes nothing."""
    manifest = read_manifest(src)
    chosen = _chosen(manifest, tenants, replace)
    problems = check_backup(manifest.path, tenants=[f.org for f in chosen if f.org])
    if problems:
        raise BackupInvalidError(
            f"backup {manifest.path} fails its checks, nothing restored: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems,
        )
    target = Path(data_dir).absolute()
    with restore_lock(target):
        if replace:
            return _replace_tenants(manifest, chosen, target, progress)
        return _restore_whole(manifest, chosen, target, progress)


def _restore_whole(
    manifest: Manifest, chosen: list[BackupFile], target: Path, progress: Progress | None
) -> RestoreReport:
    _check_empty_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}{_RESTORING}{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        for entry in chosen:
            _copy_checked(entry, staging / entry.file, progress)
        fsync_path(staging)
        _check_empty_target(target)
        staging.rename(target)  # over an empty directory too (rename(2))
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    notes = _notes(manifest, chosen) + _absent_tenants(target, chosen)
    return RestoreReport(target, manifest.path, chosen, [], notes)


def _absent_tenants(target: Path, chosen: list[BackupFile]) -> list[str]:
    """A note naming the tenants the restored registry has and the restore did not
    bring (a backup or a restore of some tenants only)."""
    from graphstore.data import DataDirectory  # noqa: PLC0415 - the registry

    with DataDirectory(target, create=False) as data:
        registered = data.tenants()
    absent = sorted(set(registered) - {f.org for f in chosen})
    if not absent:
        return []
    return [
        f"tenants registered but not restored: {', '.join(absent)}; each opens empty until "
        "its file is restored (`graphstore restore BACKUP --data-dir DIR --tenant ORG "
        "--replace`)"
    ]


def _chosen(manifest: Manifest, tenants: Sequence[str] | None, replace: bool) -> list[BackupFile]:
    if replace and not tenants:
        raise BackupError(
            "--replace swaps tenant files of an existing store: name them with --tenant ORG"
        )
    orgs = manifest.tenants if tenants is None else list(dict.fromkeys(tenants))
    tenant_files = [manifest.file_of(org) for org in orgs]
    return tenant_files if replace else [manifest.file_of(None), *tenant_files]


def _check_empty_target(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise BackupTargetError(f"{target} is not a directory: give a new data directory")
    present = sorted(p.name for p in target.iterdir())
    if SYSTEM_FILE in present or any(n.endswith(".db") for n in present):
        raise BackupTargetError(
            f"{target} holds a store ({', '.join(present[:3])}): restore into a new "
            "directory, or replace one tenant of it with --tenant ORG --replace"
        )
    if present:
        raise BackupTargetError(
            f"{target} is not empty ({', '.join(present[:3])}): restore into a new or "
            "empty directory"
        )


def _copy_checked(entry: BackupFile, dest: Path, progress: Progress | None) -> None:
    """Copy one backup file, hashing what is copied; BackupInvalidError if it changed."""
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256()
    done = 0
    with open(entry.path, "rb") as source, open(dest, "xb") as out:
        while chunk := source.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(entry.file, done, entry.size)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != entry.sha256 or done != entry.size:
        raise BackupInvalidError(
            f"{entry.path} changed while it was restored (SHA-256 or size differs from the "
            "manifest): nothing restored; check the backup's storage",
            [Problem(entry.file, "changed during the restore")],
        )


def _replace_tenants(
    manifest: Manifest, chosen: list[BackupFile], target: Path, progress: Progress | None
) -> RestoreReport:
    from graphstore.data import DataDirectory  # noqa: PLC0415 - the registry

    if not (target / SYSTEM_FILE).is_file():
        raise BackupTargetError(
            f"{target} holds no store (no {SYSTEM_FILE}): --replace swaps tenants of an "
            "existing store; without it, restore the whole backup into a new directory"
        )
    with DataDirectory(target, create=False) as data:
        registered = set(data.tenants())
        paths = {entry.org: data.tenant_path(entry.org) for entry in chosen if entry.org}
    for entry in chosen:
        assert entry.org is not None
        if entry.org not in registered:
            raise BackupTargetError(
                f"tenant {entry.org!r} is not registered in {target}: --replace only swaps "
                "the file of a tenant the store has (create it first, or restore the whole "
                "backup into a new directory)"
            )
        if paths[entry.org].exists() and file_in_use(paths[entry.org]):
            raise BackupTargetError(
                f"{paths[entry.org]} is open in another process (a server, relay, projector "
                "or writer): stop every process using this store, then run the restore again"
            )
    replaced = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for entry in chosen:
        assert entry.org is not None
        path = paths[entry.org]
        staged = target / f".{path.name}{_RESTORING}{secrets.token_hex(4)}"
        try:
            _copy_checked(entry, staged, progress)
            if path.exists():
                try:
                    fold_wal(path)  # the old file alone holds all its commits now
                except SnapshotError as exc:
                    raise BackupTargetError(str(exc)) from exc
                old = describe_file(path)
                kept = target / f"{path.name}.replaced-{stamp}"
                os.link(path, kept)
                replaced.append(Replaced(entry.org, old.head(TENANT_STREAM), old.size, kept))
            os.replace(staged, path)
            fsync_path(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
    notes = _notes(manifest, chosen)
    return RestoreReport(target, manifest.path, chosen, replaced, notes)


def _notes(manifest: Manifest, chosen: list[BackupFile]) -> list[str]:
    notes = [
        "projections are restored with their tables and positions (both inside each tenant "
        "file, saved together): they are consistent and catch up from there"
    ]
    relayed = [f for f in chosen if f.org and f.relay_position is not None]
    if relayed:
        notes.append(
            "the relay resumes from each tenant's saved position; JetStream may hold entries "
            "after the backup's heads: restore them first with `graphstore restore --nats "
            "URL --tenant ORG --base BACKUP`, before anything writes to the restored store"
        )
    return notes
