"""kill -9 during retention passes and erasures (issue 16, item 7): a real worker process
(``tests/retention/_worker.py``) retires runs of a real tenant file and is killed at
phases of its units of work chosen by :mod:`tests._kill` (the retirement's transaction,
the views' catch-up, the reclaim), at least 20 kills asserted mid-work. After each kill:
every run is whole (every event of it in the file, its rows in the views) or retired
(none of its events left, named by a retirement record); the unit the kill hit is in the
state its phase allows; no gap in the offsets that a retirement record does not explain;
the projections equal a clean rebuild."""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Final
from uuid import UUID

from domain import Metagraph
from domain.calls import ingest
from domain.calls.tree import ref_id, tree_id
from domain.retention import RetentionPolicy
from graphstore.data import DataDirectory
from graphstore.retention import set_policy
from projections import Flowgraph
from streams import aggregate_offsets
from streams.check import explained_by_ranges, offset_gaps
from streams.retirement import retired_ranges, retirement_of
from tests._kill import PHASES, Coverage, Landing, PhasedProcess, aims, kill_series
from tests.crash.test_kill9 import catch_up, expected_state
from tests.projections.rebuild_check import file_env, opened, projections_equal_rebuild

ROOT: Final = Path(__file__).resolve().parents[2]
SEED: Final = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
RUNS: Final = 160
KILLS: Final = 20
T0: Final = 1_700_000_000_000


def run_events(i: int) -> list[dict[str, object]]:
    run, at = f"r{i:03d}", T0 + i * 10
    meta = {"source": "local"}
    return [
        {"id": f"{run}-1", "type": "call.requested", "at": at,
         "payload": {"requestId": run, "operationId": "flows.run", "input": {"i": i}}},
        {"id": f"{run}-2", "type": "call.requested", "at": at + 1,
         "payload": {"requestId": f"{run}.0", "operationId": "db.query", "input": {},
                     "parentRequestId": run}},
        {"id": f"{run}-3", "type": "call.responded", "at": at + 2,
         "payload": {"requestId": f"{run}.0", "output": {"data": 1, "meta": meta}}},
        {"id": f"{run}-4", "type": "call.responded", "at": at + 3,
         "payload": {"requestId": run, "output": {"data": 2, "meta": meta}}},
    ]  # fmt: skip


def aggregates_of(run: str) -> list[UUID]:
    return [ref_id(run), ref_id(f"{run}.0"), tree_id(run)]


def start_worker(work: Path, data: Path, runs: list[str]) -> PhasedProcess:
    return PhasedProcess(
        [sys.executable, "-m", "tests.retention._worker", str(data), *runs],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=work / f"retire-{time.monotonic_ns()}.stderr",
    )


def states_of(path: Path, runs: list[str], events: dict[str, int]) -> dict[str, str]:
    """Each run ``whole`` or ``retired``; fails on a torn run, a retired run no record
    names, a gap no record explains, or views that disagree with the file."""
    catch_up(path)
    states: dict[str, str] = {}
    with opened(path) as db:
        named: set[str] = set()
        rows = db.query(
            "SELECT payload FROM _honker_stream WHERE topic = 'metagraph' "
            "AND payload ->> '$.type' = 'Retention.RunsRetired'"
        )
        for row in rows:
            from streams.envelope import decode  # noqa: PLC0415

            record = retirement_of(decode(row["payload"]))
            assert record is not None
            named.update(record.runs)
        for run in runs:
            found = sum(len(aggregate_offsets(db, "metagraph", a)) for a in aggregates_of(run))
            assert found in (0, events[run]), f"{run} is torn: {found} of {events[run]} events"
            states[run] = "whole" if found else "retired"
            assert found or run in named, f"{run} is gone, but no retirement record names it"
        gaps = offset_gaps(db, explained=explained_by_ranges(retired_ranges(db, "metagraph")))
        assert not gaps, f"gaps no retirement record explains: {gaps}"
    with Flowgraph.open(file_env(path)) as views:
        for run in runs:
            shown = views.run(run) is not None
            assert shown == (states[run] == "whole"), f"{run} is {states[run]}, views: {shown}"
    return states


def test_kill9_during_retention_leaves_each_run_whole_or_retired(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = DataDirectory(data).create_tenant_file("acme")
    runs = [f"r{i:03d}" for i in range(RUNS)]
    with Metagraph(env=file_env(path)) as app:
        ingest(app, [e for i in range(RUNS) for e in run_events(i)])
        set_policy(app, RetentionPolicy(finished_older_than_s=86_400))
        events = {
            run: sum(len(aggregate_offsets(app.recorder.datastore, "metagraph", a))  # type: ignore[attr-defined]
                     for a in aggregates_of(run))
            for run in runs
        }  # fmt: skip
    catch_up(path)
    rng = random.Random(SEED)
    print(f"retention kill series: CRASH_SEED={SEED}")
    remaining = list(runs)

    def start() -> PhasedProcess:
        return start_worker(tmp_path, data, remaining)

    def check(landing: Landing) -> None:
        states = states_of(path, runs, events)
        assert landing.unit is not None, f"the kill landed between units: {landing}"
        hit = {states[run] for run in landing.unit.split("+")}
        allowed = expected_state(landing, "retired", "whole")
        assert len(hit) == 1 and hit <= allowed, f"killed at {landing}, its runs are {hit}"
        remaining[:] = [run for run in runs if states[run] == "whole"]
        compared = projections_equal_rebuild(path, tmp_path)
        print(f"  {landing}: {dict(Counter(states.values()))}; {compared} rows equal")

    coverage = Coverage()
    kill_series(start, check, aims(rng, PHASES, KILLS, after=2), rng, coverage)
    assert sum(coverage.hits.values()) >= KILLS
    assert len(remaining) < RUNS  # the series retired runs, it did not only start workers
