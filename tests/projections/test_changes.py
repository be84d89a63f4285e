"""Subscriptions to projection changes: order, positions, filters, durable resume, the
delivery guarantee, async iteration and a subscriber in another process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from domain import Metagraph
from domain.calls import ingest, tenant_call_graph
from projections import MetagraphProjection, Projector
from projections.changes import Change, Subscription
from projections.flowgraph import FlowgraphProjection
from tests.projections.conftest import define_org, head
from tests.projections.test_flowgraph import OPERATION_TYPES, completed, failed, requested

ROOT = Path(__file__).resolve().parents[2]


def nodes_written(app: Metagraph, graph: Any, keys: list[str]) -> list[int]:
    """Add one node per key; the offsets of their NodeAdded events."""
    offsets = []
    for key in keys:
        app.add_node(graph, key, "project")
        offsets.append(head(app))
    return offsets


def test_changes_arrive_in_order_with_positions_once_the_projector_committed(
    app: Metagraph, env: dict[str, str]
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        with Subscription.open(env, MetagraphProjection(), name="audit") as sub:
            offsets = nodes_written(app, graph, ["a", "b", "c"])
            assert sub.poll() == []  # written, not projected: not a change yet
            projector.catch_up()
            changes = sub.poll()
    assert [c.position for c in changes] == offsets
    assert [(c.event, c.node_key, c.graph_id) for c in changes] == [
        ("NodeAdded", key, str(graph)) for key in "abc"
    ]
    assert all(c.projector == "metagraph@v1" and c.time > 0 for c in changes)


def test_from_start_delivers_the_whole_history_and_a_graph_filter_only_its_events(
    app: Metagraph, env: dict[str, str]
) -> None:
    define_org(app)
    one = app.create_graph("org", "one", status="active")
    two = app.create_graph("org", "two", status="active")
    app.add_node(one, "x", "project")
    app.add_node(two, "y", "project")
    app.add_node(one, "x2", "project")
    edge = app.add_edge(one, "link", "x", "x2")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
    with Subscription.open(env, MetagraphProjection(), from_start=True) as everything:
        all_changes = everything.poll()
    # Every event the metagraph projection applies: types, graphs, nodes, edges.
    assert [c.position for c in all_changes] == sorted(c.position for c in all_changes)
    projection = MetagraphProjection()
    stream = app.recorder.select_notifications(start=1, limit=1000)
    assert [c.position for c in all_changes] == [
        n.id for n in stream if projection.handler(n.topic) is not None
    ]
    assert all_changes[-1].position == head(app)
    with Subscription.open(env, MetagraphProjection(), graph=str(one), from_start=True) as sub:
        mine = sub.poll()
    assert {c.graph_id for c in mine} == {str(one)}
    assert [c.event for c in mine] == ["Created", "NodeAdded", "NodeAdded", "EdgeAdded"]
    assert mine[-1].edge_id == str(edge)
    assert [c.position for c in mine] == [c.position for c in all_changes if c.subject == str(one)]


def test_a_named_subscription_resumes_after_its_saved_position_with_no_gap(
    app: Metagraph, env: dict[str, str]
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    received: list[int] = []
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        with Subscription.open(env, MetagraphProjection(), name="mailer") as sub:
            first = nodes_written(app, graph, [f"n{i}" for i in range(5)])
            projector.catch_up()
            for _ in range(3):
                change = sub.next(timeout=60)
                assert change is not None
                received.append(change.position)
        # Offline: more is written and projected while nobody listens.
        later = nodes_written(app, graph, [f"m{i}" for i in range(4)])
        projector.catch_up()
        with Subscription.open(env, MetagraphProjection(), name="mailer") as sub:
            while (change := sub.next(timeout=0.5)) is not None:
                received.append(change.position)
        with Subscription.open(env, MetagraphProjection(), name="other") as fresh:
            assert fresh.poll() == []  # a new name starts at the projector's offset
    expected = first + later
    # The third change was handed out and not acknowledged when the first session
    # closed: at least once means it comes again, and nothing is missing.
    assert received[:3] == expected[:3]
    assert received[3:] == expected[2:]


def test_acknowledged_changes_are_not_delivered_again(app: Metagraph, env: dict[str, str]) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        with Subscription.open(env, MetagraphProjection(), name="ack") as sub:
            offsets = nodes_written(app, graph, ["a", "b", "c"])
            projector.catch_up()
            got = [sub.next(timeout=60) for _ in range(2)]
            assert got[1] is not None
            sub.commit(got[1].position)  # handled both
        with Subscription.open(env, MetagraphProjection(), name="ack") as sub:
            assert sub.saved_position == offsets[1]
            rest = sub.poll()
    assert [c.position for c in rest] == offsets[2:]


CRASHING = textwrap.dedent(
    """
    import os, signal, sys
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from projections import MetagraphProjection
    from projections.changes import Subscription
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": sys.argv[1]}
    sub = Subscription.open(env, MetagraphProjection(), name="crashy", commit_every=2)
    for i, change in enumerate(sub):
        print(change.position, flush=True)
        if i == 2:  # handed out the third change, then killed: nothing more is saved
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_consumer_resumes_from_its_last_saved_position(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        with Subscription.open(env, MetagraphProjection(), name="crashy"):
            pass  # subscribed: the position is saved here
        offsets = nodes_written(app, graph, ["a", "b", "c", "d", "e"])
        projector.catch_up()
    child = subprocess.run(
        [sys.executable, "-c", CRASHING, str(tenant_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    assert [int(line) for line in child.stdout.split()] == offsets[:3]
    with Subscription.open(env, MetagraphProjection(), name="crashy") as again:
        # Two acknowledged and saved (commit_every=2); the third was handed out only.
        assert again.saved_position == offsets[1]
        assert [c.position for c in again.poll()] == offsets[2:]


def test_commit_in_the_same_file_gives_exactly_once_effects(
    app: Metagraph, env: dict[str, str]
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        sub = Subscription.open(env, MetagraphProjection(), name="counter", auto_commit=False)
        with sub.datastore.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY, key TEXT)")
        nodes_written(app, graph, ["a", "b"])
        projector.catch_up()

        def handle(change: Change) -> None:
            with sub.datastore.transaction() as tx:
                tx.execute("INSERT INTO seen VALUES (?, ?)", [change.position, change.node_key])
                sub.commit_in(tx, change.position)

        changes = sub.poll()
        for change in changes:
            handle(change)
        with pytest.raises(IntegrityError):  # delivered again (at least once): refused
            handle(changes[0])
        rows = sub.datastore.query("SELECT key FROM seen ORDER BY position")
        sub.close()
    assert [row["key"] for row in rows] == ["a", "b"]


def flow_events() -> list[dict[str, Any]]:
    return [
        requested("r1", 0),
        requested("c1", 1, parent="r1"),
        requested("o1", 2),
        completed("c1", 3),
        failed("o1", 4),
        completed("r1", 5),
    ]


def test_a_run_subscription_gets_its_calls_changes_with_their_new_status(
    app: Metagraph, env: dict[str, str]
) -> None:
    tenant_call_graph(app)
    with Projector.open(env, FlowgraphProjection()) as projector:
        projector.catch_up()
        with (
            Subscription.open(env, FlowgraphProjection(), run="r1") as run,
            Subscription.open(env, FlowgraphProjection()) as every,
        ):
            ingest(app, flow_events(), operation_types=OPERATION_TYPES)
            assert run.poll() == []
            projector.catch_up()
            mine, all_calls = run.poll(), every.poll()
    assert [(c.call_id, c.status) for c in mine] == [
        ("r1", "pending"),
        ("c1", "pending"),
        ("c1", "completed"),
        ("r1", "completed"),
    ]
    assert {c.run_id for c in mine} == {"r1"}
    assert [(c.call_id, c.status) for c in all_calls if c.call_id == "o1"] == [
        ("o1", "pending"),
        ("o1", "failed"),
    ]
    assert {c.event for c in all_calls} <= {"CallAdded", "CallUpdated"}  # no tree links
    assert [c.position for c in all_calls] == sorted(c.position for c in all_calls)


def test_the_async_iterator_is_woken_by_a_commit(app: Metagraph, env: dict[str, str]) -> None:
    # Its poll comes after an hour: only the commit's wake can deliver within the minute
    # the test waits (a deadline that only a missing wake reaches).
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    projector = Projector.open(env, MetagraphProjection())
    projector.catch_up()

    opened: list[Subscription] = []

    def write_later() -> None:  # once the subscriber found nothing and waits
        deadline = time.monotonic() + 60
        while not (opened and opened[0].waits >= 1):
            if time.monotonic() > deadline:
                return  # never parked: write nothing, the consumer's deadline fails
            time.sleep(0.005)
        nodes_written(app, graph, ["late1", "late2"])
        projector.catch_up()

    async def consume() -> list[Change]:
        got: list[Change] = []
        with Subscription.open(env, MetagraphProjection(), poll_interval=3600) as sub:
            opened.append(sub)
            async for change in sub:
                got.append(change)
                if len(got) == 2:
                    break
        return got

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        got = asyncio.run(asyncio.wait_for(consume(), 60))
    finally:
        writer.join()
        projector.close()
    assert [c.node_key for c in got] == ["late1", "late2"]  # both, in commit order
    assert opened[0].waits >= 1  # written once it waited: only a wake delivered them


SUBSCRIBER = textwrap.dedent(
    """
    import json, sys
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from projections import MetagraphProjection
    from projections.changes import Subscription
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": sys.argv[1]}
    with Subscription.open(env, MetagraphProjection(), name="remote") as sub:
        print("ready", flush=True)
        for i, change in enumerate(sub):
            print(json.dumps([change.position, change.node_key]), flush=True)
            if i + 1 == int(sys.argv[2]):
                break
    """
)


def test_a_subscriber_in_another_process_receives_commits_in_order(
    app: Metagraph, env: dict[str, str], tenant_file: Path
) -> None:
    define_org(app)
    graph = app.create_graph("org", "team", status="active")
    with Projector.open(env, MetagraphProjection()) as projector:
        projector.catch_up()
        child = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(tenant_file), "6"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            offsets = []
            for batch in (["a", "b"], ["c"], ["d", "e", "f"]):
                offsets += nodes_written(app, graph, batch)
                projector.catch_up()
            out, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [[o, k] for o, k in zip(offsets, "abcdef", strict=True)]
    assert child.returncode == 0
