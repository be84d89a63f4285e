"""Rebuilding a projection side by side (projections/rebuild.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
from eventsourcing.persistence import ProgrammingError

from domain import Metagraph
from graphstore.data import DataDirectory
from projections import (
    Flowgraph,
    FlowgraphProjection,
    MetagraphProjection,
    Projector,
    Replay,
    Runner,
)
from projections.metagraph import TABLES
from projections.rebuild import (
    VERSIONS_TABLE,
    live_prefix,
    live_projection,
    live_version,
    rebuild,
    rebuild_next,
    versioned,
)
from tests.projections.conftest import define_org, head, reader, table
from tests.projections.test_flowgraph import completed, feed, requested


class MetagraphV2(MetagraphProjection):
    version: ClassVar[int] = 2


class CrashingV2(MetagraphV2):
    """Version 2, except that the process "dies" (an exception) after ``crash_after``
    batches have been committed."""

    def __init__(self, crash_after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_after = crash_after


def populate(app: Metagraph, nodes: int = 30) -> None:
    graph_type = define_org(app)
    graph = app.create_graph(graph_type, "team", status="active")
    for i in range(nodes):
        app.add_node(graph, f"p{i}", "person", {"name": f"P{i}", "age": i})
    for i in range(1, nodes):
        app.add_edge(graph, "knows", f"p{i - 1}", f"p{i}")
    app.update_node(graph, "p3", {"name": "Three"})
    app.delete_node(graph, "p5")


def project_v1(env: dict[str, str]) -> None:
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()


def rows(path: Path, prefix: str) -> dict[str, list[dict[str, Any]]]:
    return {t: table(path, f"{prefix}{t}") for t in TABLES}


def test_rebuilt_tables_equal_the_old_ones_and_swap(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    populate(app)
    project_v1(env)
    progress: list[tuple[int, int]] = []
    result = rebuild(
        env,
        MetagraphV2(table_prefix="v2_"),
        batch_size=7,
        progress=lambda position, at: progress.append((position, at)),
    )
    assert result.version == 2 and result.position == head(app)
    assert result.previous.version is None and result.previous.table_prefix == ""
    assert rows(tenant_file, "v2_") == rows(tenant_file, "")
    assert len(progress) > 3 and progress[-1] == (head(app), head(app))
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    with reader(tenant_file) as datastore:
        assert live_prefix(datastore, "metagraph") == "v2_"
        assert live_version(datastore, "metagraph").version == 2
        assert live_prefix(datastore, "flowgraph") == ""


def test_old_version_serves_reads_during_the_rebuild_and_swap_waits_for_the_head(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    populate(app)
    project_v1(env)
    graph = next(iter(r["id"] for r in table(tenant_file, "graphs")))
    seen: list[str] = []
    late = iter(range(3))

    def progress(position: int, at: int) -> None:
        with reader(tenant_file) as datastore:  # a reader during the rebuild
            seen.append(live_prefix(datastore, "metagraph"))
            live = datastore.query('SELECT count(*) AS n FROM "nodes"')[0]["n"]
        assert live == 29

    def commit_meanwhile() -> None:
        # A writer commits after the rebuild reached the head, before the swap: the swap
        # must not happen until these are applied too.
        if next(late, None) is not None:
            app.add_node(UUID(graph), f"late-{len(seen)}", "project")

    result = rebuild(
        env,
        MetagraphV2(table_prefix="v2_"),
        batch_size=10,
        progress=progress,
        on_caught_up=commit_meanwhile,
    )
    assert set(seen[:-1]) == {""}  # the old version was live throughout
    assert seen[-1] == "v2_"  # the last report comes after the swap
    assert result.position == head(app)
    v2_nodes = table(tenant_file, "v2_nodes")
    assert len([n for n in v2_nodes if n["key"].startswith("late-")]) == 3
    project_v1(env)
    assert rows(tenant_file, "v2_") == rows(tenant_file, "")


def test_a_crash_mid_rebuild_leaves_the_old_version_live_and_a_rerun_resumes(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    populate(app)
    project_v1(env)
    batches = 0

    def crash(position: int, at: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise KeyboardInterrupt  # the process dies between two batches

    with pytest.raises(KeyboardInterrupt):
        rebuild(env, MetagraphV2(table_prefix="v2_"), batch_size=10, progress=crash)
    with reader(tenant_file) as datastore:
        assert live_version(datastore, "metagraph").version is None
        assert live_prefix(datastore, "metagraph") == ""
        versions = datastore.query(
            "SELECT count(*) AS n FROM sqlite_master WHERE name = ?", [VERSIONS_TABLE]
        )[0]["n"]
        saved = datastore.query(
            'SELECT "offset" FROM _honker_stream_consumers WHERE name = ?', ["metagraph@v2"]
        )
    assert versions == 0
    assert 0 < saved[0]["offset"] < head(app)
    result = rebuild(env, MetagraphV2(table_prefix="v2_"), batch_size=10)
    assert result.position == head(app)
    assert rows(tenant_file, "v2_") == rows(tenant_file, "")


def test_drop_old_and_refusals(app: Metagraph, env: dict[str, str], tenant_file: Path) -> None:
    populate(app, nodes=8)
    project_v1(env)
    with pytest.raises(ValueError, match="another table_prefix"):
        rebuild(env, MetagraphV2())
    result = rebuild(env, MetagraphV2(table_prefix="v2_"), drop_old=True)
    assert result.dropped == list(reversed(TABLES)) or set(result.dropped) == set(TABLES)
    with reader(tenant_file) as datastore:
        names = {
            r["name"] for r in datastore.query("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert not names & set(TABLES)
    assert {f"v2_{t}" for t in TABLES} <= names
    with pytest.raises(ValueError, match="bump the version"):
        rebuild(env, MetagraphV2(table_prefix="v3_"))


# --- readers and runners follow the swap ------------------------------------------------


def _calls(app: Metagraph, *keys: str, at: int = 0) -> None:
    """A run: ``keys[0]`` is the root, the others its children, all completed."""
    root, *children = keys
    events = [requested(root, at)]
    events += [requested(key, at + 1 + i, parent=root) for i, key in enumerate(children)]
    events += [completed(key, at + 100) for key in reversed(keys)]
    feed(app, *events)


def _project_flowgraph_v1(env: dict[str, str]) -> None:
    with Projector.open(env, FlowgraphProjection()) as projector:
        projector.catch_up()


def test_live_projection_is_the_base_until_a_swap_then_the_live_version(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    populate(app, nodes=8)
    project_v1(env)
    with reader(tenant_file) as datastore:
        base = live_projection(datastore, MetagraphProjection)
    assert type(base) is MetagraphProjection and base.consumer == "metagraph@v1"
    result = rebuild_next(env, MetagraphProjection)
    assert (result.version, result.table_prefix) == (2, "v2_")
    with reader(tenant_file) as datastore:
        live = live_projection(datastore, MetagraphProjection)
        again = live_projection(datastore, MetagraphProjection)
    assert live.consumer == "metagraph@v2" and isinstance(live, MetagraphProjection)
    assert type(live) is type(again) is versioned(MetagraphProjection, 2)  # one class
    assert live.tables["nodes"] == "v2_nodes"
    third = rebuild_next(env, MetagraphProjection, drop_old=True)
    assert (third.version, third.table_prefix, third.previous.version) == (3, "v3_", 2)
    assert set(third.dropped) == {f"v2_{t}" for t in TABLES}
    assert rows(tenant_file, "v3_") == rows(tenant_file, "")


def test_flowgraph_and_replay_read_the_live_version_after_a_swap(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    _calls(app, "r1", "c1", "c2")
    _project_flowgraph_v1(env)
    result = rebuild_next(env, FlowgraphProjection, drop_old=True)  # the old tables go
    assert result.version == 2 and "flow_calls" in result.dropped
    with reader(tenant_file) as datastore:
        names = {r["name"] for r in datastore.query("SELECT name FROM sqlite_master")}
    assert "flow_calls" not in names and "v2_flow_calls" in names
    with Flowgraph.open(env) as views:
        run = views.run("r1")
        assert run is not None and run.status == "completed"
        assert [c.request_id for c in views.call_tree("r1")] == ["r1", "c1", "c2"]
    with Replay.open(env) as replay:
        assert replay.projection.consumer == "flowgraph@v2"
        snapshot = replay.run_as_of("r1", head(app))
        assert snapshot is not None and len(snapshot.calls) == 3
        assert [e.offset for e in replay.history("r1")]
    with (
        Flowgraph.open(env, table_prefix="") as views,  # explicit options still win
        pytest.raises(ProgrammingError, match="no such table: flow_"),
    ):
        views.run("r1")


def test_the_runner_follows_the_swap_and_no_longer_advances_the_old_version(
    tmp_path: Path,
) -> None:
    with DataDirectory(tmp_path / "data") as data:
        tenant_env = data.tenant_env("acme")
        with Metagraph(env=tenant_env) as app:
            _calls(app, "r1", "c1")
            projections = [FlowgraphProjection()]
            with Runner(data, projections, tenants=lambda: ["acme"]) as runner:
                runner.wait_for("acme", head(app))
                old = {s.projector: s.position for s in runner.status()}
                assert list(old) == ["flowgraph@v1"]
                rebuild_next(tenant_env, FlowgraphProjection)
                _calls(app, "r2", "c3", at=1000)
                statuses = runner.wait_for("acme", head(app))
                assert [s.projector for s in statuses] == ["flowgraph@v2"]
            with reader(data.tenant_path("acme")) as datastore:
                saved = {
                    r["name"]: r["offset"]
                    for r in datastore.query('SELECT name, "offset" FROM _honker_stream_consumers')
                }
            assert saved["flowgraph@v2"] == head(app)
            assert saved["flowgraph@v1"] == old["flowgraph@v1"] < head(app)
            v2 = {r["id"] for r in table(data.tenant_path("acme"), "v2_flow_calls")}
            v1 = {r["id"] for r in table(data.tenant_path("acme"), "flow_calls")}
            assert v2 == {"r1", "c1", "r2", "c3"} and v1 == {"r1", "c1"}
            with Runner(data, projections, tenants=lambda: ["acme"]) as runner:
                statuses = runner.wait_for("acme", head(app))  # a new runner opens v2
                assert [s.projector for s in statuses] == ["flowgraph@v2"]
