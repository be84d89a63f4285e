"""A unit of work: many commands on many aggregates of one tenant, ONE transaction.

``with app.transaction() as tx:`` (:meth:`domain.Metagraph.transaction`) gathers the
events of every command run inside the block, on any aggregates, and records them with
one recorder call when the block ends: all of them, or none. Beside the events, the
platform's Honker primitives ride in the same transaction (ADR-039: "INSERT INTO nodes
and queue.enqueue() commit atomically"): :meth:`UnitOfWork.enqueue` a job,
:meth:`UnitOfWork.notify` a channel, :meth:`UnitOfWork.publish` to a named stream,
:meth:`UnitOfWork.save_position` of a consumer (its writes and its position together). They
are kept here as :class:`SideWrite` values and handed to the recorder with the events,
so a refused command, an exception in the block, a version conflict or a crash before
the commit leaves no job, no notification and no stream entry.

The retry rule: a unit cannot be re-run for you (it is your code), so a version conflict
at commit (another process changed one of the aggregates since this unit read it)
raises :class:`~domain.errors.ConcurrencyError` and writes nothing; run the whole block
again, its commands re-checked on fresh state. :meth:`domain.Metagraph.atomic` does that
for a function (up to 3 attempts), as call ingestion does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate, CanMutateAggregate

from domain.errors import ValidationError

__all__ = ["SideWrite", "UnitOfWork"]

_A = TypeVar("_A", bound=Aggregate)
_MAX_NAME: Final = 128


class SideWrite(msgspec.Struct, frozen=True, kw_only=True):
    """A Honker write committed with the unit's events (see :mod:`streams.side_writes`).

    ``kind`` is ``enqueue``, ``notify``, ``publish``, ``position``, ``retire`` or
    ``expect``; ``target`` the queue, channel or stream; ``payload`` JSON text (for
    ``position``: ``{position, expected}``, ``key`` being the consumer; for ``retire``:
    ``{aggregates, offsets}``; for ``expect``: the version, ``key`` being the aggregate).
    """

    kind: str
    target: str
    payload: str
    key: str | None = None
    delay_s: int | None = None
    priority: int = 0
    max_attempts: int = 3


class UnitOfWork:
    """The open unit of a :meth:`~domain.Metagraph.transaction` block.

    Commands of the application run inside the block join it by themselves; code that
    works on aggregates directly uses :meth:`load` and :meth:`add`. ``fetch`` is how the
    unit loads an aggregate it has not seen yet (the application's cache or store;
    ``None`` if unknown).
    """

    def __init__(
        self,
        fetch: Callable[[UUID], Aggregate | None],
        refer: Callable[[UUID], UUID | None] | None = None,
    ) -> None:
        self._fetch = fetch
        self.refer = refer
        """Where an id taken by a reference points (the aggregate whose event filed it,
        or the id itself when an event of its own took it; ``None``: not taken), when
        the application's recorder files references; else ``None`` (docs/events.md)."""
        self.references: dict[UUID, UUID] = {}
        """References this unit's events file (id -> the aggregate filing it): what
        :attr:`refer` will find once the unit commits."""
        self.thread = threading.get_ident()
        """The thread that opened the unit (the only one that can use it: it holds the
        application's lock)."""
        self.aggregates: dict[UUID, Aggregate] = {}
        self.versions: dict[UUID, int] = {}
        """Each loaded aggregate's recorded version when the unit first saw it."""
        self.events: list[CanMutateAggregate[UUID]] = []
        """The unit's events so far, in the order they were triggered."""
        self.side_writes: list[SideWrite] = []
        self.poisoned: BaseException | None = None
        self.committed: list[Callable[[], None]] = []
        self.expected: dict[UUID, int] = {}
        """Aggregates the unit relies on as read without loading them (their version):
        checked at commit (see :meth:`~domain.Metagraph.peek`)."""
        self.description: str | None = None
        self.details: dict[str, Any] = {}

    # --- aggregates -------------------------------------------------------------------

    def load(self, aggregate_id: UUID, cls: type[_A]) -> _A | None:
        """The aggregate as this unit sees it (its own changes included), or ``None``."""
        found = self.aggregates.get(aggregate_id)
        if found is None:
            found = self._fetch(aggregate_id)
            if found is None:
                return None
            self.aggregates[aggregate_id] = found
            self.versions[aggregate_id] = found.version - len(found.pending_events)
        return found if isinstance(found, cls) else None

    def add(self, *aggregates: Aggregate) -> None:
        """Commit these aggregates' pending events with the unit (new ones included).

        The events are taken now, so the stream records a unit's events in the order
        they happened, across aggregates: call this right after each change (every
        command does), never after a batch of changes to several aggregates.
        """
        for aggregate in aggregates:
            if aggregate.id not in self.aggregates:
                self.aggregates[aggregate.id] = aggregate
                self.versions[aggregate.id] = aggregate.version - len(aggregate.pending_events)
            self.events.extend(aggregate.collect_events())

    def describe(self, what: str, details: dict[str, Any] | None = None) -> None:
        """Say what this unit does, for its audit record (the application's
        :attr:`~domain.Metagraph.auditor`); ``details`` must be JSON and hold no secret.
        Without it, the record lists the kinds of events written."""
        if not isinstance(what, str) or not what.strip() or len(what) > 200:
            raise ValidationError(f"invalid description {what!r}: use 1-200 characters")
        self.description = what
        if details is not None:
            self.details = msgspec.json.decode(_json(details))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the unit has committed (never if it rolls back)."""
        self.committed.append(callback)

    # --- Honker side writes -------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        delay_s: int | None = None,
        priority: int = 0,
        max_attempts: int = 3,
    ) -> None:
        """Enqueue a job on the tenant file's Honker queue ``queue`` if the unit commits."""
        if max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, got {max_attempts}")
        self.side_writes.append(
            SideWrite(
                kind="enqueue",
                target=_name(queue, "queue"),
                payload=_json(payload),
                delay_s=delay_s,
                priority=priority,
                max_attempts=max_attempts,
            )
        )

    def notify(self, channel: str, payload: Any) -> None:
        """Notify Honker listeners of ``channel`` if (and when) the unit commits."""
        self.side_writes.append(
            SideWrite(kind="notify", target=_name(channel, "channel"), payload=_json(payload))
        )

    def publish(self, stream: str, payload: Any, *, key: str | None = None) -> None:
        """Append an entry to the named Honker stream ``stream`` if the unit commits.

        The tenant's event stream itself is refused: only the recorder writes it.
        """
        self.side_writes.append(
            SideWrite(
                kind="publish", target=_name(stream, "stream"), payload=_json(payload), key=key
            )
        )

    def save_position(
        self, consumer: str, stream: str, position: int, *, expected: int | None
    ) -> None:
        """Move ``consumer``'s position in ``stream`` to ``position`` if the unit commits.

        ``expected`` is the position the consumer read before deriving this unit's
        commands (None if it had never saved one): if another copy of the consumer moved
        it since, the unit writes nothing and raises
        :class:`~domain.errors.ConcurrencyError` (read the position again). This is how
        a consumer whose writes are domain events applies each entry exactly once.
        """
        if not isinstance(position, int) or isinstance(position, bool) or position < 1:
            raise ValidationError(f"a position must be an integer of at least 1, got {position!r}")
        if expected is not None and (not isinstance(expected, int) or expected >= position):
            raise ValidationError(
                f"a position moves forward: expected {expected!r} must be below {position}"
            )
        self.side_writes.append(
            SideWrite(
                kind="position",
                target=_name(stream, "stream"),
                key=_name(consumer, "consumer"),
                payload=_json({"position": position, "expected": expected}),
            )
        )

    def retire(
        self,
        stream: str,
        aggregate_ids: list[UUID],
        offsets: list[int],
        *,
        partial: list[UUID] | None = None,
    ) -> None:
        """Delete these aggregates' events (their ``offsets`` in ``stream``, their index
        rows and snapshots) from the file if the unit commits, in its transaction; of
        the ``partial`` aggregates (which stay, e.g. a legacy call graph) only their
        events at ``offsets``.

        ``offsets`` must be every offset the aggregates have, plus the partial ones': if
        another writer added an event to one of them since they were read, the unit
        writes nothing and raises :class:`~domain.errors.ConcurrencyError` (read them
        again). For retention (:mod:`domain.retention`): the unit also records the
        retirement record.
        """
        if not (aggregate_ids or partial) or not offsets:
            raise ValidationError("a retire side write names aggregates and their offsets")
        self.side_writes.append(
            SideWrite(
                kind="retire",
                target=_name(stream, "stream"),
                payload=_json(
                    {
                        "aggregates": [str(a) for a in aggregate_ids],
                        "offsets": sorted(offsets),
                        "partial": [str(a) for a in partial or ()],
                    }
                ),
            )
        )


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise ValidationError(f"invalid {what} name {value!r}: use 1-{_MAX_NAME} characters")
    return value


def _json(payload: Any) -> str:
    try:
        return msgspec.json.encode(payload).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValidationError(
            f"a side write's payload must be JSON (dicts, lists, str, numbers, bools, None): {exc}"
        ) from None
