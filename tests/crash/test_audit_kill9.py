"""kill -9 cannot separate a tenant write from its audit record (issue 9, item 3).

A worker process ingests call batches (one whole run each) through a store opened with
an actor, so every commit carries an ``AuditRecord`` in the same transaction; the test
kills it with SIGKILL at every phase of a batch's life (``tests/_kill.py``: started,
built, inside the commit, committed but not acknowledged, acknowledged). After each kill
the tenant's stream must be a sequence of whole commits, each ending with its record
(every record covers exactly the events recorded since the previous one, and no event
follows the last record), and the records match the batches one to one:

- every acknowledged batch has exactly one record (none missing, none doubled: a batch
  delivered again after a kill writes nothing and records nothing);
- no record for a batch that never committed: the batch the kill hit has a record if
  the kill came after its COMMIT, none if before, at most one if during.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Final

import pytest

import graphstore
from domain import Principal
from domain.calls import ingest
from tests._kill import PHASES, Coverage, Landing, PhasedProcess, aims, kill_series
from tests.crash._worker import OPERATION_TYPES, run_batch
from tests.crash.test_kill9 import seeded, start_worker
from tests.projections.rebuild_check import opened

TENANT: Final = "acme"
SERIES: Final = 2
KILLS: Final = 7
RUN_KEY: Final = re.compile(r"^run(\d+)(\.|$)")


def _call_key(envelope: dict[str, Any]) -> object:
    """A call tree event's call key: its ``key``, or (a ``CallAdded`` that stores none,
    docs/events.md) the ``requestId`` of its request (or of its attributes, as written
    until 1efdefa and for a call not derivable from its request)."""
    data = envelope["data"]
    added = data.get("request") or data.get("attributes") or {}
    return data.get("key") or added.get("requestId")


def commits(path: Path) -> list[tuple[int, set[int]]]:
    """The tenant stream as commits, each ending with its audit record: (the record's
    covered event count, checked against the events before it; the runs whose calls the
    commit wrote). Fails on an event that has no record."""
    with opened(path) as db:
        rows = db.query(
            'SELECT payload FROM _honker_stream WHERE topic = ? ORDER BY "offset"', ["metagraph"]
        )
    found: list[tuple[int, set[int]]] = []
    since = 0
    runs: set[int] = set()
    for row in rows:
        envelope = json.loads(row["payload"])
        if envelope["type"] == "AuditRecord.Recorded":
            assert envelope["data"]["events"] == since, (
                f"a record covers {envelope['data']['events']} events, {since} came before it"
            )
            found.append((since, runs))
            since, runs = 0, set()
        else:
            since += 1
            key = _call_key(envelope) if envelope["type"].startswith("CallTree.") else None
            match = RUN_KEY.match(key) if isinstance(key, str) else None
            if match:
                runs.add(int(match.group(1)))
    assert since == 0, f"{since} events at the end of the stream have no audit record"
    return found


def records_per_run(path: Path) -> Counter[int]:
    """How many audit records cover each run's batch (each commit writes one run)."""
    per_run: Counter[int] = Counter()
    for _, runs in commits(path):
        assert len(runs) <= 1, f"one commit (one record) wrote several runs: {sorted(runs)}"
        per_run.update(runs)
    return per_run


def check_records(
    path: Path, started: set[int], acked: set[int], landing: Landing, before: Counter[int]
) -> Counter[int]:
    """The records match the batches one to one (see the module docstring)."""
    per_run = records_per_run(path)
    doubled = {run: n for run, n in per_run.items() if n > 1}
    assert not doubled, f"runs with more than one audit record: {doubled}"
    missing = acked - set(per_run)
    assert not missing, f"acknowledged runs without an audit record: {sorted(missing)}"
    unknown = set(per_run) - started
    assert not unknown, f"records for runs never written: {sorted(unknown)}"
    assert landing.unit is not None
    hit = int(landing.unit)
    outcome = "committed" if before[hit] else landing.outcome()
    expected = {"committed": {1}, "either": {0, 1}, "absent": {0}}[outcome]
    assert per_run[hit] in expected, (
        f"killed at {landing}: run{hit} has {per_run[hit]} audit records, not {expected}"
    )
    return per_run


def _tenant(data: Path) -> Path:
    with graphstore.open(data) as store:
        store.identity.create_account("op@example.com", "Op", actor=Principal.system())
        store.create_tenant(TENANT, name="Acme", owner_email="op@example.com")
        return store.data.tenant_path(TENANT)


@pytest.mark.parametrize("series", range(SERIES))
def test_kill9_never_separates_a_write_from_its_audit_record(tmp_path: Path, series: int) -> None:
    data = tmp_path / "data"
    path = _tenant(data)
    started: set[int] = set()
    acked: set[int] = set()
    before: Counter[int] = Counter()
    with seeded("audit", series) as rng:

        def start() -> PhasedProcess:
            return start_worker(tmp_path, "audited", data, str(max(acked, default=-1) + 1))

        def check(landing: Landing) -> None:
            started.update(int(i) for i in landing.started)
            acked.update(int(i) for i in landing.acked)
            nonlocal before
            before = check_records(path, started, acked, landing, before)
            print(f"  run{landing.unit}: {before[int(landing.unit or 0)]} record(s)")

        kill_series(start, check, aims(rng, PHASES, KILLS), rng, Coverage())


def test_the_check_catches_a_write_without_its_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with graphstore.open(data, principal=Principal.system()) as store:
        store.identity.create_account("op@example.com", "Op", actor=Principal.system())
        store.create_tenant(TENANT, name="Acme", owner_email="op@example.com")
        path = store.data.tenant_path(TENANT)
        assert commits(path) == []
        audited = store.tenant(TENANT)
        audited.define_graph_type("g")
        assert commits(path) == [(3, set())]  # catalog started, name claimed, type defined
        audited.auditor = None  # as a writer that records no audit would
        audited.add_node_type("g", "n")
    with pytest.raises(AssertionError, match="have no audit record"):
        commits(path)


def test_the_check_catches_a_missing_a_doubled_and_an_unwritten_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = _tenant(data)
    with graphstore.open(data, principal=Principal.system()) as store:
        app = store.tenant(TENANT)
        ingest(app, [])
        for index in (0, 1):
            ingest(app, run_batch(index), operation_types=OPERATION_TYPES)
    acked_at = Landing("acked", "1", held=True)
    assert check_records(path, {0, 1}, {0, 1}, acked_at, Counter()) == Counter({0: 1, 1: 1})
    with pytest.raises(AssertionError, match="without an audit record"):
        check_records(path, {0, 1, 2}, {0, 1, 2}, acked_at, Counter())
    with pytest.raises(AssertionError, match="never written"):
        check_records(path, {0}, {0}, Landing("acked", "0", held=True), Counter())
    with pytest.raises(AssertionError, match="has 1 audit records"):  # killed before COMMIT
        check_records(path, {0, 1}, {0}, Landing("built", "1", held=True), Counter())
    with graphstore.open(data, principal=Principal.system()) as store:
        app = store.tenant(TENANT)  # a second commit (and record) writing run 1's calls
        late: dict[str, object] = {"requestId": "run1.late", "parentRequestId": "run1"}
        late |= {"operationId": "db.query", "input": {}}
        event = {"id": "run1.late/call.requested", "type": "call.requested", "at": 1}
        ingest(app, [{**event, "payload": late}], operation_types=OPERATION_TYPES)
    with pytest.raises(AssertionError, match="more than one audit record"):
        check_records(path, {0, 1}, {0, 1}, acked_at, Counter())
