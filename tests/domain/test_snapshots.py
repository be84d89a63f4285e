"""Snapshots of graphs: the column format, the earlier row format, loading, the interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from eventsourcing.persistence import JSONTranscoder

from domain import Metagraph
from domain.application import SNAPSHOT_SHARE, snapshot_interval
from domain.codec import GraphIndexAsColumns, GraphIndexAsRows, transcodings
from domain.graphs import EdgeEntry, GraphIndex, IndexColumns
from tests.domain.conftest import define_org_type, store_env

MIXED = {"graphType": "mixed", "multi": True, "allowSelfLoops": True}


def _sample_index() -> GraphIndex:
    """Nodes of two types; directed, undirected, parallel, self-loop and keyed edges;
    updated versions; a deleted edge and a deleted node."""
    index = GraphIndex()
    for version, key in enumerate(["a", "b", "c", "d", "_type_", "_data_"], start=2):
        index.add_node(key, "person" if version % 2 else "project", version)
    edges: list[tuple[str, str, str, str, str | None, bool]] = [
        ("e1", "knows", "a", "b", "k1", False),
        ("e2", "knows", "a", "b", None, False),  # parallel
        ("e3", "related", "b", "a", None, True),  # undirected, reversed pair
        ("e4", "related", "c", "c", "loop", False),  # self-loop
        ("e5", "related", "_type_", "_data_", None, True),
        ("e6", "knows", "d", "a", "gone", False),
        ("e7", "knows", "c", "d", None, False),
    ]
    for version, (edge_id, edge_type, source, target, edge_key, undirected) in enumerate(
        edges, start=20
    ):
        index.add_edge(edge_id, EdgeEntry(edge_type, source, target, edge_key, undirected, version))
    index.nodes["b"].version = 40
    index.edges["e3"].version = 41
    index.remove_edge("e6")
    for edge_id in index.incident("d"):
        index.remove_edge(edge_id)
    index.remove_node("d")
    return index


def _state(index: GraphIndex) -> dict[str, Any]:
    return {
        "nodes": index.nodes,
        "edges": index.edges,
        "edge_keys": index.edge_keys,
        "incident": {key: index.incident(key) for key in index.nodes},
        "arcs": dict(index._arcs),
        "links": dict(index._links),
    }


def test_columns_round_trip_to_the_same_index() -> None:
    index = _sample_index()
    columns = index.columns()
    packed = msgspec.msgpack.encode(columns)
    loaded = GraphIndex.from_columns(msgspec.msgpack.decode(packed, type=IndexColumns))
    assert loaded._incident is None  # built when first needed
    assert _state(loaded) == _state(index)
    assert loaded.joined("a", "b", undirected=False)
    assert loaded.joined("c", "a", undirected=True) is False
    # Type names and node keys are shared, not copied per entry.
    assert loaded.edges["e1"].source is loaded.edges["e2"].source
    assert loaded.nodes["a"].type is loaded.nodes["c"].type


def test_an_empty_index_round_trips() -> None:
    loaded = GraphIndex.from_columns(GraphIndex().columns())
    assert _state(loaded) == _state(GraphIndex())


def test_columns_of_different_lengths_are_refused() -> None:
    columns = _sample_index().columns()
    columns.edge_versions.pop()
    with pytest.raises(ValueError, match="different lengths"):
        GraphIndex.from_columns(columns)


def _transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in transcodings():
        transcoder.register(transcoding)
    return transcoder


def test_the_index_is_written_as_one_string_of_columns() -> None:
    index = _sample_index()
    stored = json.loads(_transcoder().encode({"index": index}))
    assert stored["index"]["_type_"] == GraphIndexAsColumns.name
    assert isinstance(stored["index"]["_data_"], str)
    assert _state(_transcoder().decode(json.dumps(stored).encode())["index"]) == _state(index)


def test_snapshots_in_the_earlier_row_format_are_still_read() -> None:
    index = _sample_index()
    stored = {"index": {"_type_": GraphIndexAsRows.name, "_data_": index.rows()}}
    loaded = _transcoder().decode(json.dumps(stored).encode())["index"]
    assert _state(loaded) == _state(index)


def _graph_with_everything(app: Metagraph) -> tuple[UUID, list[str]]:
    graph_type = define_org_type(app, config=MIXED)
    graph = app.create_graph(graph_type, "g", status="active")
    for key in ("ada", "bob", "cy"):
        app.add_node(graph, key, "person", {"name": key})
    edges = [
        app.add_edge(graph, "knows", "ada", "bob", key="k1"),
        app.add_edge(graph, "knows", "ada", "bob"),
        app.add_edge(graph, "related", "bob", "cy", undirected=True),
        app.add_edge(graph, "related", "cy", "cy"),
        app.add_edge(graph, "knows", "cy", "ada", key="k2"),
    ]
    return graph, edges


def test_a_graph_loaded_from_a_snapshot_cascades_deletes_and_keeps_its_rules(
    tenant_file: Path,
) -> None:
    env = store_env(tenant_file, SNAPSHOT_INTERVAL="1")
    with Metagraph(env=env) as app:
        graph, edges = _graph_with_everything(app)
        assert app.snapshots is not None
        [snapshot] = app.snapshots.get(graph, desc=True, limit=1)
        assert snapshot.originator_version == app.get_graph(graph).version
    with Metagraph(env=env) as reopened:
        assert reopened.find_edge(graph, "k2").id == edges[4]
        assert reopened.delete_node(graph, "cy") == sorted(edges[2:])
        assert sorted(reopened.edge_ids(graph)) == sorted(edges[:2])
        reopened.add_edge(graph, "related", "bob", "ada", undirected=True)
    with Metagraph(env=env) as again:
        assert again.nodes(graph) == {"ada": "person", "bob": "person"}
        assert len(again.edge_ids(graph)) == 3


def test_take_snapshot_records_the_current_state_and_a_past_version(tenant_file: Path) -> None:
    env = store_env(tenant_file, SNAPSHOT_INTERVAL="0")
    with Metagraph(env=env) as app:
        graph, _ = _graph_with_everything(app)
        version = app.get_graph(graph).version
        app.take_snapshot(graph)
        app.take_snapshot(graph, version=version - 1)
        assert app.snapshots is not None
        taken = [s.originator_version for s in app.snapshots.get(graph)]
        assert taken == [version - 1, version]
        app.add_node(graph, "dee", "person", {"name": "dee"})
    with Metagraph(env=env) as reopened:
        assert set(reopened.nodes(graph)) == {"ada", "bob", "cy", "dee"}
        assert len(reopened.edge_ids(graph)) == 5


def test_a_subclass_overriding_save_is_still_called(tenant_file: Path) -> None:
    saved: list[int] = []

    class Counting(Metagraph):
        def save(self, *objs: Any, **kwargs: Any) -> Any:
            saved.append(len(objs))
            return super().save(*objs, **kwargs)

    with Counting(env=store_env(tenant_file)) as app:
        app.define_graph_type("org")
    assert saved == [2]  # the catalog and the type, in one save


@pytest.mark.parametrize(
    ("base", "size", "expected"),
    [
        (1000, 0, 1000),
        (1000, 3000, 1000),
        (1000, 64_000, 1024),
        (1000, 300_000, 8192),
        (1000, 600_000, 16384),
        (7, 300, 8),
        (1, 0, 1),
    ],
)
def test_the_snapshot_interval_grows_with_the_graph(base: int, size: int, expected: int) -> None:
    interval = snapshot_interval(base, size)
    assert interval == expected
    assert interval >= base
    assert interval <= max(base, size // SNAPSHOT_SHARE)
