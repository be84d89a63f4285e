"""`graphstore projector run`: the runner in a process of its own, stopped with Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli import gs

EVENT = (
    '{"type":"call.requested","at":7,"payload":{"requestId":"r-run","operationId":"o","input":1}}'
)


def test_a_runner_process_follows_commits_from_other_processes_until_interrupted(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert gs(data, "init").returncode == 0
    gs(data, "account", "create", "op@example.com", "--name", "Op", "--level", "admin")
    gs(data, "tenant", "create", "acme", "--name", "Acme", "--owner", "op@example.com")
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graphstore",
            "--data-dir",
            str(data),
            "--json",
            "projector",
            "run",
            "--status-every",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stderr is not None
        assert "Ctrl-C stops" in runner.stderr.readline()
        assert gs(data, "ingest", "-", "--tenant", "acme", stdin=EVENT + "\n").returncode == 0
        deadline = time.monotonic() + 30
        while True:  # the other process projects it; this one only reads the files
            statuses = json.loads(gs(data, "--json", "projector", "status").stdout)
            if all(s["lag_events"] == 0 and s["position"] > 0 for s in statuses):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.2)
        shown = json.loads(gs(data, "--json", "runs", "show", "r-run", "--tenant", "acme").stdout)
        assert shown["run"]["status"] == "running"
    finally:
        runner.send_signal(signal.SIGINT)
        out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0
    final = json.loads(out)
    assert {s["projector"] for s in final} == {"metagraph@v1", "flowgraph@v1"}
    assert all(s["lag_events"] == 0 for s in final)
