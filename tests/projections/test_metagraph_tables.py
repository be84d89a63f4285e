"""The metagraph tables: the data model's columns, keys and indexes, and what each event does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4, uuid5

import pytest
from eventsourcing.persistence import StoredEvent

from domain import Metagraph
from projections import MetagraphProjection, Projector
from projections.metagraph import TABLES
from tests.projections.conftest import (
    define_org,
    head,
    reader,
    table,
    tables_match_aggregates,
)

OpenProjector = Callable[..., Projector]
COMMON = {"id", "metadata", "created_at", "updated_at"}


def _schema(path: Path) -> dict[str, Any]:
    """Columns, foreign keys and indexes of the six tables, from SQLite's pragmas."""
    with reader(path) as datastore:

        def rows(pragma: str) -> list[dict[str, Any]]:
            return datastore.query(f"PRAGMA {pragma}")

        def columns(name: str) -> dict[str, tuple[str, int, Any, int]]:
            return {
                r["name"]: (r["type"], r["notnull"], r["dflt_value"], r["pk"])
                for r in rows(f"table_info({name})")
            }

        def foreign_keys(name: str) -> set[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
            grouped: dict[int, list[dict[str, Any]]] = {}
            for r in rows(f"foreign_key_list({name})"):
                grouped.setdefault(r["id"], []).append(r)
            return {
                (
                    g[0]["table"],
                    tuple(r["from"] for r in g),
                    tuple(r["to"] for r in g),
                    g[0]["on_delete"],
                )
                for g in grouped.values()
            }

        def indexes(name: str) -> dict[tuple[str, ...], bool]:
            return {
                tuple(r["name"] for r in rows(f"index_info('{ix['name']}')")): bool(ix["unique"])
                for ix in rows(f"index_list({name})")
            }

        return {
            name: {"columns": columns(name), "fks": foreign_keys(name), "ix": indexes(name)}
            for name in TABLES
        }


def test_the_tables_have_the_data_models_columns_keys_foreign_keys_and_indexes(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    open_projector()
    schema = _schema(tenant_file)
    for name, spec in schema.items():
        columns = spec["columns"]
        assert set(columns) >= COMMON, name
        if name == "nodes":  # uuid5(graph, key): unique as (graph_id, key) is; no index
            assert columns["id"][:2] == ("TEXT", 1) and columns["id"][3] == 0, columns["id"]
            assert ("id",) not in spec["ix"], spec["ix"]
        else:
            assert columns["id"][0] == "TEXT" and columns["id"][3] == 1, name  # primary key
        assert columns["metadata"][2] == "'{}'", name
        assert columns["created_at"][0] == columns["updated_at"][0] == "INTEGER", name
    graph_types = schema["graph_types"]
    assert {"name", "description", "config", "version", "scope"} <= set(graph_types["columns"])
    assert graph_types["columns"]["description"][2] == "''"
    assert graph_types["columns"]["version"][2] == "1"
    assert graph_types["columns"]["scope"][2] == "'system'"
    assert graph_types["ix"][("name",)] is True  # UNIQUE
    for kind in ("node_types", "edge_types"):
        assert {"graph_type_id", "name", "description", "schema"} <= set(schema[kind]["columns"])
        assert schema[kind]["fks"] == {("graph_types", ("graph_type_id",), ("id",), "CASCADE")}
        assert schema[kind]["ix"][("graph_type_id", "name")] is True
    edge_types = schema["edge_types"]["columns"]
    assert edge_types["allowed_source_types"][2] == edge_types["allowed_target_types"][2] == "'[]'"
    graphs = schema["graphs"]
    assert {"graph_type_id", "name", "description", "status", "owner_id", "project_id"} <= set(
        graphs["columns"]
    )
    assert graphs["columns"]["status"][2] == "'draft'"
    assert graphs["fks"] == {("graph_types", ("graph_type_id",), ("id",), "SET NULL")}
    for cols in (("owner_id",), ("project_id",), ("owner_id", "project_id")):
        assert graphs["ix"][cols] is False
    nodes = schema["nodes"]
    assert {"graph_id", "key", "attributes", "node_type"} <= set(nodes["columns"])
    assert nodes["fks"] == {("graphs", ("graph_id",), ("id",), "CASCADE")}
    assert nodes["ix"][("graph_id", "key")] is True
    edges = schema["edges"]
    assert {
        "graph_id",
        "key",
        "source_node_key",
        "target_node_key",
        "attributes",
        "undirected",
    } <= set(edges["columns"])
    assert edges["columns"]["key"][1] == 0  # optional
    assert edges["fks"] == {
        ("graphs", ("graph_id",), ("id",), "CASCADE"),
        ("nodes", ("graph_id", "source_node_key"), ("graph_id", "key"), "CASCADE"),
        ("nodes", ("graph_id", "target_node_key"), ("graph_id", "key"), "CASCADE"),
    }
    assert edges["ix"][("graph_id", "key")] is True
    assert edges["ix"][("graph_id", "source_node_key")] is False
    assert edges["ix"][("graph_id", "target_node_key")] is False


def test_creating_the_tables_twice_changes_nothing(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    open_projector()
    before = _schema(tenant_file)
    open_projector()
    assert _schema(tenant_file) == before


def test_rows_carry_the_types_attributes_and_schema_versions_of_the_events(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    type_id = define_org(app, multi=True)
    graph = app.create_graph("org", "team", description="d", owner_id="ada", project_id="p1")
    app.add_node(graph, "ada", "person", {"name": "Ada", "age": 36})
    app.add_node(graph, "apollo", "project", {"budget": [1, {"x": None}]})
    edge = app.add_edge(graph, "link", "ada", "apollo", {"w": 0.5}, key="k1")
    keyless = app.add_edge(graph, "link", "apollo", "ada")
    open_projector().catch_up()

    [graph_row] = table(tenant_file, "graphs")
    assert graph_row["graph_type_id"] == str(type_id)
    assert (graph_row["status"], graph_row["owner_id"], graph_row["project_id"]) == (
        "draft",
        "ada",
        "p1",
    )
    nodes = {row["key"]: row for row in table(tenant_file, "nodes")}
    assert nodes["ada"]["node_type"] == "person"
    assert json.loads(nodes["apollo"]["attributes"]) == {"budget": [1, {"x": None}]}
    assert nodes["ada"]["schema_version"] == 1
    edges = {row["id"]: row for row in table(tenant_file, "edges")}
    assert edges[edge]["key"] == "k1" and edges[keyless]["key"] is None
    assert (edges[edge]["source_node_key"], edges[edge]["target_node_key"]) == ("ada", "apollo")
    assert edges[edge]["undirected"] == 0 and edges[edge]["edge_type"] == "link"
    assert json.loads(edges[edge]["attributes"]) == {"w": 0.5}
    [graph_type] = table(tenant_file, "graph_types")
    assert json.loads(graph_type["config"]) == {
        "graphType": "directed",
        "multi": True,
        "allowSelfLoops": False,
    }
    assert (graph_type["name"], graph_type["description"], graph_type["scope"]) == (
        "org",
        "people",
        "system",
    )
    tables_match_aggregates(app, tenant_file, [graph])


def test_row_ids_are_derived_from_stable_names_so_a_rebuild_gives_the_same_ids(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    type_id = define_org(app)
    graph = app.create_graph("org", "team")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    open_projector().catch_up()
    [node] = table(tenant_file, "nodes")
    assert node["id"] == str(uuid5(graph, "node:ada"))
    node_types = {row["name"]: row["id"] for row in table(tenant_file, "node_types")}
    assert node_types["person"] == str(uuid5(type_id, "node-type:person"))
    edge_types = {row["name"]: row["id"] for row in table(tenant_file, "edge_types")}
    assert edge_types["knows"] == str(uuid5(type_id, "edge-type:knows"))
    assert [row["id"] for row in table(tenant_file, "graph_types")] == [str(type_id)]
    assert [row["id"] for row in table(tenant_file, "graphs")] == [str(graph)]


def test_created_and_updated_at_are_the_recording_times_in_epoch_seconds(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    created = app.recorder.select_notifications(start=head(app), limit=1)[0]
    app.update_node(graph, "ada", {"age": 1})
    open_projector().catch_up()
    times = {  # the envelope's time, in ms, of every event
        row["offset"]: json.loads(row["payload"])["time"]
        for row in table(tenant_file, "_honker_stream", '"offset"')
    }
    [node] = table(tenant_file, "nodes")
    assert node["created_at"] == times[created.id] // 1000
    assert node["updated_at"] == times[head(app)] // 1000


def test_updates_replace_attributes_and_record_the_schema_version(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team")
    app.add_node(graph, "ada", "person", {"name": "Ada", "age": 3})
    app.add_node(graph, "bob", "person", {"name": "Bob"})
    edge = app.add_edge(graph, "knows", "ada", "bob", {"since": 1})
    projector = open_projector()
    projector.catch_up()
    app.evolve_node_type_schema("org", "person", {"type": "object"})
    app.update_node(graph, "ada", {"name": "Ada L."})  # merge
    app.update_edge(graph, edge, {"w": 2}, mode="replace")
    projector.catch_up()
    nodes = {row["key"]: row for row in table(tenant_file, "nodes")}
    assert json.loads(nodes["ada"]["attributes"]) == {"name": "Ada L.", "age": 3}
    assert (nodes["ada"]["schema_version"], nodes["bob"]["schema_version"]) == (2, 1)
    [edge_row] = table(tenant_file, "edges")
    assert json.loads(edge_row["attributes"]) == {"w": 2}
    [graph_type] = table(tenant_file, "graph_types")
    assert graph_type["version"] == 2  # one schema evolution
    person = next(r for r in table(tenant_file, "node_types") if r["name"] == "person")
    assert (json.loads(person["schema"]), person["schema_version"]) == ({"type": "object"}, 2)
    tables_match_aggregates(app, tenant_file, [graph])


def test_deleting_a_node_deletes_its_edges_and_its_key_can_be_used_again(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team")
    for key in ("a", "b", "c"):
        app.add_node(graph, key, "project")
    app.add_edge(graph, "link", "a", "b")
    kept = app.add_edge(graph, "link", "b", "c")
    app.add_edge(graph, "link", "c", "a")
    app.delete_node(graph, "a")
    app.add_node(graph, "a", "project", {"again": True})
    open_projector().catch_up()
    assert [row["id"] for row in table(tenant_file, "edges")] == [kept]
    assert {row["key"] for row in table(tenant_file, "nodes")} == {"a", "b", "c"}
    tables_match_aggregates(app, tenant_file, [graph])


def test_a_deleted_graph_type_leaves_with_its_types_and_its_graphs_keep_a_null_type(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    app.set_graph_status(graph, "archived")
    app.delete_graph_type("org")
    define_org(app)  # the name is free again: a different type
    projector = open_projector()
    projector.catch_up()
    [graph_row] = table(tenant_file, "graphs")
    assert graph_row["graph_type_id"] is None
    assert (graph_row["graph_type_name"], graph_row["status"]) == ("org", "archived")
    assert len(table(tenant_file, "nodes")) == 1  # the graph's data stays readable
    assert {r["graph_type_id"] for r in table(tenant_file, "node_types")} == {
        str(app.get_graph_type("org").id)
    }
    tables_match_aggregates(app, tenant_file, [graph])


def test_a_graph_recorded_after_its_type_was_deleted_gets_a_null_type(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    # Creating a graph and deleting its type touch different aggregates: a race can
    # record the graph after the deletion. Replay that order from a real Created event.
    define_org(app)
    graph = app.create_graph("org", "team")
    created = app.recorder.select_notifications(start=head(app), limit=1)[0]
    app.delete_graph_type("org")
    late = uuid4()
    app.recorder.insert_events([StoredEvent(late, 1, created.topic, created.state)])
    projector = open_projector()
    projector.catch_up()
    assert projector.status().error is None
    assert {row["id"]: row["graph_type_id"] for row in table(tenant_file, "graphs")} == {
        str(graph): None,
        str(late): None,
    }


@pytest.mark.parametrize("prefix", ["", "v2_"])
def test_a_table_prefix_keeps_a_second_set_of_tables_apart(
    app: Metagraph, tenant_file: Path, prefix: str
) -> None:
    class Prefixed(MetagraphProjection):
        name = f"metagraph{prefix}"

    define_org(app)
    graph = app.create_graph("org", "team")
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(tenant_file)}
    with Projector.open(env, Prefixed(table_prefix=prefix)) as projector:
        projector.catch_up()
    assert [row["key"] for row in table(tenant_file, f"{prefix}nodes")] == ["ada"]
