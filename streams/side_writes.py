"""Honker writes that commit with a batch of events: queue jobs, notifications, entries
of a named stream.

The platform pairs data writes with Honker's primitives ("INSERT INTO nodes and
queue.enqueue() commit atomically", ADR-039): a job enqueued for the events just
recorded must exist exactly when they do. :meth:`HonkerApplicationRecorder.insert_events`
takes them as ``side_writes=`` and runs them in the SAME transaction as the events and
their index rows, after those: a version conflict, a bad side write or a crash before
the commit leaves none of them; after the commit all of them are there.

A side write is any object with the attributes of :class:`SideWrite` (the domain's unit
of work builds its own; ``streams`` does not import it). ``payload`` is JSON text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from streams.errors import ConfigurationError
from streams.transaction import Transaction

__all__ = ["KINDS", "SideWrite", "apply_side_writes", "check_side_writes"]

KINDS: Final = ("enqueue", "notify", "publish")


class SideWrite(Protocol):
    """What the recorder needs of a side write.

    ``kind`` is ``enqueue`` (``target`` = queue name; ``delay_s``, ``priority`` and
    ``max_attempts`` as Honker's ``Queue.enqueue``), ``notify`` (``target`` = channel)
    or ``publish`` (``target`` = a named stream other than the events' own; ``key`` is
    the entry's key).
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


def apply_side_writes(tx: Transaction, side_writes: Sequence[SideWrite]) -> None:
    """Run checked side writes in ``tx`` (Honker's own SQL functions, as its bindings do)."""
    for write in side_writes:
        if write.kind == "enqueue":
            tx.query(
                "SELECT honker_enqueue(?, ?, NULL, ?, ?, ?, NULL) AS id",
                [write.target, write.payload, write.delay_s, write.priority, write.max_attempts],
            )
        elif write.kind == "notify":
            tx.query("SELECT notify(?, ?)", [write.target, write.payload])
        else:
            tx.query(
                "SELECT honker_stream_publish(?, ?, ?)", [write.target, write.key, write.payload]
            )
