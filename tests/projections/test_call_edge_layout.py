"""The call graph's ``triggered`` edges: ids that keep a call's edges together (layout 2).

A call edge's id (:func:`projections.metagraph.call_edge_id`) leads with a half derived
from its parent, so the edges from one call sort together in the ``edges`` primary key;
before, a uuid5 of the child put each at a random place, and retiring a run dirtied a
page of that index per edge (docs/benchmarks.md, "retention"). A file written before
has its rows rewritten in place the first time a projector opens it (in bounded steps,
then recorded in ``projection_layouts``), so its tables keep equalling a clean rebuild."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest

from domain import Metagraph
from domain.calls import ingest
from projections import MetagraphProjection, Projector
from projections import metagraph as metagraph_module
from projections.digest import check_projections
from projections.metagraph import call_edge_id
from projections.projector import LAYOUTS_TABLE
from tests.projections.conftest import reader, store_env, table
from tests.projections.test_flowgraph import requested, responded

FIXTURE: Final = Path(__file__).parents[1] / "fixtures" / "trees-v5"
"""Written before layout 2: five call edges with uuid5 ids, one ``knows`` edge."""


def old_file(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data / "tenant-acme.db"


def edges(path: Path) -> dict[str, dict[str, Any]]:
    """The edges by key (graph id and key: what identifies an edge whatever its id)."""
    return {f"{r['graph_id']}/{r['key']}": r for r in table(path, "edges")}


def layout_of(path: Path) -> list[dict[str, Any]]:
    with reader(path) as datastore:
        present = datastore.query(
            "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [LAYOUTS_TABLE]
        )
        return datastore.query(f"SELECT * FROM {LAYOUTS_TABLE}") if present else []


def test_an_older_file_has_its_call_edge_ids_rewritten_when_a_projector_opens(
    tmp_path: Path,
) -> None:
    path = old_file(tmp_path)
    before = edges(path)
    calls = {k: r for k, r in before.items() if r["edge_type"] == "triggered"}
    others = {k: r for k, r in before.items() if r["edge_type"] != "triggered"}
    assert len(calls) == 5 and others, before  # what the fixture holds
    assert all(UUID(r["id"]).version == 5 for r in calls.values())
    assert layout_of(path) == []

    with Projector.open(store_env(path), MetagraphProjection()):
        pass

    after = edges(path)
    assert after.keys() == before.keys()
    for key, row in calls.items():
        new = after[key]
        expected = call_edge_id(row["graph_id"], row["source_node_key"], row["target_node_key"])
        assert new["id"] == expected and UUID(new["id"]).version == 8
        assert {**new, "id": row["id"]} == row  # only the id changed
    assert {k: after[k] for k in others} == others  # a graph's own edges keep theirs
    assert layout_of(path) == [{"consumer": "metagraph@v1", "layout": 2}]

    with Projector.open(store_env(path), MetagraphProjection()):
        pass  # once only: nothing left to rewrite
    assert edges(path) == after


def test_an_older_file_equals_a_clean_rebuild_without_a_projector_opening_it_first(
    tmp_path: Path,
) -> None:
    """``graphstore verify`` on a file no projector opened since the upgrade: the copy's
    live tables are brought to the layout before they are compared."""
    path = old_file(tmp_path)
    checks = check_projections(store_env(path))
    assert [c.consumer for c in checks] == ["metagraph@v1", "flowgraph@v1"]
    assert all(c.error is None and not c.differing and c.rows for c in checks), checks


def test_an_upgrade_that_fails_half_way_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = old_file(tmp_path)
    before = edges(path)
    made: list[str] = []

    def failing(graph_id: str, parent: str, child: str) -> str:
        if made:
            raise ValueError("disk gone")
        made.append(child)
        return call_edge_id(graph_id, parent, child)

    monkeypatch.setattr(metagraph_module, "call_edge_id", failing)
    with pytest.raises(ValueError, match="disk gone"):
        Projector.open(store_env(path), MetagraphProjection())
    assert made  # one row was rewritten inside the transaction before it failed
    assert edges(path) == before
    assert layout_of(path) == []


def test_an_upgrade_stopped_between_steps_is_finished_by_the_next_projector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edges a step: the first step commits, the second fails; the file then holds
    edges of both layouts and no layout row, and the next projector finishes the job."""
    path = old_file(tmp_path)
    done = old_file(tmp_path / "whole")
    with Projector.open(store_env(done), MetagraphProjection()):
        pass  # the same file upgraded in one go: what the end must equal
    monkeypatch.setattr(metagraph_module, "_UPGRADE_PAGE", 2)
    steps: list[int] = []
    upgrade = MetagraphProjection.upgrade

    def stopping(self: MetagraphProjection, tx: Any, layout: int, after: int) -> int | None:
        steps.append(after)
        if len(steps) == 2:
            raise ValueError("killed between steps")
        return upgrade(self, tx, layout, after)

    monkeypatch.setattr(MetagraphProjection, "upgrade", stopping)
    with pytest.raises(ValueError, match="killed between steps"):
        Projector.open(store_env(path), MetagraphProjection())
    half = edges(path)
    versions = sorted(UUID(r["id"]).version for r in half.values() if r["edge_type"] == "triggered")
    assert versions == [5, 5, 5, 8, 8]  # the first step's two edges only
    assert layout_of(path) == []

    monkeypatch.setattr(MetagraphProjection, "upgrade", upgrade)
    with Projector.open(store_env(path), MetagraphProjection()):
        pass
    assert edges(path) == edges(done)
    assert layout_of(path) == [{"consumer": "metagraph@v1", "layout": 2}]
    assert len(steps) == 2


