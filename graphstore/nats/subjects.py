"""The contract of the store's messages on NATS JetStream, in one place.

- ``graphstore.<tenant>.events``: a tenant's stream, relayed event by event, in stream
  order. The payload is the stream entry's envelope, byte for byte (``streams.envelope``:
  ``{"v", "tenant", "type", "subject", "version", "time", "data"}``); headers: ``Nats-Msg-Id``
  = ``<tenant>:<offset>`` (JetStream drops a duplicate within its window) and
  ``Graphstore-Offset`` = the entry's offset in the tenant file; ``Graphstore-Previous`` =
  the offset of the tenant's previous relayed entry (0 for the first), so a reader proves
  the chain has no hole although a stream's offsets have gaps (other streams of the
  file take offsets too).
- ``graphstore.<tenant>.calls``: call-protocol events published by spokes (one JSON
  object each, as ``domain.calls.ingest`` takes them); ``Nats-Msg-Id`` = the spoke's
  id for the event (e.g. ``<requestId>:<type>``), so a spoke's retry is one message.

- ``graphstore.system.identity``: ``system.db``'s identity stream (accounts, keys, the
  organization registry, the audit of identity changes), relayed like a tenant's stream
  (same headers; ``Nats-Msg-Id`` = ``system.db:<offset>``) by a relay that follows it
  (``graphstore relay`` does), so ``system.db`` can be restored to a point too. Its third
  token is not ``events``: readers of ``graphstore.*.events`` never mistake it for a
  tenant.

All live in JetStream streams this module names, created by the relay (events) and
by the ingester (calls) when missing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CALLS_STREAM",
    "EVENTS_STREAM",
    "MSG_ID",
    "OFFSET_HEADER",
    "PREVIOUS_HEADER",
    "SYSTEM_KEY",
    "SYSTEM_SUBJECT",
    "calls_subject",
    "events_subject",
    "message_id",
    "tenant_of",
]

EVENTS_STREAM: Final = "GRAPHSTORE_EVENTS"
"""The JetStream stream holding every tenant's ``graphstore.<tenant>.events``."""

CALLS_STREAM: Final = "GRAPHSTORE_CALLS"
"""The JetStream stream holding every tenant's ``graphstore.<tenant>.calls``."""

MSG_ID: Final = "Nats-Msg-Id"
OFFSET_HEADER: Final = "Graphstore-Offset"
PREVIOUS_HEADER: Final = "Graphstore-Previous"

_PREFIX: Final = "graphstore."

SYSTEM_SUBJECT: Final = "graphstore.system.identity"
"""The subject of ``system.db``'s identity stream (in :data:`EVENTS_STREAM`)."""
SYSTEM_KEY: Final = "system.db"
"""What stands for ``system.db`` where a tenant's org id would: message ids, statuses
(not an org id: those have no dot)."""


def events_subject(tenant: str) -> str:
    """``graphstore.<tenant>.events`` (a tenant's org id is one subject token: a DNS
    label has no dot, no space and no wildcard)."""
    return f"{_PREFIX}{tenant}.events"


def calls_subject(tenant: str) -> str:
    """``graphstore.<tenant>.calls``."""
    return f"{_PREFIX}{tenant}.calls"


def message_id(tenant: str, offset: int) -> str:
    """The ``Nats-Msg-Id`` of a relayed entry: ``<tenant>:<offset>``."""
    return f"{tenant}:{offset}"


def tenant_of(subject: str) -> str:
    """The tenant of a ``graphstore.<tenant>.<kind>`` subject."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX.rstrip("."):
        raise ValueError(f"{subject!r} is not a graphstore subject (graphstore.<tenant>.<kind>)")
    return parts[1]
