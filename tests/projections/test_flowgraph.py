"""The flowgraph views: runs and calls from the call graph, re-rooting, queries.

The helpers at the top are shared with test_replay.py. The expected view is computed
from the call graph's nodes as the domain reads them (``get_node``), without the
projection's fold: each call's run is the top of its chain of ``parentRequestId``
through recorded calls, and a run's figures follow the rules of docs/flowgraph.md.
Comparing the tables with it checks the fold, whatever order the events arrived in.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import Metagraph
from domain.calls import CALL_GRAPH, OperationType, ingest, tenant_call_graph
from graphstore.data import DataDirectory
from projections import MetagraphProjection, Projector, Runner, UnknownEventError
from projections.flowgraph import FlowCall, Flowgraph, FlowgraphProjection, FlowRun, RunPage
from tests.domain.calls_state import graph_calls
from tests.projections.conftest import define_org, reader, store_env

T0 = 1_700_000_000_000
SUBSCRIPTION = "feed.watch"
OPERATION_TYPES: dict[str, OperationType] = {SUBSCRIPTION: "subscription"}


def requested(
    key: str, at: int, parent: str | None = None, operation: str = "db.query", **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"requestId": key, "operationId": operation, "input": {"k": key}}
    if parent is not None:
        payload["parentRequestId"] = parent
    return {"type": "call.requested", "at": T0 + at, "payload": {**payload, **extra}}


def responded(key: str, at: int, n: int = 1) -> dict[str, Any]:
    output = {"data": {"n": n}, "meta": {"source": "local"}}
    return {
        "type": "call.responded",
        "at": T0 + at,
        "payload": {"requestId": key, "output": output},
    }


def completed(key: str, at: int) -> dict[str, Any]:
    return {"type": "call.completed", "at": T0 + at, "payload": {"requestId": key}}


def aborted(key: str, at: int) -> dict[str, Any]:
    return {"type": "call.aborted", "at": T0 + at, "payload": {"requestId": key}}


def failed(
    key: str, at: int, code: str = "EXECUTION_ERROR", message: str = "boom"
) -> dict[str, Any]:
    payload = {"requestId": key, "code": code, "message": message}
    return {"type": "call.error", "at": T0 + at, "payload": payload}


@contextmanager
def flowgraph_projector(env: dict[str, str], **options: Any) -> Iterator[Projector]:
    with Projector.open(env, FlowgraphProjection(), **options) as projector:
        yield projector


def caught_up(projector: Projector) -> Flowgraph:
    """Catch the projector up (it must not fail) and return the views of its file."""
    projector.catch_up()
    assert projector.active, projector.status()
    return Flowgraph(projector.datastore)


def head(app: Metagraph) -> int:
    return app.recorder.max_notification_id() or 0


def call_attributes(app: Metagraph) -> dict[str, dict[str, Any]]:
    """Every call of the tenant's call graph, by requestId, as the domain records it."""
    return graph_calls(app)


