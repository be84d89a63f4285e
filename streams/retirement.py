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
domain (``verify``, a restore from JetStream, the relay, the projections) recognise the
record without importing the domain: a gap lying inside a record's ranges is explained,
not a hole (see :func:`streams.check.explained_by_ranges`).

On a tenant whose events are encrypted or compressed, the record is too (its ``data``
is carried as ``data_b64``, like every event's): it names the runs by their request ids,
which a client chose and which may be personal (an erasure's record names exactly the
run that had to go). So every reader undoes it with the tenant's settings
(``plain_state``, :class:`streams.TenantReader`), and a reader without them gets
:class:`EncryptedRecordError`, never a record silently skipped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Final, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from streams._honker import TenantFile
from streams.envelope import Envelope, state_of
from streams.envelope import decode as decode_envelope
from streams.errors import ConfigurationError
from streams.index import id_key, index_table, table_prefix
from streams.pauses import Pauses
from streams.transaction import Source, Transaction

__all__ = [
    "RECLAIM_PAGES",
    "RETIREMENT_TYPE",
    "EncryptedRecordError",
    "PlainState",
    "Reclaimed",
    "RemovedEntries",
    "Retirement",
    "Writable",
    "combined",
    "digest_of",
    "entries_of",
    "is_retirement",
    "merged_ranges",
    "ranges_of",
    "reclaim",
    "remove_entries",
    "retired_ranges",
    "retirement_of",
    "retirement_offsets",
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

PlainState = Callable[[bytes], bytes]
"""Undoes a tenant's cipher and compressor (:attr:`streams.TenantReader.plain_state`)."""


class EncryptedRecordError(ConfigurationError):
    """A retirement record is encrypted or compressed and the reader was given no
    cipher settings: it cannot say which offsets the record removed."""


def is_retirement(envelope: Envelope) -> bool:
    """Whether this stream entry is a retirement record."""
    return envelope.type == RETIREMENT_TYPE


def retirement_of(
    envelope: Envelope, plain_state: PlainState | None = None, *, offset: int | None = None
) -> Retirement | None:
    """The record's data, or None when the envelope is not a retirement record.

    A record carried as ``data_b64`` (an encrypted or compressed tenant) is undone with
    ``plain_state`` first; without it :class:`EncryptedRecordError` (``offset``, when
    given, is named in the message). Raises ``msgspec.DecodeError`` (or its subclass
    ``ValidationError``) when it claims to be a record but its data is not one, or
    ``plain_state`` does not undo it (another key).
    """
    if not is_retirement(envelope):
        return None
    state = state_of(envelope)
    if envelope.data is msgspec.UNSET:  # data_b64: the tenant's cipher or compressor
        if plain_state is None:
            at = "" if offset is None else f" at offset {offset}"
            raise EncryptedRecordError(
                f"the retirement record{at} is encrypted or compressed (data_b64) and no "
                "cipher settings were given: read the tenant with the writers' CIPHER_KEY / "
                "COMPRESSOR_TOPIC (GRAPHSTORE_CIPHER_KEY / GRAPHSTORE_COMPRESSOR_TOPIC for "
                "the CLI and the server, docs/retention.md)"
            )
        try:
            state = plain_state(state)
        except Exception as exc:  # the cipher's own error: another key, damaged bytes
            raise msgspec.DecodeError(
                f"the retirement record{'' if offset is None else f' at offset {offset}'} "
                f"does not decrypt with the given settings ({type(exc).__name__})"
            ) from None
    return _decoder.decode(state)


def ranges_of(
    envelope: Envelope, plain_state: PlainState | None = None, *, offset: int | None = None
) -> tuple[tuple[int, int], ...] | None:
    """The inclusive offset ranges a retirement record removed, or None for other events
    (``plain_state`` and errors: :func:`retirement_of`)."""
    record = retirement_of(envelope, plain_state, offset=offset)
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
    the payloads' total bytes (``size``) and digest (:func:`digest_of`), and the
    payloads by offset (``payloads``), so that the entries of several reads are
    :func:`combined` without reading them again."""

    offsets: list[int]
    size: int
    digest: str
    payloads: dict[int, bytes] = {}


def entries_of(
    source: Source, stream: str, aggregates: Iterable[UUID | str], also: Iterable[int] = ()
) -> RemovedEntries:
    """The stream entries of ``aggregates`` (every event recorded for them), and those at
    offsets ``also`` (some events of an aggregate that stays), as a retirement would
    remove them."""
    offsets = sorted({*_offsets_of(source, stream, aggregates), *also})
    payloads: dict[int, bytes] = {}
    for start in range(0, len(offsets), 500):
        chunk_offsets = offsets[start : start + 500]
        rows = source.query(
            'SELECT "offset", payload FROM _honker_stream WHERE topic = ? AND "offset" IN '
            f"({','.join('?' * len(chunk_offsets))})",
            [stream, *chunk_offsets],
        )
        payloads.update((int(row["offset"]), _bytes(row["payload"])) for row in rows)
    return _entries(offsets, payloads)


def combined(parts: Iterable[RemovedEntries]) -> RemovedEntries:
    """The entries of several :func:`entries_of` reads as one (offsets sorted, the
    digest over every payload in offset order), without reading them again."""
    offsets: set[int] = set()
    payloads: dict[int, bytes] = {}
    for part in parts:
        offsets.update(part.offsets)
        payloads.update(part.payloads)
    return _entries(sorted(offsets), payloads)


def _entries(offsets: list[int], payloads: dict[int, bytes]) -> RemovedEntries:
    ordered = [payloads[offset] for offset in offsets if offset in payloads]
    return RemovedEntries(
        offsets=offsets,
        size=sum(len(p) for p in ordered),
        digest=digest_of(ordered),
        payloads=payloads,
    )


def _offsets_of(source: Source, stream: str, aggregates: Iterable[UUID | str]) -> list[int]:
    """The offsets of every event recorded for ``aggregates`` (unsorted; a reference's
    index row shares its event's offset, so one may come twice)."""
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
    return offsets


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)


def remove_entries(
    tx: Transaction,
    stream: str,
    aggregates: Sequence[UUID | str],
    offsets: Sequence[int],
    partial: Sequence[UUID | str] = (),
) -> None:
    """Delete ``aggregates``' events from ``stream`` in ``tx``: stream rows, index rows,
    snapshots; and of the ``partial`` aggregates (which stay) only their events at
    ``offsets``. A compare-and-set: when the aggregates' offsets are not exactly
    ``offsets`` any more (another writer added an event since they were read, or an
    offset left is not a ``partial`` aggregate's) it raises ``IntegrityError`` and the
    caller's transaction rolls back."""
    # Offsets only: what the events hold was read (and digested) before the transaction.
    found = sorted(set(_offsets_of(tx, stream, aggregates)))
    rest = sorted(set(offsets) - set(found))
    if not set(found) <= set(offsets) or _count_of(tx, stream, partial, rest) != len(rest):
        raise IntegrityError(
            "the runs to retire changed since they were read (an event was added to one "
            "of them); nothing was written: read them again"
        )
    _remove_partial(tx, stream, partial, rest)
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
    for start in range(0, len(found), 500):
        chunk_offsets = found[start : start + 500]
        tx.execute(
            'DELETE FROM _honker_stream WHERE topic = ? AND "offset" IN '
            f"({','.join('?' * len(chunk_offsets))})",
            [stream, *chunk_offsets],
        )


def _count_of(
    tx: Transaction, stream: str, partial: Sequence[UUID | str], offsets: Sequence[int]
) -> int:
    """How many of ``offsets`` are events of the ``partial`` aggregates."""
    count = 0
    for aggregate in partial if offsets else ():
        for start in range(0, len(offsets), 500):
            chunk = offsets[start : start + 500]
            rows = tx.query(
                f'SELECT count(*) AS n FROM "{index_table(stream)}" WHERE originator_id = ? '
                f'AND "offset" IN ({",".join("?" * len(chunk))})',
                [_key(aggregate), *chunk],
            )
            count += int(rows[0]["n"])
    return count


def _remove_partial(
    tx: Transaction, stream: str, partial: Sequence[UUID | str], offsets: Sequence[int]
) -> None:
    """Delete the index rows and stream entries of ``partial`` aggregates at ``offsets``
    (their snapshots stay: an event recorded with the removal says what left)."""
    for aggregate in partial if offsets else ():
        for start in range(0, len(offsets), 500):
            chunk = offsets[start : start + 500]
            marks = ",".join("?" * len(chunk))
            tx.execute(
                f'DELETE FROM "{index_table(stream)}" WHERE originator_id = ? '
                f'AND "offset" IN ({marks})',
                [_key(aggregate), *chunk],
            )
            tx.execute(
                f'DELETE FROM _honker_stream WHERE topic = ? AND "offset" IN ({marks})',
                [stream, *chunk],
            )


class Reclaimed(msgspec.Struct, frozen=True, kw_only=True):
    """The file's size (pages x page size) before and after :func:`reclaim`; whether the
    WAL was emptied (``wal_truncated``: asked for and done; False: not asked for, or a
    reader held it: retry later)."""

    before: int
    after: int
    wal_truncated: bool


def _pragma(tx: Transaction, pragma: str) -> int:
    return int(next(iter(tx.query(f"PRAGMA {pragma}")[0].values())))


def _size(tx: Transaction) -> int:
    return _pragma(tx, "page_count") * _pragma(tx, "page_size")


class Writable(Protocol):
    """What :func:`reclaim` needs: a datastore's write transactions and its file."""

    @property
    def file(self) -> TenantFile: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...


RECLAIM_PAGES: Final = 64
"""Free pages given back per transaction: a writer never waits long for the file."""


def reclaim(
    datastore: Writable, *, truncate_wal: bool = False, pauses: Pauses | None = None
) -> Reclaimed:
    """Give the file's free pages back, without holding writers off.

    Deleted content is zeroed when it is deleted (every writer connection runs with
    ``secure_delete``, :mod:`streams._honker`); the free pages are then cut off the file
    with ``incremental_vacuum``, :data:`RECLAIM_PAGES` per short transaction, each
    followed by a pause so a waiting writer goes first (``pauses``: the job's, whose
    copies of the WAL are waited for here; by default, its own). A PASSIVE checkpoint
    then copies the WAL's (zeroed) pages into the file without holding writers off.

    The WAL may still hold earlier frames with the deleted content until it restarts
    (the first commit after a complete checkpoint); every writer runs with
    ``journal_size_limit = 0`` (:mod:`streams._honker`), so that commit also cuts the
    WAL to the frames it wrote. ``truncate_wal`` (an erasure: the bytes must be gone
    now) empties it at once with ``wal_checkpoint(TRUNCATE)``, which holds writers off
    while it copies. A file made before retention existed is converted to
    ``auto_vacuum=INCREMENTAL`` once, by one ``VACUUM`` (a rewrite of the file).
    """
    if pauses is None:
        with Pauses(datastore.file) as own:
            return reclaim(datastore, truncate_wal=truncate_wal, pauses=own)
    with datastore.transaction() as tx:
        before = _size(tx)
        if _pragma(tx, "auto_vacuum") != 2:
            _outside_transaction(tx, "PRAGMA auto_vacuum = INCREMENTAL", "VACUUM")
    while True:
        started = time.monotonic()
        with datastore.transaction() as tx:
            if _pragma(tx, "freelist_count") == 0:
                break
            tx.query(f"PRAGMA incremental_vacuum({RECLAIM_PAGES})")
        pauses.after(started)
    pauses.settle()  # the last copy of the WAL is this one
    with datastore.transaction() as tx:
        # With no wait at all (busy_timeout 0) a checkpoint either does its work now or
        # says it could not (busy): it never queues behind a reader.
        timeout = _pragma(tx, "busy_timeout")
        checkpoints = ["PRAGMA wal_checkpoint(PASSIVE)"]
        if truncate_wal:
            checkpoints.append("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = _outside_transaction(
            tx, "PRAGMA busy_timeout = 0", *checkpoints, f"PRAGMA busy_timeout = {timeout}"
        )
        after = _size(tx)
    return Reclaimed(before=before, after=after, wal_truncated=truncate_wal and busy == 0)


def _outside_transaction(tx: Transaction, *statements: str) -> int:
    """Run ``statements`` on the writer's connection between transactions (Honker runs
    every write inside ``BEGIN IMMEDIATE``, where neither VACUUM nor a checkpoint may
    run): leave it, run them, begin again for Honker to commit. The ``busy`` value of
    the last checkpoint among them (0: it did all its work)."""
    tx.execute("COMMIT")
    last = 0
    try:
        for statement in statements:
            rows = tx.query(statement)
            if rows and "wal_checkpoint" in statement:
                last = int(next(iter(rows[0].values())))
    finally:
        tx.execute("BEGIN IMMEDIATE")
    return last


def retirement_offsets(source: Source, stream: str, after: int, upto: int) -> list[int]:
    """The offsets of the retirement records in ``(after, upto]``, ascending: what a
    reader following only some runs' entries must read as well (a record names runs
    whose own entries it removed)."""
    rows = source.query(
        'SELECT "offset" FROM _honker_stream WHERE topic = ? AND "offset" > ? '
        'AND "offset" <= ? AND payload ->> \'$.type\' = ? ORDER BY "offset"',
        [stream, after, upto, RETIREMENT_TYPE],
    )
    return [int(row["offset"]) for row in rows]


def retired_ranges(
    source: Source, stream: str, plain_state: PlainState | None = None
) -> list[tuple[int, int]]:
    """Every offset range the stream's retirement records removed, adjacent ones joined:
    what ``verify`` feeds :func:`streams.check.explained_by_ranges` (a gap spanning two
    passes' removals is one gap in the file).

    Encrypted or compressed records are undone with ``plain_state``; without it
    :class:`EncryptedRecordError`. A record whose data is damaged (or does not decrypt)
    explains nothing: its gap stays a hole."""
    rows = source.query(
        'SELECT "offset", payload FROM _honker_stream WHERE topic = ? '
        "AND payload ->> '$.type' = ? ORDER BY \"offset\"",
        [stream, RETIREMENT_TYPE],
    )
    spans: list[tuple[int, int]] = []
    for row in rows:
        try:
            envelope = decode_envelope(row["payload"])
        except msgspec.DecodeError:
            continue  # not an envelope: verify's envelope check names it
        try:
            spans += ranges_of(envelope, plain_state, offset=int(row["offset"])) or ()
        except msgspec.DecodeError:
            continue  # a damaged record explains nothing: its gap stays a hole
    joined: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if joined and first <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(last, joined[-1][1]))
        else:
            joined.append((first, last))
    return joined
