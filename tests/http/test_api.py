"""The HTTP API against a real `graphstore serve` process: ingestion, operations,
errors (problem+json, platform codes, nothing written), OpenAPI, SSE with resume."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

import graphstore
from graphstore.operations import spec_schema
from tests.http.conftest import TENANT, Server, call, responded

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def ingest(server: Server, events: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls",
        json=events,
        headers=server.headers(**headers),
        timeout=30,
    )


def test_a_batch_commits_whole_and_a_retry_changes_nothing(server: Server) -> None:
    batch = [call("r1", 1000), call("r1.a", 1001, parentRequestId="r1"), responded("r1.a", 1002)]
    first = ingest(server, batch)
    assert first.status_code == 200, first.text
    assert first.json()["applied"] == 3
    assert first.json()["position"] == server.head()
    again = ingest(server, batch)
    assert again.status_code == 200
    assert (again.json()["applied"], again.json()["writes"]) == (0, 0)
    assert again.json()["position"] == first.json()["position"]  # nothing written


def test_json_lines_are_one_batch_and_a_bad_line_writes_nothing(server: Server) -> None:
    before = server.head()
    lines = "\n".join(json.dumps(e) for e in [call("j1", 1), {"type": "call.nope", "at": 2}])
    response = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls",
        content=lines,
        headers=server.headers(**{"Content-Type": "application/jsonl"}),
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "line 2" in response.json()["detail"]
    assert server.head() == before
    good = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls",
        content=json.dumps(call("j1", 1)) + "\n",
        headers=server.headers(**{"Content-Type": "application/x-ndjson"}),
    )
    assert good.status_code == 200 and good.json()["applied"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("post", "calls", b"[" * 10, JSON, 400, "VALIDATION_ERROR"),
        ("post", "calls", b'{"a": 1}', JSON, 400, "VALIDATION_ERROR"),
        ("post", "calls", b"[]", {"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("post", "calls", b"x" * (1024 * 1024 + 1), JSON, 413, "PAYLOAD_TOO_LARGE"),
        ("post", "ops/graphstore.runs.list", b"{", JSON, 400, "VALIDATION_ERROR"),
        ("post", "ops/nope.createNode", b"{}", JSON, 404, "OPERATION_NOT_FOUND"),
        ("post", "ops/graphstore.runs.list", b'{"limit": "ten"}', JSON, 400, "VALIDATION_ERROR"),
        ("post", "ops/graphstore.changes.run", b'{"runId": "r"}', JSON, 405, "METHOD_NOT_ALLOWED"),
        ("get", "ops/graphstore.runs.list", b"", {}, 405, "METHOD_NOT_ALLOWED"),
        ("get", "changes?after=soon", b"", {}, 400, "VALIDATION_ERROR"),
        ("delete", "calls", b"", {}, 405, "METHOD_NOT_ALLOWED"),
        ("get", "nowhere", b"", {}, 404, "NOT_FOUND"),
    ],
    ids=[
        "malformed JSON",
        "not an array",
        "wrong content type",
        "body too large",
        "malformed input",
        "unknown operation",
        "input against its schema",
        "subscription by POST",
        "query by GET",
        "bad Last-Event-ID",
        "wrong method",
        "unknown route",
    ],
)
def test_bad_requests_get_a_clear_4xx_and_write_nothing(
    server: Server,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = server.head()
    response = httpx.request(
        method,
        f"{server.url}/v1/tenants/{TENANT}/{path}",
        content=body or None,
        headers=server.headers(**headers),
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["detail"]  # says what was wrong
    assert server.head() == before


def test_credentials_are_checked_and_refusals_are_audited(server: Server) -> None:
    before = server.head()
    anonymous = httpx.post(f"{server.url}/v1/tenants/{TENANT}/calls", json=[call("x", 1)])
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["code"] == "UNAUTHENTICATED"
    forged = ingest(server, [call("x", 1)], Authorization="Bearer gsk_" + "x" * 43)
    assert (forged.status_code, forged.json()["code"]) == (401, "UNAUTHENTICATED")
    denied = ingest(server, [call("x", 1)], Authorization=f"Bearer {server.outsider}")
    assert (denied.status_code, denied.json()["code"]) == (404, "NOT_FOUND")
    assert "member" in denied.json()["detail"]
    assert server.outsider not in denied.text
    op = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/ops/graphstore.runs.list",
        json={},
        headers=server.headers(server.outsider),
    )
    assert (op.status_code, op.json()["code"]) == (404, "NOT_FOUND")
    assert server.head() == before
    with graphstore.open(server.data) as operator:
        refusals = [e for e in operator.audit_log(org_id=TENANT) if e.action == "access.denied"]
    # Refusals are audited coalesced (per principal, operation, tenant and minute, with a
    # count): both refusals above are counted, whether in one entry or two.
    assert sum(e.details.get("count", 1) for e in refusals) >= 2


def test_operations_run_through_their_endpoints(server: Server) -> None:
    ingest(server, [call("run-1", 1000), call("run-1.a", 1001, parentRequestId="run-1")])
    position = server.head()
    runs = server.op("graphstore.runs.list", {"minPosition": position})
    assert [r["runId"] for r in runs["runs"]] == ["run-1"]
    shown = server.op("graphstore.runs.show", {"runId": "run-1", "minPosition": position})
    assert [c["requestId"] for c in shown["calls"]] == ["run-1", "run-1.a"]
    history = server.op("graphstore.runs.history", {"runId": "run-1"})
    offsets = [e["offset"] for e in history["entries"]]
    then = server.op("graphstore.runs.asOf", {"runId": "run-1", "offset": offsets[0]})
    assert [c["requestId"] for c in then["calls"]] == ["run-1"]


def test_the_openapi_documents_every_operation_with_its_schemas(server: Server) -> None:
    store_doc = httpx.get(f"{server.url}/openapi.json").json()
    tenant_doc = httpx.get(
        f"{server.url}/v1/tenants/{TENANT}/openapi.json", headers=server.headers()
    ).json()
    assert store_doc["openapi"].startswith("3.1")
    specs = httpx.get(
        f"{server.url}/v1/tenants/{TENANT}/openapi.json", headers=server.headers()
    ).json()["paths"]
    assert set(store_doc["paths"]) < set(specs)  # plus the call graph type's operations
    assert any(".createNode" in path for path in tenant_doc["paths"])
    for path, item in tenant_doc["paths"].items():
        operation = item.get("post") or item["get"]
        assert path.endswith(operation["operationId"])
        assert {"200", "400", "403"} <= set(operation["responses"])
        schema = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
        if schema is not None:
            Draft202012Validator.check_schema(schema["schema"])
    Draft202012Validator.check_schema(spec_schema())


def read_events(response: httpx.Response, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The first ``count`` SSE events of a streaming response: (id, data)."""
    events: list[tuple[int, dict[str, Any]]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in current:
                events.append((int(current["id"]), json.loads(current["data"])))
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.strip()
    return events


def test_sse_resumes_after_last_event_id_with_no_gap_and_no_duplicate(server: Server) -> None:
    ingest(server, [call("s1", 1), call("s1.a", 2, parentRequestId="s1"), responded("s1.a", 3)])
    url = f"{server.url}/v1/tenants/{TENANT}/changes?run=s1&after=0"
    with httpx.stream("GET", url, headers=server.headers(), timeout=30) as first:
        assert first.headers["content-type"].startswith("text/event-stream")
        seen = read_events(first, 2)
    last = seen[-1][0]
    ingest(server, [responded("s1", 4)])
    headers = server.headers(**{"Last-Event-ID": str(last)})
    with httpx.stream("GET", url, headers=headers, timeout=30) as second:
        rest = read_events(second, 2)
    ids = [i for i, _ in seen + rest]
    assert ids == sorted(set(ids))  # in order, none twice
    assert [d["callId"] for _, d in seen + rest] == ["s1", "s1.a", "s1.a", "s1"]
    assert [d["status"] for _, d in rest] == ["completed", "completed"]


def test_sse_sends_heartbeats_and_subscription_operations_stream_too(server: Server) -> None:
    ingest(server, [call("h1", 1)])
    url = f"{server.url}/v1/tenants/{TENANT}/ops/graphstore.changes.run?runId=h1&fromStart=true"
    with httpx.stream("GET", url, headers=server.headers(), timeout=30) as stream:
        lines: list[str] = []
        for line in stream.iter_lines():
            lines.append(line)
            if any(x.startswith(": ping") for x in lines) and any(
                x.startswith("data:") for x in lines
            ):
                break
    data = [json.loads(x[5:]) for x in lines if x.startswith("data:")]
    assert data[0]["callId"] == "h1"
    refused = httpx.get(
        f"{server.url}/v1/tenants/{TENANT}/changes", headers=server.headers(server.outsider)
    )
    assert (refused.status_code, refused.json()["code"]) == (404, "NOT_FOUND")
