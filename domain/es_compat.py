"""The one place graphstore relies on eventsourcing's internals (eventsourcing 9.5).

Nothing else in ``domain``, ``streams``, ``projections`` or ``graphstore`` uses a private
name of eventsourcing (the Honker subscription, for one, is built on eventsourcing's
public ``Subscription`` base).

:class:`domain.Metagraph` records a unit of work's events, and a command's, without
going through ``Application.save``: ``save`` collects events through two runtime
Protocol checks per object (about 15 us of a 150 us command, and one per event for a
unit of work), and a unit of work must hand the recorder its side writes with the
events. So the application does what ``save`` does, step by step, and those steps are
private methods of eventsourcing's ``Application``. Every such use is here, and
``tests/domain/test_eventsourcing_compat.py`` pins what it relies on, so that an
eventsourcing upgrade that changes it fails that test, not the store.

What this module relies on, as eventsourcing 9.5 (``>=9.5.6,<9.6``, pinned in
``pyproject.toml``) does it:

- ``Application.save(*objs, **kwargs)`` is, in order: ``ProcessingEvent.collect_events``
  (each aggregate's pending events, the aggregate by id, ``kwargs`` into
  ``saved_kwargs``), ``_record``, ``_take_snapshots``, ``_notify(recordings)``, then the
  deprecated ``notify(events)``; :func:`collect` + :func:`record_processed` +
  :func:`take_snapshots` + :func:`notify_saved` is that sequence;
- ``Application._record(processing)`` writes ``processing.events`` with ONE
  ``events.put(events, tracking=..., **processing.saved_kwargs)`` (one recorder
  transaction: the recorder receives the side writes as a keyword argument), then caches
  ``processing.aggregates`` (unless fast-forwarding); it returns the recordings;
- ``Application._notify(recordings)`` is the hook called after a save (a no-op on
  ``Application``, overridden by eventsourcing's process applications), so a save made
  here calls it like ``save`` does;
- ``project_aggregate(aggregate, events)`` is a fold of ``event.mutate(aggregate)`` (plus
  a runtime Protocol ``assert`` per event, which :func:`project` leaves out).

Where eventsourcing has a public way, the domain uses it (``Application.save`` when a
subclass overrides it, ``repository.get``, ``snapshots.put``, ``take_snapshot``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import Recording

__all__ = [
    "collect",
    "notify_saved",
    "project",
    "record_processed",
    "save_is_overridden",
    "take_snapshots",
]


def save_is_overridden(app: Application[UUID]) -> bool:
    """Whether ``app``'s class changed ``Application.save`` (then the domain calls it,
    rather than doing its steps itself)."""
    return type(app).save is not Application.save


def collect(
    aggregates: Iterable[Aggregate],
    events: Iterable[DomainEventProtocol[UUID]] = (),
    **kwargs: Any,
) -> ProcessingEvent[UUID]:
    """What ``ProcessingEvent.collect_events(*aggregates, **kwargs)`` gathers, without
    its runtime Protocol checks (the arguments are always aggregates): each aggregate's
    pending events, the aggregate by id (to be cached by :func:`record_processed`), then
    ``events`` (already collected, in the order they were triggered) and ``kwargs``
    for the recorder (e.g. ``side_writes``)."""
    processing: ProcessingEvent[UUID] = ProcessingEvent()
    for aggregate in aggregates:
        processing.events.extend(aggregate.collect_events())
        processing.aggregates[aggregate.id] = aggregate
    processing.events.extend(events)
    if kwargs:
        processing.saved_kwargs.update(kwargs)
    return processing


def record_processed(
    app: Application[UUID], processing: ProcessingEvent[UUID]
) -> list[Recording[UUID]]:
    """Record ``processing``'s events in ONE recorder call (with its ``saved_kwargs``)
    and cache its aggregates: ``Application._record``. Raises the recorder's
    ``IntegrityError`` on a version conflict, having written nothing."""
    return app._record(processing)


def take_snapshots(app: Application[UUID], processing: ProcessingEvent[UUID]) -> None:
    """The snapshots ``Application.save`` takes after recording (those its
    ``snapshotting_intervals`` ask for): ``Application._take_snapshots``."""
    app._take_snapshots(processing)


def notify_saved(
    app: Application[UUID],
    processing: ProcessingEvent[UUID],
    recordings: list[Recording[UUID]],
) -> None:
    """Tell ``app`` its events are recorded, as ``Application.save`` does: its
    ``_notify(recordings)`` hook, then the deprecated ``notify(events)``."""
    app._notify(recordings)
    app.notify(processing.events)


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's ``project_aggregate`` without its per-event ``assert isinstance(
    event, CanMutateProtocol)``: a runtime Protocol check costs about 10 us, as much as
    decoding the event, for each of the events replayed after a snapshot."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
