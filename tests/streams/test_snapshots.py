"""HONKER_SNAPSHOTS=latest keeps each aggregate's newest snapshot only; `all` keeps every one."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import honker
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from streams.errors import ConfigurationError


class Counter(Aggregate):
    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class Counters(Application[UUID]):
    snapshotting_intervals = {Counter: 2}  # noqa: RUF012


def _snapshot_versions(path: Path) -> list[int]:
    db = honker.open(str(path))
    try:
        rows = db.query("SELECT originator_version FROM es_counters_snapshots ORDER BY 1")
    finally:
        db.close()
    return [row["originator_version"] for row in rows]


@pytest.mark.parametrize(
    ("keep", "expected"), [("latest", [6]), ("all", [2, 4, 6]), ("", [2, 4, 6])]
)
def test_latest_deletes_older_snapshots_with_the_insert_of_a_newer_one(
    tenant_file: Path, keep: str, expected: list[int]
) -> None:
    env = {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(tenant_file),
        "HONKER_SNAPSHOTS": keep,
    }
    app = Counters(env=env)
    counter = Counter()
    app.save(counter)
    for _ in range(5):
        counter.increment()
        app.save(counter)
    app.close()
    assert _snapshot_versions(tenant_file) == expected
    reopened = Counters(env=env)
    assert reopened.repository.get(counter.id).count == 5
    assert reopened.snapshots is not None
    latest = list(reopened.snapshots.get(counter.id, desc=True, limit=1))
    assert latest[0].originator_version == 6
    reopened.close()


def test_an_unknown_snapshot_policy_is_refused(tenant_file: Path) -> None:
    env = {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(tenant_file),
        "HONKER_SNAPSHOTS": "some",
    }
    with pytest.raises(ConfigurationError, match="HONKER_SNAPSHOTS='some' is invalid"):
        Counters(env=env)
