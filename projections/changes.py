"""Subscriptions to a projection's changes: every committed change, in order, with its position.

A *change* of projector P is the stream event at offset N as P applied it: it becomes
visible once P's saved offset (its Honker consumer offset) is at least N, so a consumer
never sees a change before the view rows that reflect it are committed. A
:class:`Subscription` follows one projector of one tenant file, for all its changes, one
graph's (``graph=``, the envelope's ``subject``) or one workflow run's (``run=``, the
flowgraph's calls of that run, through ``flow_call_events``):

1. it reads P's saved offset through the reader pool;
2. it reads the stream entries in ``(cursor, P's offset]`` (at most ``batch_size``) and
   keeps those that are changes of P matching the filter, decoded to :class:`Change`;
3. when there are none, it waits for a commit to the file from any process (the file's
   :class:`streams.Watcher`), with a slow poll (``poll_interval``) against a lost wake.

A named subscription keeps a durable position: Honker consumer ``changes:<name>`` on the
projector's upstream stream, beside the projectors' own offsets. Reopened by name, it
resumes after that position, so an offline consumer misses nothing.

Delivery is **at least once, in order, with positions**. While iterating, a change is
acknowledged when the next one is asked for; the acknowledged position is saved
(``auto_commit``) before each wait, every ``commit_every`` changes and on :meth:`close`.
A crash re-delivers what was handed out after the last save, never less. A consumer that
stores ``change.position`` with its own effects and skips positions it has already seen
gets an exactly-once effect. A consumer whose effects are in the same tenant file saves
the position in its own transaction with :meth:`Subscription.commit_in`: effect and
position commit together, and a repeated position is refused (``IntegrityError``), so
its effects happen exactly once. See docs/subscriptions.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any, Final

import msgspec
from eventsourcing.persistence import ProgrammingError
from eventsourcing.utils import Environment

from domain.calls import CALL
from projections._stream import decode_record
from projections.errors import EventNotProjectableError, UnknownEventError
from projections.events import (
    CALL_EVENTS,
    GRAPH_TOPIC,
    NODE_ADDED,
    NODE_DELETED,
    NODE_UPDATED,
    RUNS_RETIRED,
    AnyEvent,
    RunsRetired,
    call_key,
)
from projections.flowgraph import FlowgraphProjection
from projections.metagraph import MetagraphProjection
from projections.projector import DEFAULT_BATCH_SIZE, Projection
from projections.rebuild import live_projection
from streams import (
    Entry,
    HonkerDatastore,
    TenantReader,
    Transaction,
    read_after,
    read_at,
    save_position,
    saved_position,
)
from streams.retirement import retirement_offsets

__all__ = ["CONSUMER_PREFIX", "Change", "Subscription"]

CONSUMER_PREFIX: Final = "changes:"
"""A named subscription's position is the Honker consumer ``changes:<name>``."""
_NODE_EVENTS: Final = frozenset({NODE_ADDED, NODE_UPDATED, NODE_DELETED})


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One committed change of a projection.

    ``position`` is the stream offset of the event (commit it once handled); ``time``
    when it was recorded (ms since the epoch); ``type`` the event's topic
    (its stable name, ``Graph.NodeAdded``: docs/events.md) and ``event`` its last part
    (``NodeAdded``);
    ``subject`` the aggregate. For events of a graph: ``graph_id`` (= ``subject``),
    ``node_key`` or ``edge_id``. For the flowgraph: ``call_id`` (the call's request id)
    and ``status``, the call's new status (None when the call was deleted); ``run_id`` is
    set when the subscription follows one run. A retirement record
    (``Retention.RunsRetired``, docs/retention.md) is a change with ``status``
    ``"retired"`` and ``runs`` the retired runs: their rows are gone from the views.
    """

    position: int
    time: int
    type: str
    event: str
    subject: str
    projector: str
    graph_id: str | None = None
    node_key: str | None = None
    edge_id: str | None = None
    call_id: str | None = None
    status: str | None = None
    run_id: str | None = None
    runs: list[str] | None = None


class _Status(msgspec.Struct):
    status: str | None = None


_data_decoder: Final = msgspec.json.Decoder(AnyEvent)
_status_decoder: Final = msgspec.json.Decoder(_Status)
_retired_decoder: Final = msgspec.json.Decoder(RunsRetired)


@dataclass(frozen=True, slots=True)
class _Pending:
    change: Change
    acknowledges: int
    """The position acknowledged once this change is handled (past filtered entries)."""


class Subscription:
    """Follows one projector's changes on one tenant file. See the module docstring.

    ``name`` makes the position durable (None: a live view that saves nothing).
    ``from_start`` starts a name with no saved position (or an unnamed subscription) at
    the beginning of the stream instead of at the projector's current offset; ``after``
    starts an unnamed one after a position its consumer kept (an SSE client's
    ``Last-Event-ID``), so it resumes with no gap and no duplicate. One thread
    (or one task) consumes a subscription; :meth:`close` may be called from any thread.
    """

    def __init__(
        self,
        datastore: HonkerDatastore,
        projection: Projection,
        *,
        name: str | None = None,
        stream: str | None = None,
        graph: str | None = None,
        run: str | None = None,
        from_start: bool = False,
        after: int | None = None,
        auto_commit: bool = True,
        commit_every: int = 100,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 1.0,
        plain_state: Callable[[bytes], bytes] | None = None,
    ) -> None:
        if run is not None and not isinstance(projection, FlowgraphProjection):
            raise ValueError("run= needs the flowgraph projection (FlowgraphProjection)")
        if graph is not None and run is not None:
            raise ValueError("give graph= or run=, not both")
        if batch_size < 1 or commit_every < 1:
            raise ValueError("batch_size and commit_every must be at least 1")
        self.datastore = datastore
        self.projection = projection
        self.projector = projection.consumer
        self.stream = stream or projection.upstream
        self.name = name
        self.graph = graph
        self.run = run
        self.auto_commit = auto_commit
        self.commit_every = commit_every
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._plain_state = plain_state
        self._consumer = CONSUMER_PREFIX + name if name else None
        self._flow = projection if isinstance(projection, FlowgraphProjection) else None
        self._call_graph: str | None = None
        self._buffer: deque[_Pending] = deque()
        self._delivered: _Pending | None = None  # handed out, not yet acknowledged
        self._owned: TenantReader | None = None
        self._closed = threading.Event()
        if after is not None and (self._consumer is not None or from_start or after < 0):
            raise ValueError(
                "after= resumes an unnamed subscription after a position the consumer kept "
                "(an SSE Last-Event-ID): give a position >= 0, without name= or from_start="
            )
        saved = saved_position(datastore, self._consumer, self.stream) if self._consumer else None
        if saved is None:
            saved = after if after is not None else 0 if from_start else self.visible()
            if self._consumer is not None and saved > 0:
                self._save(self._consumer, saved)
        self._saved = saved
        self._acked = saved  # every change up to here is handled
        self._cursor = saved  # read up to here
        self._since_commit = 0
        self.waits = 0
        """Times it found nothing new and began to wait for a commit (counted before the
        wait; observable, so a test can write once the consumer is parked)."""

    @classmethod
    def open(
        cls,
        env: Mapping[str, str] | Environment,
        projection: Projection | type[Projection],
        **options: Any,
    ) -> Subscription:
        """A subscription on the tenant file ``env`` selects (as the writers' env);
        :meth:`close` closes the file. A projection class follows its live version in
        the file (after a rebuild's swap); an instance is taken as it is."""
        return TenantReader(env, projection.upstream).adopt(
            lambda reader: cls.on(reader, projection, owns=True, **options)
        )

    @classmethod
    def on(
        cls,
        reader: TenantReader,
        projection: Projection | type[Projection],
        *,
        owns: bool = False,
        **options: Any,
    ) -> Subscription:
        """A subscription reading through ``reader`` (its stream and cipher unless
        ``options`` say otherwise); a projection class follows its live version. With
        ``owns``, :meth:`close` closes the reader."""
        options.setdefault("stream", reader.stream)
        options.setdefault("plain_state", reader.plain_state)
        if isinstance(projection, type):
            projection = live_projection(reader.datastore, projection)
        subscription = cls(reader.datastore, projection, **options)
        subscription._owned = reader if owns else None
        return subscription

    # --- positions ------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The acknowledged position: every change up to it has been handled."""
        return self._acked

    @property
    def cursor(self) -> int:
        """Read up to here: every change at or before it has been handed out (or was
        filtered out)."""
        return self._cursor

    @property
    def saved_position(self) -> int:
        """The durable position (what a subscription reopened by name resumes after)."""
        return self._saved

    def visible(self) -> int:
        """The projector's saved offset: changes up to it are committed (0: none yet)."""
        return saved_position(self.datastore, self.projector, self.stream) or 0

    def commit(self, position: int | None = None) -> None:
        """Save ``position`` (default: the acknowledged one) as the durable position.

        Saves nothing for an unnamed subscription or a position that does not advance.
        Committing a change's position also acknowledges it.
        """
        if position is not None and position > self._acked:
            self._acked = position
        target = self._acked if position is None else position
        if self._consumer is None or target <= self._saved:
            return
        self._save(self._consumer, target)
        self._saved = target
        self._since_commit = 0

    def commit_in(self, tx: Transaction, position: int) -> None:
        """Save ``position`` inside the caller's write transaction on the same file, with
        the effects of handling it: exactly-once effects.

        Raises ``IntegrityError`` (rolling the caller's transaction back) when the saved
        position is already at or past it: the change was handled before.
        """
        if self._consumer is None:
            raise ValueError("commit_in needs a named subscription")
        save_position(tx, self._consumer, self.stream, position)
        self._saved = max(self._saved, position)
        self._acked = max(self._acked, position)

    def _save(self, consumer: str, position: int) -> None:
        """Save the durable position in a transaction of its own."""
        with self.datastore.transaction() as tx:
            save_position(tx, consumer, self.stream, position)

    # --- reading --------------------------------------------------------------------

    def poll(self) -> list[Change]:
        """Every change visible now after those already handed out, without waiting.

        Each returned change counts as handed out; commit its position once handled.
        """
        self._acknowledge()
        while self._fill():
            pass
        changes = [pending.change for pending in self._buffer]
        if self._buffer:
            self._delivered = self._buffer[-1]
            self._buffer.clear()
        return changes

    def next(self, timeout: float | None = None) -> Change | None:
        """The next change, waiting up to ``timeout`` seconds (None: until one comes or
        :meth:`close`); None if none came. Acknowledges the previous one."""
        deadline = None if timeout is None else monotonic() + timeout
        watcher = self.datastore.watcher
        while not self._closed.is_set():
            self._acknowledge()
            generation = watcher.generation  # read before reading: no missed commit
            if self._take_or_fill():
                return self._hand_out()
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._before_wait()
            self.waits += 1
            slice_ = self.poll_interval if remaining is None else min(remaining, self.poll_interval)
            watcher.wait_for_change(generation, min(slice_, 0.25))
        return None

    def __iter__(self) -> Iterator[Change]:
        while True:
            change = self.next()
            if change is None:  # closed
                return
            yield change

    def __aiter__(self) -> AsyncIterator[Change]:
        return self._async_changes()

    async def _async_changes(self) -> AsyncIterator[Change]:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(woken.set)

        watcher = self.datastore.watcher
        watcher.add(wake)
        try:
            while not self._closed.is_set():
                self._acknowledge()
                woken.clear()
                if await asyncio.to_thread(self._take_or_fill):
                    yield self._hand_out()
                    continue
                await asyncio.to_thread(self._before_wait)
                self.waits += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.poll_interval)
        finally:
            watcher.discard(wake)

    def close(self) -> None:
        """Stop iterating; save the acknowledged position (``auto_commit``); close the
        file if :meth:`open` opened it."""
        if self._closed.is_set() and self._owned is None:
            return
        self._closed.set()
        try:
            if self.auto_commit:
                self.commit()
        finally:
            owned, self._owned = self._owned, None
            if owned is not None:
                owned.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------

    def _acknowledge(self) -> None:
        """The change handed out last is handled (the consumer asked for more)."""
        delivered, self._delivered = self._delivered, None
        if delivered is None:
            return
        self._acked = max(self._acked, delivered.acknowledges)
        self._since_commit += 1
        if self.auto_commit and self._since_commit >= self.commit_every:
            self.commit()

    def _before_wait(self) -> None:
        if self.auto_commit:
            self.commit()

    def _take_or_fill(self) -> bool:
        """Whether a change is buffered, reading more while the cursor can move."""
        while not self._buffer:
            if not self._fill():
                return False
        return True

    def _hand_out(self) -> Change:
        pending = self._buffer.popleft()
        self._delivered = pending
        return pending.change

    def _fill(self) -> bool:
        """Read the next batch of visible entries; whether the cursor moved.

        Called with nothing buffered and nothing unacknowledged.
        """
        visible = self.visible()
        if visible <= self._cursor:
            return False
        rows = self._read(self._cursor, visible)
        upto = rows[-1].offset if len(rows) == self.batch_size else visible
        changes = [change for row in rows if (change := self._change(row)) is not None]
        self._cursor = upto
        if not changes:
            self._acked = max(self._acked, upto)  # filtered out: nothing to handle
            return True
        last = len(changes) - 1
        self._buffer.extend(
            _Pending(change, upto if index == last else change.position)
            for index, change in enumerate(changes)
        )
        return True

    def _read(self, after: int, upto: int) -> list[Entry]:
        if self.run is None or self._flow is None:
            rows = read_after(self.datastore, self.stream, after, limit=self.batch_size)
            return [row for row in rows if row.offset <= upto]
        # The run's events, found through the flowgraph's index of each call's events;
        # stream entries never change, so reading them in a second statement is safe.
        names = self._flow.tables
        found = self.datastore.query(
            f'SELECT DISTINCT e."offset" AS "offset" FROM "{names["flow_calls"]}" c '
            f'JOIN "{names["flow_call_events"]}" e ON e.call_id = c.id '
            f'WHERE c.run_id = ? AND e."offset" > ? AND e."offset" <= ? '
            f'ORDER BY e."offset" LIMIT ?',
            [self.run, after, upto, self.batch_size],
        )
        # A retirement record is none of the run's calls' events (and, once applied, the
        # run's rows are gone): read the records too; _change keeps those naming the run.
        offsets = sorted(
            {int(row["offset"]) for row in found}
            | set(retirement_offsets(self.datastore, self.stream, after, upto))
        )
        return read_at(self.datastore, self.stream, offsets[: self.batch_size])

    def _change(self, row: Entry) -> Change | None:
        """The change ``row`` is for this subscription, or None (not a change of the
        projection, or filtered out)."""
        try:
            record = decode_record(row)
        except EventNotProjectableError:
            return None  # not an envelope: the projector did not apply it either
        is_call = record.type in CALL_EVENTS  # a call tree's: of the tenant's call graph
        graph_id = self._call_graph_id() if is_call else record.subject
        if self.graph is not None and graph_id != self.graph:
            return None
        try:
            if self.projection.handler(record.type) is None:
                return None
        except UnknownEventError:
            pass  # a parking projector passed it; the consumer should hear of it
        data = AnyEvent()
        state = record.state
        if record.encoded and self._plain_state is not None:
            state = self._plain_state(state)
        if not record.encoded or self._plain_state is not None:
            with contextlib.suppress(msgspec.MsgspecError):
                data = _data_decoder.decode(state)
        if is_call and not data.key:  # a CallAdded keyed by its requestId (docs/events.md)
            with contextlib.suppress(EventNotProjectableError):
                data.key = call_key(data.key, data.attributes)
        event = record.type.rsplit(".", 1)[-1]
        is_graph = record.type.startswith(GRAPH_TOPIC)
        change = Change(
            position=record.offset,
            time=record.time,
            type=record.type,
            event=event,
            subject=record.subject,
            projector=self.projector,
            graph_id=graph_id if is_graph or is_call else None,
            node_key=data.key if (is_graph and "Node" in event) or is_call else None,
            edge_id=data.edge_id if is_graph and "Edge" in event else None,
        )
        if record.type == RUNS_RETIRED:
            runs: list[str] = []
            if not record.encoded or self._plain_state is not None:
                with contextlib.suppress(msgspec.MsgspecError):
                    runs = _retired_decoder.decode(state).runs
            if self.run is not None and self.run not in runs:
                return None
            return msgspec.structs.replace(change, status="retired", runs=runs, run_id=self.run)
        if self._flow is None:
            return change
        return self._call_change(change, record.type, data)

    def _call_change(self, change: Change, topic: str, data: AnyEvent) -> Change | None:
        """The flowgraph's changes: node events of the tenant's call graph only."""
        if data.key is None or (topic not in _NODE_EVENTS and topic not in CALL_EVENTS):
            return None
        if topic == NODE_ADDED and data.node_type != CALL:
            return None
        if topic in _NODE_EVENTS and change.subject != self._call_graph_id():
            return None
        status = None
        if data.changes is not None:  # a CallUpdated carrying what changed (issue 17)
            found = data.changes.get("status")
            status = found if isinstance(found, str) else None
        elif topic != NODE_DELETED:
            with contextlib.suppress(msgspec.MsgspecError):
                status = _status_decoder.decode(data.attributes).status
        return msgspec.structs.replace(change, call_id=data.key, status=status, run_id=self.run)

    def _call_graph_id(self) -> str | None:
        if self._call_graph is None:
            if self._flow is not None:
                sql = f'SELECT id FROM "{self._flow.tables["flow_graph"]}"'
            elif isinstance(self.projection, MetagraphProjection):
                sql = self.projection.sql.call_graph
            else:
                return None
            try:
                rows = self.datastore.query(sql)
            except ProgrammingError:  # no table yet: the projector never ran
                return None
            self._call_graph = str(rows[0]["id"]) if rows else None
        return self._call_graph
