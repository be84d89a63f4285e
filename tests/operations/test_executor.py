"""The executor: each kind of operation run end to end on real files, every error code,
and refusals that write nothing to the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import graphstore
from graphstore.operations import (
    ERRORS,
    Executor,
    InputValidationError,
    OperationAccessDeniedError,
    OperationError,
    OperationNotFoundError,
    OperationSubscription,
    OperationTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    invoke,
)
from tests.operations.conftest import Live, World, head_of


@pytest.fixture
def ops(world: World, live: Live) -> Iterator[Executor]:
    """An executor acting as the tenant's owner (through an API key)."""
    with graphstore.open(world.data, api_key=world.owner_key) as store, Executor(store) as ex:
        yield ex


def run(ex: Executor, operation_id: str, data: dict[str, Any]) -> Any:
    return ex.invoke(operation_id, data, tenant="acme")


def test_graph_node_and_edge_operations(ops: Executor, live: Live) -> None:
    graph = run(ops, "social.createGraph", {"name": "friends", "status": "active"})
    assert (graph["graphTypeName"], graph["status"]) == ("social", "active")
    gid = graph["id"]
    ada = run(
        ops,
        "social.createNode",
        {"graphId": gid, "key": "ada", "nodeType": "person", "attributes": {"name": "Ada"}},
    )
    assert (ada["key"], ada["attributes"], ada["schemaVersion"]) == ("ada", {"name": "Ada"}, 1)
    run(ops, "social.createNode", {"graphId": gid, "key": "alan", "nodeType": "person",
                                   "attributes": {"name": "Alan"}})  # fmt: skip
    edge = run(
        ops,
        "social.createEdge",
        {"graphId": gid, "edgeType": "knows", "source": "ada", "target": "alan",
         "attributes": {"since": 1936}, "key": "k1"},
    )  # fmt: skip
    assert (edge["sourceNodeKey"], edge["undirected"], edge["key"]) == ("ada", True, "k1")
    updated = run(
        ops, "social.updateNode", {"graphId": gid, "key": "alan", "attributes": {"born": 1912}}
    )
    assert updated["attributes"] == {"name": "Alan", "born": 1912}
    changed = run(ops, "social.updateEdge", {"graphId": gid, "id": edge["id"],
                                             "attributes": {"since": 1937}})  # fmt: skip
    assert changed["attributes"] == {"since": 1937}

    # reads come from the read model: minPosition waits for the write to be applied
    at = {"minPosition": changed["position"]}
    got = run(ops, "social.getNode", {"graphId": gid, "key": "alan", **at})
    assert got["attributes"] == {"name": "Alan", "born": 1912}
    assert got["id"] == updated["id"] and isinstance(got["createdAt"], int)
    assert run(ops, "social.getGraph", {"graphId": gid, **at})["name"] == "friends"
    assert run(ops, "social.getEdge", {"graphId": gid, "key": "k1", **at})["id"] == edge["id"]
    first = run(ops, "social.listNodes", {"graphId": gid, "limit": 1, **at})
    assert [n["key"] for n in first["items"]] == ["ada"] and first["next"] == "ada"
    rest = run(ops, "social.listNodes", {"graphId": gid, "after": "ada"})
    assert [n["key"] for n in rest["items"]] == ["alan"] and rest["next"] is None
    listed = run(ops, "social.listEdges", {"graphId": gid, "source": "ada", **at})
    assert [e["id"] for e in listed["items"]] == [edge["id"]]
    graphs = run(ops, "social.listGraphs", {"status": "active", **at})
    assert gid in [g["id"] for g in graphs["items"]]

    removed = run(ops, "social.deleteEdge", {"graphId": gid, "id": edge["id"]})
    assert removed["id"] == edge["id"]
    deleted = run(ops, "social.deleteNode", {"graphId": gid, "key": "alan"})
    assert deleted["deletedEdgeIds"] == []
    left = run(ops, "social.listNodes", {"graphId": gid, "minPosition": deleted["position"]})
    assert [n["key"] for n in left["items"]] == ["ada"]


