"""Writers of one tenant's calls in separate processes (docs/calls.md, "Partition"):
writers of different runs never meet; writers of the same run conflict, retry and end
where one writer would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from domain import Metagraph
from domain.calls import ingest, tenant_call_graph
from domain.modules import install_builtin_modules
from tests.domain._call_writer import run_events
from tests.domain.calls_state import all_calls
from tests.domain.conftest import store_env

ROOT = Path(__file__).resolve().parents[2]


def writers(path: Path, *ranges: tuple[int, int], steps: bool = False) -> list[dict[str, Any]]:
    """Start one writer process per range at once; their reports."""
    command = [sys.executable, "-m", "tests.domain._call_writer", str(path)]
    procs = [
        subprocess.Popen(
            [*command, str(a), str(b), *(["--steps"] if steps else [])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in ranges
    ]
    deadline = time.monotonic() + 60
    while len(list(path.parent.glob(path.name + ".ready-*"))) < len(procs):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.01)
    Path(str(path) + ".go").touch()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def prepared(path: Path) -> None:
    """The tenant with its call graph (so the writers do not race to create it)."""
    with Metagraph(env=store_env(path)) as app:
        install_builtin_modules(app)
        tenant_call_graph(app)


def overlapped(reports: list[dict[str, Any]]) -> bool:
    return max(r["started"] for r in reports) < min(r["ended"] for r in reports)


def one_writer_state(tmp_path: Path, runs: range) -> dict[str, Any]:
    path = tmp_path / "reference.db"
    with Metagraph(env=store_env(path)) as app:
        for run in runs:
            for batch in run_events(run):
                ingest(app, batch)
        return all_calls(app)


def test_two_processes_ingesting_different_runs_are_never_refused_and_store_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tenant.db"
    prepared(path)
    reports = writers(path, (0, 150), (1000, 1150))
    assert overlapped(reports)
    assert [(r["refused"], r["retries"]) for r in reports] == [(0, 0), (0, 0)]  # never met
    assert [r["batches"] for r in reports] == [150, 150]
    with Metagraph(env=store_env(path)) as app:
        calls = all_calls(app)
    assert len(calls) == 300 * 7
    assert {a["status"] for a in calls.values()} == {"completed"}


def test_two_processes_writing_the_same_runs_converge_to_one_writers_result(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tenant.db"
    prepared(path)
    reports = writers(path, (0, 100), (0, 100), steps=True)
    assert overlapped(reports)
    assert [r["refused"] for r in reports] == [0, 0]  # conflicts were retried, not refused
    # The one behind guessed its runs' calls new (it had not seen them): each such batch
    # conflicted on the calls' references, and was run again on fresh state.
    assert sum(r["retries"] for r in reports) >= 100
    with Metagraph(env=store_env(path)) as app:
        calls = all_calls(app)
    assert calls == one_writer_state(tmp_path, range(100))
