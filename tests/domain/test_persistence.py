"""The domain on real tenant files: reopening, snapshots, typed payloads, other writers."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain import (
    ConcurrencyError,
    DuplicateError,
    EdgeTypeDef,
    Graph,
    GraphConfig,
    GraphType,
    Metagraph,
    NodeTypeDef,
)
from tests.domain.conftest import define_org_type, store_env


def _fill(app: Metagraph, graph: UUID) -> dict[str, Any]:
    for i in range(12):
        app.add_node(graph, f"p{i}", "person", {"name": f"P{i}"})
    # Keys shaped like the transcoder's tags must survive a snapshot too.
    app.add_node(graph, "_type_", "project", {})
    app.add_node(graph, "_data_", "project", {})
    edges = [app.add_edge(graph, "knows", f"p{i}", f"p{i + 1}", key=f"k{i}") for i in range(11)]
    app.add_edge(graph, "related", "_type_", "_data_")
    app.update_node(graph, "p3", {"age": 3})
    app.update_edge(graph, edges[2], {"since": 2})
    app.delete_node(graph, "p5")
    return _state(app, graph)


def _state(app: Metagraph, graph: UUID) -> dict[str, Any]:
    return {
        "info": app.get_graph(graph),
        "nodes": {key: app.get_node(graph, key) for key in app.nodes(graph)},
        "edges": {edge: app.get_edge(graph, edge) for edge in app.edge_ids(graph)},
    }


@pytest.mark.parametrize("interval", ["0", "7"], ids=["no-snapshots", "snapshots"])
def test_a_reopened_store_has_the_same_graphs_and_keeps_enforcing_rules(
    tenant_file: Path, interval: str
) -> None:
    env = store_env(tenant_file, SNAPSHOT_INTERVAL=interval)
    with Metagraph(env=env) as app:
        define_org_type(app)
        graph = app.create_graph("org", "team", status="active")
        expected = _fill(app, graph)
        snapshots = list(app.snapshots.get(graph)) if app.snapshots else []
        assert bool(snapshots) == (interval != "0")
    with Metagraph(env=env) as reopened:
        assert _state(reopened, graph) == expected
        with pytest.raises(DuplicateError):
            reopened.add_node(graph, "p1", "person", {"name": "again"})
        reopened.add_edge(graph, "knows", "p4", "p6")


def test_event_payloads_are_typed_after_a_round_trip(app: Metagraph) -> None:
    define_org_type(app)
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 20)]
    defined = next(e for e in events if isinstance(e, GraphType.Defined))
    assert defined.config == GraphConfig(graph_type="directed")
    added = [e for e in events if isinstance(e, GraphType.NodeTypeAdded)]
    assert all(isinstance(e.node_type, NodeTypeDef) for e in added)
    edge_added = next(e for e in events if isinstance(e, GraphType.EdgeTypeAdded))
    assert isinstance(edge_added.edge_type, EdgeTypeDef)
    assert edge_added.edge_type.allowed_source_types == ("person",)


def test_stream_carries_the_data_model_field_names(app: Metagraph) -> None:
    app.define_graph_type("org")
    [notification] = [
        n for n in app.recorder.select_notifications(1, 10) if n.topic.endswith("Defined")
    ]
    state = json.loads(notification.state)
    assert state["config"] == {
        "_type_": "metagraph.GraphConfig",
        "_data_": {"graphType": "directed", "multi": False, "allowSelfLoops": False},
    }
    assert notification.topic == "GraphType.Defined"


@pytest.fixture
def two_apps(tenant_file: Path) -> Iterator[tuple[Metagraph, Metagraph, UUID]]:
    """Two applications (as two processes would have) on one tenant file, one graph."""
    with (
        Metagraph(env=store_env(tenant_file)) as first,
        Metagraph(env=store_env(tenant_file)) as second,
    ):
        define_org_type(first)
        graph = first.create_graph("org", "team", status="active")
        first.add_node(graph, "ada", "person", {"name": "Ada"})
        assert second.nodes(graph) == {"ada": "person"}  # warms the second one's cache
        yield first, second, graph


def test_a_cached_graph_sees_what_another_writer_recorded(
    two_apps: tuple[Metagraph, Metagraph, UUID],
) -> None:
    first, second, graph = two_apps
    second.add_node(graph, "bob", "person", {"name": "Bob"})
    with pytest.raises(DuplicateError):
        first.add_node(graph, "bob", "person", {"name": "Bob again"})
    first.add_edge(graph, "knows", "ada", "bob")
    assert len(second.edge_ids(graph)) == 1


def _interleave(
    first: Metagraph, write: Any, times: int, monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    """Make ``write`` run (the first ``times`` times) each time ``first`` has loaded its
    aggregates, before it saves: a real race, as another process committing at the worst
    moment would cause. Returns the attempts ``first`` made, as they happen."""
    attempts: list[int] = []
    original = Metagraph._type_of

    def racing_type_of(self: Metagraph, graph: Graph) -> GraphType:
        found = original(self, graph)
        if self is first:
            attempts.append(len(attempts) + 1)
            if len(attempts) <= times:
                write(len(attempts))
        return found

    monkeypatch.setattr(Metagraph, "_type_of", racing_type_of)
    return attempts


def test_a_command_that_loses_a_race_is_rerun_on_fresh_state(
    two_apps: tuple[Metagraph, Metagraph, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, graph = two_apps
    attempts = _interleave(
        first,
        lambda n: second.add_node(graph, f"other{n}", "project", {}),
        1,
        monkeypatch,
    )
    first.add_node(graph, "bob", "person", {"name": "Bob"})
    assert attempts == [1, 2]
    assert set(second.nodes(graph)) == {"ada", "bob", "other1"}


def test_a_rerun_command_checks_the_rules_against_what_the_winner_wrote(
    two_apps: tuple[Metagraph, Metagraph, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, graph = two_apps
    attempts = _interleave(
        first, lambda n: second.add_node(graph, "bob", "project", {}), 1, monkeypatch
    )
    with pytest.raises(DuplicateError):
        first.add_node(graph, "bob", "person", {"name": "Bob"})
    assert attempts == [1, 2]
    assert first.nodes(graph) == {"ada": "person", "bob": "project"}


def test_a_command_losing_every_race_raises_concurrency_error_and_writes_nothing(
    two_apps: tuple[Metagraph, Metagraph, UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, graph = two_apps
    attempts = _interleave(
        first, lambda n: second.add_node(graph, f"other{n}", "project", {}), 3, monkeypatch
    )
    with pytest.raises(ConcurrencyError, match="during each of 3 attempts"):
        first.add_node(graph, "bob", "person", {"name": "Bob"})
    assert attempts == [1, 2, 3]
    assert set(first.nodes(graph)) == {"ada", "other1", "other2", "other3"}
    assert first.get_graph(graph) == second.get_graph(graph)


def test_domain_imports_neither_streams_nor_projections() -> None:
    package = Path(__file__).parents[2] / "domain"
    for module in package.rglob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"streams", "projections", "graphstore"}, (
                    module,
                    name,
                )


def _docstrings(tree: ast.AST) -> set[int]:
    """The string statements (module, class, function and attribute docstrings)."""
    return {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}


def test_domain_names_no_file_and_no_persistence_setting() -> None:
    """Files and settings are the data directory's (streams.directory, graphstore.data):
    no string in the domain's code (docstrings aside) names one."""
    package = Path(__file__).parents[2] / "domain"
    for module in package.rglob("*.py"):
        tree = ast.parse(module.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings:
                    continue
                for word in ("HONKER_", "PERSISTENCE_MODULE", "system.db", "tenant-{", ".db"):
                    assert word not in node.value, (module, node.lineno, node.value)
