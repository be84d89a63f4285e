"""What the domain relies on in eventsourcing's internals (domain/es_compat.py).

If an eventsourcing upgrade changes any of it, these tests fail, and
:mod:`domain.es_compat` is the one module to adapt. They use eventsourcing's own
in-memory (POPO) persistence: what is pinned is eventsourcing's ``Application``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application, ProcessingEvent, project_aggregate
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Recording

from domain import es_compat


class Counter(Aggregate):
    """A small aggregate: a name and a count."""

    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Counted")
    def add(self, n: int) -> None:
        self.count += n


class Traced(Application[UUID]):
    """An application noting which of save's steps run, in order."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.steps: list[str] = []

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        self.steps.append("record")
        return super()._record(processing_event)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        self.steps.append("take_snapshots")
        super()._take_snapshots(processing_event)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        self.steps.append(f"_notify({len(recordings)})")

    def notify(self, new_events: list[Any]) -> None:
        self.steps.append(f"notify({len(new_events)})")


def _saved_by_hand(app: Application[UUID], *aggregates: Aggregate) -> None:
    """What Metagraph._save_lean does, through es_compat."""
    processing = es_compat.collect(aggregates)
    recordings = es_compat.record_processed(app, processing)
    es_compat.take_snapshots(app, processing)
    es_compat.notify_saved(app, processing, recordings)


def _stored(app: Application[UUID]) -> list[tuple[UUID, int, str]]:
    return [
        (n.originator_id, n.originator_version, n.topic)
        for n in app.recorder.select_notifications(start=1, limit=100)
    ]


def test_the_pinned_eventsourcing_release_is_installed() -> None:
    # es_compat was checked against 9.5; pyproject.toml pins ">=9.5.6,<9.6".
    assert importlib.metadata.version("eventsourcing").startswith("9.5.")


def test_the_private_steps_of_save_exist_with_the_signatures_es_compat_calls() -> None:
    assert list(inspect.signature(Application._record).parameters) == [
        "self",
        "processing_event",
    ]
    assert list(inspect.signature(Application._take_snapshots).parameters) == [
        "self",
        "processing_event",
    ]
    assert list(inspect.signature(Application._notify).parameters) == ["self", "recordings"]
    assert {"events", "aggregates", "saved_kwargs"} <= set(vars(ProcessingEvent()))


def test_save_is_record_then_snapshots_then_both_notify_hooks_and_es_compat_does_the_same() -> None:
    by_save, by_hand = Traced(), Traced()
    for save in (by_save.save, lambda *a: _saved_by_hand(by_hand, *a)):
        first, second = Counter("a"), Counter("b")
        second.add(2)
        save(first, second)
        first.add(1)
        save(first)
    expected = [
        *("record", "take_snapshots", "_notify(3)", "notify(3)"),
        *("record", "take_snapshots", "_notify(1)", "notify(1)"),
    ]
    assert by_save.steps == expected
    assert by_hand.steps == expected
    assert [(v, t) for _, v, t in _stored(by_hand)] == [(v, t) for _, v, t in _stored(by_save)]


def test_record_writes_every_event_in_one_recorder_call_with_the_saved_kwargs() -> None:
    app = Traced()
    calls: list[tuple[int, dict[str, Any]]] = []
    insert = app.recorder.insert_events

    def counted_insert(stored_events: list[Any], **kwargs: Any) -> Any:
        calls.append((len(stored_events), kwargs))
        return insert(stored_events, **kwargs)

    app.recorder.insert_events = counted_insert  # type: ignore[method-assign]
    first, second = Counter("a"), Counter("b")
    processing = es_compat.collect((first, second), side_writes=["a side write"])
    recordings = es_compat.record_processed(app, processing)
    assert len(recordings) == 2
    assert [(n, kw.get("side_writes")) for n, kw in calls] == [(2, ["a side write"])]
    assert {a.id for a in (first, second)} == set(processing.aggregates)


def test_record_refuses_a_stale_version_and_writes_nothing() -> None:
    app = Traced()
    counter = Counter("a")
    app.save(counter)
    stale = app.repository.get(counter.id)
    counter.add(1)
    app.save(counter)
    stale.add(5)
    before = _stored(app)
    with pytest.raises(IntegrityError):
        es_compat.record_processed(app, es_compat.collect((stale,)))
    assert _stored(app) == before


def test_project_folds_like_project_aggregate() -> None:
    app = Traced()
    counter = Counter("a")
    counter.add(2)
    counter.add(3)
    app.save(counter)
    events = list(app.events.get(counter.id))
    ours, theirs = es_compat.project(None, events), project_aggregate(None, events)
    assert (ours.id, ours.version, ours.name, ours.count) == (
        theirs.id,
        theirs.version,
        theirs.name,
        theirs.count,
    )
    assert ours.count == 5


def test_save_is_overridden_tells_a_subclass_that_changed_save() -> None:
    class OwnSave(Application[UUID]):
        def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
            return super().save(*objs, **kwargs)

    assert not es_compat.save_is_overridden(Traced())
    assert es_compat.save_is_overridden(OwnSave())
