"""Replay and time travel: a run's history, a run or a graph as of an offset, export."""

from __future__ import annotations

import io
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eventsourcing.cipher import AESCipher
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import Edge, Metagraph, Node
from domain.calls import ingest, ingest_jsonl, tenant_call_graph
from graphstore.samples import generate as sample
from projections import ProjectionError, Projector
from projections.flowgraph import Flowgraph, FlowgraphProjection
from projections.metagraph import call_edge_id
from projections.projector import Handler, Record, Transaction
from projections.replay import Replay, RunSnapshot
from tests.domain.calls_state import graph_calls, triggered_edges
from tests.projections.conftest import define_org, reader, store_env
from tests.projections.test_flowgraph import (
    OPERATION_TYPES,
    SUBSCRIPTION,
    T0,
    aborted,
    all_runs,
    call_attributes,
    caught_up,
    completed,
    failed,
    flowgraph_projector,
    head,
    live_view,
    random_history,
    requested,
    responded,
    without_times,
)

SAMPLE = Path(sample.__file__).with_name("workflows.jsonl")


@pytest.fixture
def projector(env: dict[str, str]) -> Iterator[Projector]:
    with flowgraph_projector(env) as opened:
        yield opened


@pytest.fixture
def replay(env: dict[str, str]) -> Iterator[Replay]:
    with Replay.open(env) as opened:
        yield opened


def feed(app: Metagraph, *events: dict[str, Any], **options: Any) -> None:
    ingest(app, list(events), operation_types=OPERATION_TYPES, **options)


def snapshots(views: Flowgraph, offset: int) -> dict[str, RunSnapshot]:
    """Every run of the live views (caught up to ``offset``), as a replay returns them."""
    return {
        run.run_id: RunSnapshot(offset=offset, run=run, calls=views.call_tree(run.run_id))
        for run in all_runs(views)
    }


def tables(path: Path) -> dict[str, list[dict[str, Any]]]:
    with reader(path) as datastore:
        return {
            name: datastore.query(f"SELECT * FROM {name} ORDER BY 1, 2")
            for name in ("flow_calls", "flow_runs", "flow_call_events", "flow_graph")
        }


# --- history --------------------------------------------------------------------------


def test_a_runs_history_is_every_event_that_touched_its_calls_in_stream_order(
    app: Metagraph, projector: Projector, replay: Replay
) -> None:
    feed(app, requested("other", 0))  # another run: not in this history
    feed(
        app,
        requested("r", 1),
        requested("c", 2, "r"),
        responded("c", 3),
        aborted("r", 4),
    )
    feed(app, requested("late", 5, "r"))  # requested under an aborted root: aborted at once
    caught_up(projector)
    history = replay.history("r")
    assert [(h.event, h.request_id, h.status) for h in history] == [
        ("CallAdded", "r", "pending"),
        ("CallAdded", "c", "pending"),
        ("CallUpdated", "c", "completed"),
        ("CallUpdated", "r", "aborted"),
        ("CallAdded", "late", "aborted"),
    ]
    offsets = [h.offset for h in history]
    assert offsets == sorted(offsets) and offsets[-1] <= head(app)
    assert all(h.time > T0 for h in history)  # when recorded, not when requested
    applied = [[(e.type, e.at, e.cause) for e in h.applied] for h in history]
    assert applied == [
        [("call.requested", T0 + 1, None)],
        [("call.requested", T0 + 2, None)],
        [("call.responded", T0 + 3, None)],
        [("call.aborted", T0 + 4, None)],
        [("call.requested", T0 + 5, None), ("call.aborted", T0 + 4, "r")],  # the abort's
    ]
    assert replay.history("c") == []  # not a run
    assert [h.offset for h in replay.history("r", upto=offsets[2])] == offsets[:3]


def test_a_runs_history_includes_calls_requested_before_their_parent(
    app: Metagraph, projector: Projector, replay: Replay
) -> None:
    feed(app, requested("c", 1, "r"), responded("c", 2))
    feed(app, requested("r", 0))
    caught_up(projector)
    assert [(h.request_id, h.event) for h in replay.history("r")] == [
        ("c", "CallAdded"),
        ("c", "CallUpdated"),
        ("r", "CallAdded"),
    ]


# --- a run as of an offset ------------------------------------------------------------


def test_a_run_as_of_an_offset_is_the_view_it_had_then_and_none_before_it_existed(
    app: Metagraph, projector: Projector, replay: Replay
) -> None:
    steps = [
        [requested("c", 2, "p"), requested("g", 3, "c")],  # a detached subtree
        [requested("r", 0), requested("p", 1, "r")],  # re-rooted under r
        [responded("g", 4), responded("c", 5)],
        [failed("p", 6), responded("r", 7)],
    ]
    seen: list[tuple[int, dict[str, RunSnapshot]]] = [(head(app), {})]
    for events in steps:
        feed(app, *events)
        seen.append((head(app), snapshots(caught_up(projector), head(app))))
    for offset, runs in seen:
        for run_id in ("r", "c", "p", "g"):
            assert replay.run_as_of(run_id, offset) == runs.get(run_id), (run_id, offset)
    assert set(seen[1][1]) == {"c"} and set(seen[2][1]) == {"r"}


