"""The relay: every tenant's stream, entry by entry, into JetStream (docs/scale.md).

:class:`Relay` follows the tenant stream (the metagraph application's stream) of every
registered tenant of a data directory and publishes each entry on
``graphstore.<tenant>.events`` (:mod:`graphstore.nats.subjects`), the envelope unchanged.

Exactly once into JetStream, in order:

* Each message carries ``Nats-Msg-Id`` = ``<tenant>:<offset>``, ``Graphstore-Offset``,
  and two expectations JetStream checks before storing it:
  ``Nats-Expected-Last-Subject-Sequence`` = the stream sequence of the tenant's previous
  entry, and ``Nats-Expected-Last-Sequence`` = the stream's sequence just before it.
  The relay publishes every tenant through one pipeline and knows the stream's last
  sequence, so it predicts each message's sequence; a message is stored only if every
  message before it in the pipeline was stored exactly where predicted, and then its
  subject's last message is the tenant's previous entry. So nothing enters after a
  message that failed (no gap), and an entry already in the subject is refused (no
  duplicate, even beyond the duplicate window). Another writer on the stream makes the
  predictions fail: safe (refused, re-read), only slower.
* The relay's position (a durable Honker consumer, :data:`DEFAULT_CONSUMER`, in the
  tenant file, saved with :func:`streams.save_position`) is saved only after
  JetStream's acknowledgement. On (re)start and after any failure the relay reads the
  subject's last message: its ``Graphstore-Offset`` is where the relay resumes (a crash
  between acknowledgement and save loses nothing: the position is moved up to it). An
  empty subject resumes at the saved position (JetStream's limits removed the
  messages); a subject behind the saved position (JetStream lost its tail) is filled
  again from its last message.

Waking: a tenant with events younger than ``idle_after`` seconds keeps its file open
and is woken by Honker's commit watcher (about a millisecond); the others are closed
and their file signatures (``stat`` of the file and WAL) compared every
``poll_interval`` seconds. New tenants are picked up from the registry. A NATS server
that is down: bounded exponential back-off, reported in :meth:`Relay.status` and the log,
and the relay catches up when it is back.

:func:`relay_status` reads every tenant's saved position against its stream's head,
without a running relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
import nats
import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError

from graphstore.nats._connection import log_connection_error
from graphstore.nats._relay_jetstream import (
    EXPECTED_LAST_SEQUENCE,
    EXPECTED_LAST_SUBJECT_SEQUENCE,
    Ack,
    Publisher,
    Relayed,
    RelayStreamError,
    events_stream_config,
)
from graphstore.nats.errors import GraphstoreNatsError
from graphstore.nats.phases import UNIT_HOOK
from graphstore.nats.subjects import (
    MSG_ID,
    OFFSET_HEADER,
    PREVIOUS_HEADER,
    SYSTEM_KEY,
    SYSTEM_SUBJECT,
    events_subject,
    message_id,
)
from projections.metagraph import MetagraphProjection
from projections.runner import Signature, file_signature
from streams import (
    Head,
    TenantReader,
    count_between,
    read_after,
    read_at,
    save_position,
    saved_position,
    stream_head,
    time_at,
)
from streams import envelope as envelopes
from streams.directory import Directory
from streams.reading import Entry
from streams.retirement import (
    RETIREMENT_TYPE,
    EncryptedRecordError,
    PlainState,
    ranges_of,
    retired_ranges,
)
from streams.transaction import Source

__all__ = [
    "DEFAULT_CONSUMER",
    "Relay",
    "RelayError",
    "RelayStatus",
    "RelayStreamError",
    "TenantRelayStatus",
    "events_stream_config",
    "relay_status",
    "subject_offsets",
]

log = structlog.wrap_logger(logging.getLogger(__name__))

SYSTEM_STREAM: Final = "identity"
"""``system.db``'s stream (the identity application's)."""
DEFAULT_CONSUMER: Final = "relay@v1"
"""The relay's consumer name in every tenant file (its saved position)."""
MAX_BACKOFF: Final = 5.0
"""Seconds: the longest wait before trying the NATS server again."""
Ranges = tuple[tuple[int, int], ...]
"""Inclusive offset ranges (a retirement record's)."""
ACK_TIMEOUT: Final = 5.0
"""Seconds to wait for a batch's acknowledgements before giving the connection up."""


