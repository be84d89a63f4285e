"""kill -9 while a pass retires runs of a tenant written before call trees (issue 16,
items 5 and 7): the retirement removes the run's call trees and the call graph's own
events that held its calls' inputs in one transaction, so after a kill at any phase of
the unit each run's input bytes are all in the stream or none are, no gap is left that a
record does not explain, the views agree, and the projections equal a clean rebuild.
Every kill starts from a fresh copy of the prepared fixture (it holds two finished runs:
one unit)."""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Final

import graphstore
from domain.calls import find_call_graph
from domain.retention import RetentionPolicy
from graphstore.retention import set_policy
from projections import Flowgraph
from streams.check import explained_by_ranges, offset_gaps
from streams.retirement import retired_ranges
from tests._kill import PHASES, Coverage, Landing, PhasedProcess, aims, kill_series
from tests.crash.test_kill9 import catch_up, expected_state
from tests.projections.rebuild_check import file_env, opened, projections_equal_rebuild

ROOT: Final = Path(__file__).resolve().parents[2]
FIXTURE: Final = ROOT / "tests" / "fixtures" / "legacy-v1"
SEED: Final = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
RUNS: Final = {"run-a": ("run-a", "a-1"), "run-c": ("run-c", "c-1")}
KILLS: Final = 8


def inputs_in(path: Path, run: str) -> int:
    """How many stream entries hold an input of ``run``'s calls."""
    with opened(path) as db:
        return sum(
            int(
                db.query(
                    "SELECT count(*) AS n FROM _honker_stream WHERE topic = 'metagraph' "
                    "AND instr(payload, ?) > 0",
                    [f'"input":{{"n":"{key}"}}'],
                )[0]["n"]
            )
            for key in RUNS[run]
        )


def prepared(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The fixture with its legacy calls copied into trees, the views caught up and a
    policy set: what a pass retires from; and each run's entries holding its inputs."""
    template = tmp_path / "template"
    shutil.copytree(FIXTURE, template)
    with graphstore.open(template) as store:
        acme = store.tenant("acme")
        assert find_call_graph(acme) is not None  # the one-time copy into trees
        set_policy(acme, RetentionPolicy(finished_older_than_s=86_400))
    path = template / "tenant-acme.db"
    catch_up(path)
    counts = {run: inputs_in(path, run) for run in RUNS}
    assert all(n >= 4 for n in counts.values()), counts  # graph nodes and tree events
    return template, counts


def test_kill9_while_retiring_legacy_runs_leaves_each_whole_or_retired(tmp_path: Path) -> None:
    template, counts = prepared(tmp_path)
    rng = random.Random(SEED)
    print(f"legacy retention kill series: CRASH_SEED={SEED}")
    current: list[Path] = []

    def start() -> PhasedProcess:
        data = tmp_path / f"kill-{len(current)}"
        shutil.copytree(template, data)
        current.append(data)
        return PhasedProcess(
            [sys.executable, "-m", "tests.retention._worker", str(data), *RUNS],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=tmp_path / f"retire-{time.monotonic_ns()}.stderr",
        )

    def check(landing: Landing) -> None:
        path = current[-1] / "tenant-acme.db"
        catch_up(path)
        states = {}
        for run, whole in counts.items():
            found = inputs_in(path, run)
            assert found in (0, whole), f"{run} is torn: {found} of {whole} entries"
            states[run] = "whole" if found else "retired"
        assert landing.unit is not None, f"the kill landed between units: {landing}"
        hit = {states[run] for run in landing.unit.split("+")}
        allowed = expected_state(landing, "retired", "whole")
        assert len(hit) == 1 and hit <= allowed, f"killed at {landing}, its runs are {hit}"
        with opened(path) as db:
            gaps = offset_gaps(db, explained=explained_by_ranges(retired_ranges(db, "metagraph")))
        assert not gaps, f"gaps no retirement record explains: {gaps}"
        with Flowgraph.open(file_env(path)) as views:
            for run, state in states.items():
                assert (views.run(run) is not None) == (state == "whole"), (run, state)
        compared = projections_equal_rebuild(path, current[-1])
        print(f"  {landing}: {states}; {compared} rows equal")

    coverage = Coverage()
    # One unit per worker: a kill let go after its acknowledgement would land at "done".
    planned = [
        replace(a, held=True) if a.phase == "acked" else a
        for a in aims(rng, PHASES, KILLS, after=0)
    ]
    kill_series(start, check, planned, rng, coverage, units=1)  # one pass of both runs
    assert len(coverage.landings) >= len(PHASES)
