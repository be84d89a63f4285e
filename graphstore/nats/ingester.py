"""The hub's ingester: call events from spokes, folded into each tenant's call graph.

:class:`Ingester` consumes ``graphstore.<tenant>.calls`` (stream ``GRAPHSTORE_CALLS``,
:mod:`graphstore.nats.subjects`) with one durable JetStream pull consumer per tenant
(``ingest-<tenant>``, explicit acknowledgement of each batch's last message, ``AckAll``;
created afresh from the saved position + 1 each time the ingester binds to it: start,
reconnection, failure) and folds each fetched batch (up to ``batch_size`` messages,
gathered for up to ``linger`` seconds once one has come) with :func:`domain.calls.ingest`
into the tenant's file, exactly once in effect:

- the batch's events and the consumer's position (the JetStream stream sequence of its
  last message, Honker consumer ``nats-ingest@v1`` of stream
  ``nats:GRAPHSTORE_CALLS@<the stream's creation time>`` in the tenant file) commit in
  ONE transaction, a compare-and-set on the position read (``UnitOfWork.save_position``);
- each message is acknowledged only after that transaction commits; a message at or
  below the saved position (redelivered after a crash between commit and
  acknowledgement, or after the server lost an acknowledgement) is acknowledged and
  changes nothing; call events are idempotent in the call ledger anyway (an event id
  already applied to a call changes nothing);
- a batch that fails for the file's sake (busy, full) or a lost race is tried again,
  the same messages, with backoff: the consumer never moves past a message that was not
  committed.

**Refused events.** An event the protocol or the call rules refuse (malformed, unknown
call, conflict, cycle) must not block the subject for ever, and must not vanish: the
batch is folded event by event, and each refused event is written to the tenant file's
dead-letter stream ``nats-ingest@v1.dead-letters`` (its stream sequence, the event's type
and the message as published, the error's class, code and message:
:class:`projections.call_fold.DeadLetter`, the record every way in writes) in the same
transaction that moves the position past it; then it is acknowledged. The fold is
:func:`projections.call_fold.fold_calls`, shared with the local intake. Read them with
:meth:`Ingester.dead_letters`; publish one again from a spoke once its cause is fixed.
A dead letter in the tenant file rather than a dead-letter subject: it commits
atomically with the position (a subject could not), it is kept with the tenant (moves
with it, is backed up with it), and it is where the local intake keeps its own
(:class:`projections.CallIntake`).

Trouble with the server is reported (state ``backing-off``, the error, a warning log)
and retried with exponential backoff up to :data:`MAX_BACKOFF`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any, Final, Literal

import msgspec
import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from domain import Metagraph, check_org_id
from domain.calls import DEFAULT_ABORT_POLICY, AbortPolicy, OperationTypes
from graphstore.nats._connection import Link
from graphstore.nats._service import Service
from graphstore.nats.phases import UNIT_HOOK
from graphstore.nats.spoke import ensure_calls_stream
from graphstore.nats.subjects import CALLS_STREAM, calls_subject
from graphstore.store import Store
from projections.call_fold import (
    DeadLetter,
    Delivery,
    dead_letter_stream,
    fold_calls,
    read_dead_letters,
)
from streams import Source, positions_table, saved_position
from streams.access import honker_recorder

__all__ = [
    "CONSUMER",
    "DEAD_LETTERS",
    "DEFAULT_BATCH",
    "DEFAULT_LINGER",
    "MAX_BACKOFF",
    "POSITION_STREAM",
    "Ingester",
    "IngesterState",
    "IngesterStatus",
    "durable_name",
    "fold_messages",
    "ingested_position",
    "latest_position",
    "position_stream",
]

_logger = logging.getLogger("graphstore.nats.ingester")
_logger.addHandler(logging.NullHandler())  # quiet unless the application configures logging
log = structlog.wrap_logger(_logger)

CONSUMER: Final = "nats-ingest@v1"
"""The Honker consumer name under which the ingester's position is kept in a tenant file."""
POSITION_STREAM: Final = f"nats:{CALLS_STREAM}"
"""The stream name of that position (JetStream stream sequences of ``GRAPHSTORE_CALLS``),
followed by ``@<the stream's creation time, ms>`` (:func:`position_stream`)."""
DEAD_LETTERS: Final = dead_letter_stream(CONSUMER)
MAX_BACKOFF: Final = 5.0
DEFAULT_BATCH: Final = 500
DEFAULT_LINGER: Final = 0.01
"""Seconds a batch waits for more messages once one has come (throughput over latency)."""

