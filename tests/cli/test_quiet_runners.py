"""Background runners are quiet unless asked: `projector run` prints one line when it
starts and its status when it stops; `--status-every N` asks for the status every N
seconds. The relay, the remote projector and the hub ingester default to quiet too."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main

from graphstore.cli import app
from tests.cli.test_cli import gs


def test_every_background_runner_defaults_to_no_periodic_status() -> None:
    root = typer.main.get_command(app)
    commands = getattr(root, "commands", {})
    for path in (("projector", "run"), ("relay",), ("project-remote",), ("ingest-nats",)):
        command = commands[path[0]]
        for name in path[1:]:
            command = command.commands[name]
        (option,) = [p for p in command.params if p.name == "status_every"]
        assert option.default == 0, path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    assert gs(path, "init").returncode == 0
    assert gs(path, "account", "create", "op@example.com", "--name", "Op").returncode == 0
    done = gs(path, "tenant", "create", "acme", "--name", "Acme", "--owner", "op@example.com")
    assert done.returncode == 0, done.stderr
    return path


def run_for(data: Path, seconds: float, *options: str) -> tuple[str, str]:
    """`projector run` for ``seconds`` after it said it runs, then Ctrl-C: its output."""
    command = [sys.executable, "-m", "graphstore", "--data-dir", str(data), "projector", "run"]
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.startswith("projecting every tenant of "), first
        time.sleep(seconds)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    return out, first + err


def test_projector_run_is_quiet_by_default_and_prints_its_status_when_asked(
    data: Path,
) -> None:
    out, err = run_for(data, 2.0)
    assert out.count("metagraph@v1") == 1  # the status when it stopped, and nothing before
    assert err.count("\n") == 1  # the line saying it runs
    out, _ = run_for(data, 2.0, "--status-every", "0.4")
    assert out.count("metagraph@v1") >= 3  # asked: every 0.4 s, and when it stopped
