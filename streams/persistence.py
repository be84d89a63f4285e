"""The eventsourcing persistence module on Honker: ``PERSISTENCE_MODULE=streams.persistence``.

Every stored event of an application is one row of the tenant file's Honker stream
(``_honker_stream``, topic = the application's stream name) holding the event's
:mod:`~streams.envelope`, plus one small index row ``(originator_id, originator_version)
-> offset``. Both are written in ONE Honker transaction, so the events and the stream
can never disagree, and the payload is stored once. The stream offset is the event's
notification id. The index's primary key gives optimistic concurrency: a version
conflict raises :class:`eventsourcing.persistence.IntegrityError` and rolls back the
whole transaction, stream rows included.

Tracking is Honker's own consumer offsets (``_honker_stream_consumers``): the consumer
is the projection's (application's) name, the topic is the upstream stream. A tracking
record and the view rows it guards commit in the same transaction.

Settings (read by ``Application`` from its env, ``os.environ`` or the ``env`` argument,
``<APPNAME>_`` prefixed keys first):

``HONKER_DBNAME``        the tenant file (required); created if missing
``HONKER_SYNCHRONOUS``   ``NORMAL`` (default) or ``FULL``: see README, "Durability"
``HONKER_BUSY_TIMEOUT``  milliseconds a writer waits for the file's write lock (5000)
``HONKER_STREAM``        the stream (topic) name; defaults to the application's name
``HONKER_TENANT``        the tenant recorded in envelopes; defaults from the file name
``HONKER_POLL_INTERVAL`` seconds between fallback polls when no wake arrives (1.0)
``HONKER_WATCHER_POLL_MS`` Honker's commit-watcher cadence in ms (1)
``HONKER_PAGE_SIZE``     SQLite page size of a NEW file (4096); fixed for the file's life
``HONKER_SNAPSHOTS``      ``all`` (default) keeps every snapshot; ``latest`` keeps each
                         aggregate's newest only (older ones deleted as a new one is written)
``CREATE_TABLE``         create tables on construction (yes)
``ORIGINATOR_ID_TYPE``   ``uuid`` (default) or ``text``

A test-only hook, for the crash tests (``tests/_kill.py``): when the environment variable
``GRAPHSTORE_TEST_PHASE_HOOK`` names a callable (``module:function``) as this module is
imported, every write transaction of :meth:`HonkerDatastore.transaction` calls it with
``(phase, path)``: ``"built"`` as the transaction begins (the events or rows are built,
nothing is written yet), ``"commit"`` inside it after the last row, just before COMMIT,
and ``"committed"`` once COMMIT returned (before the caller acknowledges anything). A
crash test's worker reports each phase to the test, which kills it at a chosen one. Unset
(always, outside the crash tests) the hook costs one ``is None`` test per transaction.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from threading import Event
from time import monotonic, time_ns
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    Mapper,
    Notification,
    ProcessRecorder,
    Recorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
    Transcoder,
    WaitInterruptedError,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

import streams.envelope as envelopes
from streams._honker import Synchronous, TenantFile, Watcher, open_file, release_when_collected
from streams.errors import ConfigurationError
from streams.index import REF_VERSION, id_key, index_table, ref_keys, refs_of, table_prefix
from streams.logs import wrap_logger
from streams.mapper import RecordedEvent, RecordedNotification, TypedMapper
from streams.positions import save_position, saved_position
from streams.side_writes import SideWrite, apply_side_writes, check_side_writes
from streams.transaction import Transaction
from streams.transcoder import MsgspecTranscoder

__all__ = [
    "HonkerAggregateRecorder",
    "HonkerApplicationRecorder",
    "HonkerDatastore",
    "HonkerFactory",
    "HonkerProcessRecorder",
    "HonkerSubscription",
    "HonkerTrackingRecorder",
]

log = wrap_logger(logging.getLogger("streams"))

PHASE_HOOK_ENV = "GRAPHSTORE_TEST_PHASE_HOOK"
"""Names the test-only phase hook (``module:function``), see the module docstring."""


def _phase_hook() -> Callable[[str, Path], None] | None:
    topic = os.environ.get(PHASE_HOOK_ENV)
    if not topic:
        return None
    hook: Callable[[str, Path], None] = resolve_topic(topic)
    return hook


_PHASE_HOOK = _phase_hook()


class _PhasedTransaction:
    """A write transaction reporting its phases to the test-only hook (crash tests)."""

    __slots__ = ("_hook", "_inner", "_path")

    def __init__(self, inner: AbstractContextManager[Transaction], hook: Any, path: Path) -> None:
        self._inner, self._hook, self._path = inner, hook, path

    def __enter__(self) -> Transaction:
        self._hook("built", self._path)
        return self._inner.__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._hook("commit", self._path)
        self._inner.__exit__(exc_type, exc, tb)
        if exc is None:
            self._hook("committed", self._path)


_ROWS_PER_STATEMENT = 250  # 3 parameters a row, far below SQLite's 32766 limit
_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _values(rows: int, width: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return ",".join([row] * rows)


def tenant_from_path(path: Path) -> str:
    """``tenant-acme.db`` -> ``acme``; any other file name -> its stem."""
    stem = path.stem
    return stem.removeprefix("tenant-") if stem.startswith("tenant-") else stem


class HonkerDatastore:
    """One application's view of a tenant file: settings, the shared file, subscriptions."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_ms: int = 5000,
        tenant: str | None = None,
        poll_interval: float = 1.0,
        watcher_poll_ms: int | None = None,
        originator_id_type: str = "uuid",
        page_size: int | None = None,
    ) -> None:
        self.file: TenantFile = open_file(
            path,
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
            watcher_poll_ms=watcher_poll_ms,
            page_size=page_size,
        )
        self.path = self.file.path
        self.tenant = tenant or tenant_from_path(self.path)
        self.poll_interval = poll_interval
        self.originator_id_type = originator_id_type
        self._subscriptions: set[HonkerSubscription] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Some owners never close what they construct (eventsourcing's ProjectionRunner
        # drops the view's factory): release the shared file when this is collected.
        self._release = release_when_collected(self, self.file)

    @property
    def watcher(self) -> Watcher:
        return self.file.watcher

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A Honker write transaction with errors mapped to PEP 249 classes."""
        if _PHASE_HOOK is None:
            return self.file.transaction()
        return _PhasedTransaction(self.file.transaction(), _PHASE_HOOK, self.path)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Read through the reader pool (never inside a write transaction)."""
        return self.file.query(sql, list(params))

    @property
    def uuid_ids(self) -> bool:
        """Whether originator ids are UUIDs (``ORIGINATOR_ID_TYPE=uuid``) or text."""
        return self.originator_id_type == "uuid"

    def track(self, subscription: HonkerSubscription) -> None:
        with self._lock:
            self._subscriptions.add(subscription)

    def untrack(self, subscription: HonkerSubscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def close(self) -> None:
        """Stop and join every subscription's threads, then release the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.stop()
            subscription.join()
        self._release()


class HonkerRecorder(Recorder):
    """Base of every recorder: a datastore and the statements that create its tables."""

    def __init__(self, datastore: HonkerDatastore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datastore = datastore

    def construct_create_table_statements(self) -> list[str]:
        return []

    def create_table(self) -> None:
        statements = self.construct_create_table_statements()
        if statements:
            with self.datastore.transaction() as tx:
                for statement in statements:
                    tx.execute(statement)


class HonkerAggregateRecorder(HonkerRecorder, AggregateRecorder):
    """Stores events in a table of their own (used for snapshots): no stream, no ids.

    With ``latest_only`` (``HONKER_SNAPSHOTS=latest`` for the snapshot store) inserting a
    record deletes that aggregate's older ones in the same transaction: a snapshot is a
    cache of what the events say. Reading an aggregate as of an older version then
    replays events instead of starting from an older snapshot.
    """

    def __init__(
        self,
        datastore: HonkerDatastore,
        *,
        events_table_name: str = "stored_events",
        latest_only: bool = False,
    ) -> None:
        super().__init__(datastore)
        self.events_table_name = events_table_name
        self.latest_only = latest_only

    def construct_create_table_statements(self) -> list[str]:
        return [
            f'CREATE TABLE IF NOT EXISTS "{self.events_table_name}" ('
            "originator_id BLOB NOT NULL, originator_version INTEGER NOT NULL, "
            "topic TEXT NOT NULL, state BLOB NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID"
        ]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.datastore.transaction() as tx:
            return self._insert_events(tx, stored_events, **kwargs)

    def _insert_events(
        self, tx: Transaction, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        for chunk in _chunks(stored_events, _ROWS_PER_STATEMENT):
            params: list[Any] = []
            for event in chunk:
                params += [
                    id_key(event.originator_id),
                    event.originator_version,
                    event.topic,
                    event.state,
                ]
            tx.execute(
                f'INSERT INTO "{self.events_table_name}" VALUES {_values(len(chunk), 4)}',
                params,
            )
        if self.latest_only:
            newest: dict[UUID | str, int] = {}
            for event in stored_events:
                newest[event.originator_id] = max(
                    event.originator_version, newest.get(event.originator_id, 0)
                )
            for originator_id, version in newest.items():
                tx.execute(
                    f'DELETE FROM "{self.events_table_name}" '
                    "WHERE originator_id = ? AND originator_version < ?",
                    [id_key(originator_id), version],
                )
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        sql, params = _version_range(
            f'SELECT originator_version, topic, state FROM "{self.events_table_name}"',
            originator_id,
            gt=gt,
            lte=lte,
            desc=desc,
            limit=limit,
        )
        return [
            StoredEvent(originator_id, row["originator_version"], row["topic"], row["state"])
            for row in self.datastore.query(sql, params)
        ]


def _version_range(
    select: str,
    originator_id: UUID | str,
    *,
    gt: int | None,
    lte: int | None,
    desc: bool,
    limit: int | None,
    column: str = "originator_version",
) -> tuple[str, list[Any]]:
    sql = [select, "WHERE originator_id = ?"]
    params: list[Any] = [id_key(originator_id)]
    if gt is not None:
        sql.append(f"AND {column} > ?")
        params.append(gt)
    if lte is not None:
        sql.append(f"AND {column} <= ?")
        params.append(lte)
    sql.append(f"ORDER BY {column} {'DESC' if desc else 'ASC'}")
    if limit is not None:
        sql.append("LIMIT ?")
        params.append(limit)
    return " ".join(sql), params


class HonkerApplicationRecorder(HonkerRecorder, ApplicationRecorder):
    """Events in the tenant's Honker stream, an index for aggregates, live subscriptions."""

    def __init__(
        self,
        datastore: HonkerDatastore,
        *,
        stream: str = "events",
        index_table_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        if not _NAME.match(stream):
            raise ConfigurationError(
                f"invalid stream name {stream!r}: use 1-128 characters from A-Z a-z 0-9 _ . : @ -"
            )
        self.stream = stream
        self.index_table_name = index_table_name or index_table(stream)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f'CREATE TABLE IF NOT EXISTS "{self.index_table_name}" ('
            "originator_id BLOB NOT NULL, originator_version INTEGER NOT NULL, "
            '"offset" INTEGER NOT NULL, '
            "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
        ]

    supports_side_writes: ClassVar[bool] = True
    """``insert_events`` takes ``side_writes=`` (see :mod:`streams.side_writes`)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record events, their index rows and any ``side_writes`` in ONE transaction."""
        side_writes: Sequence[SideWrite] = kwargs.pop("side_writes", None) or ()
        check_side_writes(side_writes, self.stream)
        with self.datastore.transaction() as tx:
            ids = self._insert_events(tx, stored_events, **kwargs)
            apply_side_writes(tx, side_writes)
            return ids

    def _insert_events(
        self, tx: Transaction, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        now = time_ns() // 1_000_000
        tenant = self.datastore.tenant
        payloads = [
            envelopes.encode(
                tenant=tenant,
                topic=event.topic,
                originator_id=event.originator_id,
                originator_version=event.originator_version,
                time_ms=now,
                state=event.state,
            )
            for event in stored_events
        ]
        try:
            if len(stored_events) == 1:
                offsets = self._insert_one(tx, stored_events[0], payloads[0])
            else:
                offsets = self._insert_many(tx, stored_events, payloads)
            self._insert_refs(tx, stored_events, offsets)
            return offsets
        except RuntimeError as exc:
            if "constraint failed" in str(exc) and self.index_table_name in str(exc):
                raise IntegrityError(
                    f"version conflict in stream {self.stream!r}: an event with the same "
                    "(originator_id, originator_version) is already recorded, or appears "
                    "twice in this batch. Nothing was written; reload the aggregate and "
                    "retry the command."
                ) from exc
            raise

    def _insert_one(self, tx: Transaction, event: StoredEvent, payload: str) -> list[int]:
        # The common case (one event per save): two statements, no parameter lists.
        tx.execute(
            "INSERT INTO _honker_stream (topic, key, payload) VALUES (?, NULL, ?)",
            [self.stream, payload],
        )
        rows = tx.query(
            f'INSERT INTO "{self.index_table_name}" VALUES (?, ?, last_insert_rowid()) '
            'RETURNING "offset"',
            [id_key(event.originator_id), event.originator_version],
        )
        return [rows[0]["offset"]]

    def _insert_many(
        self, tx: Transaction, events: Sequence[StoredEvent], payloads: list[str]
    ) -> list[int]:
        # One statement for the stream rows: json_each yields the array in order, and
        # with one writer and AUTOINCREMENT the rows get increasing offsets in that order.
        # RETURNING's order is unspecified, so sort.
        rows = tx.query(
            "INSERT INTO _honker_stream (topic, key, payload) "
            'SELECT ?, NULL, value FROM json_each(?) ORDER BY key RETURNING "offset"',
            [self.stream, envelopes.encode_array(payloads)],
        )
        offsets = sorted(row["offset"] for row in rows)
        for start in range(0, len(events), _ROWS_PER_STATEMENT):
            chunk = events[start : start + _ROWS_PER_STATEMENT]
            params: list[Any] = []
            for event, offset in zip(chunk, offsets[start : start + len(chunk)], strict=True):
                params += [id_key(event.originator_id), event.originator_version, offset]
            tx.execute(
                f'INSERT INTO "{self.index_table_name}" VALUES {_values(len(chunk), 3)}',
                params,
            )
        return offsets

    supports_refs: ClassVar[bool] = True
    """Events file references (their state's ``refs``: see :mod:`streams.index`)."""

    def _insert_refs(
        self, tx: Transaction, events: Sequence[StoredEvent], offsets: Sequence[int]
    ) -> None:
        # A reference is one more index row of its event's entry (streams.index).
        params: list[Any] = []
        for event, offset in zip(events, offsets, strict=True):
            for key in ref_keys(refs_of(event.state), uuid_ids=self.datastore.uuid_ids):
                params += [key, REF_VERSION, offset]
        for start in range(0, len(params), 3 * _ROWS_PER_STATEMENT):
            chunk = params[start : start + 3 * _ROWS_PER_STATEMENT]
            tx.execute(
                f'INSERT INTO "{self.index_table_name}" VALUES {_values(len(chunk) // 3, 3)}',
                chunk,
            )

    def select_reference(self, originator_id: UUID | str) -> str | None:
        """The ``subject`` of the entry that took ``originator_id`` (its first version):
        the aggregate whose event filed it as a reference, or ``originator_id`` itself
        when an event of its own did; ``None`` if the id is not taken."""
        rows = self.datastore.query(
            f"SELECT s.payload ->> '$.subject' AS subject FROM \"{self.index_table_name}\" i "
            'JOIN _honker_stream s ON s."offset" = i."offset" '
            "WHERE i.originator_id = ? AND i.originator_version = ?",
            [id_key(originator_id), REF_VERSION],
        )
        return str(rows[0]["subject"]) if rows else None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        sql, params = _version_range(
            "SELECT i.originator_version AS v, s.payload "
            f'FROM "{self.index_table_name}" i '
            'JOIN _honker_stream s ON s."offset" = i."offset"',
            originator_id,
            gt=gt,
            lte=lte,
            desc=desc,
            limit=limit,
            column="i.originator_version",
        )
        events = []
        for row in self.datastore.query(sql, params):
            env = envelopes.decode(row["payload"])
            if env.version != row["v"] or (
                row["v"] == REF_VERSION and env.subject != str(originator_id)
            ):
                continue  # a reference's row: another aggregate's event (streams.index)
            events.append(
                RecordedEvent(
                    originator_id, env.version, env.type, envelopes.state_of(env), env.time
                )
            )
        return events

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        sql = ['SELECT "offset", payload FROM _honker_stream WHERE topic = ?']
        params: list[Any] = [self.stream]
        if start is not None:
            sql.append('AND "offset" >= ?' if inclusive_of_start else 'AND "offset" > ?')
            params.append(start)
        if stop is not None:
            sql.append('AND "offset" <= ?')
            params.append(stop)
        if topics:
            sql.append(f"AND payload ->> '$.type' IN ({','.join('?' * len(topics))})")
            params += list(topics)
        sql.append('ORDER BY "offset" LIMIT ?')
        params.append(limit)
        decode = envelopes.decode_uuid if self.datastore.uuid_ids else envelopes.decode
        notifications = []
        for row in self.datastore.query(" ".join(sql), params):
            env = decode(row["payload"])
            notifications.append(
                RecordedNotification(
                    id=row["offset"],
                    originator_id=env.subject,
                    originator_version=env.version,
                    topic=env.type,
                    state=envelopes.state_of(env),
                    time_ms=env.time,
                )
            )
        return notifications

    def max_notification_id(self) -> int | None:
        rows = self.datastore.query(
            'SELECT MAX("offset") AS m FROM _honker_stream WHERE topic = ?', [self.stream]
        )
        value = rows[0]["m"] if rows else None
        return int(value) if value is not None else None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> HonkerSubscription:
        return HonkerSubscription(self, gt=gt, topics=topics)


class HonkerSubscription(Subscription[HonkerApplicationRecorder]):
    """Catch-up then live iteration, woken by Honker's commit watcher.

    Built on eventsourcing's public :class:`~eventsourcing.persistence.Subscription` (an
    iterator of notifications, stopped by :meth:`stop` or by leaving its ``with``
    block), with its own pull thread: it selects what is recorded after the position,
    a page of ``PAGE`` at a time, keeps at most ``BUFFERED_PAGES`` pages ahead of the
    reader, and sleeps until a commit wakes it. Reads go through the reader pool. A wake
    only says "something may have changed", so a lost or coalesced wake costs at most
    ``HONKER_POLL_INTERVAL`` seconds: the pull loop also wakes on that timer
    (eventsourcing issue #305). An error in the pull thread stops the subscription and
    is raised by the next ``next()``.
    """

    PAGE: ClassVar[int] = 500
    BUFFERED_PAGES: ClassVar[int] = 10

    def __init__(
        self,
        recorder: HonkerApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._source = recorder
        self._after = gt or 0
        self._wanted = topics
        self._pages: deque[Sequence[Notification]] = deque()
        self._page: Sequence[Notification] = ()
        self._index = 0
        self._changed = threading.Condition()
        self._stopping = False
        self._error: BaseException | None = None
        self._woken = Event()
        self._woken.set()  # the first pull reads what is already recorded
        self._datastore = recorder.datastore
        self._datastore.track(self)
        self._datastore.watcher.add(self._woken.set)
        self._pull_thread = threading.Thread(target=self._follow, name="honker-subscription")
        self._pull_thread.start()
        log.debug("subscribed", tenant=self._datastore.tenant, stream=recorder.stream, offset=gt)

    def __next__(self) -> Notification:
        if self._index == len(self._page) and not self._stopping:
            with self._changed:
                while not self._pages and not self._stopping:
                    self._changed.wait()
                if self._pages:
                    self._page, self._index = self._pages.popleft(), 0
                    self._changed.notify_all()
        if self._stopping:
            if self._error is not None:
                raise self._error
            raise StopIteration
        notification = self._page[self._index]
        self._index += 1
        return notification

    def _follow(self) -> None:
        try:
            while not self._stopping:
                self._woken.wait(timeout=self._datastore.poll_interval)
                self._pull()
        except BaseException as exc:
            if self._error is None:
                self._error = exc
            self.stop()

    def _pull(self) -> None:
        """Everything recorded after the position, a page at a time, into the buffer."""
        while not self._stopping:
            self._woken.clear()
            page = self._source.select_notifications(
                start=self._after,
                limit=self.PAGE,
                topics=self._wanted,
                inclusive_of_start=False,
            )
            if page:
                with self._changed:
                    while len(self._pages) >= self.BUFFERED_PAGES and not self._stopping:
                        self._changed.wait()
                    if self._stopping:
                        return
                    self._pages.append(page)
                    self._changed.notify_all()
                self._after = page[-1].id
            if len(page) < self.PAGE:
                return

    def stop(self) -> None:
        """Stop the subscription; its thread ends without blocking the caller."""
        datastore = getattr(self, "_datastore", None)
        if datastore is not None:
            datastore.watcher.discard(self._woken.set)
            datastore.untrack(self)
        super().stop()
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._woken.set()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self.join()

    def join(self) -> None:
        """Wait for the pull thread to end (after :meth:`stop`)."""
        if threading.current_thread() is not self._pull_thread:
            self._pull_thread.join()


class HonkerTrackingRecorder(HonkerRecorder, TrackingRecorder):
    """Positions in upstream streams, kept as Honker consumer offsets.

    The consumer is this recorder's ``consumer`` name (the projection's name); the topic
    is the upstream application's name, which is its stream name. Views subclass this
    recorder and write their rows and :meth:`_insert_tracking` in one
    :meth:`transaction`.
    """

    def __init__(self, datastore: HonkerDatastore, *, consumer: str = "", **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.consumer = consumer or "tracking"

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write transaction for view rows and their tracking record, together."""
        return self.datastore.transaction()

    def insert_tracking(self, tracking: Tracking) -> None:
        with self.datastore.transaction() as tx:
            self._insert_tracking(tx, tracking)

    def _insert_tracking(self, tx: Transaction, tracking: Tracking) -> None:
        # Refuses a position that does not advance (Honker alone would ignore it).
        save_position(tx, self.consumer, tracking.application_name, tracking.notification_id)

    def max_tracking_id(self, application_name: str) -> int | None:
        return saved_position(self.datastore, self.consumer, application_name)

    def wait(
        self,
        application_name: str,
        notification_id: int | None,
        timeout: float = 1.0,
        interrupt: Event | None = None,
    ) -> None:
        """Block until the position is recorded, woken by commits from any process."""
        deadline = monotonic() + timeout
        watcher = self.datastore.watcher
        while True:
            generation = watcher.generation  # read before checking: no missed commit
            if self.has_tracking_id(application_name, notification_id):
                return
            if interrupt is not None and interrupt.is_set():
                raise WaitInterruptedError
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for consumer {self.consumer!r} to "
                    f"reach {notification_id} of {application_name!r}"
                )
            # Short slices keep an interrupt responsive; commits wake at once.
            watcher.wait_for_change(generation, min(remaining, 0.05 if interrupt else 0.5))


class HonkerProcessRecorder(HonkerTrackingRecorder, HonkerApplicationRecorder, ProcessRecorder):
    """Writes new events and the upstream position in one transaction."""

    def _insert_events(
        self, tx: Transaction, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(tx, stored_events, **kwargs)
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(tx, tracking)
        return ids


_R = TypeVar("_R", bound=HonkerRecorder)


class HonkerFactory(InfrastructureFactory[HonkerTrackingRecorder]):
    """Builds recorders on one tenant file; see the module docstring for settings."""

    HONKER_DBNAME = "HONKER_DBNAME"
    HONKER_SYNCHRONOUS = "HONKER_SYNCHRONOUS"
    HONKER_BUSY_TIMEOUT = "HONKER_BUSY_TIMEOUT"
    HONKER_STREAM = "HONKER_STREAM"
    HONKER_TENANT = "HONKER_TENANT"
    HONKER_POLL_INTERVAL = "HONKER_POLL_INTERVAL"
    HONKER_WATCHER_POLL_MS = "HONKER_WATCHER_POLL_MS"
    HONKER_SNAPSHOTS = "HONKER_SNAPSHOTS"
    HONKER_PAGE_SIZE = "HONKER_PAGE_SIZE"
    CREATE_TABLE = "CREATE_TABLE"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"

    aggregate_recorder_class: ClassVar[type[HonkerAggregateRecorder]] = HonkerAggregateRecorder
    application_recorder_class: ClassVar[type[HonkerApplicationRecorder]] = (
        HonkerApplicationRecorder
    )
    tracking_recorder_class: ClassVar[type[HonkerTrackingRecorder]] = HonkerTrackingRecorder
    process_recorder_class: ClassVar[type[HonkerProcessRecorder]] = HonkerProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        path = self.env.get(self.HONKER_DBNAME)
        if not path:
            keys = ", ".join(self.env.create_keys(self.HONKER_DBNAME))
            raise ConfigurationError(
                f"no tenant file configured: set one of {keys} to the SQLite file to use "
                "(it is created if missing)"
            )
        synchronous = (self.env.get(self.HONKER_SYNCHRONOUS) or "NORMAL").strip().upper()
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError(
                f"{self.HONKER_SYNCHRONOUS}={synchronous!r} is not a durability mode: use "
                "NORMAL (survives a process crash) or FULL (survives power loss too)"
            )
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").strip().lower()
        if id_type not in ("uuid", "text"):
            raise ConfigurationError(
                f"{self.ORIGINATOR_ID_TYPE}={id_type!r} is invalid: use 'uuid' or 'text'"
            )
        watcher_ms = self._number(self.HONKER_WATCHER_POLL_MS, None)
        self.datastore = HonkerDatastore(
            path,
            synchronous="FULL" if synchronous == "FULL" else "NORMAL",
            busy_timeout_ms=int(self._number(self.HONKER_BUSY_TIMEOUT, 5000) or 5000),
            tenant=self.env.get(self.HONKER_TENANT) or None,
            poll_interval=float(self._number(self.HONKER_POLL_INTERVAL, 1.0) or 1.0),
            watcher_poll_ms=int(watcher_ms) if watcher_ms else None,
            originator_id_type=id_type,
            page_size=self._page_size(),
        )

    def _page_size(self) -> int:
        size = int(self._number(self.HONKER_PAGE_SIZE, 4096) or 4096)
        if size < 512 or size > 65536 or size & (size - 1):
            raise ConfigurationError(
                f"HONKER_PAGE_SIZE must be a power of two from 512 to 65536, got {size} "
                "(it applies when a file is created; 4096 is SQLite's default)"
            )
        return size

    def _number(self, key: str, default: float | None) -> float | None:
        raw = (self.env.get(key) or "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{key}={raw!r} is not a number") from None
        if value <= 0:
            raise ConfigurationError(f"{key}={raw!r} must be positive")
        return value

    @property
    def stream(self) -> str:
        """This application's stream: ``HONKER_STREAM``, else the application's name."""
        return self.env.get(self.HONKER_STREAM) or self.env.name or "events"

    def env_create_table(self) -> bool:
        return bool(strtobool(self.env.get(self.CREATE_TABLE) or "yes"))

    def _resolve(self, key: str, default: type[Any]) -> Any:
        topic = self.env.get(key)
        cls = resolve_topic(topic) if topic else default
        if not (isinstance(cls, type) and issubclass(cls, default)):
            raise ConfigurationError(f"{key}={topic!r} must name a subclass of {default.__name__}")
        return cls

    def transcoder(self) -> Transcoder:
        """``TRANSCODER_TOPIC`` if set, else :class:`~streams.transcoder.MsgspecTranscoder`
        (``JSONTranscoder``'s wire format, several times faster)."""
        if self.env.get(self.TRANSCODER_TOPIC):
            return super().transcoder()
        return MsgspecTranscoder()

    def mapper(
        self,
        transcoder: Transcoder | None = None,
        mapper_class: type[Mapper[Any]] | None = None,
    ) -> Mapper[Any]:
        """``MAPPER_TOPIC`` if set, else :class:`~streams.mapper.TypedMapper` (the same
        stored bytes as eventsourcing's ``Mapper``; the store's own events decoded typed)."""
        if mapper_class is None and not self.env.get(self.MAPPER_TOPIC):
            mapper_class = TypedMapper
        mapper = super().mapper(transcoder=transcoder, mapper_class=mapper_class)
        if isinstance(mapper, TypedMapper):  # every event read here carries its time
            mapper.record_times = True
        return mapper

    def _created(self, recorder: _R) -> _R:
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        table = f"es_{table_prefix(self.stream)}_{table_prefix(purpose)}"
        keep = (self.env.get(self.HONKER_SNAPSHOTS) or "all").strip().lower()
        if keep not in ("all", "latest"):
            raise ConfigurationError(
                f"{self.HONKER_SNAPSHOTS}={keep!r} is invalid: use 'all' (keep every "
                "snapshot) or 'latest' (keep each aggregate's newest only)"
            )
        latest_only = purpose == "snapshots" and keep == "latest"
        return self._created(
            self.aggregate_recorder_class(
                self.datastore, events_table_name=table, latest_only=latest_only
            )
        )

    def application_recorder(self) -> ApplicationRecorder:
        cls: type[HonkerApplicationRecorder] = self._resolve(
            self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class
        )
        return self._created(cls(self.datastore, stream=self.stream))

    def tracking_recorder(
        self, tracking_recorder_class: type[HonkerTrackingRecorder] | None = None
    ) -> HonkerTrackingRecorder:
        cls = tracking_recorder_class or self._resolve(
            self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class
        )
        return self._created(cls(self.datastore, consumer=self.stream))

    def process_recorder(self) -> ProcessRecorder:
        cls: type[HonkerProcessRecorder] = self._resolve(
            self.PROCESS_RECORDER_TOPIC, self.process_recorder_class
        )
        return self._created(cls(self.datastore, stream=self.stream, consumer=self.stream))

    def close(self) -> None:
        """Stop and join subscription and watcher threads, then close the file."""
        self.datastore.close()
