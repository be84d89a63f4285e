"""The call graph module: the system-scope ``call-graph`` type and a tenant's ``calls``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain import (
    AttributesInvalidError,
    ConflictError,
    ForbiddenError,
    Metagraph,
    ParallelEdgeError,
    ValidationError,
)
from domain.calls.graph import (
    CALL,
    CALL_GRAPH,
    CALL_SCHEMA,
    DEPENDS_ON,
    GRAPH_NAME,
    TRIGGERED,
    install,
)
from domain.calls.ledger import find_call_graph, tenant_call_graph
from domain.modules import install_builtin_modules
from tests.domain.conftest import TENANT, acting, rejected, store_env, stream_position


def _call(key: str, **extra: Any) -> dict[str, Any]:
    return {"requestId": key, "operationId": "ns.op", "status": "pending", "input": None, **extra}


def test_call_graph_type_is_system_scope_directed_without_parallel_edges_or_self_loops(
    app: Metagraph,
) -> None:
    install(app)
    info = app.get_graph_type(CALL_GRAPH)
    assert info.scope == "system"
    assert (info.config.graph_type, info.config.multi, info.config.allow_self_loops) == (
        "directed",
        False,
        False,
    )
    assert set(info.node_types) == {CALL}
    assert info.node_types[CALL].schema == CALL_SCHEMA
    assert set(info.edge_types) == {TRIGGERED, DEPENDS_ON}
    for edge_type in info.edge_types.values():
        assert (edge_type.allowed_source_types, edge_type.allowed_target_types) == (
            (CALL,),
            (CALL,),
        )


def test_installing_again_writes_nothing(app: Metagraph) -> None:
    first = install(app)
    before = stream_position(app)
    assert install(app) == first
    install_builtin_modules(app)
    install_builtin_modules(app)
    assert app.get_graph_type(CALL_GRAPH).id == first
    after_builtins = stream_position(app)
    install_builtin_modules(app)
    assert stream_position(app) == after_builtins
    assert before is not None


def test_install_builtin_modules_installs_the_call_graph(app: Metagraph) -> None:
    install_builtin_modules(app)
    assert CALL_GRAPH in app.graph_types()


def test_a_tenant_cannot_change_the_call_graph_type(app: Metagraph) -> None:
    install(app)
    with rejected(app, ForbiddenError), acting(app, TENANT):
        app.add_node_type(CALL_GRAPH, "mine")
    with rejected(app, ForbiddenError), acting(app, TENANT):
        app.evolve_node_type_schema(CALL_GRAPH, CALL, {})
    with rejected(app, ForbiddenError), acting(app, TENANT):
        app.delete_graph_type(CALL_GRAPH)


def test_a_tenant_type_named_call_graph_is_a_conflict_and_stays_untouched(app: Metagraph) -> None:
    with acting(app, TENANT):
        app.define_graph_type(CALL_GRAPH)
    with rejected(app, ConflictError, "not 'system'"):
        install(app)


def test_an_older_call_node_schema_is_evolved_to_the_modules(app: Metagraph) -> None:
    install(app)
    app.evolve_node_type_schema(CALL_GRAPH, CALL, {"type": "object"})
    install(app)
    assert app.get_graph_type(CALL_GRAPH).node_types[CALL].schema == CALL_SCHEMA


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        (_call("r", status="done"), "'done' is not one of"),
        ({"requestId": "r", "status": "pending", "input": 1}, "'operationId' is a required"),
        (_call("r", error={"code": "TIMEOUT"}), "'message' is a required"),
        (_call("r", identity={"id": "u"}), "'scopes' is a required"),
        (_call("r", startedAt=-1), "less than the minimum"),
        (_call("r", output={"data": 1, "meta": {"source": "ftp"}}), "source is invalid"),
        (_call("r", extra=1), "'extra' was unexpected"),
    ],
)
def test_call_node_schema_refuses_attributes_outside_the_protocol(
    app: Metagraph, attributes: dict[str, Any], says: str
) -> None:
    graph = tenant_call_graph(app)
    with rejected(app, AttributesInvalidError, says):
        app.add_node(graph, "r", CALL, attributes)


def test_call_node_schema_takes_every_documented_field(app: Metagraph) -> None:
    graph = tenant_call_graph(app)
    envelope = {"data": {"x": 1}, "meta": {"source": "http", "ms": 3}}
    app.add_node(graph, "p", CALL, _call("p"))
    app.add_node(
        graph,
        "r",
        CALL,
        _call(
            "r",
            status="failed",
            operationType="subscription",
            parentRequestId="p",
            output=[envelope, envelope],
            error={"code": "EXECUTION_ERROR", "message": "boom", "details": [1]},
            identity={"id": "u", "scopes": ["a"], "resources": {"doc": ["1"]}},
            deadline=5,
            idleTimeout=6,
            metadata={"k": "v"},
            requestedAt=1,
            startedAt=2,
            completedAt=3,
            events=[{"id": "e", "type": "call.aborted", "at": 3, "cause": "p"}],
        ),
    )
    assert app.get_node(graph, "r").attributes["status"] == "failed"


def test_triggered_edges_refuse_self_loops_and_parallel_edges(app: Metagraph) -> None:
    graph = tenant_call_graph(app)
    app.add_node(graph, "a", CALL, _call("a"))
    app.add_node(graph, "b", CALL, _call("b"))
    with rejected(app, ValidationError, "self-loop"):
        app.add_edge(graph, TRIGGERED, "a", "a")
    app.add_edge(graph, TRIGGERED, "a", "b")
    with rejected(app, ParallelEdgeError):
        app.add_edge(graph, DEPENDS_ON, "a", "b")
    app.add_edge(graph, DEPENDS_ON, "b", "a")  # the dependent points at its dependency


def test_the_tenant_call_graph_is_created_once_active_and_found_after_reopening(
    tmp_path: Path,
) -> None:
    env = store_env(tmp_path / "tenant.db")
    with Metagraph(env=env) as app:
        graph = tenant_call_graph(app)
        assert tenant_call_graph(app) == graph
        info = app.get_graph(graph)
        assert (info.name, info.graph_type_name, info.status) == (GRAPH_NAME, CALL_GRAPH, "active")
    with Metagraph(env=env) as app:
        assert find_call_graph(app) == graph


def test_a_graph_named_calls_of_another_type_is_not_the_call_graph(app: Metagraph) -> None:
    with acting(app, TENANT):
        app.define_graph_type("other")
    other = app.create_graph("other", GRAPH_NAME)
    assert tenant_call_graph(app) != other


def test_looking_for_a_missing_call_graph_writes_nothing(app: Metagraph) -> None:
    assert find_call_graph(app) is None
    install(app)
    before = stream_position(app)
    assert find_call_graph(app) is None
    assert stream_position(app) == before
