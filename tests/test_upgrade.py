"""A data directory written before call trees and stable names (the committed fixture
``tests/fixtures/legacy-v1``, made by ``tests/fixtures/make_legacy.py`` with that code)
opens, replays, projects and accepts new writes (docs/calls.md, "Upgrading")."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import honker
import pytest

import graphstore
from domain.calls import find_call_graph, get_call, ingest
from domain.names import canonical
from domain.retention import RetentionPolicy
from graphstore.retention import run_pass, set_policy
from projections.flowgraph import Flowgraph
from projections.replay import Replay
from tests.domain.calls_state import all_calls, graph_calls
from tests.projections.rebuild_check import catch_up_in_process, projections_equal_rebuild

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-v1"
T1 = 1_795_000_100_000


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


def stream_types(path: Path) -> list[str]:
    db = honker.open(str(path))
    try:
        rows = db.query(
            "SELECT payload ->> '$.type' AS t FROM _honker_stream WHERE topic = 'metagraph' "
            'ORDER BY "offset"'
        )
    finally:
        db.close()
    return [str(r["t"]) for r in rows]


def requested(key: str, parent: str) -> dict[str, Any]:
    payload = {
        "requestId": key,
        "operationId": "flows.step",
        "input": {},
        "parentRequestId": parent,
    }
    return {"type": "call.requested", "at": T1, "payload": payload}


def responded(key: str) -> dict[str, Any]:
    output = {"data": {"ok": key}, "meta": {"source": "local"}}
    return {"type": "call.responded", "at": T1 + 5, "payload": {"requestId": key, "output": output}}


def test_a_legacy_tenant_reads_as_before(legacy: Path) -> None:
    with graphstore.open(legacy) as store:
        assert store.tenants() == ["acme"]
        acme = store.tenant("acme")
        friends = next(g for name, g in graph_ids(acme).items() if name == "friends")
        assert acme.get_node(friends, "alan").attributes == {"name": "Alan", "field": "computing"}
        assert acme.find_edge(friends, "ada-alan").attributes == {"since": 1936}
        assert [a.email for a in store.identity.accounts()] == ["ada@example.com"]
        assert get_call(acme, "run-a")["status"] == "completed"  # type: ignore[index]
        assert get_call(acme, "b-1")["parentRequestId"] == "run-b"  # type: ignore[index]
        assert {get_call(acme, k)["status"] for k in ("run-c", "c-1")} == {"aborted"}  # type: ignore[index]
        # The first use copied the legacy calls into call trees: the same calls.
        graph = find_call_graph(acme)
        assert graph is not None
        assert {k: acme.get_node(graph, k).attributes for k in acme.nodes(graph)} == all_calls(acme)


def graph_ids(app: Any) -> dict[str, Any]:
    """Graph names by id, from the legacy stream's creation events."""
    found: dict[str, Any] = {}
    for n in app.recorder.select_notifications(0, 1000):
        if canonical(n.topic) == "Graph.Created":
            event = app.mapper.to_domain_event(n)
            found[event.name] = event.originator_id
    return found


def test_a_legacy_tenant_projects_accepts_new_calls_and_equals_a_clean_rebuild(
    legacy: Path, tmp_path: Path
) -> None:
    tenant_file = legacy / "tenant-acme.db"
    legacy_types = stream_types(tenant_file)
    assert all(t.startswith("domain.") for t in legacy_types)  # written by the old code
    catch_up_in_process(tenant_file)  # the views of the old events, by the new projectors
    with graphstore.open(legacy) as store:
        acme = store.tenant("acme")
        ingest(acme, [requested("b-2", "run-b"), responded("b-1"), responded("b-2")])
        ingest(acme, [requested("a-2", "run-a")])  # under a finished legacy run
        env = store.data.tenant_env("acme")
        calls = graph_calls(acme)
    catch_up_in_process(tenant_file)
    types = stream_types(tenant_file)
    assert types[: len(legacy_types)] == legacy_types  # history untouched
    assert not any(t.startswith("domain.") for t in types[len(legacy_types) :])
    assert "CallTree.CallImported" in types and "CallIndex.Started" in types
    with Flowgraph.open(env) as views:
        run_b, run_a = views.run("run-b"), views.run("run-a")
        assert run_b is not None and run_a is not None
        assert (run_b.calls, run_b.completed_calls, run_b.pending_calls) == (3, 2, 1)
        assert (run_a.calls, run_a.status) == (3, "running")
        assert {c.request_id for c in views.call_tree("run-b")} == {"run-b", "b-1", "b-2"}
        assert {c.request_id: c.status for c in views.call_tree("run-b")} == {
            k: calls[k]["status"] for k in ("run-b", "b-1", "b-2")
        }
    with Replay.open(env) as replay:
        history = replay.history("run-b")
        assert [h.event for h in history][:2] == ["NodeAdded", "NodeAdded"]  # legacy events
        assert history[-1].event == "CallUpdated"
        assert replay.run_as_of("run-b", history[1].offset).run.calls == 2  # type: ignore[union-attr]
    assert projections_equal_rebuild(tenant_file, tmp_path) > 0


def test_retiring_legacy_runs_leaves_projections_equal_to_a_clean_rebuild(
    legacy: Path, tmp_path: Path
) -> None:
    """Legacy calls live in the call graph's ``Graph.NodeAdded`` events (kept: that
    aggregate is not a run's). A pass first copies them into call trees (as a first
    call write does), retires the runs, and a rebuild from offset 0 still gives exactly
    the live tables (issue 16)."""
    tenant_file = legacy / "tenant-acme.db"
    catch_up_in_process(tenant_file)
    with graphstore.open(legacy) as store:
        acme = store.tenant("acme")
        set_policy(acme, RetentionPolicy(finished_older_than_s=1))
        first = run_pass(acme, store.views("acme"), "acme", only=["run-a", "run-c"])
        # The copy is new history the views have not passed yet: the runs wait for them.
        assert first.runs == [] and {w.run_id for w in first.waiting} == {"run-a", "run-c"}
    catch_up_in_process(tenant_file)
    with graphstore.open(legacy) as store:
        acme = store.tenant("acme")
        report = run_pass(acme, store.views("acme"), "acme", only=["run-a", "run-c"])
        assert sorted(r.run_id for r in report.runs) == ["run-a", "run-c"]
        assert store.views("acme").run("run-a") is None
        assert store.views("acme").run("run-b") is not None
    catch_up_in_process(tenant_file)
    assert projections_equal_rebuild(tenant_file, tmp_path) > 0
