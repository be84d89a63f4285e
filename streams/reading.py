"""Reading a tenant file's streams: entries with their envelopes, heads, counts, aggregates.

What readers outside eventsourcing need (projectors, subscriptions, replays) and
``select_notifications`` does not give: the envelope itself (its ``time`` above all, for
lag in seconds and timestamps), the head with its time, counts between two offsets,
filters by event type, an aggregate's offsets, and entries by offset. Every function
takes a :class:`~streams.transaction.Source` (a ``HonkerDatastore``: the reader pool,
never inside a write transaction; or a write transaction: the writer's view) and the
stream's name (the topic: the application's name unless ``HONKER_STREAM`` says
otherwise). Entries come in offset order. Offsets are one sequence per file, so one
stream's offsets have gaps.

Event types are matched by exact name: ``streams`` knows no aliases, so a caller that
matches a renamed type passes every name it was recorded under (for the domain's
events: ``domain.names.names_of``).

This module and :mod:`streams.positions` are the only code that knows Honker's tables.
:func:`stream_table` names the stream table for the one kind of read that needs it: a
single statement that joins the stream with a projection's own tables, because one
statement is one snapshot of the file (``projections.replay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

import streams.envelope as envelopes
from streams.index import id_key, index_table
from streams.transaction import Source

__all__ = [
    "Entry",
    "Head",
    "VersionOffset",
    "aggregate_offsets",
    "count_between",
    "read_after",
    "read_at",
    "stream_head",
    "stream_table",
    "time_at",
]

_TABLE = "_honker_stream"


class Entry(NamedTuple):
    """One stream entry: its offset (the event's notification id) and its envelope's
    JSON text, exactly as stored (see :mod:`streams.envelope`)."""

    offset: int
    payload: str

    def envelope(self) -> envelopes.Envelope:
        """The decoded envelope; ``msgspec.ValidationError`` if the payload is not one."""
        return envelopes.decode(self.payload)


class Head(NamedTuple):
    """A stream's last entry: its offset and envelope ``time`` (ms since the Unix epoch,
    UTC); ``(0, None)`` for an empty stream."""

    offset: int
    time: int | None


class VersionOffset(NamedTuple):
    """Where one version of an aggregate is in the stream."""

    version: int
    offset: int


def stream_table() -> str:
    """The SQLite table of stream entries, for a statement that must join the stream
    with a projection's own tables (one statement is one snapshot of the file).

    Columns: ``"offset"`` (INTEGER PRIMARY KEY: the entry's offset), ``topic`` (the
    stream's name) and ``payload`` (the envelope's JSON text); indexed on ``(topic,
    "offset")``. It is Honker's table (version pinned in pyproject.toml, its layout tested
    in tests/streams/test_reading.py): read it, never write it. Prefer the functions of
    this module when no join is needed.
    """
    return _TABLE


def read_after(
    source: Source,
    stream: str,
    after: int,
    *,
    limit: int | None = None,
    upto: int | None = None,
    types: Sequence[str] = (),
) -> list[Entry]:
    """The entries with ``after < offset`` (and ``offset <= upto`` if given), in offset
    order, at most ``limit`` of them (None: all); only those whose envelope ``type`` is
    in ``types`` when it is not empty."""
    sql = [f'SELECT "offset", payload FROM {_TABLE} WHERE topic = ? AND "offset" > ?']
    params: list[Any] = [stream, after]
    if upto is not None:
        sql.append('AND "offset" <= ?')
        params.append(upto)
    if types:
        sql.append(f"AND payload ->> '$.type' IN ({', '.join('?' * len(types))})")
        params += list(types)
    sql.append('ORDER BY "offset"')
    if limit is not None:
        sql.append("LIMIT ?")
        params.append(limit)
    return [Entry(row["offset"], row["payload"]) for row in source.query(" ".join(sql), params)]


def read_at(source: Source, stream: str, offsets: Sequence[int]) -> list[Entry]:
    """The entries of ``stream`` at ``offsets``, in offset order, each once; an offset
    with no entry of ``stream`` is left out. One statement, whatever the number."""
    if not offsets:
        return []
    rows = source.query(
        f'SELECT "offset", payload FROM {_TABLE} WHERE topic = ? AND "offset" IN '
        '(SELECT value FROM json_each(?)) ORDER BY "offset"',
        [stream, msgspec.json.encode(list(offsets)).decode()],
    )
    return [Entry(row["offset"], row["payload"]) for row in rows]


def stream_head(source: Source, stream: str) -> Head:
    """The stream's last offset and its envelope's ``time``; ``Head(0, None)`` if empty."""
    rows = source.query(
        f"SELECT \"offset\", payload ->> '$.time' AS time FROM {_TABLE} "
        'WHERE topic = ? ORDER BY "offset" DESC LIMIT 1',
        [stream],
    )
    if not rows:
        return Head(0, None)
    return Head(int(rows[0]["offset"]), _int_or_none(rows[0]["time"]))


def time_at(source: Source, stream: str, offset: int) -> int | None:
    """The envelope ``time`` of the entry at ``offset`` (for ``offset <= 0``: of the
    stream's first entry); None if there is no such entry."""
    if offset <= 0:
        sql = f"SELECT payload ->> '$.time' AS time FROM {_TABLE} WHERE topic = ? "
        sql += 'ORDER BY "offset" LIMIT 1'
        params: list[Any] = [stream]
    else:
        sql = f"SELECT payload ->> '$.time' AS time FROM {_TABLE} "
        sql += 'WHERE topic = ? AND "offset" = ?'
        params = [stream, offset]
    rows = source.query(sql, params)
    return _int_or_none(rows[0]["time"]) if rows else None


def count_between(source: Source, stream: str, after: int, upto: int) -> int:
    """How many entries have ``after < offset <= upto`` (not ``upto - after``: offsets
    have gaps)."""
    if upto <= after:
        return 0
    rows = source.query(
        f'SELECT count(*) AS n FROM {_TABLE} WHERE topic = ? AND "offset" > ? AND "offset" <= ?',
        [stream, after, upto],
    )
    return int(rows[0]["n"])


def aggregate_offsets(
    source: Source, stream: str, originator_id: UUID | str, *, upto: int | None = None
) -> list[VersionOffset]:
    """Where the aggregate ``originator_id`` is in ``stream``: each recorded version and
    its offset, in version order (those at offsets up to ``upto`` if given). Read
    through the aggregate index, never by scanning the stream; :func:`read_at` reads the
    entries. Give the id as it was recorded: a UUID, or text with
    ``ORIGINATOR_ID_TYPE=text``."""
    sql = (
        f'SELECT originator_version AS version, "offset" FROM "{index_table(stream)}" '
        "WHERE originator_id = ?"
    )
    params: list[Any] = [id_key(originator_id)]
    if upto is not None:
        sql += ' AND "offset" <= ?'
        params.append(upto)
    rows = source.query(sql + " ORDER BY originator_version", params)
    return [VersionOffset(int(row["version"]), int(row["offset"])) for row in rows]


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float | str) else None
