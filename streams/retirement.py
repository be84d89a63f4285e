"""The retirement record: how a stream says which of its offsets were removed on purpose.

A retention pass (or an erasure) deletes finished runs' events from a tenant's stream and,
in the same transaction, appends one domain event whose envelope ``type`` is
:data:`RETIREMENT_TYPE`. Its ``data`` is a JSON object::

    {"runs": ["<root call id>", ...],
     "ranges": [[first, last], ...],      # inclusive stream offsets removed
     "archive": "<archive reference>" | null,
     "digest": "<hex SHA-256 over the removed entries' payload bytes, in offset order>",
     "reason": "policy" | "forget"}

The type name is part of the stream contract (docs/events.md), so readers below the
domain (``verify``, a restore from JetStream, the projections) recognise the record
without importing the domain: a gap lying inside a record's ranges is explained, not a
hole (see :func:`streams.check.explained_by_ranges`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from streams.envelope import Envelope, state_of

__all__ = [
    "RETIREMENT_TYPE",
    "Retirement",
    "digest_of",
    "is_retirement",
    "merged_ranges",
    "ranges_of",
    "retirement_of",
]

RETIREMENT_TYPE = "Retention.RunsRetired"


class Retirement(msgspec.Struct, kw_only=True):
    """The ``data`` of a retirement record, as a typed value."""

    runs: list[str]
    ranges: list[tuple[int, int]]
    archive: str | None = None
    digest: str = ""
    reason: str = "policy"


_decoder = msgspec.json.Decoder(Retirement)


def is_retirement(envelope: Envelope) -> bool:
    """Whether this stream entry is a retirement record."""
    return envelope.type == RETIREMENT_TYPE


def retirement_of(envelope: Envelope) -> Retirement | None:
    """The record's data, or None when the envelope is not a retirement record.

    Raises ``msgspec.ValidationError`` when it claims to be one but its data is not.
    """
    if not is_retirement(envelope):
        return None
    return _decoder.decode(state_of(envelope))


def ranges_of(envelope: Envelope) -> tuple[tuple[int, int], ...] | None:
    """The inclusive offset ranges a retirement record removed, or None for other events."""
    record = retirement_of(envelope)
    if record is None:
        return None
    return tuple((int(first), int(last)) for first, last in record.ranges)


def merged_ranges(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets folded into inclusive ``[first, last]`` runs of consecutive values."""
    ranges: list[tuple[int, int]] = []
    for offset in sorted(set(offsets)):
        if ranges and ranges[-1][1] == offset - 1:
            ranges[-1] = (ranges[-1][0], offset)
        else:
            ranges.append((offset, offset))
    return ranges


def digest_of(payloads: Iterable[bytes]) -> str:
    """Hex SHA-256 over the removed entries' payload bytes, in offset order."""
    digest = hashlib.sha256()
    for payload in payloads:
        digest.update(payload)
    return digest.hexdigest()
