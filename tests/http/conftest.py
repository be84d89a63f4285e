"""A real `graphstore serve` process on 127.0.0.1 and a data directory with a tenant,
an owner's API key and an outsider's, for the HTTP, SSE, browser and load tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import graphstore

TENANT = "acme"


@dataclass
class Server:
    """A running server: its URL, its data directory, keys, and a way to kill it."""

    data: Path
    port: int
    key: str  # the owner of acme
    outsider: str  # an account that is no member of acme
    heartbeat: float
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, key: str | None = None, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **more}

    def start(self) -> None:
        """Start the process and wait until it answers (at most 30 s)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "graphstore",
                    "--data-dir",
                    str(self.data),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--heartbeat",
                    str(self.heartbeat),
                    "--max-body",
                    str(1024 * 1024),
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not answer within 30 s: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def head(self) -> int:
        """The tenant stream's last offset, read by the local operator."""
        with graphstore.open(self.data) as operator:
            return operator.tenant(TENANT).recorder.max_notification_id() or 0

    def op(self, operation_id: str, data: dict[str, Any], key: str | None = None) -> Any:
        response = httpx.post(
            f"{self.url}/v1/tenants/{TENANT}/ops/{operation_id}",
            json=data,
            headers=self.headers(key),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_data(data: Path) -> tuple[str, str]:
    """A data directory with tenant acme owned by ada; ada's key and an outsider's."""
    with graphstore.open(data) as store:
        me = store.principal
        ada = store.identity.create_account("ada@example.com", "Ada", actor=me)
        eve = store.identity.create_account("eve@example.com", "Eve", actor=me)
        store.create_tenant(TENANT, name="Acme", owner_email="ada@example.com")
        key = store.identity.create_api_key(ada.id, name="k", actor=me).secret
        outsider = store.identity.create_api_key(eve.id, name="k", actor=me).secret
    return key, outsider


def serving(tmp_path: Path) -> Iterator[Server]:
    """A fresh data directory (``tmp_path / "data"``) served on a free port by a process
    that inherits this one's environment; stopped when the generator closes."""
    data = tmp_path / "data"
    key, outsider = make_data(data)
    running = Server(data, free_port(), key, outsider, heartbeat=1.0, log=tmp_path / "server.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh data directory served on a free port; stopped at the end of the test."""
    yield from serving(tmp_path)


def call(request_id: str, at: int, operation: str = "ns.op", **payload: Any) -> dict[str, Any]:
    """A call.requested event."""
    return {
        "type": "call.requested",
        "at": at,
        "payload": {"requestId": request_id, "operationId": operation, "input": {}, **payload},
    }


def responded(request_id: str, at: int) -> dict[str, Any]:
    return {
        "type": "call.responded",
        "at": at,
        "payload": {"requestId": request_id, "output": {"data": 1, "meta": {"source": "local"}}},
    }
