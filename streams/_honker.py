"""The one place that talks to Honker: opening files, durability, errors, wake-ups.

Honker 0.5.0 is alpha software, so everything this package relies on is here:

* :func:`open_file` opens (or shares) one ``honker.Database`` per file per process,
  applies the durability setting and the busy timeout to the writer connection;
* :func:`translate_errors` maps Honker's bare ``RuntimeError`` to eventsourcing's
  PEP 249 classes by reading the SQLite message;
* :class:`Watcher` turns Honker's update watcher (``PRAGMA data_version`` polling, which
  sees commits from every process) into thread-safe wake-ups.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, cast

import honker
from eventsourcing.persistence import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
)

from streams.logs import wrap_logger
from streams.transaction import Transaction

__all__ = [
    "Synchronous",
    "TenantFile",
    "Watcher",
    "is_open",
    "open_file",
    "raise_translated",
    "release",
    "release_when_collected",
    "translate_errors",
]

log = wrap_logger(logging.getLogger("streams"))

Synchronous = Literal["NORMAL", "FULL"]
_SYNCHRONOUS_CODES = {"NORMAL": 1, "FULL": 2}


# --------------------------------------------------------------------------- errors

# Ordered: the first matching fragment wins. Fragments are SQLite's own messages.
_ERROR_CLASSES: tuple[tuple[str, type[PersistenceError]], ...] = (
    ("constraint failed", IntegrityError),
    ("database is locked", OperationalError),
    ("database table is locked", OperationalError),
    ("database is busy", OperationalError),
    ("readonly database", OperationalError),
    ("unable to open database", OperationalError),
    ("disk i/o error", OperationalError),
    ("database or disk is full", OperationalError),
    ("database disk image is malformed", DatabaseError),
    ("file is not a database", DatabaseError),
    ("database is closed", InterfaceError),
    ("datatype mismatch", DataError),
    ("cannot store", DataError),  # a STRICT table's column type: "cannot store TEXT value in"
    ("too big", DataError),
    ("integer overflow", DataError),
    ("no such table", ProgrammingError),
    ("no such column", ProgrammingError),
    ("no such function", ProgrammingError),
    ("syntax error", ProgrammingError),
    ("incomplete input", ProgrammingError),
    ("wrong number of arguments", ProgrammingError),
    ("already exists", ProgrammingError),
    ("nested db.transaction()", ProgrammingError),
    ("may not be changed inside a transaction", ProgrammingError),
    ("did you mean to call query", ProgrammingError),  # Honker: execute() of a row query
    # Last: SQLite quotes names into messages ("no such column: interrupted").
    ("interrupted", OperationalError),
)


def classify(message: str) -> type[PersistenceError]:
    """The PEP 249 class for a Honker/SQLite error message (``DatabaseError`` if unknown)."""
    lowered = message.lower()
    for fragment, error_class in _ERROR_CLASSES:
        if fragment in lowered:
            return error_class
    return DatabaseError


def _advice(error_class: type[PersistenceError], message: str, path: Path) -> str:
    lowered = message.lower()
    # Only a busy timeout: not SQLITE_LOCKED, nor a name like "t.locked" in a message.
    if error_class is OperationalError and (
        "database is locked" in lowered or "database is busy" in lowered
    ):
        return (
            f"{message} ({path}): another connection held the write lock for longer than "
            "the busy timeout. Nothing of this transaction was written. Retry, raise "
            "HONKER_BUSY_TIMEOUT (milliseconds; opening a file waits Honker's fixed 5 s), or "
            "shorten the other writer's transactions."
        )
    return f"{message} ({path})"


def raise_translated(exc: RuntimeError, path: Path) -> NoReturn:
    """Raise the PEP 249 error for one of Honker's ``RuntimeError``s, chained to it."""
    cause: BaseException = exc
    # On SQLITE_FULL, I/O or interrupt errors SQLite has already rolled back; Honker's
    # own ROLLBACK then fails and its error replaces the one that matters.
    if "no transaction is active" in str(exc) and isinstance(exc.__context__, RuntimeError):
        cause = exc.__context__
    message = str(cause)
    error_class = classify(message)
    raise error_class(_advice(error_class, message, path)) from cause


