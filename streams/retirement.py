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
from collections.abc import Iterable, Sequence
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from streams.envelope import Envelope, state_of
from streams.envelope import decode as decode_envelope
from streams.index import id_key, index_table, table_prefix
from streams.transaction import Source, Transaction

__all__ = [
    "RETIREMENT_TYPE",
    "Reclaimed",
    "RemovedEntries",
    "Retirement",
    "digest_of",
    "entries_of",
    "is_retirement",
    "merged_ranges",
    "ranges_of",
    "reclaim",
    "remove_entries",
    "retired_ranges",
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


def _key(aggregate: UUID | str) -> bytes | str:
    if isinstance(aggregate, UUID):
        return id_key(aggregate)
    try:
        return UUID(aggregate).bytes
    except ValueError:
        return aggregate


class RemovedEntries(msgspec.Struct, frozen=True, kw_only=True):
    """What removing some aggregates would take out of a stream: their offsets (sorted),
    the payloads' total bytes (``size``) and digest (:func:`digest_of`)."""

    offsets: list[int]
    size: int
    digest: str


def entries_of(source: Source, stream: str, aggregates: Iterable[UUID | str]) -> RemovedEntries:
    """The stream entries of ``aggregates`` (every event recorded for them), as a
    retirement would remove them."""
    keys = [_key(a) for a in aggregates]
    offsets: list[int] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = source.query(
            f'SELECT "offset" FROM "{index_table(stream)}" '
            f"WHERE originator_id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        offsets += [int(row["offset"]) for row in rows]
    offsets.sort()
    payloads: list[bytes] = []
    for start in range(0, len(offsets), 500):
        chunk_offsets = offsets[start : start + 500]
        rows = source.query(
            'SELECT payload FROM _honker_stream WHERE topic = ? AND "offset" IN '
            f'({",".join("?" * len(chunk_offsets))}) ORDER BY "offset"',
            [stream, *chunk_offsets],
        )
        payloads += [_bytes(row["payload"]) for row in rows]
    return RemovedEntries(
        offsets=offsets, size=sum(len(p) for p in payloads), digest=digest_of(payloads)
    )


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)


def remove_entries(
    tx: Transaction, stream: str, aggregates: Sequence[UUID | str], offsets: Sequence[int]
) -> None:
    """Delete ``aggregates``' events from ``stream`` in ``tx``: stream rows, index rows,
    snapshots. A compare-and-set: when the aggregates' offsets are not exactly
    ``offsets`` any more (another writer added an event since they were read) it raises
    ``IntegrityError`` and the caller's transaction rolls back."""
    found = entries_of(tx, stream, aggregates)
    if found.offsets != sorted(offsets):
        raise IntegrityError(
            "the runs to retire changed since they were read (an event was added to one "
            "of them); nothing was written: read them again"
        )
    keys = [_key(a) for a in aggregates]
    snapshots = f"es_{table_prefix(stream)}_snapshots"
    has_snapshots = bool(
        tx.query("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [snapshots])
    )
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        tx.execute(
            f'DELETE FROM "{index_table(stream)}" WHERE originator_id IN ({marks})', list(chunk)
        )
        if has_snapshots:
            tx.execute(f'DELETE FROM "{snapshots}" WHERE originator_id IN ({marks})', list(chunk))
    for start in range(0, len(found.offsets), 500):
        chunk_offsets = found.offsets[start : start + 500]
        tx.execute(
            'DELETE FROM _honker_stream WHERE topic = ? AND "offset" IN '
            f"({','.join('?' * len(chunk_offsets))})",
            [stream, *chunk_offsets],
        )


class Reclaimed(msgspec.Struct, frozen=True, kw_only=True):
    """The file's size (pages x page size) before and after :func:`reclaim`; whether the
    WAL was emptied (False: a reader held it, retry later)."""

    before: int
    after: int
    wal_truncated: bool


def _size(tx: Transaction) -> int:
    pages = int(next(iter(tx.query("PRAGMA page_count")[0].values())))
    return pages * int(next(iter(tx.query("PRAGMA page_size")[0].values())))


def reclaim(tx: Transaction) -> Reclaimed:
    """Give the file's free pages back and empty its WAL, so deleted bytes are neither in
    the file nor in the WAL: ``VACUUM`` (rewrites the file from its live rows) then
    ``wal_checkpoint(TRUNCATE)``, with ``secure_delete`` on.

    ``tx`` is a fresh write transaction of the tenant file (``datastore.transaction()``)
    holding nothing yet: Honker runs every write inside ``BEGIN IMMEDIATE``, where
    neither statement may run, so this leaves it, runs them on the writer's connection,
    and begins again for Honker to commit. Costs a rewrite of the file: run it after a
    pass, not after every transaction.
    """
    before = _size(tx)
    tx.execute("COMMIT")
    try:
        tx.query("PRAGMA secure_delete = ON")
        tx.execute("VACUUM")
        rows = tx.query("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = int(next(iter(rows[0].values()))) if rows else 1
    finally:
        tx.execute("BEGIN IMMEDIATE")
    return Reclaimed(before=before, after=_size(tx), wal_truncated=busy == 0)


def retired_ranges(source: Source, stream: str) -> list[tuple[int, int]]:
    """Every offset range the stream's retirement records removed, adjacent ones joined:
    what ``verify`` feeds :func:`streams.check.explained_by_ranges` (a gap spanning two
    passes' removals is one gap in the file)."""
    rows = source.query(
        'SELECT "offset", payload FROM _honker_stream WHERE topic = ? '
        "AND payload ->> '$.type' = ? ORDER BY \"offset\"",
        [stream, RETIREMENT_TYPE],
    )
    spans: list[tuple[int, int]] = []
    for row in rows:
        try:
            spans += ranges_of(decode_envelope(row["payload"])) or ()
        except msgspec.ValidationError:
            continue  # an encrypted or malformed record explains nothing
    joined: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if joined and first <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(last, joined[-1][1]))
        else:
            joined.append((first, last))
    return joined
