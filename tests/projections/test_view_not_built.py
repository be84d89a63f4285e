"""Reading the flowgraph views before any projector has built them: a typed refusal that
names the view, the tenant file and what to run, and writes nothing; replay still works."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import ProgrammingError

from domain import Metagraph
from domain.calls import ingest
from domain.errors import NotFoundError
from projections import ProjectionError
from projections.errors import ViewNotBuiltError
from projections.flowgraph import TABLES, Flowgraph
from projections.replay import Replay
from tests.projections.conftest import reader
from tests.projections.test_flowgraph import (
    OPERATION_TYPES,
    caught_up,
    flowgraph_projector,
    head,
    requested,
    responded,
)

QUERIES: dict[str, Callable[[Flowgraph], Any]] = {
    "runs": lambda views: views.runs(),
    "runs by status": lambda views: views.runs(status="completed", detached=True),
    "run": lambda views: views.run("r"),
    "call": lambda views: views.call("c"),
    "call_tree": lambda views: views.call_tree("r"),
    "children": lambda views: views.children("r"),
    "ancestors": lambda views: views.ancestors("c"),
}


@pytest.fixture
def fed(app: Metagraph) -> Metagraph:
    """A tenant with a run ``r`` (root) and its call ``c``; no projector has run."""
    events = [requested("r", 0), requested("c", 1, "r"), responded("c", 2), responded("r", 3)]
    ingest(app, events, operation_types=OPERATION_TYPES)
    return app


@pytest.fixture
def views(env: dict[str, str]) -> Iterator[Flowgraph]:
    with Flowgraph.open(env) as opened:
        yield opened


def file_state(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a write would change: the file's schema and the Honker stream consumers."""
    with reader(path) as datastore:
        schema = datastore.query("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        consumers = datastore.query("SELECT * FROM _honker_stream_consumers ORDER BY 1")
    return schema, consumers


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_a_query_before_the_views_are_built_says_what_is_missing_and_what_to_run(
    fed: Metagraph, views: Flowgraph, tenant_file: Path, query: Callable[[Flowgraph], Any]
) -> None:
    before = file_state(tenant_file)
    with pytest.raises(ViewNotBuiltError) as info:
        query(views)
    error = info.value
    message = str(error)
    assert "flowgraph views" in message and "flowgraph@v1" in message
    assert "tenant 'acme'" in message and str(tenant_file) in message
    assert "flow_runs" in message and "flow_calls" in message
    assert "`graphstore projector catch-up --tenant acme`" in message
    assert "`graphstore projector run`" in message
    assert "Runner(data_dir)" in message and ".catch_up()" in message
    assert (error.view, error.tenant, error.path) == ("flowgraph", "acme", tenant_file)
    assert error.tables == list(TABLES)
    assert isinstance(error.__cause__, ProgrammingError)  # "no such table", kept as the cause
    assert file_state(tenant_file) == before  # nothing created, no consumer registered
    assert not any(row["name"].startswith("flow_") for row in before[0])


def test_the_refusal_is_a_projection_error_and_a_not_found_error(
    fed: Metagraph, views: Flowgraph
) -> None:
    with pytest.raises(ProjectionError) as info:
        views.run("r")
    assert isinstance(info.value, NotFoundError)  # the CLI's exit code 3, with the message
    assert (info.value.kind, info.value.name) == ("view", "flowgraph")


def test_replay_reads_the_stream_while_the_views_are_missing_and_agrees_once_built(
    fed: Metagraph, env: dict[str, str], views: Flowgraph
) -> None:
    with Replay.open(env) as replay:
        past = replay.run_as_of("r", head(fed))
        history = replay.history("r")
        exported = replay.export_run("r")
    assert past is not None and past.run.status == "completed"
    assert [call.request_id for call in past.calls] == ["r", "c"]
    assert {entry.request_id for entry in history} == {"r", "c"}
    assert len(exported.events) == 4
    with pytest.raises(ViewNotBuiltError):
        views.call_tree("r")

    with flowgraph_projector(env) as projector:
        caught_up(projector)  # what the message says to do, from Python
    assert views.run("r") == past.run  # the same views object now reads the built tables
    assert views.call_tree("r") == past.calls


def test_an_empty_view_is_not_a_refusal(fed: Metagraph, env: dict[str, str]) -> None:
    with flowgraph_projector(env) as projector:
        built = caught_up(projector)
        assert built.run("nope") is None
        assert built.runs(status="failed").runs == []


def test_other_database_errors_are_not_reported_as_a_missing_view(
    fed: Metagraph, env: dict[str, str], views: Flowgraph
) -> None:
    with flowgraph_projector(env) as projector:
        caught_up(projector)
    with pytest.raises(ProgrammingError, match="no such column") as info:
        views._query("SELECT nope FROM flow_runs", [])  # a broken query, not a missing view
    assert not isinstance(info.value, ViewNotBuiltError)
