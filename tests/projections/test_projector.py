"""The projector: batches, one transaction for rows and offset, error policies, status."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.cipher import AESCipher
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import OperationalError

from domain import Metagraph
from projections import (
    EventNotProjectableError,
    Handler,
    MetagraphProjection,
    Projector,
    UnknownEventError,
)
from streams import HonkerDatastore, stream_head, time_at
from tests.projections.conftest import (
    FailingMetagraph,
    ShadowMetagraph,
    define_org,
    head,
    store_env,
    table,
    tables_match_aggregates,
)

OpenProjector = Callable[..., Projector]


def _team(app: Metagraph, nodes: int = 3) -> UUID:
    define_org(app)
    graph = app.create_graph("org", "team", status="active", owner_id="ada")
    for i in range(nodes):
        app.add_node(graph, f"p{i}", "person", {"name": f"P{i}"})
    return graph


def _offsets(app: Metagraph) -> list[int]:
    return [n.id for n in app.recorder.select_notifications(start=0, limit=10_000)]


def _saved_offset(path: Path, consumer: str = "metagraph@v1") -> int | None:
    rows = [r for r in table(path, "_honker_stream_consumers", "name") if r["name"] == consumer]
    return rows[0]["offset"] if rows else None


def test_the_consumer_name_is_the_projection_name_at_its_version(
    app: Metagraph, open_projector: OpenProjector
) -> None:
    assert MetagraphProjection().consumer == "metagraph@v1"
    _team(app)
    projector = open_projector()
    projector.catch_up()
    assert projector.consumer == "metagraph@v1"
    assert projector.stream == "metagraph"


def test_catch_up_makes_the_tables_say_what_the_aggregates_say(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app)
    app.add_edge(graph, "knows", "p0", "p1", key="k")
    projector = open_projector()
    assert projector.catch_up() == head(app) == len(_offsets(app))
    assert projector.position == head(app)
    assert _saved_offset(tenant_file) == head(app)
    tables_match_aggregates(app, tenant_file, [graph])


def test_each_batch_commits_its_rows_and_its_offset_together(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    _team(app, nodes=6)
    offsets = _offsets(app)
    projector = open_projector(batch_size=4)
    for batch in range(1, len(offsets) // 4 + 1):
        assert projector.step() == 4
        last = offsets[4 * batch - 1]
        assert projector.position == last == _saved_offset(tenant_file)
        # The rows are those of the events up to that offset, no more.
        expected_nodes = sum(
            1
            for n in app.recorder.select_notifications(start=0, limit=4 * batch)
            if n.topic.endswith("Graph.NodeAdded")
        )
        assert len(table(tenant_file, "nodes")) == expected_nodes


def test_events_the_projection_ignores_still_advance_its_offset(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    class IgnoresAll(MetagraphProjection):
        name = "ignores-all"

        def handler(self, topic: str) -> Handler[Any] | None:
            return None

    _team(app)
    projector = open_projector(IgnoresAll(table_prefix="ignored_"), batch_size=4)
    assert projector.catch_up() == len(_offsets(app))
    assert projector.position == head(app) == _saved_offset(tenant_file, "ignores-all@v1")
    assert table(tenant_file, "ignored_nodes") == []
    # In a real history: the catalog's events are ignored by the metagraph projection.
    topics = [n.topic for n in app.recorder.select_notifications(start=0, limit=100)]
    assert "GraphTypeCatalog.NameClaimed" in topics
    metagraph = open_projector()
    assert metagraph.catch_up() == len(topics)
    assert metagraph.position == head(app)


def test_a_failing_batch_commits_nothing_and_the_projector_stops_with_the_error_and_offset(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app, nodes=5)
    offsets = _offsets(app)
    poison = offsets[9]  # p1's NodeAdded: the second batch is offsets[5:10]
    projector = open_projector(FailingMetagraph({poison}), batch_size=5)
    assert projector.step() == 5  # the first batch is clean
    saved = projector.position
    nodes_before = table(tenant_file, "nodes")
    assert projector.step() == 0
    status = projector.status()
    assert status.state == "failed"
    assert status.error == f"ValueError: poison event {poison}"
    assert status.error_offset == poison
    assert status.position == saved == _saved_offset(tenant_file)
    assert table(tenant_file, "nodes") == nodes_before  # nothing of the failing batch
    # Stopped: new events are not applied, but the lag shows them.
    app.add_node(graph, "late", "project")
    assert projector.catch_up() == 0
    assert projector.position == saved
    assert projector.status().lag_events == len(offsets) - 5 + 1
    assert projector.status().head == head(app)


def test_a_failed_projector_tries_again_when_resumed(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app)
    poison = _offsets(app)[-1]
    projection = FailingMetagraph({poison})
    projector = open_projector(projection)
    projector.catch_up()
    assert projector.status().state == "failed"
    projector.resume()
    assert projector.catch_up() == 0  # still poison: failed again, same place
    assert projector.status().error_offset == poison
    projection.fail_at.clear()  # the cause is fixed
    projector.resume()
    assert projector.catch_up() > 0
    assert projector.status().state == "running"
    tables_match_aggregates(app, tenant_file, [graph])


def test_a_failed_projector_reports_the_first_failing_event_of_the_batch(
    app: Metagraph, open_projector: OpenProjector
) -> None:
    _team(app, nodes=4)
    offsets = _offsets(app)
    projector = open_projector(FailingMetagraph({offsets[-1], offsets[-3]}))
    projector.catch_up()
    assert projector.status().error_offset == offsets[-3]


def test_skip_and_park_commits_the_events_around_a_poison_event_and_parks_it(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app, nodes=5)
    offsets = _offsets(app)
    poison = offsets[-3]  # adds p2
    before = time.time()
    projector = open_projector(FailingMetagraph({poison}), policy="skip-and-park")
    assert projector.catch_up() == len(offsets)
    assert projector.position == head(app) == _saved_offset(tenant_file)
    status = projector.status()
    assert (status.state, status.parked, status.error) == ("running", 1, None)
    assert {n["key"] for n in table(tenant_file, "nodes")} == {"p0", "p1", "p3", "p4"}
    [parked] = projector.parked()
    assert parked.offset == poison
    assert parked.type == "Graph.NodeAdded"
    assert parked.error == f"ValueError: poison event {poison}"
    assert parked.attempts == 1
    assert before * 1000 - 1 <= parked.parked_at <= time.time() * 1000 + 1
    assert '"key":"p2"' in parked.payload
    # The parked row is in the dead-letter table of the tenant file.
    rows = table(tenant_file, "projection_parked", '"offset"')
    assert [(r["consumer"], r["offset"]) for r in rows] == [("metagraph@v1", poison)]
    assert app.get_node(graph, "p2")  # the aggregate has it; the view does not, until replay


def test_events_that_depend_on_a_parked_event_are_parked_too(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app, nodes=2)
    added = head(app)  # p1's NodeAdded
    app.update_node(graph, "p1", {"age": 3})
    projector = open_projector(FailingMetagraph({added}), policy="skip-and-park")
    projector.catch_up()
    parked = projector.parked()
    assert [p.offset for p in parked] == [added, head(app)]
    assert parked[1].error.startswith("ViewDivergedError: node 'p1'")


def test_replaying_parked_events_applies_those_that_now_succeed(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app, nodes=2)
    added = head(app)
    app.update_node(graph, "p1", {"age": 3})
    updated = head(app)
    projection = FailingMetagraph({added})
    projector = open_projector(projection, policy="skip-and-park")
    projector.catch_up()
    # Still failing: both stay parked, with one more attempt each.
    result = projector.replay_parked()
    assert (result.replayed, result.still_parked) == ([], [added, updated])
    assert [p.attempts for p in projector.parked()] == [2, 2]
    # Fixed: replayed in stream order, the dead-letter table empties.
    projection.fail_at.clear()
    result = projector.replay_parked()
    assert (result.replayed, result.still_parked) == ([added, updated], [])
    assert projector.parked() == [] and projector.status().parked == 0
    assert projector.position == head(app)  # the offset did not move
    tables_match_aggregates(app, tenant_file, [graph])


def test_database_errors_are_raised_to_the_caller_and_neither_park_nor_stop(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app)
    trouble = _offsets(app)[-1]
    projection = FailingMetagraph()
    projection.database_trouble_at.add(trouble)
    projector = open_projector(projection, policy="skip-and-park")
    with pytest.raises(OperationalError, match="locked"):
        projector.catch_up()
    assert projector.status().state == "running"
    assert projector.parked() == [] and projector.position == 0
    projection.database_trouble_at.clear()
    projector.catch_up()
    tables_match_aggregates(app, tenant_file, [graph])


def test_two_projectors_of_one_consumer_never_apply_an_event_twice(
    app: Metagraph, tenant_file: Path, env: dict[str, str]
) -> None:
    graph = _team(app, nodes=20)
    # Two runners on one file (e.g. two processes): different batch sizes interleave.
    with (
        Projector.open(env, MetagraphProjection(), batch_size=3) as first,
        Projector.open(env, MetagraphProjection(), batch_size=7) as second,
    ):
        for _ in range(50):
            first.step()
            second.step()
        assert first.status().error is None and second.status().error is None
        assert first.position == second.position == head(app)
    tables_match_aggregates(app, tenant_file, [graph])


def test_a_malformed_stream_entry_follows_the_error_policy(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app)
    datastore: HonkerDatastore = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction() as tx:
        tx.execute(
            "INSERT INTO _honker_stream (topic, key, payload) VALUES ('metagraph', NULL, ?)",
            ['{"not": "an envelope"}'],
        )
    bad = head(app)
    app.add_node(graph, "after", "project")
    stopped = open_projector()
    stopped.catch_up()
    assert stopped.status().error_offset == bad
    assert "not a valid envelope" in (stopped.status().error or "")

    parking = open_projector(ShadowMetagraph(), policy="skip-and-park")
    parking.catch_up()
    assert [p.offset for p in parking.parked()] == [bad]
    assert parking.parked()[0].type == ""
    assert parking.position == head(app)


def test_status_reports_position_head_and_lag_in_events_and_seconds(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    graph = _team(app, nodes=1)
    projector = open_projector(batch_size=2)
    projector.catch_up()
    caught_up = projector.status()
    assert (caught_up.position, caught_up.head, caught_up.lag_events) == (head(app),) * 2 + (0,)
    assert caught_up.lag_seconds == 0.0 and caught_up.state == "running"
    assert caught_up.updated_at is not None and caught_up.checked_at is not None
    datastore = HonkerDatastore(tenant_file)
    try:
        position_time = time_at(datastore, "metagraph", caught_up.position)
        assert position_time is not None
        while time.time_ns() // 1_000_000 <= position_time:  # the next millisecond
            time.sleep(0.0005)
        for i in range(5):
            app.add_node(graph, f"n{i}", "project")
        head_time = stream_head(datastore, "metagraph").time
    finally:
        datastore.close()
    assert head_time is not None and head_time > position_time
    projector.refresh()
    behind = projector.status()
    assert (behind.position, behind.head, behind.lag_events) == (caught_up.position, head(app), 5)
    # The envelope times of the head and of the position, exactly: no timing window.
    assert behind.lag_seconds == (head_time - position_time) / 1000
    assert behind.state == "catching-up"  # at least a batch behind
    projector.step()
    assert projector.status().lag_events == 3
    projector.catch_up()
    assert projector.status().lag_events == 0 and projector.status().lag_seconds == 0.0


def test_lag_counts_only_the_events_of_the_followed_stream(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    _team(app, nodes=1)
    projector = open_projector()
    projector.catch_up()
    # Another application writes its own stream to the same file: gaps in our offsets.
    other = Application(env={**store_env(tenant_file), "HONKER_STREAM": "other"})
    try:
        other.save(*(Aggregate() for _ in range(4)))
    finally:
        other.close()
    graph = app.create_graph("org", "second")
    projector.refresh()
    status = projector.status()
    assert status.lag_events == 1
    assert status.head == head(app)
    assert projector.catch_up() == 1
    del graph


def test_encrypted_events_are_read_with_the_writers_cipher(tmp_path: Path) -> None:
    path = tmp_path / "tenant-secret.db"
    env = store_env(path, CIPHER_KEY=AESCipher.create_key(16))
    with Metagraph(env=env) as app:
        graph = _team(app)
        with Projector.open(env, MetagraphProjection()) as projector:
            assert projector.catch_up() == head(app)
        tables_match_aggregates(app, path, [graph])
        # Without the key, the first event that needs its data fails (policy: stop).
        with Projector.open(store_env(path), ShadowMetagraph()) as keyless:
            keyless.catch_up()
            assert "encrypted or compressed" in (keyless.status().error or "")


def test_unknown_events_of_followed_aggregates_are_errors_not_skipped(
    app: Metagraph, tenant_file: Path, open_projector: OpenProjector
) -> None:
    projection = MetagraphProjection()
    assert projection.handler("GraphTypeCatalog.NameClaimed") is None
    assert projection.handler("someone.else:Thing.Happened") is None
    with pytest.raises(UnknownEventError, match=r"Graph\.Renamed"):
        projection.handler("Graph.Renamed")


def test_an_event_of_a_newer_class_version_is_not_guessed(app: Metagraph) -> None:
    handler = MetagraphProjection().handler("Graph.NodeDeleted")
    assert handler is not None
    assert handler.decode(b'{"key": "a"}').key == "a"
    with pytest.raises(EventNotProjectableError, match="class_version 2"):
        handler.decode(b'{"key": "a", "class_version": 2}')


def test_the_error_policy_must_be_one_of_the_two(open_projector: OpenProjector) -> None:
    with pytest.raises(ValueError, match="stop, skip-and-park"):
        open_projector(policy="retry-forever")


@pytest.mark.multiprocess
def test_reads_and_opening_do_not_wait_for_the_write_lock_and_a_busy_file_commits_nothing(
    tenant_file: Path,
) -> None:
    env = store_env(tenant_file, HONKER_BUSY_TIMEOUT="200")
    with Metagraph(env=env) as app:
        graph = _team(app)
        with Projector.open(env, MetagraphProjection()) as projector:
            # Another process holds the write lock (stdlib sqlite3 there is safe: it is
            # not this process's SQLite library).
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_LOCK, str(tenant_file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                # The lock stays held until the `finally`: a read or an open that needed it
                # would fail with "database is locked" after the 200 ms busy timeout.
                projector.refresh()  # through the reader pool
                assert projector.status().lag_events == head(app)
                # Opening a projector whose tables exist takes no write lock either.
                with Projector.open(env, MetagraphProjection()) as second:
                    assert second.position == 0
                with pytest.raises(OperationalError, match="database is locked"):
                    projector.step()  # the batch's transaction cannot begin
                assert projector.position == 0 and projector.status().state != "failed"
            finally:
                assert holder.stdin is not None
                holder.stdin.close()
                holder.wait(10)
                assert holder.stdout is not None
                holder.stdout.close()
            # Released: the same batch goes through.
            assert projector.catch_up() == head(app)
            nodes = projector.datastore.query("SELECT key FROM nodes ORDER BY key")
            assert [n["key"] for n in nodes] == sorted(app.nodes(graph))


HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""
