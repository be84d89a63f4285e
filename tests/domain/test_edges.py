"""Edges: endpoints, endpoint types, direction, self-loops, parallel edges, updates."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain import (
    AttributesInvalidError,
    DuplicateError,
    Metagraph,
    NotFoundError,
    ParallelEdgeError,
    ValidationError,
)
from tests.domain.conftest import define_org_type, rejected


def graph_of(app: Metagraph, **config: Any) -> UUID:
    """An active graph of a fresh org-like type with ``config``, persons a, b, c."""
    name = "t-" + "-".join(f"{k}{v}" for k, v in sorted(config.items()))
    graph_type = define_org_type(app, name, config=config)
    graph = app.create_graph(graph_type, "g", status="active")
    for key in "abc":
        app.add_node(graph, key, "person", {"name": key})
    return graph


def test_added_edge_is_readable_by_id_and_key(app: Metagraph, graph: UUID) -> None:
    edge_id = app.add_edge(graph, "knows", "ada", "bob", {"since": 2020}, key="k1")
    edge = app.get_edge(graph, edge_id)
    assert edge == app.find_edge(graph, "k1")
    assert (edge.source, edge.target, edge.edge_type, edge.undirected) == (
        "ada",
        "bob",
        "knows",
        False,
    )
    assert (edge.key, edge.attributes, edge.schema_version) == ("k1", {"since": 2020}, 1)
    assert app.get_graph(graph).edge_count == 1


@pytest.mark.parametrize(("source", "target"), [("ada", "zed"), ("zed", "ada")])
def test_edge_to_missing_node_is_rejected_and_nothing_is_written(
    app: Metagraph, graph: UUID, source: str, target: str
) -> None:
    with rejected(app, NotFoundError, "no node with key 'zed'") as info:
        app.add_edge(graph, "knows", source, target)
    assert info.value.kind == "node"
    assert app.edge_ids(graph) == []


def test_edge_of_unknown_type_is_rejected(app: Metagraph, graph: UUID) -> None:
    with rejected(app, NotFoundError, "no edge type 'likes'; known edge types"):
        app.add_edge(graph, "likes", "ada", "bob")


def test_duplicate_edge_key_is_rejected_and_nothing_is_written(app: Metagraph, graph: UUID) -> None:
    app.add_edge(graph, "knows", "ada", "bob", key="k1")
    with rejected(app, DuplicateError, "already has an edge with key 'k1'"):
        app.add_edge(graph, "works_on", "ada", "apollo", key="k1")


def test_edge_keys_are_optional_and_freed_by_delete(app: Metagraph, graph: UUID) -> None:
    first = app.add_edge(graph, "knows", "ada", "bob", key="k1")
    app.add_edge(graph, "knows", "bob", "ada")
    app.delete_edge(graph, first)
    with rejected(app, NotFoundError, "no edge with key 'k1'"):
        app.find_edge(graph, "k1")
    app.add_edge(graph, "works_on", "ada", "apollo", key="k1")


@pytest.mark.parametrize(
    ("edge_type", "source", "target", "says"),
    [
        ("knows", "ada", "apollo", "from a 'person' node to a 'project' node"),
        ("works_on", "apollo", "ada", "from a 'project' node to a 'person' node"),
        ("works_on", "ada", "bob", "targets \\['project'\\]"),
    ],
)
def test_endpoint_types_the_edge_type_does_not_allow_are_rejected(
    app: Metagraph, graph: UUID, edge_type: str, source: str, target: str, says: str
) -> None:
    with rejected(app, ValidationError, says):
        app.add_edge(graph, edge_type, source, target)


def test_edge_type_with_empty_endpoint_lists_accepts_any_node_types(
    app: Metagraph, graph: UUID
) -> None:
    app.add_edge(graph, "related", "apollo", "ada")
    app.add_edge(graph, "related", "ada", "bob")


def test_undirected_edge_endpoint_types_may_match_either_way(app: Metagraph) -> None:
    graph = graph_of(app, graphType="undirected")
    app.add_node(graph, "apollo", "project", {})
    edge = app.add_edge(graph, "works_on", "apollo", "a")  # person->project, written backwards
    assert app.get_edge(graph, edge).undirected is True


def test_self_loop_is_rejected_when_the_graph_type_forbids_it(app: Metagraph, graph: UUID) -> None:
    with rejected(app, ValidationError, "self-loop"):
        app.add_edge(graph, "knows", "ada", "ada")


def test_self_loop_is_accepted_when_the_graph_type_allows_it(app: Metagraph) -> None:
    graph = graph_of(app, graphType="directed", allowSelfLoops=True)
    app.add_edge(graph, "knows", "a", "a")


def test_parallel_edge_is_rejected_when_the_graph_type_is_not_multi(
    app: Metagraph, graph: UUID
) -> None:
    app.add_edge(graph, "knows", "ada", "bob")
    with rejected(app, ParallelEdgeError, "already has an edge between 'ada' and 'bob'"):
        app.add_edge(graph, "related", "ada", "bob")  # another type is still parallel


def test_antiparallel_directed_edges_are_not_parallel(app: Metagraph, graph: UUID) -> None:
    app.add_edge(graph, "knows", "ada", "bob")
    app.add_edge(graph, "knows", "bob", "ada")


def test_reverse_of_an_undirected_edge_is_parallel(app: Metagraph) -> None:
    graph = graph_of(app, graphType="undirected")
    app.add_edge(graph, "knows", "a", "b")
    with rejected(app, ParallelEdgeError):
        app.add_edge(graph, "knows", "b", "a")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a", "b", True), ("a", "b", False)),
        (("a", "b", True), ("b", "a", False)),
        (("a", "b", False), ("b", "a", True)),
        (("a", "b", False), ("a", "b", True)),
    ],
)
def test_mixed_graph_directed_and_undirected_edges_on_one_pair_are_parallel(
    app: Metagraph, first: tuple[str, str, bool], second: tuple[str, str, bool]
) -> None:
    graph = graph_of(app, graphType="mixed")
    app.add_edge(graph, "knows", first[0], first[1], undirected=first[2])
    with rejected(app, ParallelEdgeError):
        app.add_edge(graph, "knows", second[0], second[1], undirected=second[2])


def test_parallel_edges_are_accepted_when_the_graph_type_is_multi(app: Metagraph) -> None:
    graph = graph_of(app, graphType="undirected", multi=True)
    app.add_edge(graph, "knows", "a", "b")
    app.add_edge(graph, "knows", "b", "a")
    app.add_edge(graph, "knows", "a", "b")
    assert len(app.edge_ids(graph)) == 3


def test_deleting_an_edge_frees_its_pair(app: Metagraph, graph: UUID) -> None:
    edge = app.add_edge(graph, "knows", "ada", "bob")
    app.delete_edge(graph, edge)
    app.add_edge(graph, "knows", "ada", "bob")


def test_edge_direction_defaults_to_the_graph_type_and_must_agree_with_it(app: Metagraph) -> None:
    directed = graph_of(app, graphType="directed")
    undirected = graph_of(app, graphType="undirected")
    mixed = graph_of(app, graphType="mixed")
    assert app.get_edge(directed, app.add_edge(directed, "knows", "a", "b")).undirected is False
    assert app.get_edge(undirected, app.add_edge(undirected, "knows", "a", "b")).undirected is True
    assert app.get_edge(mixed, app.add_edge(mixed, "knows", "a", "b")).undirected is False
    assert app.get_edge(mixed, app.add_edge(mixed, "knows", "b", "c", undirected=True)).undirected
    with rejected(app, ValidationError, "undirected edge cannot be added"):
        app.add_edge(directed, "knows", "b", "c", undirected=True)
    with rejected(app, ValidationError, "directed edge cannot be added"):
        app.add_edge(undirected, "knows", "b", "c", undirected=False)


def test_edge_with_attributes_violating_the_schema_is_rejected(app: Metagraph, graph: UUID) -> None:
    with rejected(app, AttributesInvalidError, "attribute /since is invalid") as info:
        app.add_edge(graph, "knows", "ada", "bob", {"since": "2020"})
    assert info.value.path == "/since"


def test_edge_updates_merge_or_replace_and_are_validated(app: Metagraph, graph: UUID) -> None:
    edge = app.add_edge(graph, "related", "ada", "bob", {"weight": 1, "label": "x"})
    app.update_edge(graph, edge, {"weight": 2})
    assert app.get_edge(graph, edge).attributes == {"weight": 2, "label": "x"}
    app.update_edge(graph, edge, {"label": "y"}, mode="replace")
    assert app.get_edge(graph, edge).attributes == {"label": "y"}

    knows = app.add_edge(graph, "knows", "bob", "ada", {"since": 1})
    with rejected(app, AttributesInvalidError, "'extra' was unexpected"):
        app.update_edge(graph, knows, {"extra": 1})
    assert app.get_edge(graph, knows).attributes == {"since": 1}


def test_edge_schema_evolution_applies_to_later_edge_writes(
    app: Metagraph, graph: UUID, org_type: UUID
) -> None:
    edge = app.add_edge(graph, "knows", "ada", "bob", {"since": 1})
    app.evolve_edge_type_schema(org_type, "knows", {"type": "object", "required": ["since", "how"]})
    assert app.get_edge(graph, edge).schema_version == 1
    with rejected(app, AttributesInvalidError, "'how' is a required property"):
        app.update_edge(graph, edge, {"since": 2})
    app.update_edge(graph, edge, {"how": "work"})
    assert app.get_edge(graph, edge).schema_version == 2


def test_update_or_delete_of_a_missing_edge_is_rejected(app: Metagraph, graph: UUID) -> None:
    with rejected(app, NotFoundError, "no edge with id 'nope'"):
        app.update_edge(graph, "nope", {})
    with rejected(app, NotFoundError, "no edge with id 'nope'"):
        app.delete_edge(graph, "nope")
