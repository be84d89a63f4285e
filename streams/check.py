"""Checking a tenant file's stream: the store's fsck at the bottom floor (docs/verify.md).

What only ``streams`` can check, because only it knows Honker's tables:

* :func:`integrity_problems`: SQLite's ``PRAGMA integrity_check`` of the file;
* :func:`offset_gaps`: the file's offsets are one sequence (``AUTOINCREMENT``, one
  writer, a rolled-back transaction gives its offsets back), so a missing offset below
  the highest ever given is an entry that was deleted, unless something explains it
  (``explained``: the hook a retention record uses to say "these were removed on
  purpose");
* :func:`index_problems`: the aggregate index and the stream agree both ways (every
  entry has its index row with the same aggregate and version, and one row per
  reference it files (:mod:`streams.index`); every index row points at an entry of the
  stream, of its aggregate and version or filing it as a reference);
* :func:`envelope_problems`: every payload is an envelope of this tenant;
* :func:`snapshot_file`: a consistent copy of a live file (SQLite's online backup API,
  one read transaction: writers keep writing), for checks that must see one moment;
* :func:`aggregate_ids`: the aggregates the index knows, for a replay of each.

Each check returns :class:`StreamProblem` values (empty: it holds); the façade adds what
an operator should do about each (``graphstore.verify``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from uuid import UUID

import msgspec

import streams.envelope as envelopes
from streams.index import REF_VERSION, index_table, ref_keys, refs_of
from streams.reading import read_after
from streams.replication import explained_holes
from streams.transaction import Source

__all__ = [
    "ExplainedGaps",
    "Gap",
    "StreamProblem",
    "aggregate_ids",
    "envelope_problems",
    "explained_by_ranges",
    "first_encoded",
    "index_problems",
    "integrity_problems",
    "offset_gaps",
    "snapshot_file",
]

_TABLE: Final = "_honker_stream"
_REF_ROW: Final = (
    # index row i is a reference filed by its entry s (streams.index): version 1, and
    # its id among the entry's data.refs (a UUID as 32 hex digits)
    f"CASE WHEN i.originator_version = {REF_VERSION} AND json_valid(s.payload) THEN "
    "EXISTS (SELECT 1 FROM json_each(s.payload, '$.data.refs') r WHERE r.value = CASE "
    "WHEN typeof(i.originator_id) = 'blob' THEN lower(hex(i.originator_id)) "
    "ELSE i.originator_id END) ELSE 0 END"
)
_SHOWN: Final = 20
"""At most this many offsets are named in one problem (the count is always exact)."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets ``first`` to ``last`` (inclusive) are missing from the file."""

    first: int
    last: int


ExplainedGaps = Callable[[Gap], bool]
"""Says whether a gap is explained (e.g. removed on purpose by a retention record)."""


