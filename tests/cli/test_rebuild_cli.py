"""`graphstore projector rebuild`: a side-by-side rebuild and swap, driven as a user would
(real processes on a real data directory), and the other commands following the swap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graphstore.cli import ExitCode
from tests.cli.test_cli import _sample_tenant, gs

NEW_RUN = (
    '{"type":"call.requested","at":5,"payload":{"requestId":"late-1","operationId":"o",'
    '"input":1}}\n'
)


def _statuses(data: Path) -> dict[str, dict[str, Any]]:
    done = gs(data, "--json", "projector", "status", "--tenant", "flows")
    assert done.returncode == 0, done.stderr
    return {s["projector"]: s for s in json.loads(done.stdout)}


def _run(data: Path, run_id: str) -> dict[str, Any]:
    done = gs(data, "--json", "runs", "show", run_id, "--tenant", "flows")
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def test_rebuild_swaps_in_a_new_version_that_every_command_follows(tmp_path: Path) -> None:
    data = _sample_tenant(tmp_path / "data")
    assert gs(data, "projector", "catch-up").returncode == 0
    before = _run(data, "run-004")

    done = gs(
        data, "--json", "projector", "rebuild", "flowgraph", "--tenant", "flows", "--drop-old"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["consumer"] == "flowgraph@v2" and result["version"] == 2
    assert result["swapped"] is True and result["table_prefix"] == "v2_"
    assert result["previous"] == {"version": None, "table_prefix": ""}
    assert "flow_calls" in result["dropped"]
    assert "rebuilding" not in done.stderr  # no progress bar when stderr is not a terminal

    # The old tables are gone: the views, the history and the status read version 2.
    assert _run(data, "run-004") == before
    history = gs(data, "--json", "runs", "history", "run-004", "--tenant", "flows")
    assert history.returncode == 0 and json.loads(history.stdout)
    statuses = _statuses(data)
    assert set(statuses) == {"metagraph@v1", "flowgraph@v2"}
    assert statuses["flowgraph@v2"]["lag_events"] == 0
    shown = gs(data, "projector", "status", "--tenant", "flows")
    assert "flowgraph@v2" in shown.stdout and "flowgraph@v1" not in shown.stdout

    # New events: catch-up advances version 2.
    assert gs(data, "ingest", "-", "--tenant", "flows", stdin=NEW_RUN).returncode == 0
    assert _statuses(data)["flowgraph@v2"]["lag_events"] > 0
    caught = gs(data, "--json", "projector", "catch-up", "--tenant", "flows")
    assert caught.returncode == 0, caught.stderr
    assert {s["projector"] for s in json.loads(caught.stdout)} == {"metagraph@v1", "flowgraph@v2"}
    assert _run(data, "late-1")["run"]["status"] == "running"
    # tail follows the live version too (the v1 tables are gone).
    tailed = gs(
        data,
        "--json",
        "tail",
        "--tenant",
        "flows",
        "--run",
        "late-1",
        "--from-start",
        "--count",
        "1",
    )
    assert tailed.returncode == 0, tailed.stderr
    assert json.loads(tailed.stdout.splitlines()[0])["projector"] == "flowgraph@v2"

    # replay-parked takes the projection's name or its live consumer, not an old one.
    replayed = gs(data, "projector", "replay-parked", "flowgraph", "--tenant", "flows")
    assert replayed.returncode == 0, replayed.stderr
    assert "flowgraph@v2 on flows: 0 replayed" in replayed.stdout
    assert (
        gs(data, "projector", "replay-parked", "flowgraph@v2", "--tenant", "flows").returncode == 0
    )
    old = gs(data, "projector", "replay-parked", "flowgraph@v1", "--tenant", "flows")
    assert old.returncode == ExitCode.REFUSED and "flowgraph@v2 is" in old.stderr

    # Again, in words, keeping the old tables: version 3.
    again = gs(data, "projector", "rebuild", "flowgraph", "--tenant", "flows")
    assert again.returncode == 0, again.stderr
    assert "flowgraph@v3" in again.stdout and "swapped in" in again.stdout
    assert "replacing v2" in again.stdout
    assert set(_statuses(data)) == {"metagraph@v1", "flowgraph@v3"}
    assert _run(data, "run-004") == before


def test_rebuild_refuses_an_unknown_projection_or_tenant(tmp_path: Path) -> None:
    data = _sample_tenant(tmp_path / "data")
    unknown = gs(data, "projector", "rebuild", "nope", "--tenant", "flows")
    assert unknown.returncode == ExitCode.USAGE and "metagraph" in unknown.stderr
    missing = gs(data, "projector", "rebuild", "metagraph", "--tenant", "nope")
    assert missing.returncode == ExitCode.NOT_FOUND
    metagraph = gs(data, "--json", "projector", "rebuild", "metagraph", "--tenant", "flows")
    assert metagraph.returncode == 0, metagraph.stderr
    assert json.loads(metagraph.stdout)["consumer"] == "metagraph@v2"
    assert set(_statuses(data)) == {"metagraph@v2", "flowgraph@v1"}
