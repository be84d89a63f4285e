"""The figures in README.md and docs/benchmarks.md are the ones in
``benchmarks/results/*.json``, and say which commit they were measured on (issue 20).

README.md's figures table is what ``python -m benchmarks table`` prints, and each suite's
block in docs/benchmarks.md is that suite's rows with the run they come from; after full
runs, ``python -m benchmarks table --write`` refreshes both in one step."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from benchmarks._table import RESULTS, ROWS, figure_problems, readme_block, render, render_suite

ROOT = Path(__file__).resolve().parents[1]


def results() -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def test_the_readme_figures_and_commits_are_those_of_the_results_files() -> None:
    assert figure_problems() == []
    block = readme_block((ROOT / "README.md").read_text())
    assert block is not None and block == render()
    for suite in {row.suite for row in ROWS}:
        sha = results()[suite]["commit"]["sha"]  # type: ignore[index]
        assert f"{suite} {sha[:7]}" in block


def test_a_new_figure_or_commit_in_a_results_file_shows_in_the_table() -> None:
    fresh = results()
    changed = copy.deepcopy(fresh)
    changed["relay"]["metrics"]["spoke_ingest_vs_inprocess"] = 0.5123  # type: ignore[index]
    changed["relay"]["commit"] = {"sha": "abcdef0123", "dirty": False}
    table = render(changed)  # type: ignore[arg-type]
    assert table != render(fresh)  # type: ignore[arg-type]
    assert "| 0.51 (" in table and "relay abcdef0" in table


def test_every_row_names_metrics_its_suite_measures() -> None:
    found = results()
    for row in ROWS:
        metrics = found[row.suite]["metrics"]
        assert row.metrics() and all(m in metrics for m in row.metrics()), row  # type: ignore[operator]
    assert ROWS[0].metrics() == [
        "append_1_full_vs_es_sqlite",
        "append_1_ours_full_events_per_s",
        "append_1_es_sqlite_full_events_per_s",
    ]


def test_python_m_benchmarks_table_prints_the_block_and_stale_reports_the_documents() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "table"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert printed.stdout == render()
    stale = subprocess.run(
        [sys.executable, "-m", "benchmarks", "stale"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "fresh  README.md and docs/benchmarks.md" in stale.stdout


def test_a_verdict_follows_the_figure_when_the_file_records_no_target() -> None:
    changed = copy.deepcopy(results())
    domain = changed["domain"]
    domain["targets"].pop("ingest_history_flatness", None)  # type: ignore[attr-defined]
    domain["metrics"]["ingest_history_flatness"] = 0.5  # type: ignore[index]
    assert "| 0.50 | ≥ 0.8 missed |" in render(changed)  # type: ignore[arg-type]


def test_each_suite_block_of_the_docs_shows_its_rows_and_the_run_they_come_from() -> None:
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    fresh = results()
    for suite in {row.suite for row in ROWS}:
        block = render_suite(suite, fresh)  # type: ignore[arg-type]
        assert block in docs, suite
        sha = fresh[suite]["commit"]["sha"]  # type: ignore[index]
        assert f"commit {sha[:7]}" in block
        assert block.count("\n| ") == sum(row.suite == suite for row in ROWS) + 1  # + header
    changed = copy.deepcopy(fresh)
    changed["retention"]["metrics"]["retire_vs_ingest"] = 0.1234  # type: ignore[index]
    assert "| 0.12 | ≥ 0.5" in render_suite("retention", changed)  # type: ignore[arg-type]
