"""Decoding stream entries for projections: records with stable type names, typed events.

Entries are read through ``streams``' public reading API (:mod:`streams.reading`); this
module turns one :class:`streams.Entry` into a :class:`Record` (the envelope decoded,
its ``type`` mapped to the event's stable name by :func:`domain.names.canonical`) and
gives each projection a typed decoder per event type. ``streams`` knows no domain
names, so that mapping is done here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from domain.names import canonical
from projections.errors import EventNotProjectableError
from streams import Entry
from streams import envelope as envelopes

__all__ = [
    "Record",
    "VersionedEvent",
    "decode_record",
    "event_decoder",
]


class Record(msgspec.Struct, frozen=True):
    """One event of the stream, its envelope decoded; ``state`` is still the mapper's bytes.

    ``type`` is the event's stable name (``Graph.NodeAdded``, see docs/events.md), also
    for an event recorded under a legacy name (``domain.graphs:Graph.NodeAdded``).

    ``encoded`` is true when the envelope carried ``data_b64`` (a cipher or compressor
    was configured), so ``state`` must be decrypted before it is JSON.
    """

    offset: int
    type: str
    subject: str
    version: int
    time: int
    state: bytes
    encoded: bool


def decode_record(entry: Entry) -> Record:
    """The envelope of one entry; :class:`EventNotProjectableError` if it is not one."""
    try:
        env = envelopes.decode(entry.payload)
        state = envelopes.state_of(env)
    except msgspec.MsgspecError as exc:
        raise EventNotProjectableError(
            f"stream entry {entry.offset} is not a valid envelope ({exc}); see "
            "streams/envelope.schema.json"
        ) from exc
    return Record(
        offset=entry.offset,
        type=canonical(env.type),
        subject=env.subject,
        version=env.version,
        time=env.time,
        state=state,
        encoded=env.data_b64 is not msgspec.UNSET,
    )


class VersionedEvent(msgspec.Struct, kw_only=True):
    """The fields every projected event's state has in common (eventsourcing's)."""

    class_version: int = 1


_V = TypeVar("_V", bound=VersionedEvent)


def event_decoder(cls: type[_V], topic: str) -> Callable[[bytes], _V]:
    """A typed decoder of one event type's state; refuses malformed or newer versions."""
    decoder = msgspec.json.Decoder(cls)

    def decode(state: bytes) -> _V:
        try:
            event = decoder.decode(state)
        except msgspec.MsgspecError as exc:
            raise EventNotProjectableError(f"malformed {topic} event: {exc}") from exc
        if event.class_version != 1:
            raise EventNotProjectableError(
                f"{topic} event of class_version {event.class_version}: this projection "
                "reads version 1 only; upgrade it (a new projection version)"
            )
        return event

    return decode