IngesterState = Literal["starting", "consuming", "backing-off", "stopped"]


def durable_name(tenant: str) -> str:
    """The durable JetStream consumer of a tenant's calls: ``ingest-<tenant>``."""
    return f"ingest-{tenant}"


class IngesterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's ingestion: ``position`` (last stream sequence folded), ``pending``
    (messages JetStream still holds for it, from the last batch), ``folded`` and
    ``refused`` (by this process), ``error`` (the last trouble while backing off)."""

    tenant: str
    state: IngesterState
    position: int
    pending: int
    folded: int
    refused: int
    error: str | None


def _sequence(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


def position_stream(created: datetime | None) -> str:
    """``nats:GRAPHSTORE_CALLS@<creation time, ms>``: the position's stream name in one
    incarnation of the calls stream. A stream deleted and created again numbers its
    messages from 1 again: its position starts unset (everything it holds is folded; the
    ledger's idempotence covers events folded before), never above its new messages."""
    if created is None:
        return POSITION_STREAM
    return f"{POSITION_STREAM}@{int(created.timestamp() * 1000)}"


def ingested_position(app: Metagraph, stream: str | None = None) -> int:
    """The last stream sequence folded into ``app`` under ``stream`` (a
    :func:`position_stream`; None: the newest incarnation's); 0 if none."""
    datastore = getattr(app.recorder, "datastore", None)
    if datastore is None:
        raise TypeError("the ingester needs a tenant on Honker persistence (streams.persistence)")
    return (
        latest_position(datastore)
        if stream is None
        else (saved_position(datastore, CONSUMER, stream) or 0)
    )


def latest_position(source: Source) -> int:
    """The ingester's position in the newest incarnation of the calls stream that a
    tenant file (``source``: a datastore or transaction) has seen; 0 if none."""
    rows = source.query(
        f'SELECT topic, "offset" FROM {positions_table()} WHERE name = ? AND '
        "(topic = ? OR topic LIKE ?)",
        [CONSUMER, POSITION_STREAM, f"{POSITION_STREAM}@%"],
    )
    if not rows:
        return 0

    def created(row: dict[str, Any]) -> int:
        suffix = str(row["topic"]).rpartition("@")[2]
        return int(suffix) if suffix.isdigit() else 0

    return int(max(rows, key=created)["offset"])


def fold_messages(
    app: Metagraph,
    messages: Sequence[tuple[int, bytes]],
    *,
    stream: str = POSITION_STREAM,
    operation_types: OperationTypes | None = None,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
) -> tuple[int, int, int]:
    """Fold ``(stream sequence, payload)`` pairs (stream order) into ``app``'s call
    graph with the position, exactly once, with
    :func:`projections.call_fold.fold_calls`; returns (position, folded, refused).

    Pairs at or below the saved position are passed over. Raises database errors and
    :class:`~domain.errors.ConcurrencyError` (nothing committed: try the same pairs
    again).
    """
    datastore = getattr(app.recorder, "datastore", None)
    if datastore is None:
        raise TypeError("the ingester needs a tenant on Honker persistence (streams.persistence)")
    done = fold_calls(
        app,
        [Delivery.of_json(seq, data) for seq, data in messages],
        consumer=CONSUMER,
        stream=stream,
        saved=saved_position(datastore, CONSUMER, stream),
        operation_types=operation_types,
        abort_policy=abort_policy,
    )
    return done.position, done.folded, done.refused


@dataclass(eq=False)
class _Tenant:
    org_id: str
    app: Metagraph
    state: IngesterState = "starting"
    position: int = 0
    pending: int = 0
    folded: int = 0
    refused: int = 0
    error: str | None = None
    backoff: float = 0.0
    stream: str = POSITION_STREAM
    task: asyncio.Task[None] | None = None


class Ingester(Service):
    """Folds spokes' call events from JetStream into the tenants of ``data`` (a data
    directory path, or an open :class:`~graphstore.store.Store`, which stays open). See
    the module docstring. ``tenants``: these org ids (None: every registered tenant,
    looked up every ``discover_interval`` seconds).

    Run it with ``await ingester.run()`` or in a thread of its own with :meth:`start` /
    :meth:`stop`; :meth:`status` may be read from any thread.
    """

    thread_name = "nats-ingester"

    def __init__(
        self,
        url: str,
        data: Store | str | os.PathLike[str],
        *,
        tenants: Iterable[str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        operation_types: OperationTypes | None = None,
        abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
        discover_interval: float = 2.0,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if linger < 0:
            raise ValueError(f"linger={linger} must not be negative")
        self.url = url
        self.linger = linger
        self.fixed = None if tenants is None else sorted({check_org_id(t) for t in tenants})
        self._own_store = not isinstance(data, Store)
        self.store = data if isinstance(data, Store) else Store(data)
        self.batch_size = batch_size
        self.operation_types = operation_types
        self.abort_policy: AbortPolicy = abort_policy
        self.discover_interval = discover_interval
        self._tenants: dict[str, _Tenant] = {}
        super().__init__()
        self._link = Link(url, log, max_backoff=MAX_BACKOFF)
        """While the first connection is not made: why (None once connected)."""

    # --- reports ------------------------------------------------------------------------

    def status(self) -> list[IngesterStatus]:
        """Every tenant consumed, sorted by org id."""
        return [
            IngesterStatus(
                tenant=t.org_id,
                state=t.state,
                position=t.position,
                pending=t.pending,
                folded=t.folded,
                refused=t.refused,
                error=t.error,
            )
            for t in sorted(list(self._tenants.values()), key=lambda t: t.org_id)
        ]

    def dead_letters(self, org_id: str) -> list[DeadLetter]:
        """The refused call events of a tenant, in the order they were refused."""
        datastore = honker_recorder(self.store.tenant(org_id).recorder).datastore
        return read_dead_letters(datastore, CONSUMER)

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop` (or the task is cancelled)."""
        stop = self.stopping()
        nc: Client | None = None
        try:
            nc = await self._link.open(stop)
            if nc is None:
                return
            js = nc.jetstream()
            while not stop.is_set():
                for org_id in await asyncio.to_thread(self._wanted):
                    if org_id not in self._tenants:
                        app = await asyncio.to_thread(self.store.tenant, org_id)
                        tenant = _Tenant(org_id, app)
                        self._tenants[org_id] = tenant
                        tenant.task = asyncio.create_task(
                            self._consume(tenant, js), name=f"ingest-{org_id}"
                        )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.discover_interval)
        finally:
            tasks = [t.task for t in self._tenants.values() if t.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for tenant in self._tenants.values():
                tenant.state = "stopped"
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if self._own_store:
                await asyncio.to_thread(self.store.close)

    def _wanted(self) -> list[str]:
        return self.fixed if self.fixed is not None else self.store.tenants()

    @property
    def connection_error(self) -> str | None:
        """The last failed connection attempt's error, until connected."""
        return self._link.error

    @property
    def reconnects(self) -> int:
        """Times the connection to NATS was lost and made again (metrics)."""
        return self._link.reconnects

    async def _consume(self, tenant: _Tenant, js: JetStreamContext) -> None:
        assert self._stop is not None
        stop = self._stop
        while not stop.is_set():
            sub: JetStreamContext.PullSubscription | None = None
            ahead: asyncio.Task[list[Msg] | None] | None = None
            try:
                await ensure_calls_stream(js)
                sub = await self._bind(tenant, js)
                reconnects = self._link.reconnects
                while not stop.is_set():
                    if self._link.reconnects != reconnects:
                        raise ConnectionError("reconnected to nats: consumer bound again")
                    batch = await (ahead if ahead is not None else self._fetch(sub))
                    ahead = None
                    if batch is None:  # nothing came
                        self._link.check()
                        tenant.pending = 0
                        tenant.state, tenant.error, tenant.backoff = "consuming", None, 0.0
                        continue
                    # The next batch is fetched while this one folds (in its thread): the
                    # fetch's round trip and decoding overlap the fold. Nothing of it is
                    # acknowledged before its own fold commits; if this fold fails, the
                    # fetch is cancelled and the consumer made again from the position.
                    ahead = asyncio.create_task(self._fetch(sub))
                    unit = ""
                    if UNIT_HOOK is not None:  # crash tests only (graphstore.nats.phases)
                        unit = f"{tenant.org_id}:{_sequence(batch[0])}-{_sequence(batch[-1])}"
                        UNIT_HOOK("started", unit)
                    await self._fold(tenant, batch)
                    with contextlib.suppress(Exception):  # AckAll: up to the batch's last
                        await batch[-1].ack()
                    if UNIT_HOOK is not None:
                        UNIT_HOOK("acked", unit)
                    tenant.pending = int(batch[-1].metadata.num_pending or 0)
                    tenant.state, tenant.error, tenant.backoff = "consuming", None, 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tenant.backoff = min(max(tenant.backoff * 2, 0.05), MAX_BACKOFF)
                tenant.state, tenant.error = "backing-off", f"{type(exc).__name__}: {exc}"
                log.warning(
                    "ingester backing off",
                    tenant=tenant.org_id,
                    error=tenant.error,
                    retry_in=tenant.backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tenant.backoff)
            finally:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(BaseException):
                        await ahead
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    async def _fetch(self, sub: JetStreamContext.PullSubscription) -> list[Msg] | None:
        """The next batch (None if nothing came within half a second). Once a message
        is there, more are gathered for up to ``linger`` seconds (or until the batch is
        full): events arriving one by one are folded many to a transaction."""
        try:
            found = await sub.fetch(self.batch_size, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        if not found:
            return None
        deadline = monotonic() + self.linger
        while len(found) < self.batch_size:
            left = deadline - monotonic()
            if left <= 0.0005:
                break
            try:
                found += await sub.fetch(self.batch_size - len(found), timeout=left)
            except (TimeoutError, nats.errors.TimeoutError):
                break
        return found

    async def _bind(
        self, tenant: _Tenant, js: JetStreamContext
    ) -> JetStreamContext.PullSubscription:
        """(Re)create the tenant's durable consumer from the saved position + 1, then
        bind to it. Created afresh each time: deliveries to a previous process (killed
        with a pull request pending) or lost in a disconnection would otherwise come back
        only after the ack wait, behind later messages, and the position would already be
        past them. The position in the tenant file is the truth; the consumer's ack floor
        follows it."""
        info = await js.stream_info(CALLS_STREAM)
        tenant.stream = position_stream(info.created)
        saved = await asyncio.to_thread(ingested_position, tenant.app, tenant.stream)
        durable = durable_name(tenant.org_id)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(CALLS_STREAM, durable)
        await js.add_consumer(
            CALLS_STREAM,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=calls_subject(tenant.org_id),
                ack_policy=AckPolicy.ALL,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if saved else DeliverPolicy.ALL,
                opt_start_seq=saved + 1 if saved else None,
                ack_wait=30.0,
                max_ack_pending=20_000,
            ),
        )
        tenant.position = saved
        return await js.pull_subscribe_bind(durable=durable, stream=CALLS_STREAM)

    async def _fold(self, tenant: _Tenant, msgs: Sequence[Msg]) -> None:
        pairs = sorted(((_sequence(m), m.data) for m in msgs), key=lambda p: p[0])
        result = await asyncio.to_thread(
            fold_messages,
            tenant.app,
            pairs,
            stream=tenant.stream,
            operation_types=self.operation_types,
            abort_policy=self.abort_policy,
        )
        tenant.position, folded, refused = result
        tenant.folded += folded
        tenant.refused += refused
