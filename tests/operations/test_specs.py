"""Generated OperationSpecs: every one valid against the checked-in JSON Schema of
OperationSpec, with valid JSON Schemas inside; derived from the graph types (a change of
a type changes its specs) and from the projection tables; access control from the
permission model."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import pytest

import graphstore
from domain.calls.graph import CALL_SCHEMA
from graphstore.operations import (
    SCOPES,
    OperationSpec,
    encode_specs,
    operation_specs,
    spec_schema,
)
from graphstore.operations.specs import GraphTypeShape, graph_type_operations, store_operations
from graphstore.operations.tables import ReadModel
from graphstore.operations.wire import EdgeRow, GraphRow, NodeRow
from tests.operations.conftest import Live, World

STORE_OPS = {
    "graphstore.calls.ingest": "mutation",
    "graphstore.runs.list": "query",
    "graphstore.runs.show": "query",
    "graphstore.runs.asOf": "query",
    "graphstore.runs.history": "query",
    "graphstore.runs.export": "query",
    "graphstore.changes.tenant": "subscription",
    "graphstore.changes.graph": "subscription",
    "graphstore.changes.run": "subscription",
    "graphstore.retention.setPolicy": "mutation",
    "graphstore.retention.show": "query",
    "graphstore.retention.run": "mutation",
    "graphstore.runs.forget": "mutation",
}
OPERATE = {  # retention (docs/retention.md): the permission `operate`, whatever the kind
    "graphstore.retention.setPolicy",
    "graphstore.retention.show",
    "graphstore.retention.run",
    "graphstore.runs.forget",
}
GRAPH_OPS = {
    "createGraph": "mutation",
    "getGraph": "query",
    "listGraphs": "query",
    "createNode": "mutation",
    "getNode": "query",
    "listNodes": "query",
    "updateNode": "mutation",
    "deleteNode": "mutation",
    "createEdge": "mutation",
    "getEdge": "query",
    "listEdges": "query",
    "updateEdge": "mutation",
    "deleteEdge": "mutation",
}


def specs_of(world: World, tenant: str | None = "acme") -> dict[str, dict[str, Any]]:
    with graphstore.open(world.data) as store:
        specs = operation_specs(store, tenant)
    found = {spec.operation_id: spec.to_json() for spec in specs}
    assert len(found) == len(specs), "operationIds are unique"
    return found


def test_every_spec_validates_against_the_operation_spec_schema(world: World) -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    validator.check_schema(spec_schema())
    specs = specs_of(world)
    assert set(STORE_OPS) <= set(specs)
    for graph_type in ("social", "call-graph"):
        assert {f"{graph_type}.{name}" for name in GRAPH_OPS} <= set(specs)
    for operation_id, spec in specs.items():
        errors = [e.message for e in validator.iter_errors(spec)]
        assert not errors, (operation_id, errors)
        # the schemas inside are JSON Schemas themselves (also checked by the $ref above)
        for key in ("inputSchema", "outputSchema"):
            jsonschema.Draft202012Validator.check_schema(spec[key])
        assert f"{spec['namespace']}.{spec['name']}" == operation_id
        # exactly the data model's fields, camelCase on the wire
        assert set(spec) <= {
            "name", "namespace", "version", "type", "title", "description", "tags",
            "inputSchema", "outputSchema", "errorSchemas", "accessControl",
        }  # fmt: skip


def test_the_schema_of_operation_spec_refuses_a_bad_spec(world: World) -> None:
    spec = specs_of(world, None)["graphstore.runs.list"]
    validator = jsonschema.Draft202012Validator(spec_schema())
    for broken in (
        {k: v for k, v in spec.items() if k != "accessControl"},
        spec | {"version": "1.0"},
        spec | {"type": "command"},
        spec | {"inputSchema": {"type": "no-such-type"}},
        spec | {"extra": 1},
    ):
        assert list(validator.iter_errors(broken)), broken


def test_kinds_and_access_control_follow_the_permission_model(world: World) -> None:
    specs = specs_of(world)
    expected = {**STORE_OPS, **{f"social.{n}": kind for n, kind in GRAPH_OPS.items()}}
    for operation_id, kind in expected.items():
        spec = specs[operation_id]
        assert spec["type"] == kind
        scope = SCOPES["write"] if kind == "mutation" else SCOPES["read"]
        if operation_id in OPERATE:
            scope = SCOPES["operate"]
        assert spec["accessControl"]["requiredScopes"] == [scope] == ["tenant:" + scope[7:]]
        codes = {e["code"]: e["httpStatus"] for e in spec["errorSchemas"]}
        assert codes["ACCESS_DENIED"] == 403
        assert codes["VALIDATION_ERROR"] == 400
        assert ("CONFLICT" in codes) == (kind == "mutation")
    assert specs["social.createNode"]["accessControl"]["resourceType"] == "node"
    assert specs["social.createNode"]["accessControl"]["resourceAction"] == "create"


def test_without_a_tenant_only_the_store_operations(world: World) -> None:
    assert set(specs_of(world, None)) == set(STORE_OPS)
    assert [s.operation_id for s in store_operations()] == list(STORE_OPS)


def test_node_and_edge_schemas_come_from_the_types_attribute_schemas(world: World) -> None:
    specs = specs_of(world)
    create = specs["social.createNode"]["inputSchema"]
    assert create["properties"]["nodeType"]["enum"] == ["person", "place"]
    validate = jsonschema.Draft202012Validator(create).is_valid
    graph = "0b7c4a44-7f3e-4d2c-9f55-3a0c1c2f0e11"
    assert validate(
        {"graphId": graph, "key": "a", "nodeType": "person", "attributes": {"name": "A"}}
    )
    assert not validate({"graphId": graph, "key": "a", "nodeType": "person", "attributes": {}})
    assert validate({"graphId": graph, "key": "a", "nodeType": "place", "attributes": {}})
    assert not validate({"graphId": graph, "key": "a", "nodeType": "robot"})
    assert not validate({"graphId": "not-a-uuid", "key": "a", "nodeType": "place"})
    edge = jsonschema.Draft202012Validator(specs["social.createEdge"]["inputSchema"]).is_valid
    base = {"graphId": graph, "edgeType": "knows", "source": "a", "target": "b"}
    assert edge(base | {"attributes": {"since": 1936}})
    assert not edge(base | {"attributes": {"since": "long ago"}})
    # the call graph: its node type's schema is the call schema
    call_create = specs["call-graph.createNode"]["inputSchema"]
    clause = call_create["allOf"][0]
    assert clause["if"]["properties"]["nodeType"] == {"const": "call"}
    attributes = dict(clause["then"]["properties"]["attributes"])
    assert attributes.pop("$id").startswith("urn:graphstore:graph-type:call-graph:node:call:v")
    assert attributes == CALL_SCHEMA


def test_output_rows_have_the_projection_tables_columns(world: World, live: Live) -> None:
    live.settle()
    read = ReadModel(live.operator.data.tenant_env("acme"))
    try:
        for table, row in (("nodes", NodeRow), ("edges", EdgeRow), ("graphs", GraphRow)):
            columns = {r["name"] for r in read.datastore.query(f"PRAGMA table_info({table})", [])}
            fields = set(row.__struct_fields__) - {"position"}
            assert fields == columns, table
    finally:
        read.close()


def test_a_graph_type_change_changes_its_specs(world: World, tmp_path: Any) -> None:
    data = tmp_path / "data"
    with graphstore.open(data) as store:
        store.identity.create_account("op@example.com", "Op", actor=store.principal)
        acme = store.create_tenant("acme", name="Acme", owner_email="op@example.com")
        acme.define_graph_type("lab")
        acme.add_node_type("lab", "sample", schema={"type": "object"})

        def lab() -> dict[str, OperationSpec]:
            return {s.name: s for s in operation_specs(store, "acme") if s.namespace == "lab"}

        before = lab()
        assert before["createNode"].version == "1.1.0"
        acme.add_node_type("lab", "device")
        added = lab()
        assert added["createNode"].version == "1.2.0"  # a type added: minor
        assert added["createNode"].input_schema["properties"]["nodeType"]["enum"] == [
            "device",
            "sample",
        ]
        acme.evolve_node_type_schema("lab", "sample", {"type": "object", "required": ["id"]})
        evolved = lab()
        assert evolved["createNode"].version == "2.2.0"  # a schema evolved: major
        dumped = json.dumps(evolved["getNode"].output_schema)
        assert '"required": ["id"]' in dumped and '"const": 2' in dumped
        acme.delete_graph_type("lab")
        assert lab() == {}
        # the call graph is there before the tenant's first call, as it will be installed
        names = Counter(s.namespace for s in operation_specs(store, "acme"))
        assert names["call-graph"] == len(GRAPH_OPS)


def test_generation_needs_no_store_for_a_shape() -> None:
    shape = GraphTypeShape(name="empty", version=1, description="")
    ops = graph_type_operations(shape)
    assert [op.spec.name for op in ops] == list(GRAPH_OPS)
    assert {op.group for op in ops} == {"read", "write"}


@pytest.mark.parametrize("tenant", ["acme", None])
def test_export_is_one_json_array(world: World, tenant: str | None) -> None:
    with graphstore.open(world.data) as store:
        specs = operation_specs(store, tenant)
    decoded = json.loads(encode_specs(specs))
    assert isinstance(decoded, list)
    assert len(decoded) == len(specs)
