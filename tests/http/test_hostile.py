"""Hostile input against a real `graphstore serve` process: every body the server cannot
use is a 4xx problem with a message (never a 5xx), and writes nothing; no answer holds
the server's data path; an unknown tenant and one the key may not read get the same
answer; authorization comes before any look at the body; a Last-Event-ID past the head
is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphstore.http.body import MAX_DEPTH
from graphstore.operations.schemas import MAX_BATCH
from tests.http.conftest import TENANT, Server, call, free_port, make_data

PROBLEM = "application/problem+json"
JSON = "application/json"
JSONL = "application/jsonl"
DEEP = b"[" * 100_000 + b"]" * 100_000


def post(
    server: Server, path: str, body: bytes, media: str, key: str | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/{path}",
        content=body,
        headers=server.headers(key, **{"Content-Type": media}),
        timeout=60,
    )


def assert_refused(response: httpx.Response, status: int, server: Server) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["detail"]
    assert str(server.data) not in response.text and str(server.data.resolve()) not in response.text
    return problem


@pytest.mark.parametrize(
    ("path", "body", "media", "status", "words"),
    [
        ("calls", DEEP, JSON, 400, "deeper than"),
        (
            "calls",
            b"[" + b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1) + b"]",
            JSON,
            400,
            "deeper",
        ),
        ("calls", DEEP + b"\n", JSONL, 400, "deeper than"),
        ("ops/graphstore.runs.list", DEEP, JSON, 400, "deeper than"),
        (
            "calls",
            b'[{"type": "call.requested", "at": 1, "payload": "\xff\xfe"}]',
            JSON,
            400,
            "UTF-8",
        ),
        ("calls", b'{"type": "call.requested", "at": 1, "payload": "\xc3"}\n', JSONL, 400, "UTF-8"),
        ("ops/graphstore.runs.list", b'{"status": ["\xff"]}', JSON, 400, "UTF-8"),
        ("calls", b'["' + b'\\"' * 300_000 + b"[" * 100, JSON, 400, "not JSON"),
        ("calls", b"this is not json", JSON, 400, "not JSON"),
        ("calls", b"", JSON, 400, "empty"),
        ("calls", b"  \n ", JSONL, 400, "empty"),
        ("calls", b"[]", JSON, 400, "no call events"),
        ("calls", b"x" * (1024 * 1024 + 1), JSON, 413, "larger than"),
        ("calls", json.dumps([{}] * (MAX_BATCH + 1)).encode(), JSON, 413, "more than"),
    ],
    ids=[
        "nested 100000 deep",
        "objects nested past the limit",
        "JSON Lines nested 100000 deep",
        "operation input nested 100000 deep",
        "not UTF-8",
        "JSON Lines not UTF-8",
        "operation input not UTF-8",
        "unterminated string of escaped quotes",
        "not JSON",
        "empty",
        "JSON Lines blank",
        "no events",
        "too big",
        "too many events",
    ],
)
def test_a_body_the_server_cannot_use_is_a_4xx_with_a_message_and_writes_nothing(
    server: Server, path: str, body: bytes, media: str, status: int, words: str
) -> None:
    before = server.head()
    problem = assert_refused(post(server, path, body, media), status, server)
    assert words in problem["detail"]
    assert server.head() == before


def test_deep_nesting_in_a_query_parameter_is_refused_too(server: Server) -> None:
    response = httpx.get(
        f"{server.url}/v1/tenants/{TENANT}/ops/graphstore.changes.run",
        params={"runId": "r", "fromStart": "[" * 5000},
        headers=server.headers(),
        timeout=30,
    )
    assert_refused(response, 400, server)


def test_an_unknown_tenant_and_a_forbidden_one_get_the_same_answer_without_a_path(
    server: Server,
) -> None:
    before = server.head()
    answers = []
    for org, key in (
        ("nobody", server.key),
        ("nobody", server.outsider),
        (TENANT, server.outsider),
    ):
        response = httpx.post(
            f"{server.url}/v1/tenants/{org}/ops/graphstore.runs.list",
            json={},
            headers=server.headers(key),
            timeout=30,
        )
        problem = assert_refused(response, 404, server)
        answers.append(
            json.dumps(problem).replace(f"'{org}'", "'ORG'").replace(f'"{org}"', '"ORG"')
        )
    assert len(set(answers)) == 1, answers  # nothing tells them apart
    assert server.head() == before


@pytest.mark.parametrize(
    ("path", "body", "media"),
    [
        ("calls", DEEP, JSON),
        ("calls", b"\xff", JSONL),
        ("calls", b"[]", "text/plain"),
        ("ops/graphstore.calls.ingest", b'{"events": 7}', JSON),
        ("ops/graphstore.runs.list", b"{", JSON),
        ("ops/nope.createNode", b"{}", JSON),
    ],
    ids=["deep", "not UTF-8", "wrong type", "invalid input", "not JSON", "unknown operation"],
)
def test_an_outsider_is_refused_before_its_body_is_looked_at(
    server: Server, path: str, body: bytes, media: str
) -> None:
    before = server.head()
    problem = assert_refused(post(server, path, body, media, key=server.outsider), 404, server)
    assert problem["code"] == "NOT_FOUND" and "no tenant" in problem["detail"]
    assert server.head() == before


def test_a_last_event_id_past_the_head_is_refused(server: Server) -> None:
    ingest = post(server, "calls", json.dumps([call("p1", 1)]).encode(), JSON)
    assert ingest.status_code == 200, ingest.text
    head = server.head()
    for path in ("changes", "ops/graphstore.changes.tenant"):
        response = httpx.get(
            f"{server.url}/v1/tenants/{TENANT}/{path}",
            headers=server.headers(**{"Last-Event-ID": str(head + 1000)}),
            timeout=30,
        )
        problem = assert_refused(response, 400, server)
        assert "past" in problem["detail"] and problem["details"]["head"] == head
    with httpx.stream(
        "GET",
        f"{server.url}/v1/tenants/{TENANT}/changes",
        headers=server.headers(**{"Last-Event-ID": str(head)}),
        timeout=30,
    ) as at_head:
        assert at_head.status_code == 200  # the head itself is a fine place to resume


def test_a_relative_data_directory_hides_its_path_and_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `graphstore serve` with --data-dir data, as typed
    key, outsider = make_data(Path("data"))
    running = Server(Path("data"), free_port(), key, outsider, 1.0, log=tmp_path / "log")
    running.start()
    try:
        wrong = httpx.post(
            f"{running.url}/v1/tenants/{TENANT}/ops/graphstore.runs.list",
            json={"metadata": 1},
            headers=running.headers(),
            timeout=30,
        )
        assert wrong.status_code == 400 and "'metadata'" in wrong.json()["detail"]
        assert str(tmp_path) not in wrong.text
    finally:
        running.stop()
