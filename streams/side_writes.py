"""Honker writes that commit with a batch of events: queue jobs, notifications, entries
of a named stream, consumer positions.

The platform pairs data writes with Honker's primitives ("INSERT INTO nodes and
queue.enqueue() commit atomically", ADR-039): a job enqueued for the events just
recorded must exist exactly when they do. :meth:`HonkerApplicationRecorder.insert_events`
takes them as ``side_writes=`` and runs them in the SAME transaction as the events and
their index rows, after those: a version conflict, a bad side write or a crash before
the commit leaves none of them; after the commit all of them are there.

The ``position`` kind is what makes a consumer exactly-once when its writes are domain
events (``projections.call_intake`` folds a durable event target's entries into the call
graph): the consumer's position moves in the transaction that records the events it
derived from the entries, and only from the position it read (a compare-and-set), so a
crash can neither lose an entry nor apply one twice, and two copies of one consumer
cannot both apply a batch.

A side write is any object with the attributes of :class:`SideWrite` (the domain's unit
of work builds its own; ``streams`` does not import it). ``payload`` is JSON text.
:func:`notify` and :func:`publish_entry` are the single statements behind the ``notify``
and ``publish`` kinds, shared with :mod:`streams.target`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import Final, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from streams.errors import ConfigurationError
from streams.index import id_key, index_table
from streams.positions import save_position, saved_position
from streams.retirement import remove_entries
from streams.transaction import Transaction

__all__ = [
    "KINDS",
    "PositionMove",
    "Removal",
    "SideWrite",
    "advance_position",
    "apply_side_writes",
    "check_side_writes",
    "expect_version",
    "notify",
    "publish_entry",
]

KINDS: Final = ("enqueue", "notify", "publish", "position", "retire", "expect")


class SideWrite(Protocol):
    """What the recorder needs of a side write.

    ``kind`` is ``enqueue`` (``target`` = queue name; ``delay_s``, ``priority`` and
    ``max_attempts`` as Honker's ``Queue.enqueue``), ``notify`` (``target`` = channel),
    ``publish`` (``target`` = a named stream other than the events' own; ``key`` is the
    entry's key), ``position`` (``target`` = the stream read, ``key`` = the consumer,
    ``payload`` = a :class:`PositionMove` as JSON) or ``expect`` (``target`` = the events'
    stream, ``key`` = an aggregate's id, ``payload`` = its version as read: see
    :func:`expect_version`).
    """

    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def payload(self) -> str: ...
    @property
    def key(self) -> str | None: ...
    @property
    def delay_s(self) -> int | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...


class PositionMove(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A consumer's position moving from ``expected`` (None: never saved) to ``position``."""

    position: int
    expected: int | None


def check_side_writes(side_writes: Sequence[SideWrite], event_stream: str) -> None:
    """Refuse side writes the recorder cannot run, before anything is written."""
    for write in side_writes:
        if write.kind not in KINDS:
            raise ConfigurationError(
                f"unknown side write kind {write.kind!r}: use one of {', '.join(KINDS)}"
            )
        if not write.target:
            raise ConfigurationError(f"a {write.kind} side write needs a non-empty target name")
        if write.kind == "publish" and write.target == event_stream:
            raise ConfigurationError(
                f"cannot publish to {event_stream!r}: it is the events' own stream, which only "
                "the recorder writes; publish to another stream name"
            )
        if write.kind == "retire" and write.target != event_stream:
            raise ConfigurationError(
                f"a retire side write removes events of the events' own stream "
                f"{event_stream!r}, not of {write.target!r}"
            )
        if write.kind == "retire":
            _removal(write)
        if write.kind == "expect":
            _expected_version(write, event_stream)
        if write.kind == "position":
            _move(write)
            if not write.key:
                raise ConfigurationError("a position side write needs the consumer's name as key")


def apply_side_writes(tx: Transaction, side_writes: Sequence[SideWrite]) -> None:
    """Run checked side writes in ``tx`` (Honker's own SQL functions, as its bindings do)."""
    for write in side_writes:
        if write.kind == "enqueue":
            tx.query(
                "SELECT honker_enqueue(?, ?, NULL, ?, ?, ?, NULL) AS id",
                [write.target, write.payload, write.delay_s, write.priority, write.max_attempts],
            )
        elif write.kind == "notify":
            notify(tx, write.target, write.payload)
        elif write.kind == "publish":
            publish_entry(tx, write.target, write.key, write.payload)
        elif write.kind == "retire":
            removal = _removal(write)
            remove_entries(tx, write.target, removal.aggregates, removal.offsets, removal.partial)
        elif write.kind == "expect":
            expect_version(tx, write.target, str(write.key), int(write.payload))
        else:
            move = _move(write)
            advance_position(tx, str(write.key), write.target, move.position, move.expected)


def notify(tx: Transaction, channel: str, payload: str) -> int:
    """Notify Honker listeners of ``channel`` when ``tx`` commits; the notification's id."""
    return int(tx.query("SELECT notify(?, ?) AS id", [channel, payload])[0]["id"])


def publish_entry(tx: Transaction, stream: str, key: str | None, payload: str) -> int:
    """Append an entry to the named Honker stream ``stream`` in ``tx``; its offset."""
    rows = tx.query("SELECT honker_stream_publish(?, ?, ?) AS o", [stream, key, payload])
    return int(rows[0]["o"])


def advance_position(
    tx: Transaction, consumer: str, stream: str, position: int, expected: int | None
) -> None:
    """Move ``consumer``'s position in ``stream`` from ``expected`` to ``position`` in ``tx``.

    Raises ``IntegrityError`` (and the caller's transaction rolls back) when the saved
    position is not ``expected`` any more: another copy of the consumer moved it since
    it was read, so what this transaction derived from those entries must not commit.
    """
    saved = saved_position(tx, consumer, stream)
    if saved != expected:
        raise IntegrityError(
            f"consumer {consumer!r} of {stream!r} is at {saved}, not at {expected} as read: "
            "another copy of it moved on. Nothing was written; read its position again."
        )
    save_position(tx, consumer, stream, position)


def expect_version(tx: Transaction, stream: str, aggregate: str, version: int) -> None:
    """Raise ``IntegrityError`` (``tx`` rolls back) unless ``aggregate``'s last event in
    ``stream`` is still at ``version`` (0: it has none): a unit that relied on the
    aggregate as it read it, without writing it, commits only if no writer changed it."""
    key: bytes | str = aggregate
    with suppress(ValueError):
        key = id_key(UUID(aggregate))
    rows = tx.query(
        f'SELECT max(originator_version) AS v FROM "{index_table(stream)}" WHERE originator_id = ?',
        [key],
    )
    found = (rows[0]["v"] if rows else None) or 0  # 0: the aggregate has no events
    if found != version:
        raise IntegrityError(
            f"aggregate {aggregate} is at version {found}, not at {version} as read: another "
            "writer changed it. Nothing was written; read it again."
        )


def _expected_version(write: SideWrite, event_stream: str) -> int:
    if write.target != event_stream:
        raise ConfigurationError(
            f"an expect side write checks an aggregate of the events' own stream "
            f"{event_stream!r}, not of {write.target!r}"
        )
    if not write.key or not write.payload.isdigit():
        raise ConfigurationError(
            "an expect side write names the aggregate as key and its version as payload"
        )
    return int(write.payload)


class Removal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Aggregates (ids as text) whose events, at exactly ``offsets``, leave the file;
    of the ``partial`` aggregates (which stay) only their events at ``offsets``."""

    aggregates: list[str]
    offsets: list[int]
    partial: list[str] = []


def _removal(write: SideWrite) -> Removal:
    try:
        removal = msgspec.json.decode(write.payload, type=Removal)
    except msgspec.DecodeError as exc:
        raise ConfigurationError(
            f"a retire side write's payload must be {{aggregates, offsets}} as JSON: {exc}"
        ) from None
    if not (removal.aggregates or removal.partial) or not removal.offsets:
        raise ConfigurationError("a retire side write names aggregates and their offsets")
    return removal


def _move(write: SideWrite) -> PositionMove:
    try:
        move = msgspec.json.decode(write.payload, type=PositionMove)
    except msgspec.DecodeError as exc:
        raise ConfigurationError(
            f"a position side write's payload must be {{position, expected}} as JSON: {exc}"
        ) from None
    if move.position < 1 or (move.expected is not None and move.expected >= move.position):
        raise ConfigurationError(
            f"a position side write must move forward to an offset of at least 1, got "
            f"{move.expected} -> {move.position}"
        )
    return move
