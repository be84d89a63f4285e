"""Background runners are quiet unless asked: `projector run` prints one line when it
starts and its status when it stops; `--status-every N` asks for the status every N
seconds. The relay, the remote projector and the hub ingester default to quiet too.

No wall-clock windows: a quiet runner and a loud one (``--status-every``) run side by side
on the same data; the test waits for the loud one's output to show two statuses with the
projectors caught up, then stops both. What the loud one printed meanwhile is the witness
that time passed; the quiet one must have printed nothing in it."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


class ProjectorRun:
    """`projector run` in a child process, its output collected line by line as it comes."""

    def __init__(self, data: Path, *options: str) -> None:
        command = [sys.executable, "-m", "graphstore", "--data-dir", str(data)]
        self.process = subprocess.Popen(
            [*command, "projector", "run", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, into), daemon=True)
            for stream, into in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)
            self._lines.put(None)
        self._lines.put(None)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Block until ``condition`` holds, re-checked at each new line of output."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None and self._lines.empty():
                pytest.fail(f"projector run exited ({self.process.returncode}) before {what}")
            try:
                self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {what} within {timeout} s: {''.join(self.out + self.err)}")

    def started(self) -> bool:
        return any(line.startswith("projecting every tenant of ") for line in self.err)

    def statuses(self) -> list[tuple[int, int, int]]:
        """(position, head, lag) of every metagraph status row printed so far."""
        rows = ([cell.strip() for cell in line.split("\u2502")] for line in self.out)
        return [(int(r[3]), int(r[4]), int(r[5])) for r in rows if r[1:2] == ["metagraph@v1"]]

    def stop(self) -> int:
        """Ctrl-C, wait for it to print its last status and exit: its exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(timeout=10)
        return self.process.returncode


def caught_up(status: tuple[int, int, int]) -> bool:
    position, head, lag = status
    return head > 0 and position == head and lag == 0


def test_projector_run_is_quiet_by_default_and_prints_its_status_when_asked(
    data: Path, tmp_path: Path
) -> None:
    quiet = ProjectorRun(data)
    loud = ProjectorRun(data, "--status-every", "0.2")
    try:
        quiet.wait_until(quiet.started, "line saying it runs")
        loud.wait_until(loud.started, "line saying it runs")
        definition = tmp_path / "social.yaml"  # events for both runners to project
        definition.write_text("name: social\nnodeTypes:\n  - name: person\n")
        done = gs(data, "graph-type", "define", str(definition), "--tenant", "acme")
        assert done.returncode == 0, done.stderr
        # Periodic statuses after the quiet one started, the last one caught up.
        loud.wait_until(
            lambda: len(loud.statuses()) >= 2 and caught_up(loud.statuses()[-1]),
            "two periodic statuses, the last one caught up",
        )
    finally:
        codes = [run.stop() for run in (quiet, loud)]
    assert codes == [0, 0], quiet.err + loud.err
    assert len(quiet.err) == 1, quiet.err  # the line saying it runs, nothing else
    # The status when it stopped, and nothing before, though the loud one printed twice.
    assert len(quiet.statuses()) == 1, quiet.out
    assert caught_up(quiet.statuses()[0]), quiet.out
    assert len(loud.statuses()) >= 3, loud.out  # asked: every 0.2 s, and when it stopped