@contextlib.contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """Re-raise Honker's ``RuntimeError`` as eventsourcing's PEP 249 error classes."""
    try:
        yield
    except RuntimeError as exc:
        raise_translated(exc, path)


class _WriteTransaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` with errors translated; one frame, no generators.

    This sits on the hot path of every append, so it is a plain context manager rather
    than two stacked ``contextlib`` ones.
    """

    __slots__ = ("_inner", "_path")

    def __init__(self, database: Any, path: Path) -> None:
        self._path = path
        self._inner = database.transaction()

    def __enter__(self) -> Transaction:
        try:
            return cast(Transaction, self._inner.__enter__())
        except RuntimeError as exc:
            raise_translated(exc, self._path)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self._inner.__exit__(exc_type, exc, tb)
        except RuntimeError as commit_error:
            raise_translated(commit_error, self._path)
        if isinstance(exc, RuntimeError):  # rolled back; say what it was
            raise_translated(exc, self._path)


# -------------------------------------------------------------------------- watcher


@dataclass(eq=False)
class Watcher:
    """Wakes registered callbacks on every commit to the file, from any process.

    One daemon thread runs an asyncio loop over ``Database.update_events()`` (Honker polls
    ``PRAGMA data_version``, 1 ms by default). The thread starts with the first
    registration and is stopped and joined by :meth:`stop`; the update iterator never
    leaves that thread's loop (Honker binds it to the first loop that awaits it).
    """

    database: Any
    path: Path
    _callbacks: set[Callable[[], None]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _generation: int = 0
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Task[None] | None = None
    _started: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    @property
    def generation(self) -> int:
        """Counts the commits seen so far; compare two readings to detect a change."""
        return self._generation

    def add(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the watcher thread) after every commit."""
        with self._lock:
            self._callbacks.add(callback)
            self._ensure_started()

    def discard(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.discard(callback)

    def wait_for_change(self, generation: int, timeout: float) -> int:
        """Block until a commit after ``generation`` or ``timeout``; return the generation."""
        with self._lock:
            self._ensure_started()
        with self._changed:
            self._changed.wait_for(lambda: self._generation != generation, timeout)
            return self._generation

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._started.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"honker-watcher:{self.path.name}", daemon=True
            )
            self._thread.start()
            self._started.wait()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._follow())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # the watcher died: wake everyone, record why
            self._error = exc
            log.error("watcher stopped", path=str(self.path), error=str(exc))
            self._tick()
        finally:
            self._started.set()
            self._task = None
            loop.close()
            self._loop = None

    async def _follow(self) -> None:
        updates = self.database.update_events()
        # Honker's subscription exists now: only from here is no commit missed, so only
        # now does add() return. Callers still re-check once after registering.
        self._started.set()
        try:
            async for _ in updates:
                self._tick()
        finally:
            del updates  # never outlive this loop (see honker.md, pitfalls)

    def _tick(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def stop(self) -> None:
        """Stop and join the watcher thread (idempotent)."""
        with self._lock:
            thread, loop, task = self._thread, self._loop, self._task
            self._thread = None
        if thread is None:
            return
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        thread.join()


# ---------------------------------------------------------------------------- files


@dataclass(eq=False)
class TenantFile:
    """One open Honker database file, shared by every recorder of this process."""

    path: Path
    database: Any
    synchronous: Synchronous
    busy_timeout_ms: int
    watcher: Watcher
    users: int = 0

    def transaction(self) -> _WriteTransaction:
        """A write transaction: commit on clean exit, roll back on error (nothing written)."""
        return _WriteTransaction(self.database, self.path)

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Read through Honker's reader pool: never blocks or joins a write transaction."""
        with translate_errors(self.path):
            return cast(list[dict[str, Any]], self.database.query(sql, params))

    def writer_setting(self, pragma: str) -> Any:
        """The writer connection's value of ``pragma`` (what commits actually use)."""
        with self.transaction() as tx:
            return next(iter(tx.query(f"PRAGMA {pragma}")[0].values()))


_files: dict[Path, TenantFile] = {}
_files_lock = threading.Lock()


def _configure_writer(database: Any, path: Path, synchronous: str, busy_ms: int) -> None:
    # Honker opens every connection with synchronous=NORMAL and busy_timeout=5000 and runs
    # every write inside BEGIN IMMEDIATE, where "safety level may not be changed". So the
    # writer leaves its (empty) transaction, sets the pragmas on its own connection, and
    # begins again for Honker to commit. Readers never write, so their setting is moot.
    with translate_errors(path), database.transaction() as tx:
        tx.execute("COMMIT")
        try:
            tx.execute(f"PRAGMA synchronous = {synchronous}")
            tx.query(f"PRAGMA busy_timeout = {int(busy_ms)}")
            # Deleted content is zeroed, not left in free space: a retired or erased run
            # must not be readable in the file (docs/retention.md).
            tx.query("PRAGMA secure_delete = ON")
            if synchronous == "FULL":
                # Each fsync also has to persist the WAL's growth: a shorter WAL keeps FULL
                # commits cheap (measured in benchmarks/). NORMAL keeps Honker's 10000.
                tx.query("PRAGMA wal_autocheckpoint = 1000")
                # A WAL cut to nothing at each restart would grow again with every commit,
                # each growth one more fsync of the file's size: keep one cycle's worth, so
                # retired bytes leave the WAL as the next cycle overwrites it.
                page = int(tx.query("PRAGMA page_size")[0]["page_size"])
                tx.query(f"PRAGMA journal_size_limit = {1000 * page}")
            else:
                # ...nor in the WAL for longer than one cycle: the first commit after the
                # WAL restarts cuts the file to the frames it wrote (streams/retirement.py).
                tx.query("PRAGMA journal_size_limit = 0")
        finally:
            tx.execute("BEGIN IMMEDIATE")
        got = tx.query("PRAGMA synchronous")[0]["synchronous"]
    if got != _SYNCHRONOUS_CODES[synchronous]:
        raise OperationalError(f"{path}: could not set synchronous={synchronous} (got {got})")


def _create_with_page_size(path: Path, page_size: int) -> None:
    """Create an empty WAL database file with ``page_size`` (fixed for the file's life).

    Honker creates a file with SQLite's default 4096-byte pages and writes at once, so a
    new file is made here first. This is the stdlib's SQLite, a second library: safe only
    because no connection of this process has the file open (it does not exist yet).
    """
    if page_size not in _PAGE_SIZES:
        raise ValueError(
            f"HONKER_PAGE_SIZE must be a power of two from 512 to 65536, got {page_size}"
        )
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA page_size = {page_size}")
        connection.execute("PRAGMA journal_mode = WAL")  # writes the header: size fixed
    finally:
        connection.close()


_PAGE_SIZES: Final = frozenset(2**n for n in range(9, 17))


def _check_same(path: Path, key: str, current: object, asked: object) -> None:
    # One writer connection per file per process: its settings are shared by every user.
    if current != asked:
        raise ValueError(
            f"{path} is already open in this process with {key}={current}; asked for "
            f"{asked}. Give every application sharing a file the same setting."
        )


def open_file(
    path: str | Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout_ms: int = 5000,
    max_readers: int = 8,
    watcher_poll_ms: int | None = None,
    page_size: int | None = None,
) -> TenantFile:
    """Open ``path`` (creating it), or share the handle this process already has open.

    Every caller must :func:`release` what it opened. Two callers asking for different
    durability settings for one file get an error instead of a silent downgrade.
    """
    if synchronous not in _SYNCHRONOUS_CODES:
        raise ValueError(
            f"HONKER_SYNCHRONOUS must be NORMAL or FULL, got {synchronous!r}: NORMAL "
            "survives a process crash, FULL survives power loss too."
        )
    resolved = Path(path).resolve()
    with _files_lock:
        tenant_file = _files.get(resolved)
        if tenant_file is None:
            resolved.parent.mkdir(parents=True, exist_ok=True)
            if page_size is not None and not resolved.exists():
                _create_with_page_size(resolved, page_size)
            with translate_errors(resolved):
                database = honker.open(
                    str(resolved),
                    max_readers=max_readers,
                    watcher_poll_interval_ms=watcher_poll_ms,
                )
            try:
                _configure_writer(database, resolved, synchronous, busy_timeout_ms)
            except BaseException:
                database.close()
                raise
            tenant_file = TenantFile(
                resolved, database, synchronous, busy_timeout_ms, Watcher(database, resolved)
            )
            _files[resolved] = tenant_file
            log.debug("opened", path=str(resolved), synchronous=synchronous)
        else:
            _check_same(resolved, "HONKER_SYNCHRONOUS", tenant_file.synchronous, synchronous)
            _check_same(
                resolved, "HONKER_BUSY_TIMEOUT", tenant_file.busy_timeout_ms, busy_timeout_ms
            )
        tenant_file.users += 1
        return tenant_file


def is_open(path: str | Path) -> bool:
    """Whether this process has ``path`` open with Honker (another SQLite library must
    then not open it in this process: see :mod:`streams.snapshot`)."""
    with _files_lock:
        return Path(path).resolve() in _files


def release(tenant_file: TenantFile) -> None:
    """Drop one user; the last one stops the watcher thread, then closes the database."""
    with _files_lock:
        tenant_file.users -= 1
        if tenant_file.users > 0:
            return
        _files.pop(tenant_file.path, None)
    tenant_file.watcher.stop()
    with contextlib.suppress(RuntimeError):
        tenant_file.database.close()
    log.debug("closed", path=str(tenant_file.path))


# ------------------------------------------------------------------ orphaned files
#
# Some owners never close what they open (eventsourcing's ProjectionRunner drops its
# view's factory), so a datastore also releases its file when it is collected. Collection
# runs on whichever thread allocated last: possibly while that thread holds _files_lock or
# a watcher's lock (releasing there deadlocks: the fresh-clone CI once hung on it), or on
# the watcher thread itself (which cannot join itself). So the collection callback only
# queues the file, and a reaper thread releases it. At interpreter exit, atexit runs the
# callbacks on the main thread outside any lock, and they release at once.


class _Reaper:
    """Releases the files of collected owners on its own thread (see above)."""

    _EXIT_WAIT_S: Final = 30.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[TenantFile | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # never taken by a collection callback
        self._exiting = False
        self._exit_hooked = False

    def watch(self, owner: object, tenant_file: TenantFile) -> Callable[[], None]:
        finalizer = weakref.finalize(owner, self._collected, tenant_file)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # not yet, or forked
                self._thread = threading.Thread(target=self._run, name="honker-reaper", daemon=True)
                self._thread.start()
            if not self._exit_hooked:
                # Registered after weakref's own exit hook (made by the first finalizer),
                # so it runs before it: atexit calls the last registered first.
                atexit.register(self._exit)
                self._exit_hooked = True

        def release_now() -> None:
            if finalizer.detach() is not None:  # still armed: this call disarmed it
                release(tenant_file)

        return release_now

    def _collected(self, tenant_file: TenantFile) -> None:
        if self._exiting:
            release(tenant_file)
        else:
            self._queue.put(tenant_file)  # SimpleQueue.put is reentrant: safe here

    def _run(self) -> None:
        while (tenant_file := self._queue.get()) is not None:
            try:
                release(tenant_file)
            except Exception:  # the reaper must outlive one bad file
                log.warning("release_failed", path=str(tenant_file.path), exc_info=True)

    def _exit(self) -> None:
        """Let the reaper release what is queued, then stop it."""
        self._exiting = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(self._EXIT_WAIT_S)


_reaper = _Reaper()


def release_when_collected(owner: object, tenant_file: TenantFile) -> Callable[[], None]:
    """Release ``tenant_file`` once ``owner`` is garbage-collected, or at exit.

    Returns the owner's own release: calling it releases at once, on the calling thread,
    and disarms the collection callback, so the file is released once either way.
    """
    return _reaper.watch(owner, tenant_file)
