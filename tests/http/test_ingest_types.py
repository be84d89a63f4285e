"""Operation types on every way in over HTTP: ``POST .../calls`` says which operations
are subscriptions by ``?subscription=`` (JSON Lines or a JSON array) or by the
``operationTypes`` of a JSON object body, as the command line's ``--subscription`` and
the ``graphstore.calls.ingest`` operation do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from tests.http.conftest import TENANT, Server

SAMPLE = Path(WORKFLOWS).read_bytes()
EVENTS = [json.loads(line) for line in SAMPLE.splitlines() if line.strip()]


def post(server: Server, body: bytes, media: str, query: str = "") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls{query}",
        content=body,
        headers=server.headers(**{"Content-Type": media}),
        timeout=60,
    )


def applied_all(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report["applied"] == report["events"] == len(EVENTS)
    return report


def test_the_sample_needs_its_subscription_and_nothing_is_written_without_it(
    server: Server,
) -> None:
    assert OPERATION_TYPES == {"feed.watch": "subscription"}
    before = server.head()
    refused = post(server, SAMPLE, "application/jsonl")
    assert (refused.status_code, refused.json()["code"]) == (409, "CONFLICT"), refused.text
    assert "?subscription=" in refused.json()["detail"]
    assert server.head() == before
    report = applied_all(post(server, SAMPLE, "application/jsonl", "?subscription=feed.watch"))
    assert report["position"] == server.head() > before


def test_a_json_array_takes_subscription_too(server: Server) -> None:
    applied_all(
        post(server, json.dumps(EVENTS).encode(), "application/json", "?subscription=x,feed.watch")
    )


def test_a_json_object_is_the_ingest_operations_input(server: Server) -> None:
    body = {"events": EVENTS, "operationTypes": OPERATION_TYPES}
    report = applied_all(post(server, json.dumps(body).encode(), "application/json"))
    assert report["position"] == server.head()
    again = post(server, json.dumps(body).encode(), "application/json")
    assert again.json()["applied"] == 0  # idempotent, as every way in


def test_a_bad_subscription_parameter_or_type_is_a_400_and_writes_nothing(server: Server) -> None:
    before = server.head()
    empty = post(server, SAMPLE, "application/jsonl", "?subscription=")
    assert empty.status_code == 400 and "subscription=" in empty.json()["detail"]
    body = {"events": EVENTS, "operationTypes": {"feed.watch": "stream"}}
    wrong = post(server, json.dumps(body).encode(), "application/json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "VALIDATION_ERROR"
    assert server.head() == before
