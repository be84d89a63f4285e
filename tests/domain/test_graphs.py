"""Graphs: creation, status transitions, and archived graphs refusing writes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from domain import (
    STATUS_TRANSITIONS,
    GraphArchivedError,
    Metagraph,
    NotFoundError,
    StatusTransitionError,
    ValidationError,
)
from tests.domain.conftest import rejected


def test_created_graph_is_a_draft_with_its_metadata(app: Metagraph, org_type: UUID) -> None:
    graph = app.create_graph("org", "team", description="d", owner_id="acct-1", project_id="proj-9")
    info = app.get_graph(str(graph))
    assert (info.name, info.description, info.status) == ("team", "d", "draft")
    assert (info.owner_id, info.project_id) == ("acct-1", "proj-9")
    assert (info.graph_type_id, info.graph_type_name) == (org_type, "org")
    assert (info.node_count, info.edge_count, info.version) == (0, 0, 1)


def test_graph_of_unknown_type_is_rejected_and_nothing_is_written(app: Metagraph) -> None:
    with rejected(app, NotFoundError, "no graph type named 'org'"):
        app.create_graph("org", "team")


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [("  ", "draft", "graph name"), ("team", "archived", "cannot be created with status")],
)
def test_invalid_graph_creation_is_rejected(
    app: Metagraph, org_type: UUID, name: str, status: Any, says: str
) -> None:
    with rejected(app, ValidationError, says):
        app.create_graph(org_type, name, status=status)


def test_unknown_graph_is_reported(app: Metagraph) -> None:
    with rejected(app, NotFoundError, "no graph with id") as info:
        app.get_graph(UUID(int=3))
    assert info.value.kind == "graph"


ALLOWED = {("draft", "active"), ("draft", "archived"), ("active", "archived")}
STATUSES = ("draft", "active", "archived")


def test_documented_transitions_are_exactly_the_allowed_ones() -> None:
    documented = {(a, b) for a, targets in STATUS_TRANSITIONS.items() for b in targets}
    assert documented == ALLOWED


def _graph_in(app: Metagraph, status: str) -> UUID:
    graph = app.create_graph("org", "g", status="active" if status == "active" else "draft")
    if status == "archived":
        app.archive_graph(graph)
    return graph


@pytest.mark.parametrize(("start", "target"), sorted(itertools.product(STATUSES, STATUSES)))
def test_status_transitions_follow_the_table(
    app: Metagraph, org_type: UUID, start: str, target: Any
) -> None:
    graph = _graph_in(app, start)
    if (start, target) in ALLOWED:
        app.set_graph_status(graph, target)
        assert app.get_graph(graph).status == target
    else:
        with rejected(app, StatusTransitionError, f"cannot go from '{start}' to '{target}'"):
            app.set_graph_status(graph, target)
        assert app.get_graph(graph).status == start


def test_activate_and_archive_helpers(app: Metagraph, org_type: UUID) -> None:
    graph = app.create_graph(org_type, "g")
    app.activate_graph(graph)
    app.archive_graph(graph)
    assert app.get_graph(graph).status == "archived"
    with rejected(app, StatusTransitionError, "archived is final"):
        app.archive_graph(graph)


_WRITES: dict[str, Callable[[Metagraph, UUID, str], Any]] = {
    "add_node": lambda app, g, e: app.add_node(g, "cy", "person", {"name": "Cy"}),
    "update_node": lambda app, g, e: app.update_node(g, "ada", {"age": 1}),
    "replace_node": lambda app, g, e: app.update_node(g, "ada", {"name": "A"}, mode="replace"),
    "delete_node": lambda app, g, e: app.delete_node(g, "ada"),
    "add_edge": lambda app, g, e: app.add_edge(g, "knows", "bob", "ada"),
    "update_edge": lambda app, g, e: app.update_edge(g, e, {"since": 1}),
    "delete_edge": lambda app, g, e: app.delete_edge(g, e),
}


@pytest.mark.parametrize("write", sorted(_WRITES))
def test_write_to_an_archived_graph_is_rejected_and_nothing_is_written(
    app: Metagraph, graph: UUID, write: str
) -> None:
    edge = app.add_edge(graph, "knows", "ada", "bob")
    app.archive_graph(graph)
    before = app.get_graph(graph)
    with rejected(app, GraphArchivedError, "is archived"):
        _WRITES[write](app, graph, edge)
    assert app.get_graph(graph) == before


@pytest.mark.parametrize("write", sorted(_WRITES))
def test_writes_to_draft_graphs_are_accepted(app: Metagraph, org_type: UUID, write: str) -> None:
    graph = app.create_graph(org_type, "draft")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    app.add_node(graph, "bob", "person", {"name": "Bob"})
    edge = app.add_edge(graph, "knows", "ada", "bob")
    _WRITES[write](app, graph, edge)
