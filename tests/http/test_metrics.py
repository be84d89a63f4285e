"""``/metrics``, ``/healthz`` and ``/readyz`` of a real `graphstore serve` process: the
scrape is parsed with the Prometheus client library's own parser and its values move as
work is done; no key or data path shows in it."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import msgspec
import yaml
from prometheus_client.parser import text_string_to_metric_families

from graphstore.http.app import readiness
from tests.http.conftest import TENANT, Server, call, responded
from tests.nats.conftest import until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> tuple[str, Samples]:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_serve_metrics_move_as_requests_and_projections_do(server: Server) -> None:
    _, before = scrape(server)
    batch = [call("m1", 1000), call("m1.a", 1001, parentRequestId="m1"), responded("m1.a", 1002)]
    done = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls", json=batch, headers=server.headers(), timeout=30
    )
    assert done.status_code == 200, done.text
    refused = httpx.post(f"{server.url}/v1/tenants/{TENANT}/calls", json=batch)
    assert refused.status_code == 401
    listed = server.op("graphstore.runs.list", {"minPosition": done.json()["position"]})
    assert [r["runId"] for r in listed["runs"]] == ["m1"]
    head = server.head()

    text, after = scrape(server)
    assert (
        value(after, "graphstore_ingested_events_total", tenant=TENANT)
        == value(before, "graphstore_ingested_events_total", tenant=TENANT) + 3
    )
    assert value(after, "graphstore_ingested_batches_total", tenant=TENANT) >= 1
    assert value(after, "graphstore_http_refused_total", status="401", code="UNAUTHENTICATED") == 1
    latency = "graphstore_http_request_duration_seconds_count"  # observations, not seconds
    assert value(after, latency, operation="graphstore.runs.list") >= 1
    assert value(after, latency, operation="calls") >= 2
    assert value(after, "graphstore_http_requests_total", operation="calls", status="200") >= 1
    projectors = ("metagraph@v1", "flowgraph@v1")

    def caught_up() -> bool:
        now = scrape(server)[1]
        return all(
            value(now, f"graphstore_projector_{name}", tenant=TENANT, projector=p) == want
            for p in projectors
            for name, want in (("head", head), ("position", head), ("lag_events", 0))
        )

    until(caught_up, timeout=30)
    assert server.key not in text and str(server.data) not in text

    # an open event stream counts while it is open
    opened = threading.Event()
    stop = threading.Event()

    def follow() -> None:
        with httpx.stream(
            "GET", f"{server.url}/v1/tenants/{TENANT}/changes", headers=server.headers(), timeout=30
        ) as stream:
            for _ in stream.iter_lines():
                opened.set()
                if stop.is_set():
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(30)
    until(lambda: value(scrape(server)[1], "graphstore_sse_subscribers") == 1, timeout=30)
    stop.set()
    reader.join(timeout=30)  # the next heartbeat ends it
    until(lambda: value(scrape(server)[1], "graphstore_sse_subscribers") == 0, timeout=30)


def test_healthz_and_readyz_answer(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"ok": True}
    httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls",
        json=[call("r1", 1)],
        headers=server.headers(),
        timeout=30,
    )
    ready = until(
        lambda: (r := httpx.get(f"{server.url}/readyz", timeout=10)).status_code == 200 and r
    )
    assert ready.json()["ready"] is True and ready.json()["behind"] == []


class _Status(msgspec.Struct, frozen=True):
    tenant: str
    projector: str
    state: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float


def test_readyz_is_503_naming_the_projectors_behind_or_failed() -> None:
    fine = _Status("acme", "flowgraph", "live", 9, 9, 0, 0.0)
    slow = _Status("acme", "metagraph", "catching-up", 1, 9, 8, 120.0)
    broken = _Status("globex", "flowgraph", "failed", 3, 3, 0, 0.0)
    assert readiness([fine], 30.0).status_code == 200
    answer = readiness([fine, slow, broken], 30.0)
    assert answer.status_code == 503
    body: dict[str, Any] = json.loads(bytes(answer.body))
    assert [(b["tenant"], b["projector"]) for b in body["behind"]] == [
        ("acme", "metagraph"),
        ("globex", "flowgraph"),
    ]


def test_the_suggested_alerts_parse_and_name_only_documented_metrics() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = text[text.index("## Metrics and health") :]
    rules = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    documented = set(re.findall(r"^\| `(graphstore_\w+)`", section, re.M))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {m for e in exprs for m in re.findall(r"\bgraphstore_\w+", e)}
    named = {re.sub(r"_bucket$", "", m) for m in named}
    assert named and named <= documented, named - documented
