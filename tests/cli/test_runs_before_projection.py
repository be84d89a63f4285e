"""`graphstore runs ...` on a tenant whose projectors have never run: the views are not
built, the command says so and what to run, and writes nothing; replay commands work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import honker
import pytest

from graphstore.cli import ExitCode
from tests.cli.test_cli import gs

REQUEST = {"requestId": "r", "operationId": "o", "input": 1}
OUTPUT = {"data": 1, "meta": {"source": "local"}}
EVENTS = [
    {"type": "call.requested", "at": 1, "payload": REQUEST},
    {"type": "call.responded", "at": 2, "payload": {"requestId": "r", "output": OUTPUT}},
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A tenant `acme` with one run `r` ingested; no projector has run."""
    path = tmp_path / "data"
    assert gs(path, "init").returncode == 0
    assert gs(path, "account", "create", "ada@example.com", "--name", "Ada").returncode == 0
    done = gs(path, "tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    lines = "".join(json.dumps(event) + "\n" for event in EVENTS)
    done = gs(path, "ingest", "-", "--tenant", "acme", stdin=lines)
    assert done.returncode == 0, done.stderr
    return path


def file_state(data: Path) -> dict[str, Any]:
    """What a write would change: schema, stream head, consumers' saved offsets."""
    db = honker.open(str(data / "tenant-acme.db"))
    try:
        return {
            "schema": db.query("SELECT type, name, sql FROM sqlite_master ORDER BY name"),
            "head": db.query('SELECT MAX("offset") AS head FROM _honker_stream'),
            "consumers": db.query("SELECT * FROM _honker_stream_consumers ORDER BY 1"),
        }
    finally:
        db.close()


def test_runs_list_and_show_before_any_projector_name_the_view_and_the_fix(data: Path) -> None:
    before = file_state(data)
    assert not any(row["name"].startswith("flow_") for row in before["schema"])
    for command in (["runs", "list"], ["--json", "runs", "list"], ["runs", "show", "r"]):
        done = gs(data, *command, "--tenant", "acme")
        assert done.returncode == ExitCode.NOT_FOUND, done.stderr
        assert done.stdout == ""
        assert done.stderr.startswith("error: the flowgraph views of tenant 'acme' are not built")
        assert str(data / "tenant-acme.db") in done.stderr
        assert "`graphstore projector catch-up --tenant acme`" in done.stderr
        assert "`graphstore projector run`" in done.stderr
        assert "no such table" not in done.stderr and "Traceback" not in done.stderr
    assert file_state(data) == before  # nothing written


def test_replay_commands_work_without_the_views_and_catch_up_builds_them(data: Path) -> None:
    past = gs(data, "--json", "runs", "show", "r", "--tenant", "acme", "--as-of", "1000")
    assert past.returncode == 0, past.stderr
    assert json.loads(past.stdout)["run"]["status"] == "completed"
    history = gs(data, "--json", "runs", "history", "r", "--tenant", "acme")
    assert history.returncode == 0, history.stderr
    assert {entry["call"] for entry in json.loads(history.stdout)} == {"r"}

    assert gs(data, "projector", "catch-up", "--tenant", "acme").returncode == 0
    listed = gs(data, "--json", "runs", "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert [(run["run_id"], run["status"]) for run in json.loads(listed.stdout)] == [
        ("r", "completed")
    ]
