"""The stream payload: a documented JSON envelope any Honker client can read.

Each event appended to a tenant's Honker stream (table ``_honker_stream``, one topic per
application) carries this object as its ``payload``::

    {"v": 1, "tenant": "acme", "type": "Graph.NodeAdded",
     "subject": "1c7d...", "version": 7, "time": 1795305736783, "data": {...}}

``type`` is the event's class (its eventsourcing topic); for the domain's events a stable
name that does not change when a class moves, listed in docs/events.md with the
``module:Class`` names recorded before. ``subject`` is the aggregate it belongs to
(eventsourcing's ``originator_id``) and ``version`` its position in that aggregate
(``originator_version``). ``time`` is when the event was recorded, in
milliseconds since the Unix epoch, UTC (the call protocol's convention for times).
``data`` is the event's state exactly as the application's mapper wrote it, embedded as
JSON. When the state is not JSON (a compressor or a cipher is configured) it is carried as
``data_b64`` (standard base64) instead, and ``data`` is absent. The stream offset is the
event's notification id and is not repeated inside the payload. Names follow CloudEvents
where one fits and are kept short: every event carries them. The JSON Schema is
``streams/envelope.schema.json``.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import msgspec

__all__ = [
    "ENVELOPE_VERSION",
    "SCHEMA_PATH",
    "Envelope",
    "UuidEnvelope",
    "decode",
    "decode_uuid",
    "encode",
    "encode_array",
    "json_schema",
    "state_of",
]

ENVELOPE_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("envelope.schema.json")


class Envelope(msgspec.Struct, kw_only=True):
    """One event as it is stored in the tenant's Honker stream."""

    v: int
    tenant: str
    type: str
    subject: str
    version: int
    time: int
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    data_b64: str | msgspec.UnsetType = msgspec.UNSET


class UuidEnvelope(Envelope, kw_only=True):
    """An :class:`Envelope` whose ``subject`` is parsed as a UUID (in C, by msgspec)."""

    subject: UUID  # type: ignore[assignment]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)
_uuid_decoder = msgspec.json.Decoder(UuidEnvelope)
_raw_decoder = msgspec.json.Decoder(msgspec.Raw)


def _as_json(state: bytes) -> msgspec.Raw | None:
    # A state is embedded verbatim only if it is one valid JSON value; decoding into Raw
    # validates the syntax without building Python objects.
    if not state or state[:1] not in b'{["-0123456789tfn':
        return None
    try:
        _raw_decoder.decode(state)
    except msgspec.DecodeError:
        return None
    return msgspec.Raw(state)


def encode(
    *,
    tenant: str,
    topic: str,
    originator_id: UUID | str,
    originator_version: int,
    time_ms: int,
    state: bytes,
) -> str:
    """The envelope of one stored event, as the JSON text Honker stores."""
    data = _as_json(state)
    envelope = Envelope(
        v=ENVELOPE_VERSION,
        tenant=tenant,
        type=topic,
        # msgspec writes a UUID in its canonical form, faster than str(uuid).
        subject=cast(str, originator_id),
        version=originator_version,
        time=time_ms,
        data=msgspec.UNSET if data is None else data,
        data_b64=base64.b64encode(state).decode("ascii") if data is None else msgspec.UNSET,
    )
    return _encoder.encode(envelope).decode("utf-8")


def encode_array(payloads: list[str]) -> str:
    """Several envelopes as one JSON array of strings (for one batched INSERT)."""
    return _encoder.encode(payloads).decode("utf-8")


def decode(payload: str | bytes) -> Envelope:
    """Parse a stream payload; raises ``msgspec.ValidationError`` if it is not an envelope."""
    return _decoder.decode(payload)


def decode_uuid(payload: str | bytes) -> UuidEnvelope:
    """Parse a stream payload whose ``subject`` must be a UUID."""
    return _uuid_decoder.decode(payload)


def state_of(envelope: Envelope) -> bytes:
    """The event's state bytes, exactly as they were recorded."""
    if envelope.data is not msgspec.UNSET:
        return bytes(envelope.data)
    if envelope.data_b64 is not msgspec.UNSET:
        try:
            return base64.b64decode(envelope.data_b64, validate=True)
        except binascii.Error as exc:
            raise msgspec.ValidationError(f"data_b64 is not base64: {exc}") from exc
    raise msgspec.ValidationError("envelope has neither `data` nor `data_b64`")


def json_schema() -> dict[str, Any]:
    """The envelope's JSON Schema, as committed in ``envelope.schema.json``."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded
