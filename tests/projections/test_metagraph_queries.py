"""The queries over the metagraph tables, beside their projection
(``projections.metagraph_queries``): rows with their JSON decoded, pages by key, the
live version's tables after a rebuild's swap, and a typed refusal before any projector
built the tables. Also: a subscription opened with a projection class follows the live
version, as the HTTP feeds and ``Store.subscribe`` need."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from domain import Metagraph
from domain.errors import NotFoundError
from projections import MetagraphProjection, MetagraphTables, Projector, Subscription
from projections.errors import ViewNotBuiltError
from projections.rebuild import rebuild_next
from streams import TenantReader, _honker
from tests.projections.conftest import define_org, reader

OpenProjector = Callable[..., Projector]


def _team(app: Metagraph) -> str:
    define_org(app)
    graph = app.create_graph("org", "team", description="d", owner_id="ada", project_id="p1")
    app.add_node(graph, "ada", "person", {"name": "Ada", "age": 36})
    app.add_node(graph, "bob", "person", {"name": "Bob"})
    app.add_node(graph, "apollo", "project")
    app.add_edge(graph, "knows", "ada", "bob", {"since": 2020}, key="k1")
    app.add_edge(graph, "link", "ada", "apollo")
    return str(graph)


def test_rows_come_with_their_json_decoded_and_pages_follow_the_key(
    app: Metagraph, env: dict[str, str], open_projector: OpenProjector
) -> None:
    graph_id = _team(app)
    open_projector().catch_up()
    with MetagraphTables.open(env) as tables:
        graph = tables.graph(graph_id)
        assert graph is not None and graph["name"] == "team" and graph["metadata"] == {}
        assert [g["id"] for g in tables.graphs("org", filters={}, after=None, limit=5)] == [
            graph_id
        ]
        assert tables.graphs("org", filters={"project_id": "p2"}, after=None, limit=5) == []
        node = tables.node(graph_id, "ada")
        assert node is not None and node["attributes"] == {"name": "Ada", "age": 36}
        first = tables.nodes(graph_id, node_type="person", after=None, limit=1)
        rest = tables.nodes(graph_id, node_type="person", after=first[-1]["key"], limit=5)
        assert [n["key"] for n in first + rest] == ["ada", "bob"]
        edge = tables.edge(graph_id, edge_id=None, key="k1")
        assert edge is not None and edge["attributes"] == {"since": 2020}
        assert tables.edge(graph_id, edge_id=edge["id"], key=None) == edge
        knows = tables.edges(graph_id, filters={"edge_type": "knows"}, after=None, limit=5)
        assert [e["id"] for e in knows] == [edge["id"]]
        assert tables.graph("missing") is None and tables.node(graph_id, "zed") is None


def test_before_any_projector_a_query_is_refused_naming_what_to_run(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    graph_id = _team(app)
    with MetagraphTables.open(env) as tables, pytest.raises(ViewNotBuiltError) as refused:
        tables.nodes(graph_id, node_type=None, after=None, limit=5)
    error = refused.value
    assert isinstance(error, NotFoundError) and (error.kind, error.name) == ("view", "metagraph")
    assert error.consumer == "metagraph@v1" and "nodes" in error.tables
    assert "graphstore projector catch-up --tenant" in str(error)
    with reader(tenant_file) as datastore:  # nothing was written
        names = {r["name"] for r in datastore.query("SELECT name FROM sqlite_master")}
    assert "nodes" not in names


def test_queries_follow_a_rebuilds_swap_to_the_live_tables(
    app: Metagraph, env: dict[str, str], open_projector: OpenProjector
) -> None:
    graph_id = _team(app)
    open_projector().catch_up()
    with MetagraphTables.open(env) as tables:
        before = tables.nodes(graph_id, node_type=None, after=None, limit=10)
        rebuild_next(env, MetagraphProjection, drop_old=True)  # the v1 tables are gone
        assert tables.nodes(graph_id, node_type=None, after=None, limit=10) == before


def test_tables_on_a_borrowed_reader_leave_it_open(env: dict[str, str], tenant_file: Path) -> None:
    with TenantReader(env) as opened:
        MetagraphTables.on(opened).close()
        assert _honker.is_open(tenant_file)
    assert not _honker.is_open(tenant_file)


def test_a_subscription_opened_with_a_class_follows_the_live_version(
    app: Metagraph, env: dict[str, str], open_projector: OpenProjector
) -> None:
    _team(app)
    open_projector().catch_up()
    rebuild_next(env, MetagraphProjection)
    with Subscription.open(env, MetagraphProjection, from_start=True) as followed:
        assert followed.projector == "metagraph@v2"
    with Subscription.open(env, MetagraphProjection(), from_start=True) as pinned:
        assert pinned.projector == "metagraph@v1"
