"""The unit of work: many commands, queue jobs, notifications and stream entries, one
transaction (docs/domain.md, "Units of work")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import honker
import pytest

from domain import ConcurrencyError, DuplicateError, Metagraph, UnitOfWork, ValidationError
from domain.calls import ingest
from domain.errors import UnknownCallError
from streams import ConfigurationError
from tests.domain.conftest import define_org_type, stream_position
from tests.domain.test_calls import requested, responded


@contextmanager
def tenant_db(path: Path) -> Iterator[Any]:
    db = honker.open(str(path))
    try:
        yield db
    finally:
        db.close()


def side_effects(path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """(jobs, notifications, entries of named streams other than the events')."""
    with tenant_db(path) as db:
        jobs = [(r["queue"], r["payload"]) for r in db.query("SELECT * FROM _honker_live")]
        notes = [
            (r["channel"], r["payload"]) for r in db.query("SELECT * FROM _honker_notifications")
        ]
        entries = [
            (r["topic"], r["key"], r["payload"])
            for r in db.query("SELECT * FROM _honker_stream WHERE topic != 'metagraph'")
        ]
    return jobs, notes, entries


@pytest.fixture
def graph(app: Metagraph) -> Any:
    define_org_type(app)
    return app.create_graph("org", "team", status="active")


def test_commands_on_several_aggregates_commit_together_with_their_side_writes(
    app: Metagraph, graph: Any, tenant_file: Path
) -> None:
    before = stream_position(app) or 0
    with app.transaction() as unit:
        other = app.create_graph("org", "other", status="active")
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        app.add_node(other, "bob", "person", {"name": "Bob"})
        unit.enqueue("mail", {"to": "ada"})
        unit.notify("graphs", {"changed": 2})
        unit.publish("audit", {"what": "two nodes"}, key="k1")
        assert stream_position(app) == before  # nothing recorded before the block ends
    assert (stream_position(app) or 0) - before == 3
    assert app.nodes(graph) == {"ada": "person"} and app.nodes(other) == {"bob": "person"}
    jobs, notes, entries = side_effects(tenant_file)
    assert jobs == [("mail", '{"to":"ada"}')]
    assert ("graphs", '{"changed":2}') in notes
    assert entries == [("audit", "k1", '{"what":"two nodes"}')]


def test_a_block_that_raises_writes_nothing_no_event_no_job_no_notification_no_entry(
    app: Metagraph, graph: Any, tenant_file: Path
) -> None:
    before = stream_position(app)
    effects = side_effects(tenant_file)
    with pytest.raises(KeyError), app.transaction() as unit:
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        unit.enqueue("mail", {"to": "ada"})
        unit.notify("graphs", {})
        unit.publish("audit", {})
        raise KeyError("the caller changed its mind")
    assert stream_position(app) == before
    assert side_effects(tenant_file) == effects
    assert app.nodes(graph) == {}  # the cached graph forgot the node too
    app.add_node(graph, "ada", "person", {"name": "Ada"})  # and takes it again
    assert app.nodes(graph) == {"ada": "person"}


def test_a_refused_command_can_be_caught_and_the_rest_of_the_block_commits(
    app: Metagraph, graph: Any
) -> None:
    app.add_node(graph, "ada", "person", {"name": "Ada"})
    with app.transaction():
        with pytest.raises(DuplicateError):
            app.add_node(graph, "ada", "person", {"name": "Ada again"})
        app.add_node(graph, "bob", "person", {"name": "Bob"})
    assert sorted(app.nodes(graph)) == ["ada", "bob"]


def test_a_new_aggregate_is_usable_by_the_next_command_of_the_same_block(app: Metagraph) -> None:
    define_org_type(app)
    with app.transaction():
        graph = app.create_graph("org", "fresh", status="active")
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        app.add_node(graph, "bob", "person", {"name": "Bob"})
        app.add_edge(graph, "knows", "ada", "bob")
    assert app.get_graph(graph).node_count == 2


def test_a_block_inside_a_block_joins_it(app: Metagraph, graph: Any) -> None:
    before = stream_position(app)
    with pytest.raises(RuntimeError), app.transaction():
        with app.transaction() as inner:
            app.add_node(graph, "ada", "person", {"name": "Ada"})
            inner.enqueue("mail", {})
        assert stream_position(app) == before  # the inner block committed nothing
        raise RuntimeError("outer fails")
    assert stream_position(app) == before


def test_a_refused_batch_inside_a_block_rolls_the_whole_block_back(
    app: Metagraph, graph: Any
) -> None:
    """A batch joined to an outer block is not a savepoint: it may have applied some of
    its events before one was refused, so the outer block cannot commit."""
    before = stream_position(app)
    with pytest.raises(RuntimeError, match="rolled back"), app.transaction():
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        with pytest.raises(UnknownCallError):
            ingest(app, [requested("p"), responded("nope", 2)])
    assert stream_position(app) == before
    assert app.nodes(graph) == {}


def test_a_conflict_at_commit_raises_concurrency_error_and_writes_nothing(
    env: dict[str, str], tenant_file: Path
) -> None:
    with Metagraph(env=env) as first, Metagraph(env=env) as second:
        define_org_type(first)
        graph = first.create_graph("org", "team", status="active")
        second.get_graph(graph)  # cached by the second writer
        effects = side_effects(tenant_file)
        with (
            pytest.raises(ConcurrencyError, match="run the unit again"),
            second.transaction() as unit,
        ):
            second.add_node(graph, "bob", "person", {"name": "Bob"})
            unit.enqueue("mail", {"to": "bob"})
            first.add_node(graph, "ada", "person", {"name": "Ada"})  # wins meanwhile
        assert side_effects(tenant_file) == effects
        assert second.nodes(graph) == {"ada": "person"}


def test_atomic_runs_the_work_again_on_fresh_state_after_a_lost_race(env: dict[str, str]) -> None:
    with Metagraph(env=env) as first, Metagraph(env=env) as second:
        define_org_type(first)
        graph = first.create_graph("org", "team", status="active")
        second.get_graph(graph)
        attempts: list[int] = []

        def work(unit: UnitOfWork) -> int:
            attempts.append(len(second.nodes(graph)))
            second.add_node(graph, f"n{len(attempts)}", "person", {"name": "N"})
            if len(attempts) == 1:
                first.add_node(graph, "ada", "person", {"name": "Ada"})
            return len(attempts)

        assert second.atomic(work) == 2
        assert attempts == [0, 1]  # the second attempt saw the other writer's node
        assert sorted(second.nodes(graph)) == ["ada", "n2"]


def test_publishing_to_the_events_own_stream_is_refused_and_nothing_is_written(
    app: Metagraph, graph: Any, tenant_file: Path
) -> None:
    before = stream_position(app)
    with (
        pytest.raises(ConfigurationError, match="events' own stream"),
        app.transaction() as unit,
    ):
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        unit.publish("metagraph", {"forged": True})
    assert stream_position(app) == before
    assert app.nodes(graph) == {}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda u: u.enqueue("", {}), "queue name"),
        (lambda u: u.notify("c" * 200, {}), "channel name"),
        (lambda u: u.publish("audit", {"at": object()}), "must be JSON"),
        (lambda u: u.enqueue("q", {}, max_attempts=0), "max_attempts"),
    ],
)
def test_bad_side_writes_are_refused_when_given(
    app: Metagraph, graph: Any, call: Any, match: str
) -> None:
    before = stream_position(app)
    with pytest.raises(ValidationError, match=match), app.transaction() as unit:
        app.add_node(graph, "ada", "person", {"name": "Ada"})
        call(unit)
    assert stream_position(app) == before


