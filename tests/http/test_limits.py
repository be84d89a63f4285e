"""The limits of a real `graphstore serve` process (small ones, set by the
``GRAPHSTORE_HTTP_*`` variables, so each is reached quickly): a key refused too often
gets 429 with Retry-After, answered from memory (``system.db`` does not grow); the
N+1th event stream of a key gets 429; a stalled body, stalled headers, an idle
connection and oversized headers are cut within their limits."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import TENANT, Server, free_port, make_data

LIMITS = {
    "GRAPHSTORE_HTTP_REFUSALS": "5",
    "GRAPHSTORE_HTTP_REFUSAL_WINDOW": "30",
    "GRAPHSTORE_HTTP_SSE_PER_KEY": "3",
    "GRAPHSTORE_HTTP_BODY_TIMEOUT": "1",
    "GRAPHSTORE_HTTP_HEADER_TIMEOUT": "1",
    "GRAPHSTORE_HTTP_MAX_HEADER_BYTES": "4096",
}


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)  # the server process inherits them
    data = tmp_path / "data"
    key, outsider = make_data(data)
    running = Server(data, free_port(), key, outsider, heartbeat=1.0, log=tmp_path / "server.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def system_db_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob("system.db*"))


def test_a_key_refused_too_often_gets_429_with_retry_after_from_memory(limited: Server) -> None:
    url = f"{limited.url}/v1/tenants/{TENANT}/ops/graphstore.runs.list"
    outsider = limited.headers(limited.outsider)
    for _ in range(5):
        assert httpx.post(url, json={}, headers=outsider, timeout=30).status_code == 404
    size = system_db_bytes(limited.data)
    for _ in range(50):
        limited_answer = httpx.post(url, json={}, headers=outsider, timeout=30)
        assert limited_answer.status_code == 429
    assert limited_answer.headers["content-type"] == "application/problem+json"
    assert limited_answer.json()["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(limited_answer.headers["retry-after"]) <= 30
    assert system_db_bytes(limited.data) == size  # refused from memory: nothing written
    # other keys and anonymous callers are counted on their own
    assert httpx.post(url, json={}, headers=limited.headers(), timeout=30).status_code == 200
    for _ in range(5):
        assert httpx.post(url, json={}, timeout=30).status_code == 401
    assert httpx.post(url, json={}, timeout=30).status_code == 429


def test_the_next_event_stream_of_a_key_over_its_limit_gets_429(limited: Server) -> None:
    url = f"{limited.url}/v1/tenants/{TENANT}/changes"
    with ExitStack() as streams:
        for _ in range(3):
            stream = streams.enter_context(
                httpx.stream("GET", url, headers=limited.headers(), timeout=30)
            )
            assert stream.status_code == 200
        over = httpx.get(url, headers=limited.headers(), timeout=30)
        assert over.status_code == 429 and over.headers["retry-after"]
        assert over.json()["code"] == "TOO_MANY_REQUESTS"
    # the streams closed: the key may open one again (once the server saw them go)
    deadline = time.monotonic() + 30
    while True:
        with httpx.stream("GET", url, headers=limited.headers(), timeout=30) as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "the closed streams were never let go"
        time.sleep(0.2)


def raw(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.settimeout(10)
    return connection


def answer_within(connection: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes the connection; fails after ``seconds``."""
    started = time.monotonic()
    received = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    assert time.monotonic() - started < seconds, "the server held the connection too long"
    return received


def test_a_stalled_body_is_cut_with_408_within_the_body_timeout(limited: Server) -> None:
    with raw(limited) as connection:
        connection.sendall(
            f"POST /v1/tenants/{TENANT}/calls HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {limited.key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n[{".encode()
        )
        answer = answer_within(connection, 8)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_stalled_headers_and_an_idle_connection_are_cut_within_the_header_timeout(
    limited: Server,
) -> None:
    with raw(limited) as idle:
        assert answer_within(idle, 8).startswith(b"HTTP/1.1 408")
    with raw(limited) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert answer_within(slow, 8).startswith(b"HTTP/1.1 408")


def test_oversized_headers_are_refused_and_the_connection_closed(limited: Server) -> None:
    with raw(limited) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n"
        )
        assert answer_within(connection, 8).startswith(b"HTTP/1.1 400")
    ok = httpx.get(f"{limited.url}/healthz", headers={"X-Fine": "a" * 1000}, timeout=10)
    assert ok.status_code == 200
    assert os.environ["GRAPHSTORE_HTTP_MAX_HEADER_BYTES"] == "4096"