def test_a_run_as_of_an_offset_does_not_touch_the_live_tables(
    app: Metagraph, tenant_file: Path, projector: Projector, replay: Replay
) -> None:
    feed(app, requested("r", 0), requested("c", 1, "r"), responded("c", 2))
    middle = head(app)
    feed(app, responded("r", 3))
    caught_up(projector)
    before, position = tables(tenant_file), projector.position
    past = replay.run_as_of("r", middle)
    assert past is not None and past.run.status == "running"
    replay.history("r")
    replay.export_run("r")
    assert tables(tenant_file) == before
    projector.refresh()
    assert projector.position == position


def test_a_run_as_of_reads_the_events_the_projection_has_not_applied_yet(
    app: Metagraph, projector: Projector, replay: Replay
) -> None:
    feed(app, requested("c", 2, "p"), requested("g", 3, "c"), responded("g", 4))
    feed(app, requested("u", 0), requested("q", 1, "u"))
    caught_up(projector)  # c's subtree is a detached run in the tables, u a run
    # Not projected: only c's parent arrives (and its parent), so the replay must find the
    # detached run waiting for it, which no event after the position names; and k, under
    # a call of u's run.
    feed(app, requested("r", 0), requested("p", 1, "r"), requested("k", 2, "q"))
    now = head(app)
    past = {run_id: replay.run_as_of(run_id, now) for run_id in ("r", "u", "c", "k")}
    assert projector.position < now
    live = snapshots(caught_up(projector), now)
    assert past == {"r": live["r"], "u": live["u"], "c": None, "k": None}


def test_a_run_as_of_without_any_flowgraph_tables_folds_the_stream(
    app: Metagraph, env: dict[str, str], replay: Replay
) -> None:
    feed(app, requested("c", 1, "r"), requested("r", 0), responded("c", 2))
    past = replay.run_as_of("r", head(app))  # no projector ever opened this file
    with flowgraph_projector(env) as projector:
        assert past == snapshots(caught_up(projector), head(app))["r"]


class PoisonedFlowgraph(FlowgraphProjection):
    """The flowgraph projection, except that the event at ``poison`` fails to apply."""

    def __init__(self, poison: int) -> None:
        super().__init__()
        self.poison = poison

    def handler(self, topic: str) -> Handler[Any] | None:
        found = super().handler(topic)
        if found is None:
            return None
        inner = found

        def apply(tx: Transaction, data: Any, record: Record) -> None:
            if record.offset == self.poison:
                raise ValueError("poisoned")
            inner.apply(tx, data, record)

        return Handler(inner.decode, apply)


def test_a_run_as_of_includes_events_the_projection_parked(
    app: Metagraph, env: dict[str, str], replay: Replay
) -> None:
    feed(app, requested("r", 0))
    feed(app, requested("c", 1, "r"))
    poison = head(app)  # c's CallAdded (its reference is an index row of it)
    with Projector.open(env, PoisonedFlowgraph(poison), policy="skip-and-park") as parking:
        parking.catch_up()
        assert [p.offset for p in parking.parked()] == [poison]
        live = Flowgraph(parking.datastore).call_tree("r")
    assert [c.request_id for c in live] == ["r"]  # the live view lost c
    past = replay.run_as_of("r", head(app))
    assert past is not None and [c.request_id for c in past.calls] == ["r", "c"]


def test_an_encrypted_tenant_is_replayed_with_the_writers_cipher(tmp_path: Path) -> None:
    path = tmp_path / "tenant-secret.db"
    env = store_env(path, CIPHER_KEY=AESCipher.create_key(16))
    with Metagraph(env=env) as app:
        feed(app, requested("r", 0), requested("c", 1, "r"), requested("g", 2, "p"))
        with flowgraph_projector(env) as projector, Replay.open(env) as replay:
            live = snapshots(caught_up(projector), head(app))["r"]
            assert replay.run_as_of("r", head(app)) == live
            assert len(replay.export_run("r").events) == 2
            # The parent of the detached g arrives after the position: the statement
            # cannot read the encrypted key, the replay decrypts it to find g's run.
            feed(app, requested("p", 3, "c"))
            past = replay.run_as_of("r", head(app))
            assert past is not None and len(past.calls) == 4
            assert past == snapshots(caught_up(projector), head(app))["r"]
        with (
            Replay.open(store_env(path)) as keyless,
            pytest.raises(ProjectionError, match="cipher"),
        ):
            keyless.run_as_of("r", head(app))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 10), chunks=st.integers(1, 5))
