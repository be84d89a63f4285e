"""A spoke: call-protocol events published to JetStream for a hub to fold in.

    async with Spoke("nats://hub:4222", "acme") as spoke:
        seq = await spoke.publish({"type": "call.requested", "at": ..., "payload": {...}})

A spoke is a process away from the hub that runs operations and reports their calls
(``domain.calls``, docs/calls.md). It never opens a tenant file: it checks each event
with the call protocol's own checks (:func:`domain.calls.protocol.as_event`), so bad
input fails here with :class:`~domain.errors.InvalidCallEventError` and publishes
nothing, then publishes it to ``graphstore.<tenant>.calls`` (stream ``GRAPHSTORE_CALLS``,
:mod:`graphstore.nats.subjects`) and waits for JetStream's acknowledgement (PubAck).
Once :meth:`Spoke.publish` returns, the event is stored by JetStream and the hub's
ingester (:mod:`graphstore.nats.ingester`) will fold it exactly once.

``Nats-Msg-Id`` is ``<tenant>:<requestId>:<event id>`` (the event id is the one given, or
the one the protocol derives from type, time and payload), so a spoke that retries a
publish whose PubAck it did not get stores one message, not two (within the stream's
duplicate window, 2 minutes); beyond it the call ledger's own idempotence (an event id
already applied to a call changes nothing) still holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from domain import check_org_id
from domain.calls import CallEvent
from domain.calls.protocol import as_event
from graphstore.nats._connection import log_connection_error
from graphstore.nats._pipeline import Pipeline
from graphstore.nats.errors import GraphstoreNatsError
from graphstore.nats.subjects import CALLS_STREAM, MSG_ID, calls_subject

__all__ = [
    "DUPLICATE_WINDOW",
    "Spoke",
    "SpokeClosedError",
    "SpokePublishError",
    "calls_stream_config",
    "encode_call",
    "ensure_calls_stream",
    "spoke_message_id",
]

DUPLICATE_WINDOW: Final = 120.0
"""Seconds during which JetStream drops a message whose ``Nats-Msg-Id`` it has seen."""


class SpokeClosedError(GraphstoreNatsError, RuntimeError):
    """The spoke is not connected (use ``async with Spoke(...)`` or :meth:`Spoke.connect`)."""


class SpokePublishError(GraphstoreNatsError, RuntimeError):
    """JetStream refused to store some events (e.g. no stream captures the subject)."""


def calls_stream_config() -> StreamConfig:
    """``GRAPHSTORE_CALLS``: every tenant's ``graphstore.<tenant>.calls``, on disk,
    kept until the limits (none by default: the hub's ingester is the reader), with a
    duplicate window of :data:`DUPLICATE_WINDOW`."""
    return StreamConfig(
        name=CALLS_STREAM,
        subjects=[calls_subject("*")],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
    )


async def ensure_calls_stream(js: JetStreamContext) -> None:
    """Create ``GRAPHSTORE_CALLS`` if missing (the ingester does; a spoke too, so it can
    start before the hub)."""
    try:
        await js.stream_info(CALLS_STREAM)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(calls_stream_config())
        except nats.js.errors.BadRequestError:  # created meanwhile by another process
            await js.stream_info(CALLS_STREAM)


def encode_call(event: CallEvent) -> bytes:
    """The message payload of a checked call event: ``{id, type, at, payload}`` as JSON,
    as :func:`domain.calls.protocol.decode_event` reads it."""
    return msgspec.json.encode(
        {
            "id": event.id,
            "type": event.type,
            "at": event.at,
            "payload": msgspec.to_builtins(event.payload),
        }
    )


def spoke_message_id(tenant: str, event: CallEvent) -> str:
    """``<tenant>:<requestId>:<event id>``."""
    return f"{tenant}:{event.payload.request_id}:{event.id}"


class Spoke:
    """Publishes one tenant's call events to JetStream. See the module docstring.

    ``tenant`` must be a valid org id (:class:`~domain.errors.InvalidOrgIdError`
    otherwise); ``timeout`` is how long to wait for each PubAck (seconds).
    """

    def __init__(self, url: str, tenant: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.tenant = check_org_id(tenant)
        self.subject = calls_subject(self.tenant)
        self.timeout = timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._pipeline: Pipeline | None = None

    async def connect(self) -> Spoke:
        """Connect (and create the calls stream if missing)."""
        if self._nc is None:
            nc = await nats.connect(
                self.url,
                connect_timeout=2,
                max_reconnect_attempts=-1,
                error_cb=log_connection_error,
            )
            try:
                js = nc.jetstream(timeout=self.timeout)
                await ensure_calls_stream(js)
            except BaseException:
                await nc.close()
                raise
            pipeline = Pipeline(nc)
            await pipeline.listen()
            self._nc, self._js, self._pipeline = nc, js, pipeline
        return self

    async def close(self) -> None:
        """Flush and disconnect (idempotent)."""
        nc, self._nc, self._js, self._pipeline = self._nc, None, None, None
        if nc is not None:
            await nc.close()

    async def __aenter__(self) -> Spoke:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def check(self, event: CallEvent | Mapping[str, Any]) -> CallEvent:
        """The checked event; :class:`~domain.errors.InvalidCallEventError` if it is not
        a valid call-protocol event (docs/calls.md, "Events and their format")."""
        return as_event(event)

    async def publish(self, event: CallEvent | Mapping[str, Any]) -> int:
        """Check and publish one event; its JetStream stream sequence once stored."""
        checked = self.check(event)
        return await self._publish(checked)

    async def publish_many(self, events: Iterable[CallEvent | Mapping[str, Any]]) -> list[int]:
        """Check every event first (one bad event: nothing is published), then publish
        them in order without waiting for each acknowledgement, and wait for all of
        them; their stream sequences. On an error some may be stored: publishing all of
        them again is safe (message ids)."""
        checked = [self.check(event) for event in events]
        self._connected()
        pipeline = self._pipeline
        assert pipeline is not None  # connected
        futures = [
            await pipeline.publish(
                self.subject,
                encode_call(event),
                headers={MSG_ID: spoke_message_id(self.tenant, event)},
            )
            for event in checked
        ]
        acks = await asyncio.wait_for(asyncio.gather(*futures), self.timeout + len(futures) / 1000)
        refused = [ack.error for ack in acks if ack.error is not None]
        if refused:
            raise SpokePublishError(
                f"JetStream refused {len(refused)} of {len(acks)} events ({refused[0]}); "
                "publishing them again is safe (message ids)"
            )
        return [int(ack.seq) for ack in acks]

    def _connected(self) -> JetStreamContext:
        js = self._js
        if js is None:
            raise SpokeClosedError("the spoke is not connected: use `async with Spoke(...)`")
        return js

    async def _publish(self, event: CallEvent) -> int:
        ack = await self._connected().publish(
            self.subject,
            encode_call(event),
            timeout=self.timeout,
            stream=CALLS_STREAM,
            headers={MSG_ID: spoke_message_id(self.tenant, event)},
        )
        return int(ack.seq)