def expected_view(calls: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(calls by id, runs by id) as the views must show them, as plain tuples."""

    def chain(key: str) -> list[str]:
        path = [key]
        while (parent := calls[path[-1]].get("parentRequestId")) in calls:
            path.append(parent)
        return path

    call_rows: dict[str, Any] = {}
    members: dict[str, list[str]] = {}
    for key, a in calls.items():
        path = chain(key)
        run, depth = path[-1], len(path) - 1
        members.setdefault(run, []).append(key)
        ends = a["status"] in ("completed", "failed", "aborted")
        error = a.get("error") or {}
        call_rows[key] = (
            run,
            a.get("parentRequestId"),
            depth,
            a["operationId"],
            a.get("operationType"),
            a["status"],
            a["requestedAt"],
            a.get("startedAt"),
            a["completedAt"] if ends else None,
            a["completedAt"] - a["requestedAt"] if ends else None,
            error.get("code"),
            error.get("message"),
        )
    run_rows: dict[str, Any] = {}
    for run, keys in members.items():
        statuses = [calls[k]["status"] for k in keys]
        active = sum(s in ("pending", "running") for s in statuses)
        started = min(calls[k]["requestedAt"] for k in keys)
        ended = [calls[k]["completedAt"] for k in keys if "completedAt" in calls[k]]
        last = max(ended) if ended else None
        run_rows[run] = (
            calls[run]["operationId"],
            calls[run].get("parentRequestId"),
            "running" if active else calls[run]["status"],
            started,
            None if active else last,
            None if active or last is None else last - started,
            len(keys),
            *(statuses.count(s) for s in ("pending", "running", "completed", "failed", "aborted")),
        )
    return call_rows, run_rows


def call_tuple(c: FlowCall) -> tuple[Any, ...]:
    return (
        c.run_id,
        c.parent,
        c.depth,
        c.operation,
        c.operation_type,
        c.status,
        c.requested_at,
        c.started_at,
        c.completed_at,
        c.duration_ms,
        c.error_code,
        c.error_message,
    )


def run_tuple(r: FlowRun) -> tuple[Any, ...]:
    return (
        r.root_operation,
        r.root_parent,
        r.status,
        r.started_at,
        r.completed_at,
        r.duration_ms,
        r.calls,
        r.pending_calls,
        r.running_calls,
        r.completed_calls,
        r.failed_calls,
        r.aborted_calls,
    )


def all_runs(views: Flowgraph) -> list[FlowRun]:
    return views.runs(detached=True, limit=100_000).runs


def live_view(views: Flowgraph) -> tuple[dict[str, Any], dict[str, Any]]:
    """(calls by id, runs by id) of the live tables, as plain tuples."""
    runs = all_runs(views)
    calls = {c.request_id: call_tuple(c) for r in runs for c in views.call_tree(r.run_id)}
    return calls, {r.run_id: run_tuple(r) for r in runs}


def assert_view_matches_graph(app: Metagraph, views: Flowgraph) -> None:
    expected_calls, expected_runs = expected_view(call_attributes(app))
    calls, runs = live_view(views)
    assert runs == expected_runs
    assert calls == expected_calls


def without_times(value: msgspec.Struct) -> dict[str, Any]:
    """A view Struct as a dict, without when its row was recorded (differs per tenant)."""
    fields = msgspec.structs.asdict(value)
    fields.pop("created_at", None)
    fields.pop("updated_at", None)
    return fields


# --- random runs (hypothesis draws the seed and sizes) ---------------------------------

OUTCOMES = ("completed", "failed", "aborted", "pending", "running")


def random_history(rnd: random.Random, calls: int, *, prefix: str = "") -> list[dict[str, Any]]:
    """A delivery of call events: a forest of ``calls`` calls with random outcomes, each
    call's own events in protocol order, the calls interleaved at random (so children
    are often requested before their parents)."""
    keys = [f"{prefix}c{i}" for i in range(calls)]
    sequences: list[list[dict[str, Any]]] = []
    for i, key in enumerate(keys):
        parent = None if i == 0 or rnd.random() < 0.15 else keys[rnd.randrange(i)]
        subscription = rnd.random() < 0.25
        operation = SUBSCRIPTION if subscription else rnd.choice(["db.query", "mail.send"])
        at = rnd.randrange(0, 50)
        own = [requested(key, at, parent, operation)]
        outcome = rnd.choice(OUTCOMES)
        if subscription and outcome != "pending":
            for n in range(rnd.randrange(1, 4)):
                at += rnd.randrange(0, 20)
                own.append(responded(key, at, n))
        at += rnd.randrange(0, 30)
        if outcome == "completed":
            own.append(completed(key, at) if subscription else responded(key, at))
        elif outcome == "failed":
            own.append(failed(key, at, rnd.choice(["TIMEOUT", "ACCESS_DENIED"]), f"{key} failed"))
        elif outcome == "aborted":
            own.append(aborted(key, at))
        elif outcome == "running" and not subscription:
            own.append(responded(key, at))  # a query completes at its response
        sequences.append(own)
    delivery: list[dict[str, Any]] = []
    while sequences:
        sequence = rnd.choice(sequences)
        delivery.append(sequence.pop(0))
        if not sequence:
            sequences.remove(sequence)
    return delivery


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def projector(env: dict[str, str]) -> Iterator[Projector]:
    with flowgraph_projector(env) as opened:
        yield opened


def feed(app: Metagraph, *events: dict[str, Any], **options: Any) -> None:
    ingest(app, list(events), operation_types=OPERATION_TYPES, **options)


def tree(views: Flowgraph, run_id: str) -> list[tuple[str, int, str]]:
    return [(c.request_id, c.depth, c.run_id) for c in views.call_tree(run_id)]


def hand(app: Metagraph, graph: UUID, key: str, at: int, parent: str | None, **extra: Any) -> None:
    """A call written by hand as a node of the call graph (as an older version did)."""
    if parent is not None:
        extra["parentRequestId"] = parent
    app.add_node(graph, key, "call", by_hand(key, at=at, **extra))


def by_hand(request_id: str, *, at: int | None = None, **extra: Any) -> dict[str, Any]:
    """The attributes of a call written with add_node (not through ingestion)."""
    attributes: dict[str, Any] = {
        "requestId": request_id,
        "operationId": "by.hand",
        "status": "pending",
        "input": {},
        **extra,
    }
    if at is not None:
        attributes["requestedAt"] = T0 + at
    return attributes


# --- tables ---------------------------------------------------------------------------


def test_the_views_have_the_common_columns_and_their_indexes(
    tenant_file: Path, projector: Projector
) -> None:
    with reader(tenant_file) as datastore:

        def indexes(name: str) -> set[tuple[str, ...]]:
            return {
                tuple(r["name"] for r in datastore.query(f"PRAGMA index_info('{ix['name']}')"))
                for ix in datastore.query(f"PRAGMA index_list({name})")
            }

        for name in ("flow_calls", "flow_runs"):
            columns = {r["name"]: r for r in datastore.query(f"PRAGMA table_info({name})")}
            assert {"id", "metadata", "created_at", "updated_at"} <= set(columns)
            assert columns["id"]["pk"] == 1 and columns["metadata"]["dflt_value"] == "'{}'"
        assert {("run_id", "requested_at"), ("parent",), ("status", "requested_at")} <= indexes(
            "flow_calls"
        )
        assert {("started_at", "id"), ("status", "started_at", "id")} <= indexes("flow_runs")
        assert ("call_id", "offset") in indexes("flow_call_events")  # the replay index


def test_an_unknown_event_of_the_graph_aggregate_is_an_error_and_edge_events_are_ignored() -> None:
    projection = FlowgraphProjection()
    assert projection.consumer == "flowgraph@v1"
    with pytest.raises(UnknownEventError, match="upgrade the projection"):
        projection.handler("Graph.NodesMerged")
    with pytest.raises(UnknownEventError, match="upgrade the projection"):
        projection.handler("CallTree.CallsMerged")
    for name in ("EdgeAdded", "EdgeUpdated", "EdgeDeleted", "StatusChanged"):
        assert projection.handler(f"Graph.{name}") is None
    for name in ("CallTree.Started", "CallTree.ChildLinked", "CallRef.Filed", "CallIndex.Started"):
        assert projection.handler(name) is None
    assert projection.handler("GraphType.Defined") is None


# --- runs and calls -------------------------------------------------------------------


def test_a_run_is_the_tree_of_calls_under_a_root_each_with_its_depth_in_tree_order(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("r", 0, operation="flows.run"),
        requested("b", 2, "r"),
        requested("a", 1, "r"),
        requested("b1", 4, "b"),
        requested("a1", 3, "a"),
    )
    views = caught_up(projector)
    # Depth first; siblings by request time, not by arrival.
    assert tree(views, "r") == [
        ("r", 0, "r"),
        ("a", 1, "r"),
        ("a1", 2, "r"),
        ("b", 1, "r"),
        ("b1", 2, "r"),
    ]
    run = views.run("r")
    assert run is not None
    assert (run.root_operation, run.root_parent, run.calls, run.pending_calls) == (
        "flows.run",
        None,
        5,
        5,
    )
    assert [r.run_id for r in views.runs().runs] == ["r"]


def test_a_run_is_running_while_any_call_is_pending_or_running_then_takes_the_roots_outcome(
    app: Metagraph, projector: Projector
) -> None:
    feed(app, requested("r", 0), requested("w", 1, "r", SUBSCRIPTION), responded("w", 2))
    run = caught_up(projector).run("r")
    assert run is not None and (run.status, run.pending_calls, run.running_calls) == (
        "running",
        1,
        1,
    )
    feed(app, responded("r", 5))  # the root completed, its subscription still runs
    run = caught_up(projector).run("r")
    assert run is not None
    assert (run.status, run.completed_at, run.duration_ms) == ("running", None, None)
    assert (run.completed_calls, run.running_calls, run.last_completed_at) == (1, 1, T0 + 5)
    feed(app, completed("w", 9))
    run = caught_up(projector).run("r")
    assert run is not None
    assert (run.status, run.completed_at, run.duration_ms) == ("completed", T0 + 9, 9)


def test_a_failed_root_fails_the_run_and_its_call_shows_the_error(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("r", 0),
        requested("c", 1, "r"),
        responded("c", 4),
        failed("r", 6, "TIMEOUT", "deadline passed"),
    )
    views = caught_up(projector)
    run, root = views.run("r"), views.call("r")
    assert run is not None and root is not None
    assert (run.status, run.failed_calls, run.completed_calls) == ("failed", 1, 1)
    assert (root.status, root.error_code, root.error_message) == (
        "failed",
        "TIMEOUT",
        "deadline passed",
    )
    assert (root.started_at, root.completed_at, root.duration_ms) == (None, T0 + 6, 6)


def test_a_failed_child_under_a_completed_root_leaves_the_run_completed(
    app: Metagraph, projector: Projector
) -> None:
    feed(app, requested("r", 0), requested("c", 1, "r"), failed("c", 2), responded("r", 3))
    run = caught_up(projector).run("r")
    assert run is not None and (run.status, run.failed_calls) == ("completed", 1)


def test_aborting_the_root_aborts_the_run_and_its_unfinished_calls(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("r", 0),
        requested("a", 1, "r"),
        requested("b", 2, "r"),
        responded("a", 3),
        aborted("r", 10),
    )
    views = caught_up(projector)
    run, b = views.run("r"), views.call("b")
    assert run is not None and b is not None
    assert (run.status, run.aborted_calls, run.completed_calls) == ("aborted", 2, 1)
    assert (run.completed_at, run.duration_ms) == (T0 + 10, 10)
    assert (b.status, b.completed_at, b.duration_ms) == ("aborted", T0 + 10, 8)


def test_a_calls_times_come_from_its_attributes_and_its_duration_is_completion_minus_request(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("w", 0, operation=SUBSCRIPTION, metadata={"team": "ops"}),
        responded("w", 5),
        responded("w", 7, 2),
    )
    w = caught_up(projector).call("w")
    assert w is not None
    assert (w.status, w.operation_type, w.metadata) == ("running", "subscription", {"team": "ops"})
    assert (w.requested_at, w.started_at, w.completed_at, w.duration_ms) == (T0, T0 + 5, None, None)
    feed(app, completed("w", 12))
    w = caught_up(projector).call("w")
    assert w is not None and (w.completed_at, w.duration_ms) == (T0 + 12, 12)


def test_a_run_starts_at_its_earliest_request_and_ends_at_its_latest_completion(
    app: Metagraph, projector: Projector
) -> None:
    # The child was requested (t=0) before its parent (t=5) and ended last.
    feed(
        app,
        requested("c", 0, "r"),
        requested("r", 5),
        responded("r", 8),
        responded("c", 20),
    )
    run = caught_up(projector).run("r")
    assert run is not None
    assert (run.started_at, run.completed_at, run.duration_ms) == (T0, T0 + 20, 20)


def test_a_call_written_by_hand_without_times_is_dated_by_when_it_was_recorded(
    app: Metagraph, projector: Projector
) -> None:
    graph = tenant_call_graph(app)
    before = int(time.time() * 1000)
    app.add_node(graph, "h", "call", by_hand("h", status="completed"))
    after = int(time.time() * 1000)
    call = caught_up(projector).call("h")
    assert call is not None and call.completed_at == call.requested_at
    assert before - 1 <= call.requested_at <= after + 1
    assert call.duration_ms == 0


# --- children before parents ----------------------------------------------------------


def test_a_child_requested_before_its_parent_is_a_detached_run_until_the_parent_arrives_then_its_subtree_is_re_rooted(  # noqa: E501
    app: Metagraph, projector: Projector
) -> None:
    feed(app, requested("g", 3, "c"), requested("c", 2, "p"), responded("g", 4))
    views = caught_up(projector)
    detached = views.run("c")
    assert detached is not None
    assert (detached.root_parent, detached.calls, detached.completed_calls) == ("p", 2, 1)
    assert tree(views, "c") == [("c", 0, "c"), ("g", 1, "c")]
    assert views.runs().runs == []  # detached runs are not workflow runs...
    assert [r.run_id for r in views.runs(detached=True).runs] == ["c"]  # ...unless asked

    feed(app, requested("root", 0), requested("p", 1, "root"))  # the parent, under a root
    views = caught_up(projector)
    assert views.run("c") is None and views.run("p") is None
    assert tree(views, "root") == [
        ("root", 0, "root"),
        ("p", 1, "root"),
        ("c", 2, "root"),
        ("g", 3, "root"),
    ]
    run = views.run("root")
    assert run is not None
    assert (run.calls, run.pending_calls, run.completed_calls, run.root_parent) == (4, 3, 1, None)
    assert [r.run_id for r in views.runs(detached=True).runs] == ["root"]


def test_a_late_parent_adopts_every_waiting_child_in_one_event(
    app: Metagraph, projector: Projector
) -> None:
    feed(app, requested("a", 1, "p"), requested("b", 2, "p"), requested("b1", 3, "b"))
    assert len(all_runs(caught_up(projector))) == 2
    feed(app, requested("p", 0))
    views = caught_up(projector)
    assert tree(views, "p") == [("p", 0, "p"), ("a", 1, "p"), ("b", 1, "p"), ("b1", 2, "p")]
    assert [r.run_id for r in all_runs(views)] == ["p"]


def test_children_first_and_parents_first_give_the_same_views(tmp_path: Path) -> None:
    parents_first = [
        requested("r", 0),
        requested("a", 1, "r"),
        requested("a1", 2, "a"),
        requested("b", 3, "r"),
        responded("a1", 4),
        failed("b", 5),
        responded("a", 6),
        responded("r", 7),
    ]
    requests, outcomes = parents_first[:4], parents_first[4:]
    views = []
    for name, delivery in (("p", parents_first), ("c", requests[::-1] + outcomes)):
        env = store_env(tmp_path / f"tenant-{name}.db")
        with Metagraph(env=env) as app, flowgraph_projector(env) as projector:
            feed(app, *delivery)
            flowgraph = caught_up(projector)
            views.append(
                (
                    [without_times(r) for r in all_runs(flowgraph)],
                    [without_times(c) for c in flowgraph.call_tree("r")],
                )
            )
    assert views[0] == views[1]
    assert len(views[0][1]) == 4


# --- only the tenant's call graph -----------------------------------------------------


def test_events_of_other_graphs_are_ignored_and_still_advance_the_offset(
    app: Metagraph, projector: Projector
) -> None:
    define_org(app)
    decoy = app.create_graph("org", "calls", status="active")  # named calls, another type
    app.add_node(decoy, "x", "project", {"requestId": "x"})
    feed(app, requested("r", 0))  # creates the tenant's call graph
    second = app.create_graph(CALL_GRAPH, "calls", status="active")  # not the first
    app.add_node(second, "y", "call", by_hand("y", at=0))
    views = caught_up(projector)
    assert projector.position == head(app)
    assert [r.run_id for r in all_runs(views)] == ["r"]
    assert views.call("x") is None and views.call("y") is None


# --- queries --------------------------------------------------------------------------


def test_a_calls_children_and_ancestors_are_read_nearest_first(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("r", 0),
        requested("a", 1, "r"),
        requested("b", 2, "r"),
        requested("a2", 4, "a"),
        requested("a1", 3, "a"),
        requested("x", 5, "a1"),
    )
    views = caught_up(projector)
    assert [c.request_id for c in views.children("a")] == ["a1", "a2"]
    assert [c.request_id for c in views.children("r")] == ["a", "b"]
    assert views.children("b") == []
    assert [c.request_id for c in views.ancestors("x")] == ["a1", "a", "r"]
    assert views.ancestors("r") == [] and views.ancestors("nope") == []
    assert views.call("nope") is None and views.run("a") is None and views.call_tree("a") == []


def test_runs_are_listed_by_status_and_start_time_one_page_at_a_time(
    app: Metagraph, projector: Projector
) -> None:
    feed(
        app,
        requested("r1", 0),
        responded("r1", 1),
        requested("r2", 10),
        failed("r2", 11),
        requested("r3", 20),
        requested("d", 25, "missing"),
        requested("r4", 30),
        responded("r4", 31),
        requested("r5", 40),
        aborted("r5", 41),
    )
    views = caught_up(projector)

    def ids(page: RunPage) -> list[str]:
        return [r.run_id for r in page.runs]

    first = views.runs(limit=2)
    assert ids(first) == ["r5", "r4"] and first.next is not None
    second = views.runs(limit=2, after=first.next)
    assert ids(second) == ["r3", "r2"] and second.next is not None
    last = views.runs(limit=2, after=second.next)
    assert ids(last) == ["r1"] and last.next is None
    oldest = views.runs(limit=3, newest_first=False)
    assert ids(oldest) == ["r1", "r2", "r3"] and oldest.next is not None
    assert ids(views.runs(newest_first=False, after=oldest.next)) == ["r4", "r5"]
    assert ids(views.runs(status="completed")) == ["r4", "r1"]
    assert ids(views.runs(status=["failed", "aborted"])) == ["r5", "r2"]
    assert ids(views.runs(status="running")) == ["r3"]
    assert ids(views.runs(since=T0 + 10, until=T0 + 30)) == ["r3", "r2"]
    assert ids(views.runs(since=T0 + 10, until=T0 + 30, detached=True)) == ["d", "r3", "r2"]
    with pytest.raises(ValueError, match="unknown run status"):
        views.runs(status="pending")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        views.runs(limit=0)


# --- changes made by hand -------------------------------------------------------------


def test_a_call_deleted_by_hand_leaves_its_children_as_detached_runs(
    app: Metagraph, projector: Projector
) -> None:
    graph = tenant_call_graph(app)  # calls written by hand as nodes: deleted by hand
    for key, at, parent in (("r", 0, None), ("a", 1, "r"), ("a1", 2, "a"), ("a2", 3, "a1")):
        hand(app, graph, key, at, parent)
    hand(app, graph, "b", 4, "r")
    app.delete_node(graph, "a")
    views = caught_up(projector)
    assert views.call("a") is None
    assert tree(views, "r") == [("r", 0, "r"), ("b", 1, "r")]
    assert tree(views, "a1") == [("a1", 0, "a1"), ("a2", 1, "a1")]
    orphan = views.run("a1")
    assert orphan is not None and (orphan.root_parent, orphan.calls) == ("a", 2)
    run = views.run("r")
    assert run is not None and run.calls == 2
    app.delete_node(graph, "r")  # a root: its run goes, its child stays as a detached run
    views = caught_up(projector)
    assert views.run("r") is None
    assert sorted(r.run_id for r in all_runs(views)) == ["a1", "b"]


def test_a_parent_changed_by_hand_moves_the_subtree_to_the_new_parents_run(
    app: Metagraph, projector: Projector
) -> None:
    graph = tenant_call_graph(app)  # calls written by hand as nodes: changed by hand
    for key, at, parent in (("r", 0, None), ("s", 0, None), ("t", 0, None), ("a", 1, "r")):
        hand(app, graph, key, at, parent)
    hand(app, graph, "a1", 2, "a", status="completed", completedAt=T0 + 3)
    attributes = app.get_node(graph, "a").attributes
    app.update_node(graph, "a", {**attributes, "parentRequestId": "s"}, mode="replace")
    views = caught_up(projector)
    assert tree(views, "s") == [("s", 0, "s"), ("a", 1, "s"), ("a1", 2, "s")]
    r, s = views.run("r"), views.run("s")
    assert r is not None and s is not None
    assert (r.calls, s.calls, s.completed_calls) == (1, 3, 1)
    # A root given a parent by hand joins the parent's run.
    root = app.get_node(graph, "s").attributes
    app.update_node(graph, "s", {**root, "parentRequestId": "t"}, mode="replace")
    views = caught_up(projector)
    assert tree(views, "t") == [("t", 0, "t"), ("s", 1, "t"), ("a", 2, "t"), ("a1", 3, "t")]
    assert views.run("s") is None


def test_times_changed_by_hand_move_the_runs_start_and_end_both_ways(
    app: Metagraph, projector: Projector
) -> None:
    graph = tenant_call_graph(app)  # calls written by hand as nodes: changed by hand
    hand(app, graph, "r", 10, None, status="completed", completedAt=T0 + 40)
    hand(app, graph, "c", 20, "r", status="completed", completedAt=T0 + 30)

    def change(key: str, **times: int) -> tuple[int, int | None]:
        attributes = app.get_node(graph, key).attributes
        app.update_node(graph, key, {**attributes, **times}, mode="replace")
        run = caught_up(projector).run("r")
        assert run is not None
        return run.started_at, run.completed_at

    assert change("c", requestedAt=T0 + 5) == (T0 + 5, T0 + 40)  # earlier than the root
    assert change("c", requestedAt=T0 + 25) == (T0 + 10, T0 + 40)  # back: the root's again
    assert change("r", completedAt=T0 + 50) == (T0 + 10, T0 + 50)
    assert change("r", completedAt=T0 + 35) == (T0 + 10, T0 + 35)  # earlier end: recounted
    assert change("r", completedAt=T0 + 28) == (T0 + 10, T0 + 30)  # the child ends last now


def test_calls_written_by_hand_naming_each_other_as_parents_stay_one_detached_run(
    app: Metagraph, projector: Projector
) -> None:
    graph = tenant_call_graph(app)
    app.add_node(graph, "x", "call", by_hand("x", at=0, parentRequestId="y"))
    app.add_node(graph, "y", "call", by_hand("y", at=1, parentRequestId="x"))
    views = caught_up(projector)
    assert tree(views, "y") == [("y", 0, "y"), ("x", 1, "y")]
    run = views.run("y")
    assert run is not None and (run.root_parent, run.calls) == ("x", 2)
    assert [c.request_id for c in views.ancestors("x")] == ["y"]


def test_a_change_to_a_call_missing_from_the_view_stops_the_projector_as_diverged(
    app: Metagraph, tenant_file: Path, projector: Projector
) -> None:
    feed(app, requested("r", 0))
    caught_up(projector)
    with reader(tenant_file) as datastore, datastore.transaction() as tx:
        tx.execute("DELETE FROM flow_calls WHERE id = 'r'")
    feed(app, responded("r", 1))
    projector.catch_up()
    status = projector.status()
    assert status.state == "failed" and "ViewDivergedError" in (status.error or "")


# --- the property ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    calls=st.integers(1, 12),
    chunks=st.integers(1, 6),
    batch_size=st.integers(1, 30),
)
def test_after_any_delivery_in_any_batches_the_views_say_what_the_call_graph_says(
    seed: int, calls: int, chunks: int, batch_size: int
) -> None:
    rnd = random.Random(seed)
    delivery = random_history(rnd, calls)
    cuts = sorted(rnd.sample(range(1, len(delivery)), min(chunks, len(delivery)) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        env = store_env(Path(tmp) / "tenant-p.db")
        with Metagraph(env=env) as app, flowgraph_projector(env, batch_size=batch_size) as p:
            for start, end in zip([0, *cuts], [*cuts, len(delivery)], strict=True):
                policy = rnd.choice(["abort-dependents", "continue-running"])
                feed(app, *delivery[start:end], abort_policy=policy)
                p.step()  # one batch: batches end anywhere
                assert p.active, p.status()
            assert_view_matches_graph(app, caught_up(p))


# --- beside other projections ---------------------------------------------------------


class ShadowFlowgraph(FlowgraphProjection):
    """The flowgraph under another consumer (``shadowflow@v1``), on tables ``v2_...``."""

    name = "shadowflow"

    def __init__(self) -> None:
        super().__init__(table_prefix="v2_")


def test_a_prefixed_projection_keeps_its_own_tables_beside_the_live_ones(
    app: Metagraph, env: dict[str, str], tenant_file: Path, projector: Projector
) -> None:
    feed(app, requested("r", 0), requested("c", 1, "r"), responded("c", 2))
    with Projector.open(env, ShadowFlowgraph()) as shadow:
        shadow.catch_up()
        live = caught_up(projector)
        rebuilt = Flowgraph(shadow.datastore, table_prefix="v2_")
        assert live_view(rebuilt) == live_view(live)
    with reader(tenant_file) as datastore:
        assert datastore.query("SELECT count(*) AS n FROM v2_flow_calls")[0]["n"] == 2


def test_the_runner_keeps_the_flowgraph_views_of_every_tenant(tmp_path: Path) -> None:
    with DataDirectory(tmp_path / "data") as data:
        with Metagraph(env=data.tenant_env("acme")) as app:
            feed(app, requested("r", 0), requested("c", 1, "r"), responded("c", 2))
            last = head(app)
        projections = [MetagraphProjection(), FlowgraphProjection()]
        with Runner(data, projections, tenants=lambda: ["acme"]) as runner:
            statuses = runner.wait_for("acme", last)
            assert sorted(s.projector for s in statuses) == ["flowgraph@v1", "metagraph@v1"]
            with (
                Metagraph(env=data.tenant_env("acme")) as app,
                reader(data.tenant_path("acme")) as datastore,
            ):
                assert_view_matches_graph(app, Flowgraph(datastore))