def test_ingest_then_runs_list_show_as_of_history_export(ops: Executor, live: Live) -> None:
    events = [
        {"id": "x1", "type": "call.requested", "at": 1795000000000,
         "payload": {"requestId": "ops-run", "operationId": "flows.run", "input": {"n": 1}}},
        {"id": "x2", "type": "call.requested", "at": 1795000000005,
         "payload": {"requestId": "ops-child", "operationId": "db.query", "input": {},
                     "parentRequestId": "ops-run"}},
        {"id": "x3", "type": "call.error", "at": 1795000000009,
         "payload": {"requestId": "ops-child", "code": "TIMEOUT", "message": "slow"}},
        {"id": "x4", "type": "call.responded", "at": 1795000000010,
         "payload": {"requestId": "ops-run",
                     "output": {"data": 1, "meta": {"source": "local"}}}},
    ]  # fmt: skip
    report = run(ops, "graphstore.calls.ingest", {"events": events})
    assert (report["events"], report["applied"], report["transactions"]) == (4, 4, 1)
    again = run(ops, "graphstore.calls.ingest", {"events": events})
    assert (again["applied"], again["writes"]) == (0, 0)  # a retried batch changes nothing

    at = report["position"]
    page = run(ops, "graphstore.runs.list", {"minPosition": at, "limit": 500})
    assert "ops-run" in [r["runId"] for r in page["runs"]]
    shown = run(ops, "graphstore.runs.show", {"runId": "ops-run"})
    assert shown["run"]["status"] == "completed"
    assert [(c["requestId"], c["status"]) for c in shown["calls"]] == [
        ("ops-run", "completed"),
        ("ops-child", "failed"),
    ]
    history = run(ops, "graphstore.runs.history", {"runId": "ops-run"})["entries"]
    assert [p["id"] for e in history for p in e["applied"]] == ["x1", "x2", "x3", "x4"]
    then = run(ops, "graphstore.runs.asOf", {"runId": "ops-run", "offset": history[0]["offset"]})
    assert (then["run"]["status"], len(then["calls"])) == ("running", 1)
    export = run(ops, "graphstore.runs.export", {"runId": "ops-run"})
    assert [e["id"] for e in export["events"]] == ["x1", "x2", "x3", "x4"]
    failed = run(ops, "graphstore.runs.list", {"status": ["failed"], "limit": 500})
    assert "ops-run" not in [r["runId"] for r in failed["runs"]]


def test_a_subscription_gives_changes_with_positions(ops: Executor, live: Live) -> None:
    live.settle()
    subscription = run(ops, "graphstore.changes.run", {"runId": "run-004", "fromStart": True})
    assert isinstance(subscription, OperationSubscription)
    with subscription:
        changes = subscription.poll()
    positions = [c["position"] for c in changes]
    assert positions == sorted(positions) and len(positions) > 1
    assert {c["runId"] for c in changes} == {"run-004"}
    with run(ops, "graphstore.changes.run", {"runId": "run-004", "after": positions[0]}) as later:
        assert [c["position"] for c in later.poll()] == positions[1:]  # resume: no gap, no dup
    graph = run(ops, "social.createGraph", {"name": "watched"})
    with run(ops, "graphstore.changes.graph", {"graphId": graph["id"], "fromStart": True}) as one:
        run(ops, "social.createNode", {"graphId": graph["id"], "key": "p", "nodeType": "place"})
        change = one.next(timeout=10)
    assert change is not None and change["event"] == "Created"


def test_the_module_level_invoke(world: World, live: Live) -> None:
    live.settle()
    with graphstore.open(world.data, api_key=world.service_key) as store:
        page = invoke(store, "graphstore.runs.list", {"limit": 1}, tenant="acme")
    assert len(page["runs"]) == 1


# --- errors ---------------------------------------------------------------------------


def refused(
    world: World, key: str, operation_id: str, data: Any, error: type[OperationError]
) -> OperationError:
    """Invoke as ``key``'s account; the error, checked to have written nothing."""
    before = head_of(world.data)
    with (
        graphstore.open(world.data, api_key=key) as store,
        Executor(store, wait=0.2) as ex,
        pytest.raises(error) as caught,
    ):
        ex.invoke(operation_id, data, tenant="acme")
    assert head_of(world.data) == before, "a refusal writes nothing"
    assert caught.value.operation_id == operation_id
    assert caught.value.to_dict()["code"] == caught.value.code
    return caught.value


@pytest.fixture(scope="module")
def graph_id(world: World) -> str:
    with graphstore.open(world.data) as store:
        gid = store.tenant("acme").create_graph("social", "errors", status="active")
        store.tenant("acme").add_node(gid, "ada", "person", {"name": "Ada"})
    return str(gid)


def test_operation_not_found(world: World) -> None:
    for operation_id in ("nope", "social.explode", "ghosts.createNode", "graphstore.runs.nuke"):
        error = refused(world, world.owner_key, operation_id, {}, OperationNotFoundError)
        assert error.code == "OPERATION_NOT_FOUND" and error.http_status == 404
        assert "graphstore ops export" in str(error)


