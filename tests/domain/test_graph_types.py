"""Graph types: definition, node and edge types, the scope rule, schema evolution."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain import (
    DuplicateError,
    ForbiddenError,
    GraphConfig,
    Metagraph,
    NotFoundError,
    ValidationError,
)
from tests.domain.conftest import (
    PERSON_SCHEMA,
    TENANT,
    USER,
    acting,
    define_org_type,
    rejected,
    stream_position,
)


def test_defined_graph_type_is_readable_by_name_and_id(app: Metagraph) -> None:
    graph_type = app.define_graph_type(
        "call-graph",
        description="calls",
        config={"graphType": "directed", "multi": False, "allowSelfLoops": False},
    )
    by_name = app.get_graph_type("call-graph")
    assert by_name == app.get_graph_type(graph_type)
    assert by_name.config == GraphConfig(graph_type="directed")
    assert (by_name.scope, by_name.version, by_name.description) == ("system", 1, "calls")
    assert app.graph_types() == {"call-graph": graph_type}


def test_config_defaults_are_strict_and_accept_a_struct(app: Metagraph) -> None:
    app.define_graph_type("plain")
    assert app.get_graph_type("plain").config == GraphConfig(
        graph_type="directed", multi=False, allow_self_loops=False
    )
    config = GraphConfig(graph_type="mixed", multi=True, allow_self_loops=True)
    app.define_graph_type("loose", config=config)
    assert app.get_graph_type("loose").config == config


def test_duplicate_graph_type_name_is_rejected_and_nothing_is_written(app: Metagraph) -> None:
    app.define_graph_type("org")
    with rejected(app, DuplicateError, "already exists"), acting(app, TENANT):
        app.define_graph_type("org")


@pytest.mark.parametrize(
    "config",
    [
        {"graphType": "bidirectional"},
        {"multi": "yes"},
        {"allowSelfLoops": 1},
        {"graph_type": "undirected"},  # snake_case: unknown, not silently ignored
        GraphConfig(graph_type="sideways"),  # type: ignore[arg-type]
    ],
)
def test_invalid_graph_config_is_rejected_and_nothing_is_written(
    app: Metagraph, config: Any
) -> None:
    with rejected(app, ValidationError, "invalid graph config"):
        app.define_graph_type("org", config=config)


@pytest.mark.parametrize("name", ["", "1st", "_type_", "has space", "x" * 129, None])
def test_invalid_type_names_are_rejected(app: Metagraph, name: Any) -> None:
    with rejected(app, ValidationError, "use 1-128 characters"):
        app.define_graph_type(name)


def test_unknown_graph_type_is_reported_by_name_and_by_id(app: Metagraph) -> None:
    with rejected(app, NotFoundError, "no graph type named 'nope'") as info:
        app.add_node_type("nope", "person")
    assert (info.value.kind, info.value.name) == ("graph type", "nope")
    with rejected(app, NotFoundError, "no graph type with id"):
        app.get_graph_type(UUID(int=7))


def test_node_type_with_invalid_json_schema_is_rejected_and_nothing_is_written(
    app: Metagraph,
) -> None:
    app.define_graph_type("org")
    with rejected(app, ValidationError, "not a valid JSON Schema"):
        app.add_node_type("org", "person", schema={"type": "strin"})
    with rejected(app, ValidationError, "must be a JSON Schema object"):
        app.add_node_type("org", "person", schema=["type"])  # type: ignore[arg-type]
    assert app.get_graph_type("org").node_types == {}


def test_schema_with_a_remote_or_dangling_ref_is_rejected(app: Metagraph) -> None:
    app.define_graph_type("org")
    with rejected(app, ValidationError, "points outside the schema"):
        app.add_node_type("org", "a", schema={"$ref": "http://x.test/s.json"})
    with rejected(app, ValidationError, "does not resolve"):
        app.add_node_type("org", "a", schema={"$ref": "#/$defs/missing"})
    app.add_node_type("org", "a", schema={"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"})


def test_schema_with_unknown_dialect_is_rejected(app: Metagraph) -> None:
    app.define_graph_type("org")
    with rejected(app, ValidationError, "unknown \\$schema"):
        app.add_node_type("org", "a", schema={"$schema": "urn:not-a-draft"})


def test_duplicate_node_or_edge_type_name_is_rejected(app: Metagraph, org_type: UUID) -> None:
    with rejected(app, DuplicateError, "already has a node or edge type named 'person'"):
        app.add_node_type(org_type, "person")
    with rejected(app, DuplicateError, "named 'knows'"):
        app.add_node_type(org_type, "knows")
    with rejected(app, DuplicateError, "named 'person'"):
        app.add_edge_type(org_type, "person")


def test_edge_type_naming_an_unknown_endpoint_node_type_is_rejected(
    app: Metagraph, org_type: UUID
) -> None:
    with rejected(app, NotFoundError, "no node type 'robot'") as info:
        app.add_edge_type(org_type, "drives", allowed_target_types=["robot"])
    assert info.value.kind == "node type"


def test_tenant_cannot_define_a_system_type_and_user_cannot_define_a_tenant_type(
    app: Metagraph,
) -> None:
    with rejected(app, ForbiddenError, "scope 'system'"), acting(app, TENANT) as gate:
        app.define_graph_type("infra", scope="system")
    assert gate.refusals == [("define", "define graph type 'infra'")]  # reported for audit
    with rejected(app, ForbiddenError, "scope 'tenant'"), acting(app, USER):
        app.define_graph_type("team", scope="tenant")


def test_scope_defaults_to_the_actors_scope(app: Metagraph) -> None:
    with acting(app, USER):
        app.define_graph_type("mine")
    with acting(app, TENANT):
        app.define_graph_type("ours", scope="user")
    assert app.get_graph_type("mine").scope == "user"
    assert app.get_graph_type("ours").scope == "user"


_CHANGES = {
    "add_node_type": lambda app: app.add_node_type("org", "robot"),
    "add_edge_type": lambda app: app.add_edge_type("org", "drives"),
    "evolve_node_type_schema": lambda app: app.evolve_node_type_schema(
        "org", "project", {"type": "object"}
    ),
    "evolve_edge_type_schema": lambda app: app.evolve_edge_type_schema(
        "org", "related", {"type": "object"}
    ),
    "delete_graph_type": lambda app: app.delete_graph_type("org"),
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
@pytest.mark.parametrize("actor", [TENANT, USER], ids=["tenant", "user"])
def test_tenant_or_user_command_changing_a_system_type_is_forbidden_and_writes_nothing(
    app: Metagraph, org_type: UUID, change: str, actor: Any
) -> None:
    before = app.get_graph_type(org_type)
    with rejected(app, ForbiddenError, "only a system-scope actor"), acting(app, actor):
        _CHANGES[change](app)
    assert app.get_graph_type(org_type) == before


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_user_command_changing_a_tenant_type_is_forbidden(app: Metagraph, change: str) -> None:
    define_org_type(app, actor=TENANT)
    with rejected(app, ForbiddenError, "only a tenant-scope actor"), acting(app, USER):
        _CHANGES[change](app)


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_an_actor_may_change_a_type_of_its_own_scope(app: Metagraph, change: str) -> None:
    define_org_type(app, actor=TENANT)
    before = stream_position(app)
    with acting(app, TENANT):
        _CHANGES[change](app)
    assert stream_position(app) == (before or 0) + (2 if change == "delete_graph_type" else 1)


def test_schema_evolution_bumps_the_type_and_schema_versions(
    app: Metagraph, org_type: UUID
) -> None:
    assert app.evolve_node_type_schema(org_type, "person", {"type": "object"}) == 2
    assert app.evolve_edge_type_schema(org_type, "knows", {"type": "object"}) == 2
    info = app.get_graph_type(org_type)
    assert info.version == 3
    assert info.node_types["person"].schema == {"type": "object"}
    assert info.node_types["person"].schema_version == 2
    assert info.edge_types["knows"].schema_version == 2
    assert info.node_types["project"].schema_version == 1


def test_evolving_to_an_invalid_schema_or_unknown_type_is_rejected(
    app: Metagraph, org_type: UUID
) -> None:
    with rejected(app, ValidationError, "not a valid JSON Schema"):
        app.evolve_node_type_schema(org_type, "person", {"minimum": "zero"})
    with rejected(app, NotFoundError, "no node type 'robot'"):
        app.evolve_node_type_schema(org_type, "robot", {})
    with rejected(app, NotFoundError, "no edge type 'drives'"):
        app.evolve_edge_type_schema(org_type, "drives", {})
    assert app.get_graph_type(org_type).node_types["person"].schema == PERSON_SCHEMA


def test_schema_evolution_keeps_existing_nodes_and_validates_their_next_write(
    app: Metagraph, org_type: UUID
) -> None:
    graph = app.create_graph(org_type, "team")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    stricter = {**PERSON_SCHEMA, "required": ["name", "age"]}
    app.evolve_node_type_schema(org_type, "person", stricter)

    node = app.get_node(graph, "ada")
    assert (node.attributes, node.schema_version) == ({"name": "Ada"}, 1)
    with rejected(app, ValidationError, "'age' is a required property"):
        app.add_node(graph, "bob", "person", {"name": "Bob"})
    with rejected(app, ValidationError, "'age' is a required property"):
        app.update_node(graph, "ada", {"name": "Ada L."})
    app.update_node(graph, "ada", {"age": 36})
    assert app.get_node(graph, "ada").schema_version == 2


def test_deleted_graph_type_frees_its_name_and_makes_its_graphs_read_only(
    app: Metagraph, org_type: UUID
) -> None:
    graph = app.create_graph(org_type, "team")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    app.delete_graph_type("org")

    assert app.graph_types() == {}
    with rejected(app, NotFoundError, "was deleted"):
        app.get_graph_type(org_type)
    with rejected(app, NotFoundError, "was deleted"):
        app.add_node(graph, "bob", "person", {"name": "Bob"})
    with rejected(app, NotFoundError, "was deleted"):
        app.create_graph(org_type, "another")
    assert app.get_node(graph, "ada").attributes == {"name": "Ada"}

    new_type = app.define_graph_type("org")
    assert new_type != org_type
    assert app.graph_types() == {"org": new_type}


def test_mutating_a_schema_after_passing_or_reading_it_does_not_change_the_type(
    app: Metagraph,
) -> None:
    app.define_graph_type("org")
    schema: dict[str, Any] = {"type": "object", "required": ["name"]}
    app.add_node_type("org", "person", schema=schema)
    schema["required"].append("age")
    app.get_graph_type("org").node_types["person"].schema["required"].append("x")
    assert app.get_graph_type("org").node_types["person"].schema == {
        "type": "object",
        "required": ["name"],
    }
