"""The benchmarks' bookkeeping (issue 20): every result records its commit and states
both sides of each ratio; ``python -m benchmarks stale`` reports old results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._report import Report, RunConfig, Side, git_commit, print_table, write_json
from benchmarks._stale import MEASURED, RESULTS, measured_paths, staleness

ROOT = Path(__file__).resolve().parents[1]
SIDE = Side(what="a -> b", durability="NORMAL", batch="500 events", indexes="primary key")


def test_a_result_records_its_commit_and_the_sides_of_each_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = Report("streams", RunConfig(quick=True, repeats=1))
    report.add("x_vs_y", 1.5)
    report.compare("x_vs_y", ours=SIDE, theirs=SIDE)
    write_json(report, tmp_path / "r.json")
    written = json.loads((tmp_path / "r.json").read_text())
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert written["commit"]["sha"] == head == (git_commit() or {}).get("sha")
    assert written["baselines"]["x_vs_y"]["theirs"] == {
        "what": "a -> b",
        "durability": "NORMAL",
        "batch": "500 events",
        "indexes": "primary key",
    }
    print_table(report)
    table = capsys.readouterr().out
    assert f"measured on commit {head[:12]}" in table
    assert "x_vs_y theirs: a -> b; durability NORMAL; batch 500 events; indexes" in table


def test_stale_lists_every_result_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "stale"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line[:1] != " "]
    # every result file, then one line for the documents that quote them
    assert listed[:-1] == sorted(p.name for p in RESULTS.glob("*.json"))
    assert listed[-1] == "README.md"
    assert {p.stem for p in RESULTS.glob("*.json")} <= set(MEASURED)


def test_a_result_older_than_a_change_to_its_packages_is_stale(tmp_path: Path) -> None:
    first = subprocess.run(
        ["git", "rev-list", "--max-parents=0", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    old = RESULTS / "streams.json"
    found = staleness(old)
    assert found.measured is not None
    fake = tmp_path / "streams.json"
    fake.write_text(json.dumps({"commit": {"sha": first}}))
    # Not under RESULTS: staleness reads the recorded commit, not the file's history.
    ancient = staleness(fake)
    assert ancient.recorded and ancient.stale and ancient.changes


def test_a_suite_measures_the_benchmark_modules_it_imports() -> None:
    """A helper module a suite times through (directly or through another suite) stales
    its results as the suite's own module does; the report's formatting does not."""
    retention = measured_paths("retention")
    assert "benchmarks/retention.py" in retention
    assert "benchmarks/archive_write.py" in retention  # imported by retention.py
    restore = measured_paths("restore")
    # restore.py imports relay.py, which imports projections.py, which imports cli.py
    assert {"benchmarks/relay.py", "benchmarks/projections.py", "benchmarks/cli.py"} <= set(restore)
    assert all("_report" not in path for suite in MEASURED for path in measured_paths(suite))
    assert measured_paths("streams") == ["streams", "benchmarks/streams.py"]
