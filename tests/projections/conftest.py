"""Fixtures for the projection tests: real tenant files, a Metagraph writing to them,
projectors reading them, and a check that the tables say what the aggregates say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import OperationalError

from domain import Actor, Metagraph
from projections import MetagraphProjection, Projector
from projections.projector import Handler, Record, Transaction
from streams import HonkerDatastore

SYSTEM = Actor(scope="system", id="operator")
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
}


def store_env(path: Path, **extra: str) -> dict[str, str]:
    """The environment selecting Honker persistence on ``path`` (writers and projectors)."""
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path), **extra}


@pytest.fixture
def env(tenant_file: Path) -> dict[str, str]:
    return store_env(tenant_file)


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Metagraph]:
    with Metagraph(env=env) as metagraph:
        yield metagraph


@pytest.fixture
def open_projector(env: dict[str, str]) -> Iterator[Callable[..., Projector]]:
    """Opens projectors on the tenant file (closed at the end of the test)."""
    opened: list[Projector] = []

    def make(projection: MetagraphProjection | None = None, **options: Any) -> Projector:
        projector = Projector.open(env, projection or MetagraphProjection(), **options)
        opened.append(projector)
        return projector

    yield make
    for projector in opened:
        projector.close()


def define_org(app: Metagraph, name: str = "org", **config: Any) -> UUID:
    """A graph type with node types person (schema) and project, edge types knows and link."""
    graph_type = app.define_graph_type(
        name, config={"graphType": "directed", **config}, description="people"
    )
    app.add_node_type(graph_type, "person", schema=PERSON_SCHEMA)
    app.add_node_type(graph_type, "project")
    app.add_edge_type(
        graph_type,
        "knows",
        allowed_source_types=["person"],
        allowed_target_types=["person"],
    )
    app.add_edge_type(graph_type, "link")
    return graph_type


def head(app: Metagraph) -> int:
    """The last offset of the application's stream."""
    return app.recorder.max_notification_id() or 0


@contextmanager
def reader(path: Path) -> Iterator[HonkerDatastore]:
    """Honker's handle on ``path`` (shared if this process has it open), for reading.

    Never the stdlib ``sqlite3`` module while Honker has the file open in this process:
    two SQLite libraries in one process do not share their POSIX locks, so one closing
    the file releases the other's locks (seen here as a SIGBUS on the ``-shm`` mapping).
    """
    datastore = HonkerDatastore(path)
    try:
        yield datastore
    finally:
        datastore.close()


def table(path: Path, name: str, order: str = "id") -> list[dict[str, Any]]:
    """Every row of a table, read through the reader pool."""
    with reader(path) as datastore:
        return datastore.query(f'SELECT * FROM "{name}" ORDER BY {order}')


