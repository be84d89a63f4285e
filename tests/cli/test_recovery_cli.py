"""`graphstore runs in-flight` and `graphstore runs abort-in-flight`, as an operator runs
them after a crash: real processes on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphstore.cli import ExitCode
from graphstore.samples import WORKFLOWS
from tests.cli.test_cli import gs


@pytest.fixture
def crashed(tmp_path: Path) -> Path:
    """A tenant whose producer died a third of the way through the sample's events."""
    data = tmp_path / "data"
    for command in (
        ["init"],
        ["account", "create", "ada@example.com", "--name", "Ada", "--level", "admin"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"],
    ):
        done = gs(data, *command)
        assert done.returncode == 0, done.stderr
    lines = WORKFLOWS.read_text().splitlines()
    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(lines[: len(lines) // 3]) + "\n")
    done = gs(data, "ingest", str(partial), "--tenant", "acme", "--subscription", "feed.watch")
    assert done.returncode == 0, done.stderr
    return data


def running_runs(data: Path) -> set[str]:
    done = gs(data, "projector", "catch-up", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    listed = gs(data, "--json", "runs", "list", "--tenant", "acme", "--status", "running")
    assert listed.returncode == 0, listed.stderr
    return {run["run_id"] for run in json.loads(listed.stdout)}


def test_in_flight_runs_are_listed_then_aborted_through_ingestion(crashed: Path) -> None:
    listed = gs(crashed, "--json", "runs", "in-flight", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert runs, "the truncated sample leaves runs in flight"
    assert {r["run_id"] for r in runs} == running_runs(crashed)  # the views agree
    text = gs(crashed, "runs", "in-flight", "--tenant", "acme")
    assert runs[0]["run_id"] in text.stdout

    done = gs(crashed, "--json", "runs", "abort-in-flight", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["runs"] == [r["run_id"] for r in runs]
    assert report["aborted_calls"] == sum(len(r["active"]) for r in runs)
    assert [e["type"] for e in report["events"]] == ["call.aborted"] * len(report["events"])
    assert report["report"]["applied"] == len(report["events"])

    after = gs(crashed, "--json", "runs", "in-flight", "--tenant", "acme")
    assert json.loads(after.stdout) == []
    assert running_runs(crashed) == set()
    for run in runs:
        shown = gs(crashed, "--json", "runs", "show", run["run_id"], "--tenant", "acme")
        calls = {c["request_id"]: c for c in json.loads(shown.stdout)["calls"]}
        assert {calls[k]["status"] for k in run["active"]} == {"aborted"}
    audit = gs(crashed, "--json", "audit", "--tenant", "acme")
    assert "in-flight runs aborted" in audit.stdout

    again = gs(crashed, "runs", "abort-in-flight", "--tenant", "acme")
    assert again.returncode == 0, again.stderr
    assert "aborted 0 runs" in again.stdout


def test_one_run_only_and_unknown_tenant(crashed: Path) -> None:
    runs = json.loads(gs(crashed, "--json", "runs", "in-flight", "--tenant", "acme").stdout)
    first = runs[0]["run_id"]
    done = gs(crashed, "--json", "runs", "abort-in-flight", "--tenant", "acme", "--run", first)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"] == [first]
    left = json.loads(gs(crashed, "--json", "runs", "in-flight", "--tenant", "acme").stdout)
    assert [r["run_id"] for r in left] == [r["run_id"] for r in runs[1:]]
    missing = gs(crashed, "runs", "in-flight", "--tenant", "nobody")
    assert missing.returncode == ExitCode.NOT_FOUND
    missing = gs(crashed, "runs", "abort-in-flight", "--tenant", "nobody")
    assert missing.returncode == ExitCode.NOT_FOUND
