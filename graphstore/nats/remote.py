"""Remote projections: tenants followed from JetStream into mirrors on this machine.

:class:`RemoteProjector` follows ``graphstore.<tenant>.events`` (stream
``GRAPHSTORE_EVENTS``, filled by the relay: :mod:`graphstore.nats.subjects`) for each
tenant and feeds a :class:`projections.mirror.Mirror` in its own data directory: the
metagraph tables and the flowgraph views, row for row those of the tenant file, which
this process never opens.

Per tenant, one asyncio task and one *ephemeral* pull consumer (``AckAll``, created
by start sequence): the durable position is the mirror's, not JetStream's. Each batch
fetched is applied in ONE transaction of the mirror file that also saves each
projection's position (the last ``Graphstore-Offset``) and the JetStream stream sequence
of its last message (consumer ``mirror-source:nats@<the stream's creation time>``); the
consumer is then acknowledged.
A restart creates a new consumer from the saved sequence + 1; an entry at or below the
saved offset (a redelivery, or a relay's retry) changes nothing. So a crash anywhere
applies each entry exactly once.

Trouble with the server (down, restarted, consumer gone) is reported (state
``backing-off``, the error, a warning log) and retried with exponential backoff from
50 ms to :data:`MAX_BACKOFF`; the consumer is created again from the mirror's position
when the connection comes back. An entry the projections cannot apply stops that tenant
(state ``failed``, :class:`projections.mirror.MirrorError`) and no other.

Why here and not in ``projections``: the subjects contract lives in ``graphstore.nats``
and data flows one way (``graphstore`` -> ``projections`` -> ``streams``), so the
transport is here and :mod:`projections.mirror` knows no transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from time import monotonic, sleep, time
from typing import Final, Literal

import msgspec
import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from graphstore.nats._connection import Link
from graphstore.nats._service import Service
from graphstore.nats.phases import UNIT_HOOK
from graphstore.nats.subjects import (
    EVENTS_STREAM,
    MSG_ID,
    OFFSET_HEADER,
    events_subject,
    tenant_of,
)
from projections.mirror import Mirror, MirrorError
from streams import Entry
from streams.directory import tenant_settings_of
from streams.reader import plain_state_of

__all__ = [
    "DEFAULT_BATCH",
    "MAX_BACKOFF",
    "SOURCE_NAME",
    "RemoteProjector",
    "RemoteState",
    "RemoteStatus",
    "entry_of",
    "source_name",
]

_logger = logging.getLogger("graphstore.nats.remote")
_logger.addHandler(logging.NullHandler())  # quiet unless the application configures logging
log = structlog.wrap_logger(_logger)

DEFAULT_BATCH: Final = 500
MAX_BACKOFF: Final = 5.0
"""Seconds: the longest wait before trying the server again."""
SOURCE_NAME: Final = "nats"
"""The mirror keeps the JetStream stream sequence as ``mirror-source:nats@<created>``
(the stream's creation time, ms: a stream created again starts a new cursor)."""
_IDLE_CHECK: Final = 2.0

RemoteState = Literal["starting", "following", "backing-off", "failed", "stopped"]


class RemoteStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's remote projection: ``position`` (tenant offset applied),
    ``sequence`` (JetStream stream sequence applied), ``pending`` (messages JetStream
    still holds for it, from the last batch), ``lag_seconds`` (now minus the envelope
    time of the last entry applied, while ``pending``; else 0), ``error`` (the last
    trouble while backing off or failed)."""

    tenant: str
    state: RemoteState
    position: int
    sequence: int | None
    pending: int
    applied: int
    lag_seconds: float
    error: str | None
    updated_at: float | None


def source_name(created: datetime | None) -> str:
    """``nats@<creation time of the stream, ms>``: the name of the mirror's cursor in one
    incarnation of ``GRAPHSTORE_EVENTS``. A stream deleted and created again numbers its
    messages from 1: its cursor starts unset (read from the start; entries at or below
    the mirror's offsets are passed over)."""
    if created is None:
        return SOURCE_NAME
    return f"{SOURCE_NAME}@{int(created.timestamp() * 1000)}"


def entry_of(msg: Msg) -> Entry:
    """The stream entry a relayed message carries (offset from ``Graphstore-Offset``,
    else from ``Nats-Msg-Id`` ``<tenant>:<offset>``)."""
    headers = msg.headers or {}
    raw = headers.get(OFFSET_HEADER)
    if raw is None and MSG_ID in headers:
        raw = headers[MSG_ID].rsplit(":", 1)[-1]
    if raw is None:
        raise ValueError(f"message {msg.subject} has no {OFFSET_HEADER} header")
    return Entry(int(raw), msg.data.decode())


@dataclass(eq=False)
class _Tenant:
    org_id: str
    mirror: Mirror
    state: RemoteState = "starting"
    sequence: int | None = None
    source: str = SOURCE_NAME
    pending: int = 0
    error: str | None = None
    backoff: float = 0.0
    task: asyncio.Task[None] | None = None


class RemoteProjector(Service):
    """Follows tenants from JetStream into mirrors in ``directory``. See the module
    docstring. ``tenants``: these org ids (None: every tenant with a subject in
    ``GRAPHSTORE_EVENTS``, looked up every ``discover_interval`` seconds).

    Run it with ``await projector.run()`` (until :meth:`stop`) or in a thread of its own
    with :meth:`start` / :meth:`stop`. :meth:`status` and :meth:`mirror` may be used
    from any thread. The mirrors undo the tenants' cipher and compressor the process
    environment names (``GRAPHSTORE_CIPHER_KEY`` / ``GRAPHSTORE_COMPRESSOR_TOPIC``,
    :mod:`streams.directory`), as the local projectors do.
    """

    def __init__(
        self,
        url: str,
        directory: str | os.PathLike[str],
        *,
        tenants: Iterable[str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        discover_interval: float = 2.0,
        synchronous: str = "NORMAL",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        super().__init__()
        self.url = url
        self.directory = Path(directory)
        self.fixed = None if tenants is None else sorted(set(tenants))
        for org_id in self.fixed or ():
            tenant_of(events_subject(org_id))  # one subject token, or ValueError
        self.batch_size = batch_size
        self.discover_interval = discover_interval
        self.synchronous = synchronous
        self._plain_state = plain_state_of(tenant_settings_of(os.environ))
        self._tenants: dict[str, _Tenant] = {}
        self._link = Link(url, log, max_backoff=MAX_BACKOFF)

    # --- reports ------------------------------------------------------------------------

    def status(self) -> list[RemoteStatus]:
        """Every tenant followed, sorted by org id."""
        result = []
        for tenant in sorted(list(self._tenants.values()), key=lambda t: t.org_id):
            mirror = tenant.mirror.status()
            lag = 0.0
            if tenant.pending and mirror.event_time is not None:
                lag = max(0.0, time() - mirror.event_time / 1000)
            result.append(
                RemoteStatus(
                    tenant=tenant.org_id,
                    state=tenant.state,
                    position=mirror.position,
                    sequence=tenant.sequence,
                    pending=tenant.pending,
                    applied=mirror.applied,
                    lag_seconds=lag,
                    error=tenant.error,
                    updated_at=mirror.updated_at,
                )
            )
        return result

    def mirror(self, org_id: str, *, timeout: float = 10.0) -> Mirror:
        """The mirror of a followed tenant, waiting up to ``timeout`` seconds for it to
        be opened (KeyError if it is not followed by then)."""
        deadline = monotonic() + timeout
        while org_id not in self._tenants and monotonic() < deadline:
            sleep(0.01)
        return self._tenants[org_id].mirror

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow until :meth:`stop` (or the task is cancelled); closes the mirrors."""
        stop = self.stopping()
        nc: Client | None = None
        try:
            nc = await self._link.open(stop)
            if nc is None:
                return
            js = nc.jetstream()
            while not stop.is_set():
                for org_id in await self._wanted(js):
                    if org_id not in self._tenants:
                        await self._add(org_id, js)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.discover_interval)
        finally:
            tasks = [t.task for t in self._tenants.values() if t.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for tenant in self._tenants.values():
                tenant.state = "stopped"
                await asyncio.to_thread(tenant.mirror.close)
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()

    @property
    def connection_error(self) -> str | None:
        """The last failed connection attempt's error, until connected."""
        return self._link.error

    @property
    def reconnects(self) -> int:
        """Times the connection to NATS was lost and made again (metrics)."""
        return self._link.reconnects

    async def _wanted(self, js: JetStreamContext) -> Sequence[str]:
        if self.fixed is not None:
            return self.fixed
        try:
            info = await js.stream_info(EVENTS_STREAM, subjects_filter=events_subject("*"))
        except Exception as exc:  # no stream yet, or the server away: look again later
            log.debug("tenants not listed", error=str(exc))
            return []
        return sorted({tenant_of(s) for s in (info.state.subjects or {})})

    async def _add(self, org_id: str, js: JetStreamContext) -> None:
        mirror = await asyncio.to_thread(
            Mirror.open,
            self.directory,
            org_id,
            synchronous=self.synchronous,
            plain_state=self._plain_state,
        )
        tenant = _Tenant(org_id, mirror)
        self._tenants[org_id] = tenant
        tenant.task = asyncio.create_task(self._follow(tenant, js), name=f"remote-{org_id}")

    async def _follow(self, tenant: _Tenant, js: JetStreamContext) -> None:
        assert self._stop is not None
        stop = self._stop
        while not stop.is_set():
            sub: JetStreamContext.PullSubscription | None = None
            try:
                sub = await self._subscribe(tenant, js)
                await self._pull(tenant, sub, stop)
            except asyncio.CancelledError:
                raise
            except MirrorError as exc:
                tenant.state, tenant.error = "failed", str(exc)
                log.error("remote projection failed", tenant=tenant.org_id, error=str(exc))
                return
            except Exception as exc:
                tenant.backoff = min(max(tenant.backoff * 2, 0.05), MAX_BACKOFF)
                tenant.state, tenant.error = "backing-off", f"{type(exc).__name__}: {exc}"
                log.warning(
                    "remote projection backing off",
                    tenant=tenant.org_id,
                    error=tenant.error,
                    retry_in=tenant.backoff,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tenant.backoff)
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()

    async def _subscribe(
        self, tenant: _Tenant, js: JetStreamContext
    ) -> JetStreamContext.PullSubscription:
        info = await js.stream_info(EVENTS_STREAM)
        tenant.source = source_name(info.created)
        sequence = await asyncio.to_thread(tenant.mirror.source_position, tenant.source)
        tenant.sequence = sequence
        config = ConsumerConfig(
            ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.ALL
            if sequence is None
            else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if sequence is None else sequence + 1,
            inactive_threshold=30.0,
            max_ack_pending=-1,
            mem_storage=True,
        )
        return await js.pull_subscribe(
            events_subject(tenant.org_id), durable=None, stream=EVENTS_STREAM, config=config
        )

    async def _pull(
        self, tenant: _Tenant, sub: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> None:
        reconnects = self._link.reconnects
        idle = 0.0
        while not stop.is_set():
            if self._link.reconnects != reconnects:  # the server may have lost the consumer
                raise ConnectionError("reconnected to nats: consumer created again")
            try:
                msgs = await sub.fetch(self.batch_size, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                self._link.check()
                tenant.pending = 0
                if tenant.state == "starting":
                    tenant.state, tenant.error, tenant.backoff = "following", None, 0.0
                idle += 0.5
                if idle >= _IDLE_CHECK:  # is the consumer still there?
                    idle = 0.0
                    await sub.consumer_info()
                continue
            idle = 0.0
            if not msgs:
                continue
            entries = [entry_of(m) for m in msgs]
            last = msgs[-1].metadata
            sequence = int(last.sequence.stream)
            unit = ""
            if UNIT_HOOK is not None:  # crash tests only (graphstore.nats.phases)
                unit = f"{tenant.org_id}:{entries[0].offset}-{entries[-1].offset}"
                UNIT_HOOK("started", unit)
            await asyncio.to_thread(tenant.mirror.apply, entries, source=(tenant.source, sequence))
            tenant.sequence = sequence
            tenant.pending = int(last.num_pending or 0)
            tenant.state, tenant.error, tenant.backoff = "following", None, 0.0
            with contextlib.suppress(Exception):  # AckAll: the last acknowledges the batch
                await msgs[-1].ack()
            if UNIT_HOOK is not None:
                UNIT_HOOK("acked", unit)
