"""Operation types on every way in over HTTP: ``POST .../calls`` says which operations
are subscriptions by ``?subscription=`` (JSON Lines or a JSON array) or by the
``operationTypes`` of a JSON object body, as the command line's ``--subscription`` and
the ``graphstore.calls.ingest`` operation do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

import graphstore
from domain.calls import get_call
from graphstore.operations.ingest import AUDIT_DESCRIPTION
from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from tests.http.conftest import TENANT, Server, call

JSON = "application/json"
SAMPLE = Path(WORKFLOWS).read_bytes()
EVENTS = [json.loads(line) for line in SAMPLE.splitlines() if line.strip()]


def status_of(app: Any, request_id: str) -> str:
    found = get_call(app, request_id)
    assert found is not None, request_id
    return str(found["status"])


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


def test_every_body_is_the_ingest_operation_with_one_audit_description(server: Server) -> None:
    """An array, JSON Lines and the operation's object all go through
    ``graphstore.calls.ingest``: one audit record per batch, ``call events ingested``."""
    batches = [
        (json.dumps(EVENTS[:2]).encode(), "application/json", "?subscription=feed.watch"),
        (SAMPLE, "application/jsonl", "?subscription=feed.watch"),
        (json.dumps({"events": [call("op-1", 1), call("op-2", 2)]}).encode(), JSON, ""),
    ]
    for body, media, query in batches:
        assert post(server, body, media, query).status_code == 200
    with graphstore.open(server.data) as store:
        written = [
            e.details
            for e in store.audit_log(org_id=TENANT)
            if e.action == "tenant.write" and e.details.get("what") == AUDIT_DESCRIPTION
        ]
    # A batch that writes nothing (applied: 0) leaves no record: nothing happened.
    assert [(d.get("source"), d.get("applied")) for d in written] == [
        ("http", 2),
        ("http", len(EVENTS) - 2),
        ("operation", 2),
    ], written


def test_the_abort_policy_is_an_option_as_on_the_command_line(server: Server) -> None:
    before = server.head()
    wrong = post(server, SAMPLE, "application/jsonl", "?subscription=feed.watch&abortPolicy=x")
    assert (wrong.status_code, wrong.json()["code"]) == (400, "VALIDATION_ERROR"), wrong.text
    assert "continue-running" in wrong.json()["detail"]
    assert server.head() == before
    query = "?subscription=feed.watch&abortPolicy=continue-running"
    applied_all(post(server, SAMPLE, "application/jsonl", query))

    def tree(root: str, query: str) -> None:
        events = [
            call(root, 1),
            call(f"{root}.child", 2, parentRequestId=root),
            {"type": "call.aborted", "at": 3, "payload": {"requestId": root}},
        ]
        assert post(server, json.dumps(events).encode(), JSON, query).status_code == 200

    tree("kept", "?abortPolicy=continue-running")
    tree("cascaded", "")
    with graphstore.open(server.data) as store:
        app = store.tenant(TENANT)
        assert [status_of(app, f"{root}.child") for root in ("kept", "cascaded")] == [
            "pending",
            "aborted",
        ]
