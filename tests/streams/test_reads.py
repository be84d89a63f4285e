"""Reading one aggregate goes through the index; reading the log goes by offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from streams.persistence import HonkerApplicationRecorder, HonkerDatastore


@pytest.fixture
def recorder(tenant_file: Path) -> Any:
    datastore = HonkerDatastore(tenant_file)
    recorder = HonkerApplicationRecorder(datastore, stream="reads")
    recorder.create_table()
    yield recorder
    datastore.close()


def _plans(recorder: HonkerApplicationRecorder, call: Any) -> list[str]:
    """Run ``call`` and return SQLite's query plan for every SELECT it issued."""
    datastore = recorder.datastore
    issued: list[tuple[str, list[Any]]] = []
    original = datastore.query

    def spy(sql: str, params: Any = ()) -> list[dict[str, Any]]:
        issued.append((sql, list(params)))
        return original(sql, params)

    datastore.query = spy  # type: ignore[method-assign]
    try:
        call()
    finally:
        datastore.query = original  # type: ignore[method-assign]
    plans = []
    for sql, params in issued:
        rows = original("EXPLAIN QUERY PLAN " + sql, params)
        plans.append(" | ".join(row["detail"] for row in rows))
    return plans


def _fill(recorder: HonkerApplicationRecorder, aggregates: int, versions: int) -> list[Any]:
    ids = [uuid4() for _ in range(aggregates)]
    for version in range(1, versions + 1):
        recorder.insert_events([StoredEvent(i, version, "t:E", b'{"v":%d}' % version) for i in ids])
    return ids


def test_one_aggregates_events_are_found_by_index_not_by_scanning_the_stream(
    recorder: HonkerApplicationRecorder,
) -> None:
    ids = _fill(recorder, aggregates=50, versions=4)
    target = ids[17]
    events: list[StoredEvent] = []
    plans = _plans(recorder, lambda: events.extend(recorder.select_events(target, gt=1)))
    assert [e.originator_version for e in events] == [2, 3, 4]
    assert all(e.originator_id == target for e in events)
    assert len(plans) == 1
    assert "SCAN" not in plans[0], plans[0]
    assert "USING PRIMARY KEY" in plans[0] and "INTEGER PRIMARY KEY" in plans[0], plans[0]


def test_notifications_are_read_by_offset_range(recorder: HonkerApplicationRecorder) -> None:
    _fill(recorder, aggregates=10, versions=3)
    got: list[Any] = []
    plans = _plans(recorder, lambda: got.extend(recorder.select_notifications(5, 10, stop=12)))
    assert [n.id for n in got] == list(range(5, 13))
    assert "SCAN" not in plans[0], plans[0]


def test_descending_and_limited_reads(recorder: HonkerApplicationRecorder) -> None:
    (target,) = _fill(recorder, aggregates=1, versions=6)
    got = recorder.select_events(target, lte=5, desc=True, limit=2)
    assert [e.originator_version for e in got] == [5, 4]
    assert [e.state for e in got] == [b'{"v":5}', b'{"v":4}']
