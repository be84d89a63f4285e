"""Writing a stream back from a copy of it: entries already encoded, at their offsets.

A point-in-time restore (``graphstore restore --nats``) replays a tenant's relayed
entries into a new tenant file. It must leave the file as the original recorder left
it: the same offsets, the same payloads byte for byte, and the aggregate index row of
each entry. :func:`append_entries` does exactly that inside the caller's write
transaction, and nothing else may write Honker's tables (only ``streams`` knows them).

Honker's ``created_at`` column (its own bookkeeping, not part of the stream's contract)
is set from the envelope's ``time`` (seconds), the moment the original was recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple
from uuid import UUID

import msgspec

import streams.envelope as envelopes
from streams.errors import StreamsError
from streams.index import REF_VERSION, id_key, index_table, ref_keys, refs_of
from streams.reading import Entry
from streams.transaction import Source, Transaction

__all__ = [
    "ExplainedHole",
    "ReplicationError",
    "append_entries",
    "explained_holes",
    "highest_offset",
    "record_holes",
    "remove_entries",
]

_TABLE: Final = "_honker_stream"
_ROWS: Final = 200
_HOLES: Final = "graphstore_explained_holes"
"""Offsets a restore knows are missing and why (see :func:`record_holes`)."""


class ReplicationError(StreamsError, ValueError):
    """Entries that cannot be appended as given (not after the file's last offset, not
    ascending, or a payload that is not an envelope); nothing was written. A
    ``ValueError`` too, as before it joined :class:`~streams.errors.StreamsError`."""


def highest_offset(tx: Transaction) -> int:
    """The highest offset the file has ever given (any stream; 0 for none)."""
    rows = tx.query(
        f'SELECT max(coalesce((SELECT max("offset") FROM {_TABLE}), 0), coalesce('
        f"(SELECT seq FROM sqlite_sequence WHERE name = '{_TABLE}'), 0)) AS top"
    )
    return int(rows[0]["top"])


def append_entries(
    tx: Transaction, stream: str, entries: Sequence[Entry], *, uuid_ids: bool = True
) -> None:
    """Append ``entries`` (offset, envelope JSON text) to ``stream`` at their offsets,
    with their aggregate index rows, inside ``tx``. Offsets must ascend and lie after
    every offset the file has given; ``ReplicationError`` otherwise (the caller's
    transaction then rolls back)."""
    if not entries:
        return
    last = highest_offset(tx)
    stream_params: list[Any] = []
    index_params: list[Any] = []
    ref_params: list[Any] = []
    for entry in entries:
        if entry.offset <= last:
            raise ReplicationError(
                f"entry at offset {entry.offset} does not come after offset {last}: entries "
                "must ascend, after everything the file holds. Nothing was written."
            )
        last = entry.offset
        try:
            decoded = envelopes.decode(entry.payload)
        except Exception as exc:
            raise ReplicationError(
                f"the payload at offset {entry.offset} is not an envelope ({exc}). Nothing "
                "was written."
            ) from None
        subject: UUID | str = UUID(decoded.subject) if uuid_ids else decoded.subject
        stream_params += [entry.offset, stream, entry.payload, decoded.time // 1000]
        index_params += [id_key(subject), decoded.version, entry.offset]
        if decoded.data is not msgspec.UNSET:  # its references' rows (streams.index)
            for key in ref_keys(refs_of(bytes(decoded.data)), uuid_ids=uuid_ids):
                ref_params += [key, REF_VERSION, entry.offset]
    index = index_table(stream)
    for start in range(0, len(entries), _ROWS):
        count = min(_ROWS, len(entries) - start)
        tx.execute(
            f'INSERT INTO {_TABLE} ("offset", topic, key, payload, created_at) VALUES '
            + ",".join(["(?, ?, NULL, ?, ?)"] * count),
            stream_params[start * 4 : (start + count) * 4],
        )
        tx.execute(
            f'INSERT INTO "{index}" (originator_id, originator_version, "offset") VALUES '
            + ",".join(["(?, ?, ?)"] * count),
            index_params[start * 3 : (start + count) * 3],
        )
    for start in range(0, len(ref_params), 3 * _ROWS):
        chunk = ref_params[start : start + 3 * _ROWS]
        tx.execute(
            f'INSERT INTO "{index}" (originator_id, originator_version, "offset") VALUES '
            + ",".join(["(?, ?, ?)"] * (len(chunk) // 3)),
            chunk,
        )


class ExplainedHole(NamedTuple):
    """Offsets ``first`` to ``last`` (inclusive) that a restore left out on purpose, and
    why (``reason``: one line for an operator)."""

    first: int
    last: int
    reason: str


def record_holes(tx: Transaction, holes: Sequence[ExplainedHole]) -> None:
    """Write down, in the file, offsets a restore knows are missing and why.

    A point-in-time restore replays one stream (the relayed one); the source file's
    other streams (a unit's ``publish`` streams, a durable event target) took offsets of
    the same sequence that the restored file does not hold, and a retirement record
    removed others. The restore proves each hole from the relayed chain
    (``Graphstore-Previous``) or from a relayed retirement record and records it here,
    so that :func:`streams.check.offset_gaps` tells it from a deleted entry."""
    if not holes:
        return
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {_HOLES} (first INTEGER NOT NULL, last INTEGER NOT NULL, "
        "reason TEXT NOT NULL, PRIMARY KEY (first, last)) WITHOUT ROWID",
        [],
    )
    for start in range(0, len(holes), _ROWS):
        chunk = holes[start : start + _ROWS]
        tx.execute(
            f"INSERT OR REPLACE INTO {_HOLES} (first, last, reason) VALUES "
            + ",".join(["(?, ?, ?)"] * len(chunk)),
            [value for hole in chunk for value in hole],
        )


def explained_holes(source: Source) -> list[ExplainedHole]:
    """The holes :func:`record_holes` wrote down in this file, by first offset (none for
    a file no restore wrote)."""
    exists = source.query(
        "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?", [_HOLES]
    )
    if not exists:
        return []
    rows = source.query(f"SELECT first, last, reason FROM {_HOLES} ORDER BY first", [])
    return [ExplainedHole(int(r["first"]), int(r["last"]), str(r["reason"])) for r in rows]


def remove_entries(tx: Transaction, stream: str, ranges: Sequence[tuple[int, int]]) -> int:
    """Delete the entries of ``stream`` (and their aggregate index rows) whose offsets
    lie in ``ranges`` (inclusive pairs), inside ``tx``: what a relayed retirement record
    removed from the source, removed from a restored file too. The number deleted."""
    index = index_table(stream)
    removed = 0
    for first, last in ranges:
        tx.execute(f'DELETE FROM "{index}" WHERE "offset" BETWEEN ? AND ?', [first, last])
        found = tx.query(
            f'SELECT count(*) AS n FROM {_TABLE} WHERE topic = ? AND "offset" BETWEEN ? AND ?',
            [stream, first, last],
        )
        removed += int(found[0]["n"])
        tx.execute(
            f'DELETE FROM {_TABLE} WHERE topic = ? AND "offset" BETWEEN ? AND ?',
            [stream, first, last],
        )
    return removed
