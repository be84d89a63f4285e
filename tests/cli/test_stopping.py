"""Commands that run until stopped leave cleanly on Ctrl-C and on SIGTERM alike (what
`kill`, systemd and container runtimes send): their last status printed, exit 0
(graphstore/cli/running.py). Real processes, real signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import gs
from tests.http.conftest import free_port

INGEST_STDIN = ("ingest", "-", "--tenant", "acme")
"""A command that is not a runner: it waits for the events it is to ingest."""
STOPS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tenant ``acme`` and its owner, as ``graphstore`` makes them."""
    path = tmp_path_factory.mktemp("stopping") / "data"
    for command in (
        ["init"],
        ["account", "create", "op@example.com", "--name", "Op"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "op@example.com"],
    ):
        done = gs(path, *command)
        assert done.returncode == 0, done.stderr
    return path


Ready = Callable[["subprocess.Popen[str]"], None]
"""Returns once the command runs (the signal must land on running work)."""


def said(text: str) -> Ready:
    """Ready once the command printed a line on stderr containing ``text``."""

    def ready(process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if text in line:
                return
        pytest.fail(f"it exited ({process.wait()}) before printing {text!r}")

    return ready


def run_until(
    data: Path, ready: Ready, sig: int, *args: str, then: Callable[[], None] = lambda: None
) -> tuple[int, str, str]:
    """Start ``graphstore ARGS`` (its standard input a pipe left open), wait for
    ``ready`` and ``then``, send ``sig``; (exit code, stdout, the rest of stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready(process)
        then()
        assert process.poll() is None  # the signal lands on a running command
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("sig", STOPS)
def test_projector_run_stops_with_its_last_status(data: Path, sig: int) -> None:
    code, out, err = run_until(data, said("Ctrl-C stops"), sig, "--json", "projector", "run")
    assert code == 0, err
    assert "Traceback" not in err and "aborted" not in err
    final = json.loads(out)
    assert {s["projector"] for s in final} == {"metagraph@v1", "flowgraph@v1"}


@pytest.mark.parametrize("sig", STOPS)
def test_serve_stops_after_its_graceful_shutdown(data: Path, sig: int) -> None:
    port = free_port()

    def answering() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail("the server did not answer within 30 s")

    code, _out, err = run_until(
        data, said("Ctrl-C stops"), sig, "serve", "--host", "127.0.0.1", "--port", str(port),
        then=answering,
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err and "aborted" not in err


def reading_stdin(process: subprocess.Popen[str]) -> None:
    """Ready once ``process`` is blocked in read(2) on its standard input (Linux x86-64,
    where read is system call 0)."""
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(FileNotFoundError):
            if Path(f"/proc/{process.pid}/syscall").read_text().split()[:2] == ["0", "0x0"]:
                return
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.skipif(
    not Path("/proc/self/syscall").exists() or os.uname().machine != "x86_64",
    reason="reads the blocked system call from /proc (Linux x86-64)",
)
@pytest.mark.parametrize("sig", STOPS)
def test_any_other_command_stopped_exits_130_and_writes_nothing(data: Path, sig: int) -> None:
    head = json.loads(gs(data, "--json", "projector", "status").stdout)
    code, _out, err = run_until(data, reading_stdin, sig, *INGEST_STDIN)  # awaits events
    assert code == 130, err
    assert "Traceback" not in err
    assert json.loads(gs(data, "--json", "projector", "status").stdout) == head
