"""`graphstore tail`: a projection's changes, live, from another process, resumable by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graphstore.cli import ExitCode
from tests.cli.test_cli import gs

T0 = 1_795_000_000_000


def call(kind: str, key: str, at: int, **payload: Any) -> str:
    return json.dumps({"type": kind, "at": T0 + at, "payload": {"requestId": key, **payload}})


def write_calls(data: Path, tmp: Path, name: str, lines: list[str]) -> None:
    """Ingest call-protocol lines into acme and run its projectors to the head."""
    source = tmp / f"{name}.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = gs(data, "ingest", str(source), "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    done = gs(data, "projector", "catch-up", "--tenant", "acme")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    assert gs(path, "init").returncode == 0
    done = gs(path, "account", "create", "ada@example.com", "--name", "Ada", "--level", "admin")
    assert done.returncode == 0, done.stderr
    done = gs(path, "tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    return path


def changes(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_tail_follows_a_run_live_from_another_process(data: Path, tmp_path: Path) -> None:
    tail = subprocess.Popen(
        [
            *(sys.executable, "-m", "graphstore", "--data-dir", str(data), "--json", "tail"),
            *("--tenant", "acme", "--run", "r1", "--from-start", "--count", "3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        requested = {"operationId": "db.query", "input": {}}
        write_calls(data, tmp_path, "one", [call("call.requested", "r1", 0, **requested)])
        write_calls(
            data,
            tmp_path,
            "two",
            [
                call("call.requested", "c1", 1, parentRequestId="r1", **requested),
                call("call.requested", "other", 2, **requested),
                call("call.responded", "c1", 3, output={"data": {}, "meta": {"source": "local"}}),
            ],
        )
        out, err = tail.communicate(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    got = changes(out)
    # The run's calls only ("other" is a run of its own), in order, with their statuses.
    assert [(c["call_id"], c["status"], c["event"], c["run_id"]) for c in got] == [
        ("r1", "pending", "CallAdded", "r1"),
        ("c1", "pending", "CallAdded", "r1"),
        ("c1", "completed", "CallUpdated", "r1"),
    ]
    positions = [c["position"] for c in got]
    assert positions == sorted(positions) and len(set(positions)) == 3


def test_tail_resumes_by_name_without_a_gap_and_prints_text(data: Path, tmp_path: Path) -> None:
    requested = {"operationId": "db.query", "input": {}}
    lines = [call("call.requested", f"r{i}", i, **requested) for i in range(5)]
    write_calls(data, tmp_path, "calls", lines)
    flow = ["tail", "--tenant", "acme", "--projector", "flowgraph"]
    first = gs(data, "--json", *flow, "--name", "n", "--from-start", "--count", "2")
    assert first.returncode == 0, first.stderr
    second = gs(data, "--json", *flow, "--name", "n", "--count", "3")
    assert second.returncode == 0, second.stderr
    keys = [c["call_id"] for c in changes(first.stdout) + changes(second.stdout)]
    assert keys == ["r0", "r1", "r2", "r3", "r4"]  # no gap, no repeat
    text = gs(data, *flow, "--from-start", "--count", "1")
    assert text.returncode == 0, text.stderr
    position, _, event, *rest = text.stdout.split()
    assert int(position) == changes(first.stdout)[0]["position"]
    assert event == "CallAdded" and "call=r0" in rest and "status=pending" in rest


def test_tail_refuses_a_bad_command_line(data: Path) -> None:
    done = gs(data, "tail", "--tenant", "acme", "--projector", "nope", "--count", "1")
    assert done.returncode == ExitCode.USAGE
    assert "'nope' is not one of metagraph, flowgraph" in done.stderr
    done = gs(data, "tail", "--tenant", "ghost", "--count", "1")
    assert done.returncode == ExitCode.NOT_FOUND