def test_validation_error_against_the_input_schema(world: World, graph_id: str) -> None:
    for data, path in (
        ({"graphId": graph_id, "key": "x", "nodeType": "person", "attributes": {}}, "/attributes"),
        ({"graphId": graph_id, "key": "x", "nodeType": "robot"}, "/nodeType"),
        ({"graphId": graph_id, "key": "x", "nodeType": "place", "colour": 1}, ""),
        ([1, 2], ""),
    ):
        error = refused(world, world.owner_key, "social.createNode", data, InputValidationError)
        assert (error.code, error.http_status) == ("VALIDATION_ERROR", 400)
        assert error.details["path"] == path
        assert "Nothing was written" in str(error)
    bad_event = {"events": [{"type": "call.requested", "at": 1, "payload": {"requestId": "r"}}]}
    error = refused(
        world, world.owner_key, "graphstore.calls.ingest", bad_event, InputValidationError
    )
    assert error.details["path"].startswith("/events/0/payload")


def test_validation_error_from_the_store(world: World, graph_id: str) -> None:
    # a merge that leaves the attributes invalid is refused by the node type's schema
    data = {"graphId": graph_id, "key": "ada", "attributes": {"name": 7}}
    error = refused(world, world.owner_key, "social.updateNode", data, InputValidationError)
    assert error.details["path"] == "/name"


def test_access_denied(world: World, graph_id: str) -> None:
    for operation_id, data in (
        ("graphstore.runs.list", {}),
        ("graphstore.calls.ingest", {"events": [
            {"type": "call.requested", "at": 1, "payload": {
                "requestId": "eve", "operationId": "x.y", "input": 1}}]}),
        ("social.createNode", {"graphId": graph_id, "key": "e", "nodeType": "place"}),
    ):  # fmt: skip
        error = refused(world, world.outsider_key, operation_id, data, OperationAccessDeniedError)
        assert (error.code, error.http_status) == ("ACCESS_DENIED", 403)
        assert error.details["missing"].startswith("membership")


def test_not_found(world: World, graph_id: str) -> None:
    unknown_graph = "0b7c4a44-7f3e-4d2c-9f55-3a0c1c2f0e11"
    for operation_id, data in (
        ("social.createNode", {"graphId": unknown_graph, "key": "a", "nodeType": "place"}),
        ("social.deleteNode", {"graphId": graph_id, "key": "nobody"}),
        ("graphstore.runs.show", {"runId": "no-such-run"}),
        ("graphstore.runs.history", {"runId": "no-such-run"}),
    ):
        error = refused(world, world.owner_key, operation_id, data, ResourceNotFoundError)
        assert (error.code, error.http_status) == ("NOT_FOUND", 404)
    with (
        graphstore.open(world.data, api_key=world.owner_key) as store,
        Executor(store) as ex,
        pytest.raises(ResourceNotFoundError),
    ):
        ex.invoke("social.createGraph", {"name": "x"}, tenant="nowhere")


def test_conflict(world: World, graph_id: str) -> None:
    data = {"graphId": graph_id, "key": "ada", "nodeType": "person", "attributes": {"name": "A"}}
    error = refused(world, world.owner_key, "social.createNode", data, ResourceConflictError)
    assert (error.code, error.http_status) == ("CONFLICT", 409)


def test_timeout_when_the_read_model_is_behind(world: World, graph_id: str, live: Live) -> None:
    live.runner.stop()  # the last test of the module that needs it: now nothing catches up
    with graphstore.open(world.data) as store:
        store.tenant("acme").add_node(graph_id, "late", "person", {"name": "Late"})
    data = {"graphId": graph_id, "key": "late", "minPosition": head_of(world.data)}
    error = refused(world, world.owner_key, "social.getNode", data, OperationTimeoutError)
    assert (error.code, error.http_status) == ("TIMEOUT", 504)


def test_a_min_position_past_the_head_is_refused_at_once(world: World, graph_id: str) -> None:
    data = {"graphId": graph_id, "key": "ada", "minPosition": 10**12}
    error = refused(world, world.owner_key, "social.getNode", data, InputValidationError)
    assert error.http_status == 400 and "past the tenant stream's head" in str(error)


def test_every_platform_code_has_a_class_and_a_status() -> None:
    platform = ("OPERATION_NOT_FOUND", "ACCESS_DENIED", "VALIDATION_ERROR", "TIMEOUT",
                "ABORTED", "EXECUTION_ERROR", "UNKNOWN_ERROR", "NOT_FOUND", "CONFLICT")  # fmt: skip
    assert set(ERRORS) == set(platform)
    for code, cls in ERRORS.items():
        assert cls.code == code and 400 <= cls.http_status <= 599
        assert issubclass(cls, OperationError)
