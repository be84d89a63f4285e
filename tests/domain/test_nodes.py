"""Nodes: keys, types, attribute schemas, updates (merge and replace), deletes."""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

import pytest

from domain import (
    AttributesInvalidError,
    DuplicateError,
    Graph,
    Metagraph,
    NotFoundError,
    ValidationError,
)
from tests.domain.conftest import rejected, stream_position


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_added_node_is_readable_with_its_type_and_attributes(app: Metagraph, graph: UUID) -> None:
    node = app.get_node(graph, "ada")
    assert (node.node_type, node.attributes) == ("person", {"name": "Ada", "age": 36})
    assert app.nodes(graph) == {"ada": "person", "bob": "person", "apollo": "project"}
    assert app.get_graph(graph).node_count == 3


def test_node_with_attributes_violating_the_schema_is_rejected_and_nothing_is_written(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(app, AttributesInvalidError, "attribute /age is invalid") as info:
        app.add_node(graph, "cy", "person", {"name": "Cy", "age": -1})
    assert (info.value.path, info.value.code) == ("/age", "VALIDATION_ERROR")
    assert "-1 is less than the minimum of 0" in str(info.value)
    assert "cy" not in app.nodes(graph)


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({}, "'name' is a required property"),
        ({"name": 7}, "7 is not of type 'string'"),
        ({"name": "Cy", "email": "c@x"}, "'email' was unexpected"),
    ],
)
def test_attribute_errors_name_the_field_and_why(
    app: Metagraph, graph: UUID, attributes: dict[str, Any], says: str
) -> None:
    with rejected(app, AttributesInvalidError, says):
        app.add_node(graph, "cy", "person", attributes)


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({"x": math.nan}, "JSON cannot carry"),
        ({"x": {1, 2}}, "is not JSON"),
        ({"x": (1, 2)}, "is not JSON"),
        ({1: "x"}, "is not a string"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"x": {"_type_": "uuid_hex", "_data_": "00"}}, "reserves"),
        ("name=Cy", "must be a JSON object"),
        (_nested(100), "nested more than 64 levels"),
    ],
)
def test_attributes_that_are_not_json_are_rejected_and_nothing_is_written(
    app: Metagraph, graph: UUID, attributes: Any, says: str
) -> None:
    with rejected(app, ValidationError, says):
        app.add_node(graph, "thing", "project", attributes)


def test_node_of_unknown_type_is_rejected_and_nothing_is_written(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(app, NotFoundError, "no node type 'robot'; known node types") as info:
        app.add_node(graph, "r2", "robot", {})
    assert info.value.kind == "node type"


def test_node_in_unknown_graph_is_rejected(app: Metagraph, org_type: UUID) -> None:
    with rejected(app, NotFoundError, "no graph with id"):
        app.add_node(UUID(int=1), "ada", "person", {"name": "Ada"})
    with rejected(app, NotFoundError, "no graph with id"):
        app.add_node(org_type, "ada", "person", {"name": "Ada"})  # a type id is not a graph
    with rejected(app, ValidationError, "invalid graph id 'team'"):
        app.add_node("team", "ada", "person", {"name": "Ada"})


def test_duplicate_node_key_is_rejected_and_nothing_is_written(app: Metagraph, graph: UUID) -> None:
    with rejected(app, DuplicateError, "already has a node with key 'ada'"):
        app.add_node(graph, "ada", "project", {})
    assert app.get_node(graph, "ada").node_type == "person"


@pytest.mark.parametrize("key", ["", None, 7, "k" * 1025])
def test_invalid_node_key_is_rejected(app: Metagraph, graph: UUID, key: Any) -> None:
    with rejected(app, ValidationError, "invalid node key"):
        app.add_node(graph, key, "project", {})


def test_node_keys_are_per_graph(app: Metagraph, org_type: UUID, graph: UUID) -> None:
    other = app.create_graph(org_type, "other")
    app.add_node(other, "ada", "project", {})
    assert app.get_node(other, "ada").node_type == "project"


def test_merge_update_keeps_unmentioned_fields(app: Metagraph, graph: UUID) -> None:
    app.update_node(graph, "ada", {"age": 37})
    assert app.get_node(graph, "ada").attributes == {"name": "Ada", "age": 37}


def test_merge_update_validates_the_merged_result(app: Metagraph, graph: UUID) -> None:
    # {"age": 1} alone lacks the required name; merged with the recorded one it is valid.
    app.update_node(graph, "bob", {"age": 1})
    with rejected(app, AttributesInvalidError, "attribute /name is invalid"):
        app.update_node(graph, "bob", {"name": ""})
    assert app.get_node(graph, "bob").attributes == {"name": "Bob", "age": 1}


def test_replace_update_drops_unmentioned_fields_and_must_be_valid_alone(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(app, AttributesInvalidError, "'name' is a required property"):
        app.update_node(graph, "ada", {"age": 40}, mode="replace")
    app.update_node(graph, "ada", {"name": "Ada L."}, mode="replace")
    assert app.get_node(graph, "ada").attributes == {"name": "Ada L."}


def test_update_event_records_the_complete_attributes(app: Metagraph, graph: UUID) -> None:
    app.update_node(graph, "ada", {"age": 37})
    last = app.recorder.max_notification_id()
    assert last is not None
    [notification] = app.recorder.select_notifications(last, 1)
    event = app.mapper.to_domain_event(notification)
    assert isinstance(event, Graph.NodeUpdated)
    assert event.attributes == {"name": "Ada", "age": 37}


def test_update_of_missing_node_or_with_bad_mode_is_rejected(app: Metagraph, graph: UUID) -> None:
    with rejected(app, NotFoundError, "no node with key 'zed'"):
        app.update_node(graph, "zed", {"name": "Zed"})
    with rejected(app, ValidationError, "invalid update mode 'patch'"):
        app.update_node(graph, "ada", {"age": 1}, mode="patch")  # type: ignore[arg-type]


def test_delete_node_deletes_its_edges_first_as_events(app: Metagraph, graph: UUID) -> None:
    knows = app.add_edge(graph, "knows", "ada", "bob")
    works = app.add_edge(graph, "works_on", "ada", "apollo")
    keeps = app.add_edge(graph, "works_on", "bob", "apollo")
    before = stream_position(app) or 0

    assert sorted(app.delete_node(graph, "ada")) == sorted([knows, works])

    events = [
        app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(before + 1, 10)
    ]
    assert [type(e).__name__ for e in events] == ["EdgeDeleted", "EdgeDeleted", "NodeDeleted"]
    assert {e.edge_id for e in events[:2]} == {knows, works}  # type: ignore[attr-defined]
    assert app.edge_ids(graph) == [keeps]
    assert "ada" not in app.nodes(graph)
    with rejected(app, NotFoundError, "no node with key 'ada'"):
        app.get_node(graph, "ada")


def test_deleted_node_key_can_be_used_again(app: Metagraph, graph: UUID) -> None:
    app.delete_node(graph, "ada")
    app.add_node(graph, "ada", "project", {"fresh": True})
    assert app.get_node(graph, "ada").attributes == {"fresh": True}


def test_delete_of_missing_node_is_rejected(app: Metagraph, graph: UUID) -> None:
    with rejected(app, NotFoundError, "no node with key 'zed'"):
        app.delete_node(graph, "zed")