def tables_match_aggregates(app: Metagraph, path: Path, graph_ids: list[UUID]) -> None:
    """Assert the six tables say exactly what the aggregates say."""
    # Graph types: the live ones (a deleted type leaves the table, its types with it).
    types = {str(i): app.get_graph_type(i) for i in app.graph_types().values()}
    rows = {row["id"]: row for row in table(path, "graph_types")}
    assert set(rows) == set(types)
    for type_id, info in types.items():
        row = rows[type_id]
        assert (row["name"], row["description"], row["scope"], row["version"]) == (
            info.name,
            info.description,
            info.scope,
            info.version,
        )
        assert json.loads(row["config"]) == {
            "graphType": info.config.graph_type,
            "multi": info.config.multi,
            "allowSelfLoops": info.config.allow_self_loops,
        }
    node_types = {(r["graph_type_id"], r["name"]): r for r in table(path, "node_types")}
    assert set(node_types) == {(t, n) for t, info in types.items() for n in info.node_types}
    for (type_id, name), row in node_types.items():
        spec = types[type_id].node_types[name]
        assert (row["description"], row["schema_version"]) == (
            spec.description,
            spec.schema_version,
        )
        assert json.loads(row["schema"]) == spec.schema
    edge_types = {(r["graph_type_id"], r["name"]): r for r in table(path, "edge_types")}
    assert set(edge_types) == {(t, n) for t, info in types.items() for n in info.edge_types}
    for (type_id, name), row in edge_types.items():
        edge_spec = types[type_id].edge_types[name]
        assert json.loads(row["schema"]) == edge_spec.schema
        assert row["schema_version"] == edge_spec.schema_version
        assert json.loads(row["allowed_source_types"]) == list(edge_spec.allowed_source_types)
        assert json.loads(row["allowed_target_types"]) == list(edge_spec.allowed_target_types)

    graphs = {row["id"]: row for row in table(path, "graphs")}
    assert set(graphs) == {str(g) for g in graph_ids}
    nodes = table(path, "nodes", "graph_id, key")
    edges = table(path, "edges")
    for graph_id in graph_ids:
        info = app.get_graph(graph_id)
        row = graphs[str(graph_id)]
        type_live = str(info.graph_type_id) in types
        assert row["graph_type_id"] == (str(info.graph_type_id) if type_live else None)
        assert (
            row["graph_type_name"],
            row["name"],
            row["description"],
            row["status"],
            row["owner_id"],
            row["project_id"],
        ) == (
            info.graph_type_name,
            info.name,
            info.description,
            info.status,
            info.owner_id,
            info.project_id,
        )
        projected_nodes = {n["key"]: n for n in nodes if n["graph_id"] == str(graph_id)}
        assert set(projected_nodes) == set(app.nodes(graph_id))
        for key, node_row in projected_nodes.items():
            node = app.get_node(graph_id, key)
            assert node_row["node_type"] == node.node_type
            assert json.loads(node_row["attributes"]) == node.attributes
            assert node_row["schema_version"] == node.schema_version
        projected_edges = {e["id"]: e for e in edges if e["graph_id"] == str(graph_id)}
        assert set(projected_edges) == set(app.edge_ids(graph_id))
        for edge_id, edge_row in projected_edges.items():
            edge = app.get_edge(graph_id, edge_id)
            assert (
                edge_row["key"],
                edge_row["edge_type"],
                edge_row["source_node_key"],
                edge_row["target_node_key"],
                bool(edge_row["undirected"]),
                edge_row["schema_version"],
            ) == (
                edge.key,
                edge.edge_type,
                edge.source,
                edge.target,
                edge.undirected,
                edge.schema_version,
            )
            assert json.loads(edge_row["attributes"]) == edge.attributes
    assert len(nodes) == sum(len(app.nodes(g)) for g in graph_ids)
    assert len(edges) == sum(len(app.edge_ids(g)) for g in graph_ids)


class FailingMetagraph(MetagraphProjection):
    """The metagraph projection, except that applying the events at ``fail_at`` raises
    (and those in ``database_trouble_at`` raise the file's kind of error)."""

    def __init__(self, fail_at: set[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_at: set[int] = set(fail_at or ())
        self.database_trouble_at: set[int] = set()

    def handler(self, topic: str) -> Handler[Any] | None:
        found = super().handler(topic)
        if found is None:
            return None
        inner = found

        def apply(tx: Transaction, data: Any, record: Record) -> None:
            inner.apply(tx, data, record)  # its statements run, then roll back with the batch
            if record.offset in self.database_trouble_at:
                raise OperationalError("database is locked (simulated)")
            if record.offset in self.fail_at:
                raise ValueError(f"poison event {record.offset}")

        return Handler(inner.decode, apply)


class ShadowMetagraph(MetagraphProjection):
    """The metagraph projection under another consumer name (``shadow@v1``), on tables
    prefixed ``shadow_``: a second, independent projector on the same file."""

    name = "shadow"

    def __init__(self) -> None:
        super().__init__(table_prefix="shadow_")
