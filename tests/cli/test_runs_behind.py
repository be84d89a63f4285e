"""`graphstore runs ...` on views that are behind the stream (ingested after the last
catch-up, no runner going): the commands say by how much and how to catch up, and never
answer "no such run" for a run that is only not projected yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphstore.cli import ExitCode
from tests.cli.test_cli import gs


def run_events(run_id: str, at: int) -> str:
    request = {"requestId": run_id, "operationId": "o", "input": 1}
    output = {"data": 1, "meta": {"source": "local"}}
    events = [
        {"type": "call.requested", "at": at, "payload": request},
        {
            "type": "call.responded",
            "at": at + 1,
            "payload": {"requestId": run_id, "output": output},
        },
    ]
    return "".join(json.dumps(event) + "\n" for event in events)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tenant `acme`: run `old` projected, then run `new` ingested with no runner going."""
    path = tmp_path_factory.mktemp("behind") / "data"
    assert gs(path, "init").returncode == 0
    assert gs(path, "account", "create", "ada@example.com", "--name", "Ada").returncode == 0
    done = gs(path, "tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    assert gs(path, "ingest", "-", "--tenant", "acme", stdin=run_events("old", 1)).returncode == 0
    assert gs(path, "projector", "catch-up", "--tenant", "acme").returncode == 0
    assert gs(path, "ingest", "-", "--tenant", "acme", stdin=run_events("new", 5)).returncode == 0
    return path


def behind(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_runs_list_says_how_far_behind_the_views_are_and_how_to_catch_up(data: Path) -> None:
    done = gs(data, "--json", "runs", "list", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert [run["run_id"] for run in json.loads(done.stdout)] == ["old"]  # stdout: JSON only
    warning = behind(done.stderr)
    assert "the flowgraph views of acme are " in warning
    assert " events behind the stream (flowgraph@v1 at offset " in warning
    assert "`graphstore projector catch-up --tenant acme`" in warning
    assert "`graphstore projector run`" in warning
    events = int(warning.split(" are ", 1)[1].split()[0])
    assert events >= 2  # at least the new run's two call events


def test_runs_show_of_a_run_not_projected_yet_reads_it_from_the_stream(data: Path) -> None:
    done = gs(data, "--json", "runs", "show", "new", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["run"]["run_id"], shown["run"]["status"]) == ("new", "completed")
    assert "this run is read from the stream" in behind(done.stderr)
    missing = gs(data, "runs", "show", "nope", "--tenant", "acme")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert "no run 'nope' in acme" in missing.stderr  # not in the stream either: the truth


def test_caught_up_views_answer_without_a_warning(data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    copy.mkdir()
    for file in data.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    assert gs(copy, "projector", "catch-up", "--tenant", "acme").returncode == 0
    done = gs(copy, "--json", "runs", "list", "--tenant", "acme")
    assert done.returncode == 0 and done.stderr == ""
    assert sorted(run["run_id"] for run in json.loads(done.stdout)) == ["new", "old"]
    shown = gs(copy, "runs", "show", "new", "--tenant", "acme")
    assert shown.returncode == 0 and shown.stderr == ""


def test_views_built_but_behind_never_answer_no_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert gs(data, "init").returncode == 0
    assert gs(data, "account", "create", "ada@example.com", "--name", "Ada").returncode == 0
    done = gs(data, "tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    assert gs(data, "projector", "catch-up", "--tenant", "acme").returncode == 0  # views built
    assert gs(data, "ingest", "-", "--tenant", "acme", stdin=run_events("r", 1)).returncode == 0
    listed = gs(data, "runs", "list", "--tenant", "acme")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("(no runs in the views yet: ")
    assert "(no runs)" not in listed.stdout
    assert "events behind the stream" in behind(listed.stderr)
    shown = gs(data, "--json", "runs", "show", "r", "--tenant", "acme")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["run"]["status"] == "completed"
