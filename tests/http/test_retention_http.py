"""Retention through the HTTP API (the operations layer, like every operation): the
permission `operate`, the policy as an event, a pass and an erasure, against a real
server process."""

from __future__ import annotations

import httpx

import graphstore
from tests.http.conftest import TENANT, Server, call, responded

T0 = 1_700_000_000_000


def test_retention_operations_need_operate_and_retire_runs(server: Server) -> None:
    events = []
    for i, run in enumerate(["old-1", "old-2", "kept"]):
        events += [call(run, T0 + i), responded(run, T0 + i + 1)]
    events.append(call("flying", T0))
    server.op("graphstore.calls.ingest", {"events": events})
    with graphstore.open(server.data) as store:  # a member: may write, may not operate
        me = store.principal
        bob = store.identity.create_account("bob@example.com", "Bob", actor=me)
        store.identity.add_member(TENANT, bob.id, actor=me)
        member = store.identity.create_api_key(bob.id, name="k", actor=me).secret

    for operation, data in (
        ("graphstore.retention.setPolicy", {"finishedOlderThanS": 86_400}),
        ("graphstore.runs.forget", {"runId": "kept"}),
    ):
        refused = httpx.post(
            f"{server.url}/v1/tenants/{TENANT}/ops/{operation}",
            json=data,
            headers=server.headers(member),
            timeout=30,
        )
        assert refused.status_code == 403, refused.text
    bad = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/ops/graphstore.retention.setPolicy",
        json={"finishedOlderThanS": 0},
        headers=server.headers(),
        timeout=30,
    )
    assert bad.status_code == 400, bad.text

    shown = server.op("graphstore.retention.setPolicy", {"finishedOlderThanS": 86_400})
    assert shown["policy"]["finished_older_than_s"] == 86_400
    position = server.head()
    runs = server.op("graphstore.runs.list", {"minPosition": position})["runs"]
    assert {r["runId"] for r in runs} == {"old-1", "old-2", "kept", "flying"}

    forgotten = server.op("graphstore.runs.forget", {"runId": "kept"})
    assert forgotten["runs"][0]["run_id"] == "kept"
    dry = server.op("graphstore.retention.run", {"dryRun": True})
    assert sorted(r["run_id"] for r in dry["runs"]) == ["old-1", "old-2"]
    done = server.op("graphstore.retention.run", {})
    assert sorted(r["run_id"] for r in done["runs"]) == ["old-1", "old-2"]
    runs = server.op("graphstore.runs.list", {"minPosition": server.head()})["runs"]
    assert {r["runId"] for r in runs} == {"flying"}
    status = server.op("graphstore.retention.show", {})
    assert status["retired"] == 3 and status["due"] == 0