def test_any_run_as_of_any_offset_equals_the_live_view_at_that_offset(
    seed: int, calls: int, chunks: int
) -> None:
    rnd = random.Random(seed)
    delivery = random_history(rnd, calls)
    cuts = sorted(rnd.sample(range(1, len(delivery)), min(chunks, len(delivery)) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        env = store_env(Path(tmp) / "tenant-p.db")
        with (
            Metagraph(env=env) as app,
            flowgraph_projector(env) as projector,
            Replay.open(env) as replay,
        ):
            seen: list[tuple[int, dict[str, RunSnapshot]]] = []
            for start, end in zip([0, *cuts], [*cuts, len(delivery)], strict=True):
                feed(app, *delivery[start:end])
                seen.append((head(app), snapshots(caught_up(projector), head(app))))
            ever = {run_id for _, runs in seen for run_id in runs}
            for offset, runs in seen:
                for run_id in ever:
                    assert replay.run_as_of(run_id, offset) == runs.get(run_id)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    calls=st.integers(1, 10),
    batch_size=st.integers(1, 20),
    steps=st.integers(0, 6),
)
def test_a_run_as_of_the_head_is_the_same_wherever_the_projector_stopped(
    seed: int, calls: int, batch_size: int, steps: int
) -> None:
    delivery = random_history(random.Random(seed), calls)
    with tempfile.TemporaryDirectory() as tmp:
        env = store_env(Path(tmp) / "tenant-p.db")
        with (
            Metagraph(env=env) as app,
            flowgraph_projector(env, batch_size=batch_size) as projector,
            Replay.open(env) as replay,
        ):
            for start in range(0, len(delivery), 4):
                feed(app, *delivery[start : start + 4])
            for _ in range(steps):  # the projector applied some prefix of the stream
                projector.step()
            runs = set(call_attributes(app))  # every call: most are not runs
            past = {run_id: replay.run_as_of(run_id, head(app)) for run_id in runs}
            live = snapshots(caught_up(projector), head(app))
            assert past == {run_id: live.get(run_id) for run_id in runs}


# --- a graph as of an offset ----------------------------------------------------------


def graph_now(app: Metagraph, graph: Any) -> tuple[list[Any], list[Any]]:
    nodes = [app.get_node(graph, key) for key in sorted(app.nodes(graph))]
    edges = [app.get_edge(graph, edge_id) for edge_id in sorted(app.edge_ids(graph))]
    return nodes, edges


def call_graph_now(app: Metagraph, graph: Any) -> tuple[list[Any], list[Any]]:
    """The call graph as the projections show it: its calls (from the call trees) as
    nodes, a ``triggered`` edge from each call to each recorded child."""
    calls = graph_calls(app)
    nodes = [
        Node(key=k, node_type="call", attributes=calls[k], schema_version=1) for k in sorted(calls)
    ]
    edges = sorted(
        (
            Edge(
                id=call_edge_id(str(graph), parent, child),
                key=f"triggered:{child}",
                edge_type="triggered",
                source=parent,
                target=child,
                undirected=False,
                attributes={},
                schema_version=1,
            )
            for parent, child in triggered_edges(app)
        ),
        key=lambda e: e.id,
    )
    return nodes, edges


def test_a_graph_as_of_an_offset_has_the_nodes_and_edges_it_had_then(
    app: Metagraph, replay: Replay
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    created = head(app)
    steps: list[Callable[[], object]] = [
        lambda: app.add_node(graph, "ada", "person", {"name": "Ada"}),
        lambda: app.add_node(graph, "bob", "person", {"name": "Bob"}),
        lambda: app.add_edge(graph, "knows", "ada", "bob", {"since": 1}, key="k1"),
        lambda: app.update_node(graph, "ada", {"age": 36}),
        lambda: app.update_edge(graph, app.find_edge(graph, "k1").id, {"since": 2}),
        lambda: app.add_node(graph, "p", "project"),
        lambda: app.add_edge(graph, "link", "p", "ada"),
        lambda: app.delete_node(graph, "bob"),  # and its edge
        lambda: app.set_graph_status(graph, "archived"),
    ]
    seen = []
    for step in steps:
        step()
        seen.append((head(app), graph_now(app, graph), app.get_graph(graph).status))
    for offset, (nodes, edges), status in seen:
        snapshot = replay.graph_as_of(graph, offset)
        assert snapshot is not None
        assert (snapshot.nodes, snapshot.edges, snapshot.status) == (nodes, edges, status)
        assert (snapshot.name, snapshot.graph_type_name) == ("team", "org")
    empty = replay.graph_as_of(str(graph), created)
    assert empty is not None and (empty.nodes, empty.edges) == ([], [])
    assert replay.graph_as_of(graph, created - 1) is None  # before it was created
    graph_type = app.graph_types()["org"]
    assert replay.graph_as_of(graph_type, head(app)) is None  # a graph type, not a graph


def test_the_call_graph_as_of_an_offset_is_folded_like_any_graph(
    app: Metagraph, replay: Replay
) -> None:
    feed(app, requested("c", 1, "r"), requested("r", 0), responded("c", 2))
    graph = tenant_call_graph(app)
    snapshot = replay.graph_as_of(graph, head(app))
    assert snapshot is not None
    assert (snapshot.nodes, snapshot.edges) == call_graph_now(app, graph)
    assert [(e.source, e.target) for e in snapshot.edges] == [("r", "c")]


# --- export ---------------------------------------------------------------------------


def test_an_export_is_the_runs_protocol_events_in_the_order_they_were_applied(
    app: Metagraph, projector: Projector, replay: Replay
) -> None:
    given_events = [
        {**requested("w", 1, "r", SUBSCRIPTION, metadata={"m": 1}), "id": "e1"},
        {
            **requested("r", 0, identity={"id": "svc", "scopes": ["a"]}, deadline=T0 + 99),
            "id": "e2",
        },
        {**responded("w", 2, 1), "id": "e3"},
        {**responded("w", 3, 2), "id": "e4"},
        {**completed("w", 4), "id": "e5"},
        {**requested("q", 5, "r"), "id": "e6"},
        {**failed("q", 6, "TIMEOUT", "late"), "id": "e7"},
        {**requested("x", 7, "r"), "id": "e8"},
        {**aborted("r", 8), "id": "e9"},  # x is aborted by the cascade: not exported
    ]
    feed(app, *given_events)
    caught_up(projector)
    export = replay.export_run("r")
    lines = [msgspec.json.decode(line) for line in export.jsonl().splitlines()]
    assert lines == [{**e, "payload": e["payload"]} for e in given_events]
    assert export.operation_types == {"db.query": "query", SUBSCRIPTION: "subscription"}
    out = io.BytesIO()
    assert export.write(out) == 9 and out.getvalue() == export.jsonl()
    assert replay.export_run("w").events == []  # not a run


def copy_runs(source: Replay, run_ids: list[str], target: Metagraph, tmp: Path) -> None:
    """Export each run from ``source`` to a JSON Lines file and ingest it into ``target``."""
    for run_id in run_ids:
        export = source.export_run(run_id)
        path = tmp / f"{run_id}.jsonl"
        export.write(path)
        ingest_jsonl(target, path, operation_types=export.operation_types)


def test_the_bundled_sample_round_trips_through_export_into_an_empty_tenant(
    tmp_path: Path,
) -> None:
    envs = [store_env(tmp_path / f"tenant-{name}.db") for name in ("a", "b")]
    with Metagraph(env=envs[0]) as a, Metagraph(env=envs[1]) as b:
        ingest_jsonl(a, SAMPLE, operation_types=sample.OPERATION_TYPES)
        with flowgraph_projector(envs[0]) as pa, Replay.open(envs[0]) as replay:
            original = caught_up(pa)
            runs = [r.run_id for r in all_runs(original)]
            assert len(runs) == 40
            copy_runs(replay, runs, b, tmp_path)
            with flowgraph_projector(envs[1]) as pb:
                copied = caught_up(pb)
                for run_id in runs:
                    assert without_times(copied.run(run_id)) == without_times(  # type: ignore[arg-type]
                        original.run(run_id)  # type: ignore[arg-type]
                    )
                    assert [without_times(c) for c in copied.call_tree(run_id)] == [
                        without_times(c) for c in original.call_tree(run_id)
                    ]
        # The calls themselves are the same: the export loses nothing the protocol carries.
        assert call_attributes(b) == call_attributes(a)
        statuses = {r.status for r in all_runs(copied)}
        assert statuses == {"completed", "failed", "aborted"}


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 10))
def test_any_run_exported_and_ingested_into_an_empty_tenant_has_the_same_view(
    seed: int, calls: int
) -> None:
    rnd = random.Random(seed)
    delivery = random_history(rnd, calls)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        envs = [store_env(tmp / f"tenant-{name}.db") for name in ("a", "b")]
        with Metagraph(env=envs[0]) as a, Metagraph(env=envs[1]) as b:
            for start in range(0, len(delivery), 3):  # several batches
                feed(a, *delivery[start : start + 3])
            with flowgraph_projector(envs[0]) as pa, Replay.open(envs[0]) as replay:
                runs = [r.run_id for r in all_runs(caught_up(pa))]
                copy_runs(replay, runs, b, tmp)
                original = live_view(caught_up(pa))
            with flowgraph_projector(envs[1]) as pb:
                assert live_view(caught_up(pb)) == original
            assert call_attributes(b) == call_attributes(a)