def run(app: Metagraph, root: str, children: int) -> None:
    kids = [f"{root}.{i}" for i in range(children)]
    ingest(
        app,
        [
            requested(root, 0),
            *(requested(k, 1, parent=root) for k in kids),
            *(responded(k, 2) for k in kids),
            responded(root, 3),
        ],
    )


def test_the_edges_from_one_call_sort_together(tmp_path: Path) -> None:
    env = store_env(tmp_path / "tenant.db")
    with Metagraph(env=env) as app:
        for i in range(30):
            run(app, f"run-{i}", 5)
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
    ordered = [r["source_node_key"] for r in table(tmp_path / "tenant.db", "edges", "id")]
    assert len(ordered) == 150
    runs = [key for i, key in enumerate(ordered) if i == 0 or ordered[i - 1] != key]
    assert len(runs) == len(set(runs)) == 30  # each parent's five edges are adjacent
    assert layout_of(tmp_path / "tenant.db") == [{"consumer": "metagraph@v1", "layout": 2}]


def test_a_graph_edge_of_an_older_version_keeps_its_id(tmp_path: Path) -> None:
    """A call graph written before call trees has ``triggered`` edges of its own events
    (their ids are the events'): an upgrade leaves them, as a rebuild would."""
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "legacy-v1", data)
    path = data / "tenant-acme.db"
    env = store_env(path)
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
    triggered = [k for k, r in edges(path).items() if r["edge_type"] == "triggered"]
    assert triggered, edges(path)
    # One of them with an id that looks like a layout-1 call edge's (a uuid5): it is
    # still not the one the call graph's rule gives, so the upgrade leaves it too.
    lookalike = str(uuid5(NAMESPACE_URL, "an edge id of the event's own"))
    graph_id, key = triggered[0].split("/", 1)
    with reader(path) as datastore, datastore.transaction() as tx:
        tx.execute(
            "UPDATE edges SET id = ? WHERE graph_id = ? AND key = ?", [lookalike, graph_id, key]
        )
        tx.execute(f"DELETE FROM {LAYOUTS_TABLE}")  # as if written at layout 1
    legacy = edges(path)
    assert legacy[triggered[0]]["id"] == lookalike
    with Projector.open(env, MetagraphProjection()):
        pass
    assert edges(path) == legacy
    assert layout_of(path) == [{"consumer": "metagraph@v1", "layout": 2}]
