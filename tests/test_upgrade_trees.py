"""A data directory written by main before issue 17 (the committed fixture
``tests/fixtures/trees-v2``, made by ``tests/fixtures/make_trees.py``): call trees whose
``CallTree.CallUpdated`` carries a call's whole attributes. It opens, reads, projects,
replays and accepts new calls, and its views equal a clean rebuild (docs/calls.md,
"Upgrading"; docs/events.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import honker
import pytest

import graphstore
from domain import Principal
from domain.calls import find_call_graph, get_call, ingest
from domain.errors import CallConflictError
from graphstore.verify import verify
from projections.flowgraph import Flowgraph
from projections.replay import Replay
from tests.domain.calls_state import graph_calls
from tests.projections.rebuild_check import catch_up_in_process, projections_equal_rebuild

FIXTURE = Path(__file__).parent / "fixtures" / "trees-v2"
T1 = 1_796_000_100_000
TYPES: dict[str, Any] = {"feeds.watch": "subscription"}


FIXTURE_V3 = Path(__file__).parent / "fixtures" / "trees-v3"
"""The same calls written by main at d0e1da2: changes-only updates, one ``CallRef.Filed``
per call (before a call's reference became an index row of its ``CallAdded``)."""

FIXTURE_V4 = Path(__file__).parent / "fixtures" / "trees-v4"
"""The same calls written by main at 97fcea8: references as index rows, and every
``CallAdded`` with its ``key`` and ``links``, every ``CallUpdated`` with
``"attributes": null`` (before those were left out when derivable, docs/events.md)."""

FIXTURE_V5 = Path(__file__).parent / "fixtures" / "trees-v5"
"""The same calls written by main at 1efdefa: ``CallAdded`` (class_version 1) with the
call's whole attributes when requested (before it stored the request as given)."""


@pytest.fixture(
    params=[FIXTURE, FIXTURE_V3, FIXTURE_V4, FIXTURE_V5],
    ids=["trees-v2", "trees-v3", "trees-v4", "trees-v5"],
)
def trees(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    data = tmp_path / request.param.name  # trees-v<N>: the version that wrote it
    shutil.copytree(request.param, data)
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


def event(kind: str, key: str, at: int, **payload: Any) -> dict[str, Any]:
    return {"type": kind, "at": at, "payload": {"requestId": key, **payload}}


def requested(key: str, parent: str | None, op: str = "flows.step") -> dict[str, Any]:
    more: dict[str, Any] = {"operationId": op, "input": {"k": key}}
    if parent is not None:
        more["parentRequestId"] = parent
    return event("call.requested", key, T1, **more)


def responded(key: str, data: Any) -> dict[str, Any]:
    return event("call.responded", key, T1 + 5, output={"data": data, "meta": {"source": "local"}})


def test_a_tree_v2_tenant_reads_as_written(trees: Path) -> None:
    with graphstore.open(trees) as store:
        assert store.tenants() == ["acme"]
        acme = store.tenant("acme")
        (account,) = store.identity.accounts()
        assert account.email == "ada@example.com"
        assert [k.name for k in store.identity.api_keys(account.id)] == ["fixture"]
        status = {k: get_call(acme, k)["status"] for k in graph_calls(acme)}  # type: ignore[index]
        assert status == {
            "run-a": "completed",
            "a-1": "completed",
            "a-2": "failed",
            "sub-1": "completed",
            "run-c": "aborted",
            "c-1": "aborted",
            "run-d": "pending",
            "d-1": "completed",
            "d-2": "pending",
        }
        sub = get_call(acme, "sub-1")
        assert sub is not None
        assert [o["data"] for o in sub["output"]] == [{"tick": 0}, {"tick": 1}, {"tick": 2}]
        assert get_call(acme, "a-2")["error"]["code"] == "EXECUTION_ERROR"  # type: ignore[index]
        assert get_call(acme, "c-1")["events"][-1]["cause"] == "run-c"  # type: ignore[index]


def test_a_tree_v2_tenant_projects_replays_and_accepts_new_calls(
    trees: Path, tmp_path: Path
) -> None:
    tenant_file = trees / "tenant-acme.db"
    old_types = stream_types(tenant_file)
    with graphstore.open(trees) as store:
        acme = store.tenant("acme")
        env = store.data.tenant_env("acme")
        with Flowgraph.open(env) as views:  # the views the old code projected
            run_d = views.run("run-d")
            assert run_d is not None and (run_d.calls, run_d.pending_calls) == (3, 2)
        with pytest.raises(CallConflictError):  # sub-1 ended: a late output is refused
            ingest(acme, [requested("x", None), responded("sub-1", {"late": 1})])
        batches = [
            [requested("sub-2", None, "feeds.watch")],
            [responded("sub-2", {"tick": 0}), responded("sub-2", {"tick": 1})],
            [responded("d-2", {"ok": True}), event("call.completed", "run-d", T1 + 9)],
            [requested("d-3", "run-d"), event("call.aborted", "d-3", T1 + 10)],
            [requested("a-3", "run-a")],  # under a finished run of the old format
        ]
        outcomes = [ingest(acme, batch, operation_types=TYPES).applied for batch in batches]
        calls = graph_calls(acme)
        graph_id = find_call_graph(acme)
        replay_head = acme.recorder.max_notification_id()
        store.identity.create_account("bo@example.com", "Bo", actor=Principal.system())
    assert outcomes == [1, 2, 2, 2, 1]
    assert "x" not in calls  # the refused batch wrote nothing
    catch_up_in_process(tenant_file)
    types = stream_types(tenant_file)
    assert types[: len(old_types)] == old_types  # history untouched
    # New calls file their references as index rows of their CallAdded, no event of
    # their own; the old CallRef.Filed events keep finding the old calls (a-3's parent).
    assert "CallRef.Filed" not in types[len(old_types) :]
    assert ("CallRef.Filed" in old_types) is (trees.name in ("trees-v2", "trees-v3"))
    assert calls["run-d"]["status"] == "completed" and calls["d-3"]["status"] == "aborted"
    assert [o["data"] for o in calls["sub-2"]["output"]] == [{"tick": 0}, {"tick": 1}]
    with Flowgraph.open(env) as views:
        run_d = views.run("run-d")
        assert run_d is not None
        assert (run_d.calls, run_d.status, run_d.aborted_calls) == (4, "completed", 1)
        assert {c.request_id: c.status for c in views.call_tree("run-d")} == {
            k: calls[k]["status"] for k in ("run-d", "d-1", "d-2", "d-3")
        }
        run_a = views.run("run-a")
        assert run_a is not None and (run_a.calls, run_a.status) == (4, "running")
    with Replay.open(env) as replay:
        history = replay.history("sub-2")
        assert [h.event for h in history] == ["CallAdded", "CallUpdated", "CallUpdated"]
        before = replay.run_as_of("run-d", history[0].offset - 1)
        assert before is not None and before.run.status == "running"
        old_history = replay.history("sub-1")
        assert [h.event for h in old_history][-1] == "CallUpdated"
        # The call graph as of the head: old whole-call updates and new changes folded.
        snapshot = replay.graph_as_of(graph_id, replay_head)
        assert snapshot is not None
        assert {n.key: n.attributes for n in snapshot.nodes} == calls
        exported = replay.export_run("run-d").events
        assert [e.type for e in exported].count("call.responded") == 2  # d-1 old, d-2 new
    assert projections_equal_rebuild(tenant_file, tmp_path) > 0
    report = verify(trees)  # old CallRef events and new reference rows, both checked
    assert report.ok, report.problems
