"""A consistent copy of one store file while its writers keep writing, and what it holds.

:func:`snapshot_file` copies a live Honker file (WAL mode) to a new path: one read
transaction of the source is held for the whole copy, so the copy is the file exactly
as of one commit, while writers in other processes keep committing (in WAL mode a
reader never blocks a writer; it only keeps the WAL from being checkpointed past its
snapshot until it ends). Two methods, measured in ``benchmarks/backup.py`` and compared
in docs/backup.md:

``"backup"`` (the default)
    SQLite's online backup API, ``step_pages`` pages per step inside the one read
    transaction (so every step reads the same snapshot and the backup never restarts),
    ``progress`` called after each step. A page-for-page copy: about the speed of a
    file copy.
``"vacuum"``
    ``VACUUM INTO``: the file rebuilt into the new path (compacted, indexes rebuilt).
    Smaller output, more CPU, no progress.

What the copy holds (each stream's head, each consumer's saved position) is read from
the copy itself (:func:`describe_file`), so it is exactly the state the copy restores.

The copy uses Python's own ``sqlite3``, a second SQLite library beside Honker's. Two
libraries must not have one file open in one process (closing one's descriptor drops the
other's POSIX locks), so these functions refuse a file this process has open with
Honker: call them from a process that has closed it (the command line does).

:func:`file_in_use` tells whether any process has a store file open (a SQLite
connection in WAL mode holds a read lock on its ``-shm`` file while it is open);
:func:`fold_wal` checkpoints a closed file's WAL into it so the file stands alone.

This module and :mod:`streams.reading` are the only code that knows Honker's tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from streams._honker import is_open
from streams.errors import StreamsError

__all__ = [
    "FORMAT_VERSION",
    "ConsumerPosition",
    "FileState",
    "SnapshotError",
    "SnapshotMethod",
    "describe_file",
    "file_in_use",
    "file_sha256",
    "fold_wal",
    "fsync_path",
    "live_heads",
    "snapshot_file",
]

FORMAT_VERSION: Final = 1
"""The store's on-disk format: the file layout of :mod:`streams.directory`, Honker's
tables (Honker's version is pinned in pyproject.toml) and the stream envelope
(:data:`streams.envelope.ENVELOPE_VERSION`). Raised when a file this code writes could
not be read by the code before; a backup records it, and a restore refuses a backup of a
newer format than its own."""

SnapshotMethod = Literal["backup", "vacuum"]

_STREAM: Final = "_honker_stream"
_CONSUMERS: Final = "_honker_stream_consumers"
_CHUNK: Final = 1 << 20
# SQLite's unix VFS: a connection holds a shared lock on this byte of the -shm file
# (the "dead man switch", UNIX_SHM_DMS = 120 + 8 in os_unix.c) for as long as it is open.
_SHM_DMS_BYTE: Final = 128
_SYNC_EVERY_PAGES: Final = 1024


class SnapshotError(StreamsError):
    """A snapshot or a description could not be made; the message says why and what to
    do. Nothing is left at the destination."""


@dataclass(frozen=True)
class ConsumerPosition:
    """A consumer's saved position in one stream of a file."""

    consumer: str
    stream: str
    offset: int


@dataclass(frozen=True)
class FileState:
    """What one closed store file holds: its size and SHA-256, each stream's head
    offset (its last entry; streams with no entry are absent) and every saved consumer
    position."""

    path: Path
    size: int
    sha256: str
    heads: dict[str, int]
    positions: tuple[ConsumerPosition, ...]

    def head(self, stream: str) -> int:
        """The last offset of ``stream`` in the file; 0 if it has no entry."""
        return self.heads.get(stream, 0)

    def position(self, consumer: str, stream: str) -> int | None:
        """``consumer``'s saved position in ``stream``; None if it never saved one."""
        for found in self.positions:
            if found.consumer == consumer and found.stream == stream:
                return found.offset
        return None


def snapshot_file(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    method: SnapshotMethod = "backup",
    step_pages: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> FileState:
    """Copy the store file ``source`` to the new file ``dest`` as of one commit, while
    other processes keep writing; fsync it and return what it holds.

    ``progress(copied_pages, total_pages)`` is called after each step of the
    ``"backup"`` method. ``dest`` must not exist. On any error ``dest`` is removed and
    :class:`SnapshotError` raised.
    """
    src, out = Path(source).resolve(), Path(dest)
    _refuse_open_here(src)
    if not src.is_file():
        raise SnapshotError(f"no store file at {src}: nothing to snapshot")
    if out.exists():
        raise SnapshotError(f"{out} exists: a snapshot is written to a new path only")
    if step_pages < 1:
        raise SnapshotError(f"step_pages must be at least 1, got {step_pages}")
    try:
        if method == "backup":
            _copy_by_backup_api(src, out, step_pages, progress)
        elif method == "vacuum":
            _copy_by_vacuum_into(src, out)
        else:
            raise SnapshotError(f"unknown snapshot method {method!r}: use 'backup' or 'vacuum'")
        # The fsync (disk) and the hash (CPU, from the page cache) overlap.
        with ThreadPoolExecutor(1) as pool:
            synced = pool.submit(fsync_path, out)
            state = describe_file(out)
            synced.result()
        return state
    except BaseException as exc:
        for leftover in (out, Path(f"{out}-journal"), Path(f"{out}-wal"), Path(f"{out}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if isinstance(exc, sqlite3.Error):
            raise SnapshotError(f"snapshot of {src} failed: {exc}") from exc
        raise


def _connect_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )


def _copy_by_backup_api(
    src: Path, out: Path, step_pages: int, progress: Callable[[int, int], None] | None
) -> None:
    source = _connect_readonly(src)
    try:
        source.execute("PRAGMA busy_timeout = 5000")
        source.execute("BEGIN")  # one read transaction: every step sees the same commit
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        target = sqlite3.connect(out, isolation_level=None)
        try:
            # A new file nobody reads until it is complete and fsynced (snapshot_file):
            # SQLite's own syncs and journal would only slow the copy down.
            target.execute("PRAGMA synchronous = OFF")
            target.execute("PRAGMA journal_mode = OFF")

            synced = [0]

            def report(_status: int, remaining: int, total: int) -> None:
                # Write the copy back to disk as it goes, a few MB at a time: one large
                # flush at the end would stall the writers' own syncs behind it.
                if total - remaining - synced[0] >= _SYNC_EVERY_PAGES:
                    os.fdatasync(sync_fd)
                    synced[0] = total - remaining
                if progress is not None:
                    progress(total - remaining, total)

            sync_fd = os.open(out, os.O_RDONLY)
            try:
                source.backup(target, pages=min(step_pages, _SYNC_EVERY_PAGES), progress=report)
            finally:
                os.close(sync_fd)
            # The copy is a standalone file: rollback journal, nothing beside it.
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        source.execute("COMMIT")
    finally:
        source.close()


def _copy_by_vacuum_into(src: Path, out: Path) -> None:
    source = _connect_readonly(src)
    try:
        source.execute("PRAGMA busy_timeout = 5000")
        source.execute("VACUUM INTO ?", [str(out)])
    finally:
        source.close()


def describe_file(path: str | os.PathLike[str]) -> FileState:
    """Size, SHA-256, stream heads and consumer positions of the closed store file
    ``path`` (a snapshot: nothing may be writing it). Read without locks and without
    writing anything next to it; :class:`SnapshotError` if it is not a store file."""
    file = Path(path).resolve()
    _refuse_open_here(file)
    if not file.is_file():
        raise SnapshotError(f"no file at {file}")
    connection = sqlite3.connect(f"file:{file}?immutable=1", uri=True, isolation_level=None)
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        heads = _heads(connection) if _STREAM in tables else {}
        positions: list[ConsumerPosition] = []
        if _CONSUMERS in tables:
            for name, topic, offset in connection.execute(
                f'SELECT name, topic, "offset" FROM {_CONSUMERS} ORDER BY name, topic'
            ):
                positions.append(ConsumerPosition(str(name), str(topic), int(offset)))
    except sqlite3.DatabaseError as exc:
        raise SnapshotError(
            f"{file} is not a readable store file ({exc}): take the backup again"
        ) from exc
    finally:
        connection.close()
    return FileState(
        file, file.stat().st_size, file_sha256(file), dict(sorted(heads.items())), tuple(positions)
    )


def live_heads(path: str | os.PathLike[str]) -> dict[str, int]:
    """Each stream's head in the store file ``path`` as of now, read while writers
    write (one read transaction; writers are not held). For deciding whether a file
    moved since a snapshot (:attr:`FileState.heads`)."""
    file = Path(path).resolve()
    _refuse_open_here(file)
    connection = _connect_readonly(file)
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        heads = _heads(connection)
    except sqlite3.DatabaseError as exc:
        raise SnapshotError(f"cannot read the stream heads of {file}: {exc}") from exc
    finally:
        connection.close()
    return heads


def _heads(connection: sqlite3.Connection) -> dict[str, int]:
    """Each topic's last offset, by seeks on the stream's (topic, offset) index: one
    lookup per topic, never a scan of the stream."""
    heads: dict[str, int] = {}
    topic = ""
    while True:
        row = connection.execute(
            f"SELECT min(topic) FROM {_STREAM} WHERE topic > ?", [topic]
        ).fetchone()
        if row is None or row[0] is None:
            return heads
        topic = str(row[0])
        last = connection.execute(
            f'SELECT max("offset") FROM {_STREAM} WHERE topic = ?', [topic]
        ).fetchone()
        heads[topic] = int(last[0])


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory (a directory's fsync makes its entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_in_use(path: str | os.PathLike[str]) -> bool:
    """True if some other process has the store file ``path`` open with SQLite (it
    holds a lock on the file or on its ``-shm`` file), i.e. may be writing it.

    Asks the kernel who holds locks (``F_GETLK``), taking none. A process that opened
    the file and holds no lock at this instant (between transactions of a connection
    in rollback-journal mode) is not seen; store files are always in WAL mode, where an
    open connection holds its ``-shm`` lock until it closes."""
    file = Path(path).resolve()
    _refuse_open_here(file)
    shm = Path(f"{file}-shm")
    return any(
        _locked(candidate, start, length)
        for candidate, start, length in ((shm, _SHM_DMS_BYTE, 1), (file, 0, 0))
        if candidate.exists()
    )


def _locked(path: Path, start: int, length: int) -> bool:
    # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
    # pid_t l_pid (native alignment and trailing padding).
    layout = "hhqqi4x"
    query = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    finally:
        os.close(fd)
    lock_type = struct.unpack(layout, answer)[0]
    return bool(lock_type != fcntl.F_UNLCK)


def fold_wal(path: str | os.PathLike[str]) -> None:
    """Checkpoint the closed store file ``path``'s WAL into it and remove the WAL, so
    the file alone holds every commit (before it is moved or replaced: a WAL left beside
    another file would be read as that file's). :class:`SnapshotError` if a process has
    it open."""
    file = Path(path).resolve()
    if file_in_use(file):
        raise SnapshotError(
            f"{file} is open in another process: stop the server, relay, projectors and "
            "every writer of this store first"
        )
    connection = sqlite3.connect(file, isolation_level=None)
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise SnapshotError(f"{file}: its WAL could not be checkpointed (busy); retry")
        connection.execute("PRAGMA journal_mode = DELETE")  # removes the -wal file
    except sqlite3.DatabaseError as exc:
        raise SnapshotError(f"{file}: could not fold its WAL ({exc})") from exc
    finally:
        connection.close()
    with contextlib.suppress(FileNotFoundError):
        Path(f"{file}-shm").unlink()


def _refuse_open_here(path: Path) -> None:
    if is_open(path):
        raise SnapshotError(
            f"{path} is open with Honker in this process; a second SQLite library must not "
            "open it here (closing it would drop Honker's locks): close it first, or call "
            "this from another process"
        )
