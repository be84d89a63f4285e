"""The ``nodes`` table's layout (issue 16, item 8: ``retention_pass_flatness``).

A node's ``id`` (uuid5 of graph and key) has no index: nothing reads a node by it, and an
index on it puts each node's entry at a random place, so retiring a run dirtied a page of
it per call (docs/benchmarks.md, "retention"). A file written before keeps its tables
(they answer the same); a rebuild (``graphstore projector rebuild``, :func:`rebuild_next`)
gives it the new layout, with the same rows and the same answers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

from projections import MetagraphProjection, Projector
from projections.metagraph import TABLES
from projections.metagraph_queries import MetagraphTables
from projections.rebuild import live_version, rebuild_next
from tests.projections.conftest import reader, table
from tests.projections.rebuild_check import file_env

FIXTURE: Final = Path(__file__).parents[1] / "fixtures" / "trees-v4"
"""Written by main at 97fcea8, with ``nodes.id TEXT PRIMARY KEY``."""


def node_id_indexed(path: Path, nodes: str) -> bool:
    """Whether any index of table ``nodes`` covers its ``id`` column alone."""
    with reader(path) as datastore:
        indexes = datastore.query(f"PRAGMA index_list('{nodes}')")
        return any(
            [r["name"] for r in datastore.query(f"PRAGMA index_info('{ix['name']}')")] == ["id"]
            for ix in indexes
        )


def answers(env: dict[str, str]) -> list[Any]:
    """What the readers say of the call graph's nodes and edges, on the live tables."""
    with MetagraphTables.open(env) as views:
        graph = views.datastore.query('SELECT id FROM "graphs" ORDER BY id')
        said: list[Any] = []
        for row in graph:
            nodes = views.nodes(str(row["id"]), node_type=None, after=None, limit=1000)
            said.append(nodes)
            said.append([views.node(str(row["id"]), n["key"]) for n in nodes])
            said.append(views.edges(str(row["id"]), filters={}, after=None, limit=1000))
        return said


def test_an_older_file_keeps_its_nodes_table_and_a_rebuild_gives_the_new_layout(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    path = data / "tenant-acme.db"
    env = file_env(path)
    assert node_id_indexed(path, "nodes")  # the layout before: id PRIMARY KEY
    with Projector.open(env, MetagraphProjection()):
        pass  # its rows in today's layout (call edge ids: test_call_edge_layout.py)
    before = answers(env)
    assert before and any(before[0]), before  # the fixture has nodes to compare
    old_rows = {t: table(path, t) for t in TABLES}

    result = rebuild_next(env, MetagraphProjection)

    assert result.table_prefix == "v2_"
    with reader(path) as datastore:
        assert live_version(datastore, "metagraph").version == 2
    assert not node_id_indexed(path, "v2_nodes")
    assert {t: table(path, f"v2_{t}") for t in TABLES} == old_rows
    assert answers(env) == before


def test_a_new_file_has_no_index_on_node_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    path = data / "tenant-acme.db"
    with reader(path) as datastore, datastore.transaction() as tx:
        MetagraphProjection(table_prefix="fresh_").create_tables(tx)
    assert not node_id_indexed(path, "fresh_nodes")
    plan = _plan(path, 'SELECT * FROM "fresh_nodes" WHERE graph_id = ? AND key = ?')
    assert "USING INDEX sqlite_autoindex_fresh_nodes" in plan, plan  # (graph_id, key)


def _plan(path: Path, sql: str) -> str:
    with reader(path) as datastore:
        rows = datastore.query("EXPLAIN QUERY PLAN " + sql, ["g", "k"])
    return " | ".join(str(r["detail"]) for r in rows)
