"""Reading every call of a tenant, for tests: what the rules recorded, whole.

The store itself never loads every call (a write reads only its run); tests compare the
whole state, so they enumerate the call trees from the stream.
"""

from __future__ import annotations

from typing import Any

from domain import Metagraph
from domain.calls import CallTree, find_call_graph, get_call
from domain.names import names_of


def trees(app: Metagraph) -> list[CallTree]:
    """Every call tree of the tenant, in the order they were started."""
    found: list[CallTree] = []
    for notification in app.recorder.select_notifications(
        0, 1_000_000, topics=list(names_of("CallTree.Started"))
    ):
        tree = app.repository.get(notification.originator_id)
        assert isinstance(tree, CallTree)
        found.append(tree)
    return found


def all_calls(app: Metagraph) -> dict[str, dict[str, Any]]:
    """Every recorded call's attributes, by requestId."""
    calls: dict[str, dict[str, Any]] = {}
    for tree in trees(app):
        for key, attributes in tree.calls.items():
            assert key not in calls, f"call {key!r} recorded in two trees"
            calls[key] = attributes
    return calls


def triggered_edges(app: Metagraph) -> set[tuple[str, str]]:
    """The ``triggered`` edges: (parent, child) for each call whose parent is recorded."""
    calls = all_calls(app)
    return {
        (attributes["parentRequestId"], key)
        for key, attributes in calls.items()
        if attributes.get("parentRequestId") in calls
    }


def app_children(app: Metagraph, key: str) -> list[str]:
    """The recorded children of ``key``."""
    return sorted(
        child
        for child, attributes in all_calls(app).items()
        if attributes.get("parentRequestId") == key and get_call(app, child) is not None
    )


def graph_calls(app: Metagraph) -> dict[str, dict[str, Any]]:
    """Every call of the tenant's call graph: written by hand as its nodes (or by an
    older version), and recorded in call trees (these win: an imported call is both)."""
    graph = find_call_graph(app)
    found: dict[str, dict[str, Any]] = {}
    if graph is not None:
        found = {key: app.get_node(graph, key).attributes for key in app.nodes(graph)}
    found.update(all_calls(app))
    return found