class RelayError(GraphstoreNatsError):
    """A relay was given bad input (URL, batch size, consumer name)."""


class _ResyncError(GraphstoreNatsError):
    """JetStream refused or mis-sequenced a message: re-read what it holds, go on."""


@dataclass(frozen=True, slots=True)
class TenantRelayStatus:
    """How far one tenant's stream is relayed: ``position`` is the last offset known to
    be in JetStream (the saved position when no relay runs), ``lag_events`` the entries
    after it, ``lag_seconds`` the head's envelope time minus the position's."""

    tenant: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    published: int = 0
    jetstream: int | None = None
    error: str | None = None
    """Why the relay refuses this tenant (its subject holds entries the file does not:
    a restore to a point, see docs/backup.md); None when it relays."""


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """A running relay's state: connected or not (and why), and each tenant's lag."""

    nats: str
    connected: bool
    error: str | None
    down_since: float | None
    tenants: tuple[TenantRelayStatus, ...]


@dataclass(eq=False)
class _Tenant:
    org_id: str
    subject: str
    reader: TenantReader | None = None
    synced: bool = False  # cursor/subject_seq read from JetStream on this connection
    cursor: int = 0  # the last offset in JetStream
    subject_seq: int = 0  # its stream sequence
    saved: int | None = None  # the saved position
    published: int = 0
    dirty: bool = True
    hot: bool = False
    seen: Signature | None = None
    newest: float = 0.0  # wall time of the newest entry seen (s)
    diverged: str | None = None  # the subject holds what the file does not: refused
    refused: str | None = None  # the last refusal logged (each is logged once, not per wake)
    stream: str = "metagraph"  # the file's stream relayed (system.db: "identity")
    retiring: int | None = None  # a relayed retirement record whose deletions are not done
    status: TenantRelayStatus | None = None
    wake: Callable[[], None] = field(default=lambda: None, repr=False)


