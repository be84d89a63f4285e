"""The tenant's OpenAPI document, trusted as a third party's CI would trust it: requests
generated from it by a property-based, schema-driven API tester (Schemathesis), valid
and invalid ones, for every operation of a tenant with a graph type of its own, against
a real `graphstore serve` process. For each answer:

- no 5xx;
- its status and content type are documented for the operation, its body and headers
  match their schemas (Schemathesis's own checks);
- an invalid request is refused (4xx);
- a valid request is not refused for a reason the document does not state: never a
  401, 405, 408, 413, 415 or 429 with the owner's key, never the server's inputSchema
  refusing what the document's schema allows, never a body it cannot decode;
- a refused request writes nothing (the tenant stream's head does not move).

Bounded: a few examples per operation and mode, and a time budget after which each
remaining operation gets one example of each mode (so every operation is still tried).
An event stream (GET of a subscription operation) never ends: Schemathesis reads it
for :data:`STREAM_SECONDS` and checks what came (two examples per mode).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import graphstore
from tests.http.conftest import TENANT, Server, free_port, make_data

EXAMPLES = 6
STREAM_EXAMPLES = 2
STREAM_SECONDS = 1.5
BUDGET = 70.0  # seconds; then one example per operation and mode
UNDOCUMENTED_REASONS = (
    "invalid input for",  # the server's inputSchema refused what the document allows
    "is not JSON",
    "not UTF-8",
    "deeper than",
    "is not read here",
)

PERSON = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "maxLength": 50}, "born": {"type": "integer"}},
    "additionalProperties": False,
}


GRAPH: dict[str, str] = {}
"""The social graph the fixture made: half the valid requests of social.* name it (a
random UUID names no graph, so the writes would all be 404s)."""


@schemathesis.serializer("application/jsonl")
def _jsonl(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A served tenant with a graph type of its own (``social``) and one graph of it."""
    tmp = tmp_path_factory.mktemp("fuzz")
    data = tmp / "data"
    key, outsider = make_data(data)
    with graphstore.open(data) as store:
        acme = store.tenant(TENANT)
        acme.define_graph_type("social", config={"graphType": "undirected"})
        acme.add_node_type("social", "person", schema=PERSON)
        acme.add_edge_type("social", "knows", allowed_source_types=["person"])
        GRAPH["social"] = str(acme.create_graph("social", "fuzzed", status="active"))
    running = Server(data, free_port(), key, outsider, heartbeat=1.0, log=tmp / "server.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_every_operation_answers_as_its_document_says(fuzzed: Server) -> None:
    document = httpx.get(
        f"{fuzzed.url}/v1/tenants/{TENANT}/openapi.json", headers=fuzzed.headers(), timeout=30
    ).json()
    assert any(path.endswith("social.createNode") for path in document["paths"])
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    plain = [op for op in operations if op.method.upper() == "POST"]
    assert len(plain) >= 20 and any(op.path.endswith("/calls") for op in plain)
    streams = [op for op in operations if op.method.upper() == "GET"]
    assert len(streams) == 3  # graphstore.changes.tenant, .graph, .run
    started = time.monotonic()
    tried: dict[str, int] = {}
    with graphstore.open(fuzzed.data) as operator:
        tenant = operator.tenant(TENANT)

        def head() -> int:
            return int(tenant.recorder.max_notification_id() or 0)

        for operation in plain + streams:
            examples = EXAMPLES if time.monotonic() - started < BUDGET else 1
            if operation in streams:
                examples = STREAM_EXAMPLES
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                tried[operation.label] = tried.get(operation.label, 0) + _fuzz(
                    fuzzed, operation, mode, examples, head
                )
    assert set(tried) == {op.label for op in operations}
    assert all(count > 0 for count in tried.values()), tried


def _fuzz(server: Server, operation: Any, mode: GenerationMode, examples: int, head: Any) -> int:
    count = 0
    strategy = operation.as_strategy(generation_mode=mode, path_parameters={"org": TENANT})
    if mode == GenerationMode.POSITIVE and "/ops/social." in operation.path:
        strategy = st.tuples(strategy, st.booleans()).map(_existing_graph)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal count
        count += 1
        case.headers = {**(case.headers or {}), **server.headers()}  # the owner's key
        before = head()
        streaming = operation.method.upper() == "GET"
        response = case.call(base_url=server.url, timeout=STREAM_SECONDS if streaming else 30)
        case.validate_response(
            response,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
                response_headers_conformance,
                negative_data_rejection,
            ],
        )
        status = response.status_code
        if status >= 400:
            assert head() == before, f"{operation.label}: a {status} wrote to the stream"
        if mode == GenerationMode.POSITIVE:
            assert status not in (401, 405, 408, 413, 415, 429), (operation.label, response.text)
            if status == 400:
                detail = response.json()["detail"]
                assert not any(reason in detail for reason in UNDOCUMENTED_REASONS), (
                    operation.label,
                    case.body,
                    detail,
                )

    run()
    return count


def _existing_graph(drawn: tuple[Any, bool]) -> Any:
    case, existing = drawn
    if existing and isinstance(case.body, dict) and "graphId" in case.body:
        case.body["graphId"] = GRAPH["social"]
    return case


def test_the_document_states_every_refusal_and_the_org_pattern(fuzzed: Server) -> None:
    document = httpx.get(
        f"{fuzzed.url}/v1/tenants/{TENANT}/openapi.json", headers=fuzzed.headers(), timeout=30
    ).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = set(operation["responses"])
            assert {"200", "400", "401", "404", "429"} <= responses, (path, method)
            if method == "post":
                assert {"408", "413", "415"} <= responses, path
            assert operation["security"] == [{"apiKey": []}]
            org = next(p for p in operation["parameters"] if p["name"] == "org")
            assert org["schema"]["pattern"] == "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    assert Path(__file__).name not in str(document)  # nothing of the server's files
