"""Projectors: follow one tenant stream and keep a projection's tables in step with it.

A :class:`Projection` says what is read: its name and version (the consumer name is
``<name>@v<version>``), its tables, and, per event type, how to decode the event and how
it changes the tables. A :class:`Projector` runs one projection on one tenant file:

1. it reads the entries after its saved offset through Honker's READER POOL (never
   inside a write transaction), up to ``batch_size`` of them;
2. it decodes them there, outside the write lock (the envelope with msgspec, then the
   event's JSON with a typed decoder per event type);
3. in ONE write transaction it checks that its saved offset is still the one it read
   from (another runner on the same file cannot make it apply an event twice), applies
   the batch to its tables and saves the batch's last offset as its Honker consumer
   offset (:func:`streams.save_position`, which refuses a position that does not
   advance). All or nothing: a crash
   replays at most the uncommitted batch.

Events the projection ignores still advance the offset. An event that cannot be decoded
or applied follows the projector's error policy:

``stop`` (default)    nothing of the failing batch is committed; the projector is
                      ``failed`` with the error and the failing event's offset until
                      :meth:`Projector.resume` is called.
``skip-and-park``     the events before it are committed, the failing event is written
                      to the dead-letter table ``projection_parked`` (offset, type,
                      envelope, error, time) in the same transaction, and the projector
                      goes on. :meth:`Projector.replay_parked` applies parked events again.

Database trouble (a busy or full file: ``OperationalError``, ``InterfaceError``) is not
an event's fault: it is raised to the caller with nothing committed, to retry later.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic, time
from typing import Any, ClassVar, Final, Generic, Literal, TypeVar

import msgspec
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.utils import Environment

from projections._stream import Record, decode_record
from projections.errors import EventNotProjectableError, ProjectionError
from projections.logs import wrap_logger
from streams import (
    Entry,
    HonkerDatastore,
    TenantReader,
    Transaction,
    count_between,
    read_after,
    save_position,
    saved_position,
    stream_head,
    time_at,
)
from streams.pauses import Pauses

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LAYOUTS_TABLE",
    "PARKED_TABLE",
    "ErrorPolicy",
    "Handler",
    "ParkedEvent",
    "Projection",
    "Projector",
    "ProjectorState",
    "ProjectorStatus",
    "Record",
    "ReplayResult",
    "Transaction",
    "upgrade_layout",
]

log = wrap_logger(logging.getLogger("projections"))

ErrorPolicy = Literal["stop", "skip-and-park"]
ProjectorState = Literal["running", "catching-up", "stopped", "failed"]
POLICIES: Final = ("stop", "skip-and-park")
DEFAULT_BATCH_SIZE: Final = 500
PARKED_TABLE: Final = "projection_parked"
LAYOUTS_TABLE: Final = "projection_layouts"
"""Which :attr:`Projection.layout` each consumer's tables have (no row: layout 1)."""
TRANSIENT_ERRORS: Final = (OperationalError, InterfaceError)
"""Errors of the file, not of an event: raised to the caller, never parked."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Handler(Generic[_T]):
    """How a projection handles one event type: decode its JSON, then apply it."""

    decode: Callable[[bytes], _T]
    apply: Callable[[Transaction, _T, Record], None]


class Projection(ABC):
    """What a projector keeps: named tables derived from one application's stream."""

    name: ClassVar[str]
    """The projection's name; with :attr:`version` it makes the consumer name."""
    version: ClassVar[int]
    """Bump it when the tables or their meaning change: a new version is a new consumer
    that starts from offset 0."""
    upstream: ClassVar[str]
    """The application whose stream is followed (its name is the default stream name)."""
    layout: ClassVar[int] = 1
    """The layout of the rows: bump it when the same events come to give other rows that
    :meth:`upgrade` can rewrite in place (an id derived another way), so that a file's
    tables keep equalling a clean rebuild without a new version and its full replay."""

    @property
    def consumer(self) -> str:
        """The stable consumer name, ``<name>@v<version>``, under which the offset is kept."""
        return f"{self.name}@v{self.version}"

    @abstractmethod
    def create_tables(self, tx: Transaction) -> None:
        """Create the projection's tables and indexes if missing (idempotent)."""

    def table_names(self) -> Sequence[str]:
        """Tables that :meth:`create_tables` creates in one transaction: when they all
        exist, opening a projector takes no write lock. Empty: always create."""
        return ()

    def upgrade(self, tx: Transaction, layout: int, after: int) -> int | None:
        """One bounded step of rewriting this projection's rows from ``layout`` (older
        than :attr:`layout`) to the current one, in ``tx``: from ``after`` on (0, then
        what the step before returned); None when nothing is left. The default has
        nothing to rewrite."""
        return None

    @abstractmethod
    def handler(self, topic: str) -> Handler[Any] | None:
        """The handler of an event type, or None if the projection ignores it.

        Raise :class:`~projections.errors.UnknownEventError` for an unknown event of an
        aggregate the projection follows, rather than ignoring it.
        """


class ParkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event a ``skip-and-park`` projector could not apply, kept for a replay."""

    consumer: str
    offset: int
    type: str
    payload: str
    error: str
    parked_at: int
    """When it was parked (first failure), milliseconds since the Unix epoch."""
    attempts: int
    """Failed attempts so far: 1 when parked, +1 per failed replay."""


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Projector.replay_parked` did: offsets applied, offsets still parked."""

    replayed: list[int]
    still_parked: list[int]


class ProjectorStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projector of one tenant stands.

    ``position`` is the saved offset (0: nothing yet), ``head`` the stream's last offset.
    ``lag_events`` counts the stream's events after the position (offsets have gaps, so
    it is not ``head - position``); ``lag_seconds`` is the envelope ``time`` of the head
    minus that of the event at the position (of the first event when the position is 0),
    0 when caught up. ``updated_at`` is when this projector last committed, ``checked_at``
    when it last read the stream (a heartbeat), both in seconds since the Unix epoch.
    ``error`` and ``error_offset`` describe the failure of a ``failed`` projector.
    """

    tenant: str
    projector: str
    stream: str
    state: ProjectorState
    policy: ErrorPolicy
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    updated_at: float | None
    checked_at: float | None
    error: str | None
    error_offset: int | None
    parked: int


class _PositionMovedError(ProjectionError):
    def __init__(self, saved: int) -> None:
        super().__init__(saved)
        self.saved = saved


class _RollbackError(ProjectionError):
    """Raised inside a transaction to roll it back on purpose."""


@dataclass(frozen=True, slots=True)
class _Change:
    record: Record
    handler: Handler[Any] | None  # None: ignored, still advances the offset
    data: Any


@dataclass(frozen=True, slots=True)
class _Failure:
    index: int
    error: BaseException

    def describe(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


def _now_ms() -> int:
    return int(time() * 1000)


def checked_policy(policy: str) -> ErrorPolicy:
    """``policy`` if it is one of :data:`POLICIES`, else ValueError naming them."""
    if policy == "stop":
        return "stop"
    if policy == "skip-and-park":
        return "skip-and-park"
    raise ValueError(f"unknown error policy {policy!r}: use one of {', '.join(POLICIES)}")


class Projector:
    """Runs one :class:`Projection` on one tenant file. See the module docstring.

    Not thread-safe by itself: one thread steps it at a time (the runner holds a lock
    per tenant). :meth:`status` may be read from any thread.
    """

    def __init__(
        self,
        projection: Projection,
        datastore: HonkerDatastore,
        *,
        stream: str | None = None,
        policy: ErrorPolicy = "stop",
        batch_size: int = DEFAULT_BATCH_SIZE,
        plain_state: Callable[[bytes], bytes] | None = None,
        tenant: str | None = None,
        previous: ProjectorStatus | None = None,
        upto: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.projection = projection
        self.consumer = projection.consumer
        self.stream = stream or projection.upstream
        self.policy = checked_policy(policy)
        self.batch_size = batch_size
        self.upto = upto
        """Apply nothing after this offset (None: follow the head); a rebuild that must
        stop where another consumer stands (``graphstore verify``) sets it."""
        self.datastore = datastore
        self.tenant = tenant or datastore.tenant
        self._plain_state = plain_state
        self._owned: TenantReader | None = None
        self._lock = threading.Lock()  # guards the status fields below
        if not self._tables_exist():
            with datastore.transaction() as tx:
                projection.create_tables(tx)
                _create_parked_table(tx)
        upgrade_layout(datastore, projection)
        self._position = saved_position(datastore, self.consumer, self.stream) or 0
        self._position_time = time_at(datastore, self.stream, self._position)
        self._head, self._head_time = stream_head(datastore, self.stream)
        self._lag_events = count_between(datastore, self.stream, self._position, self._head)
        self._parked = self._count_parked()
        self._stopped = False
        self._error: str | None = None
        self._error_offset: int | None = None
        self._updated_at: float | None = None
        self._checked_at: float | None = None
        self._more = False  # the last read filled a whole batch
        if previous is not None:  # a runner reopening the file keeps what it knew
            self._stopped = previous.state == "stopped"
            if previous.state == "failed":
                self._error, self._error_offset = previous.error, previous.error_offset
            self._updated_at = previous.updated_at

    @classmethod
    def open(
        cls,
        env: Mapping[str, str] | Environment,
        projection: Projection,
        **options: Any,
    ) -> Projector:
        """A projector on the tenant file that ``env`` selects (as the writers' env).

        Settings (file, durability, stream name, cipher) are read the way the upstream
        application reads them, with its name as prefix. :meth:`close` closes the file.
        """
        return TenantReader(env, projection.upstream).adopt(
            lambda reader: cls.on(reader, projection, owns=True, **options)
        )

    @classmethod
    def on(
        cls, reader: TenantReader, projection: Projection, *, owns: bool = False, **options: Any
    ) -> Projector:
        """A projector reading through ``reader`` (its stream and cipher unless
        ``options`` say otherwise); with ``owns``, :meth:`close` closes the reader."""
        options.setdefault("stream", reader.stream)
        options.setdefault("plain_state", reader.plain_state)
        projector = cls(projection, reader.datastore, **options)
        projector._owned = reader if owns else None
        return projector

    def close(self) -> None:
        """Close the file if :meth:`open` opened it."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> Projector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _tables_exist(self) -> bool:
        names = [*self.projection.table_names(), PARKED_TABLE]
        if len(names) == 1:
            return False
        rows = self.datastore.query(
            f"SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN "
            f"({','.join('?' * len(names))})",
            names,
        )
        return int(rows[0]["n"]) == len(names)

    # --- status ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The saved offset this projector has applied up to (0: nothing yet)."""
        return self._position

    @property
    def head_time(self) -> int | None:
        """The envelope ``time`` (ms) of the newest event seen in the stream."""
        return self._head_time

    @property
    def has_more(self) -> bool:
        """Whether the last read filled a whole batch (more may be waiting)."""
        return self._more

    @property
    def active(self) -> bool:
        """Neither failed nor stopped: :meth:`step` applies events."""
        return not self._stopped and self._error is None

    def status(self) -> ProjectorStatus:
        """A snapshot of where this projector stands (see :class:`ProjectorStatus`)."""
        with self._lock:
            lag_seconds = 0.0
            if self._lag_events and self._head_time and self._position_time:
                lag_seconds = max(0.0, (self._head_time - self._position_time) / 1000)
            state: ProjectorState
            if self._stopped:
                state = "stopped"
            elif self._error is not None:
                state = "failed"
            elif self._lag_events >= self.batch_size:
                state = "catching-up"
            else:
                state = "running"
            return ProjectorStatus(
                tenant=self.tenant,
                projector=self.consumer,
                stream=self.stream,
                state=state,
                policy=self.policy,
                position=self._position,
                head=self._head,
                lag_events=self._lag_events,
                lag_seconds=lag_seconds,
                updated_at=self._updated_at,
                checked_at=self._checked_at,
                error=self._error,
                error_offset=self._error_offset,
                parked=self._parked,
            )

    def refresh(self) -> None:
        """Read the stream's head (one indexed query) and update the lag."""
        head, head_time = stream_head(self.datastore, self.stream)
        known = max(self._head, self._position)
        added = count_between(self.datastore, self.stream, known, head) if head > known else 0
        position_time = self._position_time
        if position_time is None and head > self._position:  # the stream was empty
            position_time = time_at(self.datastore, self.stream, self._position)
        with self._lock:
            self._lag_events += added
            if head >= self._head:
                self._head, self._head_time = head, head_time
            self._position_time = position_time
            self._checked_at = time()

    # --- control --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop applying events (state ``stopped``) until :meth:`resume`."""
        with self._lock:
            self._stopped = True

    def resume(self) -> None:
        """Clear ``stopped`` or ``failed``: the next :meth:`step` tries again."""
        with self._lock:
            self._stopped = False
            self._error = self._error_offset = None

    # --- applying -------------------------------------------------------------------

    def step(self) -> int:
        """Apply the next batch; return how many stream entries it consumed.

        0 means at the head, or not active (failed or stopped). Entries consumed include
        ignored and parked events. Raises only database trouble (see module docstring).
        """
        self.refresh()
        if not self.active:
            return 0
        rows = read_after(
            self.datastore, self.stream, self._position, limit=self.batch_size, upto=self.upto
        )
        self._more = len(rows) == self.batch_size
        if not rows:
            return 0
        try:
            changes = [self._decode(row) for row in rows]
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            return self._after_failure(rows)
        try:
            failure = self._commit(rows, changes)
        except _PositionMovedError as moved:
            self._resync(moved.saved)
            return 0
        if failure is None:
            return len(rows)
        return self._after_failure(rows)

    def catch_up(self, *, max_batches: int | None = None) -> int:
        """Step until the head (or ``max_batches``); the number of entries consumed."""
        total = batches = 0
        while max_batches is None or batches < max_batches:
            total += self.step()
            batches += 1
            if not self._more or not self.active:
                break
        return total

    def _decode(self, row: Entry) -> _Change:
        record = decode_record(row)
        handler = self.projection.handler(record.type)
        if handler is None:
            return _Change(record, None, None)
        state = record.state
        if record.encoded:
            if self._plain_state is None:
                raise EventNotProjectableError(
                    f"event {record.offset} ({record.type}) is encrypted or compressed "
                    "(data_b64) and this projector has no cipher: give it the writers' "
                    "CIPHER_KEY / COMPRESSOR_TOPIC settings"
                )
            state = self._plain_state(state)
        return _Change(record, handler, handler.decode(state))

    def _commit(
        self,
        rows: Sequence[Entry],
        changes: Sequence[_Change],
        *,
        parked: tuple[Entry, str] | None = None,
        dry_run: bool = False,
    ) -> _Failure | None:
        """Apply ``changes`` and save the offset in one transaction.

        Returns the failure of the first change that raised (nothing is committed then),
        or None when committed. With ``parked``, that row is parked and the offset moves
        to it. With ``dry_run``, everything is rolled back.
        """
        last = parked[0].offset if parked is not None else rows[-1].offset
        applying: int | None = None  # the change being applied, while one is
        try:
            with self.datastore.transaction() as tx:
                saved = saved_position(tx, self.consumer, self.stream) or 0
                if saved != self._position:
                    raise _PositionMovedError(saved)
                for index, change in enumerate(changes):
                    if change.handler is not None:
                        applying = index
                        change.handler.apply(tx, change.data, change.record)
                applying = None
                if parked is not None:
                    self._insert_parked(tx, parked[0], parked[1])
                if dry_run:
                    raise _RollbackError
                save_position(tx, self.consumer, self.stream, last)
        except _RollbackError:  # the dry run went through
            return None
        except (_PositionMovedError, *TRANSIENT_ERRORS):
            raise
        except Exception as exc:
            # SQL errors arrive here as PEP 249 classes: the transaction translates them
            # on its way out, after rolling back.
            if applying is None:
                raise
            return _Failure(applying, exc)
        last_time = changes[-1].record.time if parked is None else self._time_of(parked[0])
        with self._lock:
            self._lag_events = max(0, self._lag_events - len(rows) - (parked is not None))
            self._position, self._position_time = last, last_time
            self._updated_at = time()
            if parked is not None:
                self._parked += 1
        return None

    def _time_of(self, row: Entry) -> int | None:
        try:
            return decode_record(row).time
        except EventNotProjectableError:  # a malformed envelope: ask SQLite for its time
            return time_at(self.datastore, self.stream, row.offset)

    def _first_failure(self, rows: Sequence[Entry]) -> _Failure | None:
        """Decode and apply row by row in a transaction rolled back at the end; the first
        row that fails, with its error (None if all pass now)."""
        changes: list[_Change] = []
        for index, row in enumerate(rows):
            try:
                changes.append(self._decode(row))
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                found = self._commit(rows[:index], changes, dry_run=True) if index else None
                return found or _Failure(index, exc)
        return self._commit(rows, changes, dry_run=True)

    def _after_failure(self, rows: Sequence[Entry]) -> int:
        """Handle a batch that failed: find the first failing event, then follow the policy."""
        for _ in range(3):  # a deterministic projection settles in one round
            try:
                failure = self._first_failure(rows)
            except _PositionMovedError as moved:
                self._resync(moved.saved)
                return 0
            if failure is None:  # it passes now (the failure was not the event's)
                self._more = True
                return 0
            row = rows[failure.index]
            if self.policy == "stop":
                self._fail(failure, row)
                return 0
            prefix = rows[: failure.index]
            try:
                changes = [self._decode(r) for r in prefix]
                if self._commit(prefix, changes, parked=(row, failure.describe())) is None:
                    log.warning(
                        "event parked",
                        tenant=self.tenant,
                        consumer=self.consumer,
                        offset=row.offset,
                        error=failure.describe(),
                    )
                    # The rest of the batch is still to do.
                    self._more = self._more or failure.index + 1 < len(rows)
                    return failure.index + 1
            except _PositionMovedError as moved:
                self._resync(moved.saved)
                return 0
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                continue
        self._fail(
            _Failure(0, RuntimeError("the batch fails differently on every attempt")), rows[0]
        )
        return 0

    def _fail(self, failure: _Failure, row: Entry) -> None:
        with self._lock:
            self._error = failure.describe()
            self._error_offset = row.offset
        log.error(
            "projector failed",
            tenant=self.tenant,
            consumer=self.consumer,
            offset=row.offset,
            error=self._error,
        )

    def _resync(self, saved: int) -> None:
        """Another runner moved the saved offset: continue from there."""
        head = self._head
        lag = count_between(self.datastore, self.stream, saved, head)
        position_time = time_at(self.datastore, self.stream, saved)
        with self._lock:
            self._position, self._lag_events = saved, lag
            self._position_time = position_time
            self._more = True
        log.info("position moved by another runner", consumer=self.consumer, offset=saved)

    # --- parked events --------------------------------------------------------------

    def _insert_parked(self, tx: Transaction, row: Entry, error: str) -> None:
        record_type = _type_of(row)
        tx.execute(
            f'INSERT INTO {PARKED_TABLE} (consumer, "offset", type, payload, error, '
            "parked_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 1)",
            [self.consumer, row.offset, record_type, row.payload, error, _now_ms()],
        )

    def _count_parked(self) -> int:
        rows = self.datastore.query(
            f"SELECT count(*) AS n FROM {PARKED_TABLE} WHERE consumer = ?", [self.consumer]
        )
        return int(rows[0]["n"])

    def parked(self) -> list[ParkedEvent]:
        """This projector's parked events, in stream order."""
        rows = self.datastore.query(
            f'SELECT consumer, "offset", type, payload, error, parked_at, attempts '
            f'FROM {PARKED_TABLE} WHERE consumer = ? ORDER BY "offset"',
            [self.consumer],
        )
        return [msgspec.convert(row, ParkedEvent) for row in rows]

    def replay_parked(self) -> ReplayResult:
        """Apply each parked event again, in stream order, one transaction each.

        An event that applies now leaves the dead-letter table; one that fails again
        stays, with the new error and one more attempt. The offset does not move (it is
        already past them). Parked events are applied out of their stream order, after
        events that followed them: that is what parking means.
        """
        replayed: list[int] = []
        still: list[int] = []
        for event in self.parked():
            row = Entry(event.offset, event.payload)
            try:
                with self.datastore.transaction() as tx:
                    change = self._decode(row)
                    if change.handler is not None:
                        change.handler.apply(tx, change.data, change.record)
                    tx.execute(
                        f'DELETE FROM {PARKED_TABLE} WHERE consumer = ? AND "offset" = ?',
                        [self.consumer, event.offset],
                    )
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                with self.datastore.transaction() as tx:
                    tx.execute(
                        f"UPDATE {PARKED_TABLE} SET error = ?, attempts = attempts + 1 "
                        'WHERE consumer = ? AND "offset" = ?',
                        [f"{type(exc).__name__}: {exc}", self.consumer, event.offset],
                    )
                still.append(event.offset)
                continue
            replayed.append(event.offset)
        with self._lock:
            self._parked -= len(replayed)
            if replayed:
                self._updated_at = time()
        return ReplayResult(replayed=replayed, still_parked=still)


def _type_of(row: Entry) -> str:
    try:
        return decode_record(row).type
    except EventNotProjectableError:
        return ""  # a malformed envelope: its type is unknown


def upgrade_layout(datastore: HonkerDatastore, projection: Projection) -> None:
    """Bring ``projection``'s tables in ``datastore`` to its :attr:`~Projection.layout`,
    once: a projector does it when it opens. Tables already there cost one read and
    take no write lock. The rewrite goes in bounded steps (:meth:`Projection.upgrade`),
    one write transaction each, with the writers' turn between them (as a retention
    pass's: :class:`streams.pauses.Pauses`); a crash between two steps leaves rows
    of both layouts, which the next projector to open the file goes on rewriting."""
    if projection.layout <= 1 or _layout_of(datastore, projection) >= projection.layout:
        return
    layout, after = 1, 0
    with Pauses(datastore.file) as pauses:
        while True:
            started = monotonic()
            with datastore.transaction() as tx:
                tx.execute(
                    f"CREATE TABLE IF NOT EXISTS {LAYOUTS_TABLE} ("
                    "consumer TEXT PRIMARY KEY, layout INTEGER NOT NULL) WITHOUT ROWID"
                )
                rows = tx.query(
                    f"SELECT layout FROM {LAYOUTS_TABLE} WHERE consumer = ?",
                    [projection.consumer],
                )
                layout = int(rows[0]["layout"]) if rows else 1
                if layout >= projection.layout:
                    return  # another process's upgrade finished first
                going_on = projection.upgrade(tx, layout, after)
                if going_on is None:
                    tx.execute(
                        f"INSERT INTO {LAYOUTS_TABLE} (consumer, layout) VALUES (?, ?) "
                        "ON CONFLICT (consumer) DO UPDATE SET layout = excluded.layout",
                        [projection.consumer, projection.layout],
                    )
                    break
            after = going_on
            pauses.after(started)
    log.info(
        "projection layout upgraded",
        consumer=projection.consumer,
        layout_from=layout,
        layout=projection.layout,
    )


def _layout_of(datastore: HonkerDatastore, projection: Projection) -> int:
    exists = "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?"
    if not datastore.query(exists, [LAYOUTS_TABLE]):
        return 1
    rows = datastore.query(
        f"SELECT layout FROM {LAYOUTS_TABLE} WHERE consumer = ?", [projection.consumer]
    )
    return int(rows[0]["layout"]) if rows else 1


def _create_parked_table(tx: Transaction) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {PARKED_TABLE} ("
        "consumer TEXT NOT NULL, "
        '"offset" INTEGER NOT NULL, '
        "type TEXT NOT NULL, "
        "payload TEXT NOT NULL, "
        "error TEXT NOT NULL, "
        "parked_at INTEGER NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 1, "
        'PRIMARY KEY (consumer, "offset")) WITHOUT ROWID'
    )