def test_side_writes_need_a_recorder_that_can_commit_them(tmp_path: Path) -> None:
    with Metagraph(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}) as app:
        define_org_type(app)
        graph = app.create_graph("org", "team", status="active")
        with (
            pytest.raises(ValidationError, match="Honker persistence module"),
            app.transaction() as unit,
        ):
            app.add_node(graph, "ada", "person", {"name": "Ada"})
            unit.notify("graphs", {})
        assert app.nodes(graph) == {}


def test_a_peeked_aggregate_changed_by_another_writer_fails_the_commit_and_nothing_is_written(
    env: dict[str, str],
) -> None:
    with Metagraph(env=env) as first, Metagraph(env=env) as second:
        define_org_type(first)
        graph = first.create_graph("org", "team", status="active")
        other = first.create_graph("org", "other", status="active")
        second.get_graph(graph)  # cached by the second writer
        first.add_node(graph, "ada", "person", {"name": "Ada"})  # changes it meanwhile
        before = stream_position(second)
        with pytest.raises(ConcurrencyError), second.transaction() as unit:
            peeked = second.peek(unit, graph)
            assert peeked is not None and peeked.version == unit.expected[graph]
            second.add_node(other, "bob", "person", {"name": "Bob"})
        assert stream_position(second) == before
        assert second.nodes(other) == {}


def test_a_peeked_aggregate_unchanged_commits_and_a_unit_writing_nothing_checks_nothing(
    env: dict[str, str],
) -> None:
    with Metagraph(env=env) as first, Metagraph(env=env) as second:
        define_org_type(first)
        graph = first.create_graph("org", "team", status="active")
        other = first.create_graph("org", "other", status="active")
        second.get_graph(graph)
        with second.transaction() as unit:
            assert second.peek(unit, graph) is not None
            second.add_node(other, "bob", "person", {"name": "Bob"})
        assert second.nodes(other) == {"bob": "person"}
        first.add_node(graph, "ada", "person", {"name": "Ada"})
        with second.transaction() as unit:  # no write: nothing to check, nothing raised
            assert second.peek(unit, graph) is not None


def test_peek_gives_nothing_without_a_recorder_that_checks_it() -> None:
    with Metagraph(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}) as app:
        define_org_type(app)
        graph = app.create_graph("org", "team", status="active")
        app.get_graph(graph)
        with app.transaction() as unit:
            assert app.peek(unit, graph) is None
            assert unit.expected == {}