class Relay:
    """Relays every tenant of ``data`` to the JetStream server(s) at ``nats_url``.

    ``tenants`` replaces the registry (a callable returning org ids, called each
    ``registry_interval`` seconds). ``settings`` are extra persistence settings for the
    tenant files. Run it with :meth:`run` (a coroutine, until :meth:`stop`) or
    :meth:`start` (a thread of its own) and :meth:`close`.
    """

    def __init__(
        self,
        data: Directory,
        nats_url: str | Sequence[str],
        *,
        consumer: str = DEFAULT_CONSUMER,
        tenants: Callable[[], Iterable[str]] | None = None,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        idle_after: float = 60.0,
        registry_interval: float = 5.0,
        max_backoff: float = MAX_BACKOFF,
        ack_timeout: float = ACK_TIMEOUT,
        identity: bool = False,
    ) -> None:
        servers = [nats_url] if isinstance(nats_url, str) else list(nats_url)
        if not servers or not all(
            isinstance(s, str) and s.startswith(("nats://", "tls://", "ws://", "wss://"))
            for s in servers
        ):
            raise RelayError(f"{nats_url!r}: give NATS server URLs like nats://127.0.0.1:4222")
        if batch_size < 1:
            raise RelayError(f"batch_size must be at least 1, got {batch_size}")
        if not consumer or any(c.isspace() for c in consumer):
            raise RelayError(f"consumer {consumer!r}: give a name without spaces, e.g. relay@v1")
        self.data = data
        self.servers = servers
        self.consumer = consumer
        self.stream = MetagraphProjection().upstream
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.idle_after = idle_after
        self.registry_interval = registry_interval
        self.max_backoff = max_backoff
        self.ack_timeout = ack_timeout
        self.identity = identity
        """Also relay ``system.db``'s identity stream (:data:`SYSTEM_SUBJECT`)."""
        self._tenant_source = tenants
        self._registry: Callable[[], Iterable[str]] | None = None
        self._registry_read = float("-inf")
        self._system_seen: Signature | None = None
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()  # guards the status fields read by other threads
        self._progress = threading.Condition(self._lock)
        self._connected = False
        self._error: str | None = None
        self._down_since: float | None = None
        self.connections = 0
        """Connections made to NATS so far (more than one: reconnections; metrics)."""
        self._stream_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # --- running --------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until :meth:`stop`: connect, relay, and on trouble back off and again."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        if self._stopping:
            return
        backoff = 0.0
        try:
            while not self._stopping:
                publishers: list[Publisher] = []  # this connection's (for its callback)
                try:
                    nc = await nats.connect(
                        servers=self.servers,
                        allow_reconnect=False,
                        connect_timeout=2,
                        # nats-py retries a refused connect forever (every 2 s, silently)
                        # with max_reconnect_attempts=0: give up after a second immediate
                        # try, so each failure reaches _down (logged, with back-off).
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0,
                        name="graphstore-relay",
                        error_cb=log_connection_error,
                        disconnected_cb=functools.partial(_disconnected, publishers),
                    )
                except (OSError, NatsError, TimeoutError) as exc:
                    backoff = await self._down(f"cannot connect: {_describe(exc)}", backoff)
                    continue
                try:
                    await self._serve(nc, publishers)
                    backoff = 0.0
                except _ResyncError as exc:
                    log.info("relay resynchronises with JetStream", reason=str(exc))
                    backoff = await self._down(str(exc), backoff, connected=True)
                except (OSError, NatsError, TimeoutError) as exc:
                    backoff = await self._down(f"lost the server: {_describe(exc)}", backoff)
                finally:
                    for tenant in self._tenants.values():
                        tenant.synced = False
                    if not nc.is_closed:
                        try:
                            await nc.close()
                        except Exception as exc:  # closing a broken connection
                            log.debug("closing the connection failed", error=str(exc))
        finally:
            for tenant in list(self._tenants.values()):
                self._close_tenant(tenant)
            with self._lock:
                self._connected = False
                self._progress.notify_all()

    def stop(self) -> None:
        """Ask :meth:`run` to return (from any thread); it finishes the batch in hand."""
        self._stopping = True
        self._poke()

    def start(self) -> Relay:
        """Run in a thread of its own; :meth:`close` stops it."""
        if self._thread is not None:
            raise RuntimeError("the relay is already started")

        def main() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:
                self._failure = exc
                log.exception("relay failed")
                with self._lock:
                    self._progress.notify_all()

        self._thread = threading.Thread(target=main, name="graphstore-relay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the relay's thread and wait for it."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- status ---------------------------------------------------------------------

    def status(self) -> RelayStatus:
        """The connection and every followed tenant's lag (from any thread)."""
        with self._lock:
            tenants = tuple(
                t.status or TenantRelayStatus(t.org_id, t.cursor, t.cursor, 0, 0.0, t.published)
                for t in sorted(self._tenants.values(), key=lambda t: t.org_id)
            )
            return RelayStatus(
                ", ".join(self.servers), self._connected, self._error, self._down_since, tenants
            )

    def wait_for(self, org_id: str, offset: int, *, timeout: float = 10.0) -> None:
        """Block until ``org_id``'s entries up to ``offset`` are acknowledged by JetStream;
        TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while True:
                if self._failure is not None:
                    raise RuntimeError(f"the relay failed: {self._failure!r}")
                tenant = self._tenants.get(org_id)
                if tenant is not None and tenant.synced and tenant.cursor >= offset:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._progress.wait(min(remaining, 0.1))
        # status() takes the lock itself: asked for once it is released
        raise TimeoutError(
            f"{org_id!r} was not relayed up to {offset} in {timeout}s: {self.status()}"
        )

    # --- the connection -------------------------------------------------------------

    async def _down(self, error: str, backoff: float, *, connected: bool = False) -> float:
        """Report trouble, wait the back-off (a stop cuts it short); the next back-off."""
        with self._lock:
            self._connected = connected
            self._error = error
            if not connected and self._down_since is None:
                self._down_since = time.time()
        wait = min(max(backoff * 2, 0.05), self.max_backoff)
        log.warning("relay waits for JetStream", error=error, retry_in_s=round(wait, 3))
        assert self._stopped is not None
        await self._sleep(wait, self._stopped)
        return wait

    async def _serve(self, nc: Client, publishers: list[Publisher]) -> None:
        publisher = Publisher(nc)
        publishers.append(publisher)
        self._stream_seq = await publisher.open(identity=self.identity)
        with self._lock:
            self._connected, self._error, self._down_since = True, None, None
            self.connections += 1
        log.info("relay connected", nats=nc.connected_url.netloc if nc.connected_url else "")
        for tenant in self._tenants.values():
            tenant.synced, tenant.dirty = False, True
        assert self._wake is not None
        last_sweep = time.monotonic()
        while not self._stopping:
            self._refresh_tenants()
            for tenant in list(self._tenants.values()):
                if tenant.dirty and not self._stopping:
                    tenant.dirty = False
                    await self._relay(publisher, tenant)
            if nc.is_closed:
                raise ConnectionError("the connection closed")
            if any(t.dirty for t in self._tenants.values()):
                continue
            now = time.monotonic()
            if now - last_sweep >= self.poll_interval:
                self._sweep()
                last_sweep = now
                continue
            self._wake.clear()
            if any(t.dirty for t in self._tenants.values()):
                continue
            await self._sleep(self.poll_interval - (now - last_sweep), self._wake)

    async def _sleep(self, seconds: float, event: asyncio.Event) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))

    def _poke(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for event in (self._wake, self._stopped):
            if event is not None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # the loop closed meanwhile
                    return

    # --- tenants --------------------------------------------------------------------

    def _registered(self) -> Iterable[str]:
        if self._registry is None:
            tenants = getattr(self.data, "tenants", None)
            if not callable(tenants):
                raise RelayError(
                    f"{self.data!r} has no tenant registry: give a DataDirectory, or tenants="
                )
            self._registry = tenants
        return self._registry()

    def _refresh_tenants(self) -> None:
        if self._tenant_source is None:
            signature = file_signature(self.data.system_path)
            due = time.monotonic() - self._registry_read >= self.registry_interval
            if not due and signature == self._system_seen:
                return
            self._system_seen = signature
            source: Callable[[], Iterable[str]] = self._registered
        else:
            if time.monotonic() - self._registry_read < self.registry_interval:
                return
            source = self._tenant_source
        self._registry_read = time.monotonic()
        org_ids = set(source())
        if self.identity:
            org_ids.add(SYSTEM_KEY)
        for org_id in sorted(org_ids - set(self._tenants)):
            subject = SYSTEM_SUBJECT if org_id == SYSTEM_KEY else events_subject(org_id)
            tenant = _Tenant(org_id, subject, stream=_stream_of(org_id, self.stream))
            tenant.wake = self._waker(tenant)
            with self._lock:
                self._tenants[org_id] = tenant
            log.info("relay follows a tenant", tenant=org_id)
        for org_id in set(self._tenants) - org_ids:
            with self._lock:
                tenant = self._tenants.pop(org_id)
            self._close_tenant(tenant)

    def _waker(self, tenant: _Tenant) -> Callable[[], None]:
        def wake() -> None:  # from Honker's watcher thread
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._mark, tenant)

        return wake

    def _mark(self, tenant: _Tenant) -> None:
        tenant.dirty = True
        if self._wake is not None:
            self._wake.set()

    def _sweep(self) -> None:
        """The slow poll: hot tenants are checked, closed ones whose files changed."""
        for tenant in self._tenants.values():
            if tenant.reader is not None or tenant.seen is None:
                tenant.dirty = True
            else:
                path = self._path(tenant)
                tenant.dirty = tenant.dirty or file_signature(path) != tenant.seen

    def _path(self, tenant: _Tenant) -> Path:
        if tenant.org_id == SYSTEM_KEY:
            return self.data.system_path
        return self.data.tenant_path(tenant.org_id)

    def _open(self, tenant: _Tenant) -> TenantReader:
        if tenant.reader is None:
            if tenant.org_id == SYSTEM_KEY:
                env = self.data.system_env()
            else:
                env = self.data.tenant_env(tenant.org_id)
            tenant.reader = TenantReader(env, tenant.stream)
        return tenant.reader

    def _close_tenant(self, tenant: _Tenant) -> None:
        reader, tenant.reader = tenant.reader, None
        if reader is None:
            return
        if tenant.hot:
            reader.watcher.discard(tenant.wake)
            tenant.hot = False
        reader.close()

    # --- relaying one tenant --------------------------------------------------------

    async def _relay(self, publisher: Publisher, tenant: _Tenant) -> None:
        """Publish the tenant's entries after its cursor, batch by batch, to its head."""
        seen = file_signature(self._path(tenant))  # before reading
        datastore = self._open(tenant).datastore
        stream = tenant.stream
        if not tenant.synced or tenant.diverged:
            await self._sync(publisher, tenant)
        while not self._stopping and tenant.diverged is None:
            entries = read_after(datastore, stream, tenant.cursor, limit=self.batch_size)
            if not entries:
                break
            records = self._records(tenant, entries)
            if records is None:
                break
            unit = ""
            if UNIT_HOOK is not None:  # crash tests only (graphstore.nats.phases)
                unit = f"{tenant.org_id}:{entries[0].offset}-{entries[-1].offset}"
                UNIT_HOOK("started", unit)
            sent: list[tuple[int, int, asyncio.Future[Ack]]] = []
            subject_seq = tenant.subject_seq
            previous = tenant.cursor
            try:
                for entry in entries:
                    headers = {
                        MSG_ID: message_id(tenant.org_id, entry.offset),
                        OFFSET_HEADER: str(entry.offset),
                        PREVIOUS_HEADER: str(previous),
                        EXPECTED_LAST_SEQUENCE: str(self._stream_seq),
                        EXPECTED_LAST_SUBJECT_SEQUENCE: str(subject_seq),
                    }
                    future = await publisher.publish(
                        tenant.subject, entry.payload.encode(), headers
                    )
                    self._stream_seq = subject_seq = self._stream_seq + 1
                    sent.append((entry.offset, subject_seq, future))
                    previous = entry.offset
                await self._acknowledged(tenant, sent)
            finally:
                publisher.forget()
                relayed = [offset for offset, _ in records if offset <= tenant.cursor]
                if relayed and tenant.retiring is None:
                    tenant.retiring = relayed[0]  # the position stays before it until done
                self._save(tenant)
            if records:
                await self._retire(publisher, tenant, records)
            if UNIT_HOOK is not None:
                UNIT_HOOK("acked", unit)
            if len(entries) < self.batch_size:
                break
        self._after(tenant, seen)

    async def _acknowledged(
        self, tenant: _Tenant, sent: list[tuple[int, int, asyncio.Future[Ack]]]
    ) -> None:
        """Await the acknowledgements in order, moving the cursor over each one.

        JetStream answers one connection's publishes to a stream in order, so the batch's
        last answer is awaited first (one wait per batch), then each is checked."""
        deadline = time.monotonic() + self.ack_timeout
        if sent:
            await asyncio.wait([sent[-1][2]], timeout=self.ack_timeout)
        for offset, expected, future in sent:
            if not future.done():
                await asyncio.wait([future], timeout=max(deadline - time.monotonic(), 0.001))
                if not future.done():
                    raise TimeoutError(
                        f"no acknowledgement within {self.ack_timeout}s for {tenant.subject}"
                    )
            ack = future.result()
            if ack.error is not None:
                raise _ResyncError(
                    f"JetStream refused {message_id(tenant.org_id, offset)}: {ack.error}"
                )
            if ack.duplicate or ack.seq != expected:
                # Stored once already (duplicate), or at another sequence than predicted
                # (another writer on the stream): it is in the subject; later ones are not.
                tenant.cursor, tenant.subject_seq = offset, ack.seq
                raise _ResyncError(
                    f"{message_id(tenant.org_id, offset)} stored at {ack.seq}, "
                    f"expected {expected}{' (duplicate)' if ack.duplicate else ''}"
                )
            tenant.cursor, tenant.subject_seq = offset, ack.seq
            tenant.published += 1

    async def _sync(self, publisher: Publisher, tenant: _Tenant) -> None:
        """Read where the tenant's subject is; reconcile the saved position with it."""
        datastore = self._open(tenant).datastore
        self._stream_seq = await publisher.last_sequence()
        saved = saved_position(datastore, self.consumer, tenant.stream)
        last: Relayed | None = await publisher.last_relayed(tenant.org_id)
        tenant.saved = saved
        tenant.diverged = None
        tenant.retiring = None
        if last is None:
            tenant.cursor, tenant.subject_seq = saved or 0, 0
        elif not _holds(datastore, tenant.stream, last) and not self._retired(tenant, last.offset):
            self._refuse(
                tenant,
                f"{tenant.subject} ends with offset {last.offset} (sequence {last.seq}), which "
                "this tenant file does not hold as relayed (it was restored to an earlier "
                "point, or lost its last commits): refusing to relay it, so that nothing is "
                "duplicated or lost. See docs/backup.md, 'After a restore to a point'.",
            )
            tenant.cursor, tenant.subject_seq = saved or 0, last.seq
            tenant.synced = True
            self._report(tenant)
            return
        else:
            tenant.cursor, tenant.subject_seq = last.offset, last.seq
            if last.offset > (saved or 0):
                await self._retire_relayed(publisher, tenant, saved or 0, last.offset)
            if saved is not None and last.offset < saved:
                log.warning(
                    "JetStream holds less than was relayed: relaying again from its last",
                    tenant=tenant.org_id,
                    subject_offset=last.offset,
                    saved=saved,
                )
        tenant.synced = True
        self._save(tenant)

    async def _retire(
        self, publisher: Publisher, tenant: _Tenant, records: list[tuple[int, Ranges]]
    ) -> None:
        """Delete from JetStream what the relayed retirement records of a batch removed
        from the file, then let the position pass them.

        Exactly once: a record is published first, its deletions follow, and the saved
        position moves past the record only when they are done. A crash in between leaves
        the position before the record while the subject holds it: on the next start
        :meth:`_sync` finds the record between the two and deletes again (deleting what
        is gone already deletes nothing)."""
        for offset, ranges in records:
            if offset > tenant.cursor:
                break
            deleted = await publisher.delete_offsets(tenant.org_id, ranges)
            log.info(
                "relay deleted retired entries from JetStream",
                tenant=tenant.org_id,
                record=offset,
                ranges=[list(r) for r in ranges],
                deleted=deleted,
            )
        tenant.retiring = None
        self._save(tenant)

    async def _retire_relayed(
        self, publisher: Publisher, tenant: _Tenant, after: int, upto: int
    ) -> None:
        """Redo the deletions of the retirement records relayed after the saved position
        ``after`` up to the subject's last offset ``upto`` (a crash before their
        deletions were done and the position saved)."""
        datastore = self._open(tenant).datastore
        tenant.retiring = None
        while after < upto:
            entries = read_after(datastore, tenant.stream, after, limit=self.batch_size)
            entries = [e for e in entries if e.offset <= upto]
            if not entries:
                break
            records = self._records(tenant, entries)
            if records is None:  # refused: the position stays before this batch
                tenant.retiring = entries[0].offset
                return
            if records:
                tenant.retiring = records[0][0]
                await self._retire(publisher, tenant, records)
            after = entries[-1].offset

    def _retired(self, tenant: _Tenant, offset: int) -> bool:
        """Whether a retirement record of the file removed ``offset``: the subject's last
        message was retired after it was relayed (the record, not relayed yet, deletes
        its copy when it is), which is no divergence. A full read of the records: only
        when the file does not hold the subject's last message."""
        reader = self._open(tenant)
        try:
            ranges = retired_ranges(reader.datastore, tenant.stream, reader.plain_state)
        except EncryptedRecordError:
            return False  # refused as diverged; the record itself is refused when relayed
        return any(first <= offset <= last for first, last in ranges)

    def _records(
        self, tenant: _Tenant, entries: Sequence[Entry]
    ) -> list[tuple[int, Ranges]] | None:
        """The retirement records among ``entries``, read with the tenant's cipher; None
        when one is encrypted and the relay has no key: it then refuses the tenant before
        publishing the record (whose deletions it could not do), and says why."""
        try:
            return _retirements(entries, self._open(tenant).plain_state)
        except EncryptedRecordError as exc:
            self._refuse(
                tenant,
                f"{exc}. The relay stops before it, so that JetStream never holds a "
                "retirement record whose deletions were not done; restart it with the key",
            )
            self._report(tenant)
            return None

    @staticmethod
    def _refuse(tenant: _Tenant, reason: str) -> None:
        """Refuse ``tenant`` for ``reason`` (its status says why). Logged once per reason:
        every wake of a refused tenant meets the same cause again."""
        tenant.diverged = reason
        if tenant.refused != reason:
            tenant.refused = reason
            log.error("relay refuses a tenant", tenant=tenant.org_id, reason=reason)

    def _save(self, tenant: _Tenant) -> None:
        """Save the cursor as the position when it advances it (after the acks), but not
        past a relayed retirement record whose deletions are not done."""
        position = tenant.cursor
        if tenant.retiring is not None:
            position = min(position, tenant.retiring - 1)
        if tenant.synced and position > (tenant.saved or 0) and tenant.reader is not None:
            datastore = tenant.reader.datastore
            with datastore.transaction() as tx:
                if (saved_position(tx, self.consumer, tenant.stream) or 0) < position:
                    save_position(tx, self.consumer, tenant.stream, position)
            tenant.saved = position
        self._report(tenant)

    def _report(self, tenant: _Tenant) -> None:
        if tenant.reader is None:
            return
        datastore = tenant.reader.datastore
        head = stream_head(datastore, tenant.stream)
        position = tenant.cursor if tenant.synced else (tenant.saved or 0)
        status = _status(datastore, tenant.stream, tenant.org_id, position, head)
        if head.time is not None:
            tenant.newest = max(tenant.newest, head.time / 1000)
        with self._progress:
            tenant.status = TenantRelayStatus(
                status.tenant,
                status.position,
                status.head,
                status.lag_events,
                status.lag_seconds,
                tenant.published,
                tenant.cursor if tenant.synced else None,
                tenant.diverged,
            )
            self._progress.notify_all()

    def _after(self, tenant: _Tenant, seen: Signature) -> None:
        """Keep a tenant with recent events open and watched; close the others."""
        if tenant.reader is None:
            return
        if time.time() - tenant.newest < self.idle_after:
            if not tenant.hot:
                tenant.reader.watcher.add(tenant.wake)
                tenant.hot = True
                tenant.dirty = True  # a commit just before the watcher subscribed
        else:
            self._close_tenant(tenant)
            tenant.seen = seen


def _retirements(
    entries: Sequence[Entry], plain_state: PlainState | None
) -> list[tuple[int, Ranges]]:
    """The retirement records among ``entries`` (:mod:`streams.retirement`) with the
    offset ranges each removed, encrypted ones read with ``plain_state``
    (:class:`EncryptedRecordError` without it). A substring test first: most entries
    are not one."""
    found = []
    for entry in entries:
        if RETIREMENT_TYPE not in entry.payload:
            continue
        try:
            ranges = ranges_of(envelopes.decode(entry.payload), plain_state, offset=entry.offset)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue  # not an envelope: verify reports it; nothing to delete
        if ranges:
            found.append((entry.offset, ranges))
    return found


def _stream_of(org_id: str, tenant_stream: str) -> str:
    """The stream relayed from a file: the identity stream of ``system.db``, else the
    tenant stream."""
    return SYSTEM_STREAM if org_id == SYSTEM_KEY else tenant_stream


def _holds(source: Source, stream: str, last: Relayed) -> bool:
    """Whether the file holds the subject's last message, byte for byte, at its offset."""
    found = read_at(source, stream, [last.offset])
    return bool(found) and found[0].payload.encode() == last.payload


def _status(
    source: Source, stream: str, org_id: str, position: int, head: Head
) -> TenantRelayStatus:
    lag = count_between(source, stream, position, head.offset)
    seconds = 0.0
    if lag and head.time is not None:
        position_time = time_at(source, stream, position)
        if position_time is not None:
            seconds = max(0.0, (head.time - position_time) / 1000)
    return TenantRelayStatus(org_id, position, head.offset, lag, seconds)


async def _disconnected(publishers: list[Publisher]) -> None:
    """A connection's ``disconnected_cb``: its unanswered publishes fail at once."""
    for publisher in publishers:
        publisher.fail(ConnectionError("disconnected from the NATS server"))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- no relay


def relay_status(
    data: Directory,
    tenants: Iterable[str],
    *,
    consumer: str = DEFAULT_CONSUMER,
    jetstream: dict[str, int | None] | None = None,
) -> list[TenantRelayStatus]:
    """Each tenant's saved relay position against its stream's head (read from the
    files; no relay needs to run); :data:`SYSTEM_KEY` among ``tenants`` stands for
    ``system.db``'s identity stream. ``jetstream`` adds each subject's last offset (see
    :func:`subject_offsets`)."""
    tenant_stream = MetagraphProjection().upstream
    statuses = []
    for org_id in tenants:
        stream = _stream_of(org_id, tenant_stream)
        env = data.system_env() if org_id == SYSTEM_KEY else data.tenant_env(org_id)
        with TenantReader(env, stream) as reader:
            datastore = reader.datastore
            saved = saved_position(datastore, consumer, stream) or 0
            head = stream_head(datastore, stream)
            status = _status(datastore, stream, org_id, saved, head)
        relayed = None if jetstream is None else jetstream.get(org_id)
        statuses.append(
            TenantRelayStatus(
                org_id, saved, head.offset, status.lag_events, status.lag_seconds, 0, relayed
            )
        )
    return statuses


async def subject_offsets(
    nats_url: str | Sequence[str], tenants: Iterable[str], *, timeout: float = 5.0
) -> dict[str, int | None]:
    """The ``Graphstore-Offset`` of each tenant's last message in JetStream (None: the
    subject holds none)."""
    servers = [nats_url] if isinstance(nats_url, str) else list(nats_url)
    nc = await nats.connect(
        servers=servers,
        allow_reconnect=False,
        connect_timeout=timeout,
        max_reconnect_attempts=1,  # 0 would retry a refused connect forever (see run)
        reconnect_time_wait=0,
        error_cb=log_connection_error,
    )
    try:
        publisher = Publisher(nc)
        found: dict[str, int | None] = {}
        for org_id in tenants:
            last = await publisher.last_relayed(org_id)
            found[org_id] = None if last is None else last.offset
        return found
    finally:
        await nc.close()