def explained_by_ranges(ranges: Sequence[tuple[int, int]]) -> ExplainedGaps:
    """An :data:`ExplainedGaps` for gaps lying wholly inside ``ranges`` (inclusive
    ``(first, last)`` pairs; ranges that touch or overlap count as one)."""
    merged = _merged(ranges)

    def explained(gap: Gap) -> bool:
        return any(first <= gap.first and gap.last <= last for first, last in merged)

    return explained


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` sorted, with those that touch or overlap joined."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


@dataclass(frozen=True, slots=True)
class StreamProblem:
    """One thing wrong with a stream: ``kind`` (``integrity``, ``gap``, ``index``,
    ``envelope``), the ``offsets`` concerned (the first few) and what is wrong."""

    kind: str
    message: str
    offsets: tuple[int, ...] = ()


def snapshot_file(path: Path, dest: Path) -> None:
    """Copy the SQLite file ``path`` (live: other processes may write) to ``dest`` as
    one consistent moment, with SQLite's online backup API in one step (one read
    transaction; in WAL mode it never blocks a writer). ``dest`` must not exist.

    This uses the standard library's SQLite: the calling process must not have ``path``
    open through Honker at the same time (two SQLite libraries in one process would
    release each other's POSIX locks)."""
    if dest.exists():
        raise FileExistsError(f"{dest} exists; give a new path for the snapshot")
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def integrity_problems(source: Source) -> list[StreamProblem]:
    """SQLite's ``PRAGMA integrity_check`` of the whole file (every table and index)."""
    rows = source.query("PRAGMA integrity_check", [])
    lines = [str(next(iter(row.values()))) for row in rows]
    if lines == ["ok"]:
        return []
    return [StreamProblem("integrity", line) for line in lines[:_SHOWN]]


def offset_gaps(source: Source, *, explained: ExplainedGaps | None = None) -> list[Gap]:
    """The runs of offsets missing from the file (every stream of it: offsets are one
    sequence per file), up to the highest offset ever given (``sqlite_sequence``), less
    those ``explained`` accepts and those a restore recorded in the file with their
    reason (:func:`streams.replication.record_holes`: other streams' offsets that were
    not relayed, offsets a relayed retirement record removed)."""
    gaps = [
        Gap(int(row["first"]), int(row["last"]))
        for row in source.query(
            'SELECT prev + 1 AS first, "offset" - 1 AS last FROM ('
            f'SELECT "offset", lag("offset", 1, 0) OVER (ORDER BY "offset") AS prev FROM {_TABLE}'
            ') WHERE "offset" > prev + 1',
            [],
        )
    ]
    top = source.query(
        f'SELECT (SELECT max("offset") FROM {_TABLE}) AS head, '
        f"(SELECT seq FROM sqlite_sequence WHERE name = '{_TABLE}') AS seq",
        [],
    )[0]
    head, seq = int(top["head"] or 0), int(top["seq"] or 0)
    if seq > head:
        gaps.append(Gap(head + 1, seq))
    recorded = explained_by_ranges([(h.first, h.last) for h in explained_holes(source)])
    return [gap for gap in gaps if not recorded(gap) and (explained is None or not explained(gap))]


def index_problems(source: Source, stream: str) -> list[StreamProblem]:
    """The aggregate index of ``stream`` against its entries, both ways."""
    index = index_table(stream)
    problems: list[StreamProblem] = []
    unindexed = [
        int(row["offset"])
        for row in source.query(
            # NOT IN (a subquery): SQLite builds one ephemeral index of the index's offsets
            # (the index has none on "offset"; a join would scan it once per entry).
            f'SELECT "offset" FROM {_TABLE} WHERE topic = ? AND "offset" NOT IN '
            f'(SELECT "offset" FROM "{index}") ORDER BY "offset"',
            [stream],
        )
    ]
    if unindexed:
        problems.append(
            StreamProblem(
                "index",
                f"{len(unindexed)} entries of stream {stream!r} have no row in its index "
                f"{index!r} (their aggregates cannot load them)",
                tuple(unindexed[:_SHOWN]),
            )
        )
    dangling = [
        int(row["offset"])
        for row in source.query(
            f'SELECT i."offset" FROM "{index}" i LEFT JOIN {_TABLE} s '
            'ON s."offset" = i."offset" AND s.topic = ? WHERE s."offset" IS NULL '
            'ORDER BY i."offset"',
            [stream],
        )
    ]
    if dangling:
        problems.append(
            StreamProblem(
                "index",
                f"{len(dangling)} rows of the index {index!r} point at offsets where stream "
                f"{stream!r} has no entry (an entry was deleted)",
                tuple(dangling[:_SHOWN]),
            )
        )
    mismatched = [
        int(row["offset"])
        for row in source.query(
            # CROSS JOIN keeps this order: each index row, then its entry by rowid (the
            # planner may otherwise scan the index once per entry).
            f'SELECT s."offset" FROM "{index}" i CROSS JOIN {_TABLE} s '
            'ON s."offset" = i."offset" '
            "WHERE s.topic = ? AND (json_valid(s.payload) = 0 OR "
            "i.originator_version IS NOT s.payload ->> '$.version' OR CASE "
            "WHEN typeof(i.originator_id) = 'blob' THEN lower(hex(i.originator_id)) "
            "IS NOT replace(lower(s.payload ->> '$.subject'), '-', '') "
            "ELSE i.originator_id IS NOT s.payload ->> '$.subject' END) "
            f"AND NOT ({_REF_ROW}) "
            'ORDER BY s."offset"',
            [stream],
        )
    ]
    if mismatched:
        problems.append(
            StreamProblem(
                "index",
                f"{len(mismatched)} entries of stream {stream!r} disagree with their index "
                "row (another aggregate or version than the index says)",
                tuple(mismatched[:_SHOWN]),
            )
        )
    unfiled = _unfiled_refs(source, stream, index)
    if unfiled:
        problems.append(
            StreamProblem(
                "index",
                f"{len(unfiled)} entries of stream {stream!r} file references that have no "
                f"row of their own in its index {index!r} (the calls cannot be found by "
                "their id)",
                tuple(unfiled[:_SHOWN]),
            )
        )
    return problems


def _unfiled_refs(source: Source, stream: str, index: str) -> list[int]:
    """Offsets of entries filing a reference (their ``data.refs``) whose index row is
    missing or points elsewhere."""
    unfiled: list[int] = []
    after = 0
    while True:
        rows = source.query(
            f'SELECT "offset", payload FROM {_TABLE} WHERE topic = ? AND "offset" > ? '
            """AND instr(payload, '"refs":["') > 0 ORDER BY "offset" LIMIT 500""",
            [stream, after],
        )
        for row in rows:
            payload = row["payload"]
            try:
                decoded = envelopes.decode(payload)
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue  # envelope_problems names it
            if decoded.data is msgspec.UNSET:
                continue
            try:
                keys = ref_keys(refs_of(bytes(decoded.data)), uuid_ids=_is_uuid(decoded.subject))
            except ValueError:  # a reference that is not a UUID, in a stream of UUIDs
                unfiled.append(int(row["offset"]))
                continue
            if not keys:
                continue
            found = source.query(
                f'SELECT "offset" FROM "{index}" WHERE originator_version = ? '
                f"AND originator_id IN ({','.join('?' * len(keys))})",
                [REF_VERSION, *keys],
            )
            if len(found) != len(keys) or any(r["offset"] != row["offset"] for r in found):
                unfiled.append(int(row["offset"]))
        if len(rows) < 500:
            return unfiled
        after = int(rows[-1]["offset"])


def first_encoded(source: Source, stream: str) -> tuple[int, bytes] | None:
    """The first entry of ``stream`` whose state is carried as ``data_b64`` (the writers
    configured a cipher or a compressor): its offset and its state bytes, or None when
    every state is plain JSON. What a checker reads to know it needs the tenant's cipher
    settings, and to try them on one entry before reading them all."""
    rows = source.query(
        f'SELECT "offset", payload FROM {_TABLE} WHERE topic = ? '
        "AND json_valid(payload) AND payload ->> '$.data_b64' IS NOT NULL "
        'ORDER BY "offset" LIMIT 1',
        [stream],
    )
    if not rows:
        return None
    try:
        return int(rows[0]["offset"]), envelopes.state_of(envelopes.decode(rows[0]["payload"]))
    except msgspec.DecodeError:
        return None  # not an envelope: envelope_problems names it


def _is_uuid(subject: str) -> bool:
    try:
        UUID(subject)
    except ValueError:
        return False
    return True


def envelope_problems(
    source: Source, stream: str, tenant: str, *, batch: int = 5000
) -> list[StreamProblem]:
    """Every payload of ``stream`` decodes as an envelope (:mod:`streams.envelope`) of
    ``tenant``."""
    broken: list[int] = []
    foreign: list[int] = []
    after = 0
    while True:
        entries = read_after(source, stream, after, limit=batch)
        for entry in entries:
            try:
                decoded = envelopes.decode(entry.payload)
                envelopes.state_of(decoded)
            except (msgspec.ValidationError, msgspec.DecodeError):
                broken.append(entry.offset)
                continue
            if decoded.tenant != tenant:
                foreign.append(entry.offset)
        if len(entries) < batch:
            break
        after = entries[-1].offset
    problems = []
    if broken:
        problems.append(
            StreamProblem(
                "envelope",
                f"{len(broken)} payloads of stream {stream!r} are not envelopes (damaged JSON "
                "or a missing field)",
                tuple(broken[:_SHOWN]),
            )
        )
    if foreign:
        problems.append(
            StreamProblem(
                "envelope",
                f"{len(foreign)} envelopes of stream {stream!r} name another tenant than "
                f"{tenant!r}",
                tuple(foreign[:_SHOWN]),
            )
        )
    return problems


def aggregate_ids(source: Source, stream: str, *, uuids: bool = True) -> list[UUID | str]:
    """Every aggregate the index of ``stream`` knows (UUIDs, or text ids when
    ``uuids`` is false), in index order."""
    rows = source.query(
        # not the ids taken by references only: they have no events to replay
        f'SELECT DISTINCT i.originator_id AS id FROM "{index_table(stream)}" i '
        f'CROSS JOIN {_TABLE} s ON s."offset" = i."offset" WHERE NOT ({_REF_ROW})',
        [],
    )
    found: list[UUID | str] = []
    for row in rows:
        value = row["id"]
        if uuids and isinstance(value, bytes | bytearray | list):
            found.append(UUID(bytes=bytes(value)))
        else:
            found.append(str(value))
    return found
