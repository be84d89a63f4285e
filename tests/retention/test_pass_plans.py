"""A retention pass's cost must not grow with the tenant's history (issue 16, item 8:
``retention_pass_flatness``). What it reads of the views to choose its runs is read off
indexes, in order, and stops at what it needs: SQLite's own query plans say so, so a
change of query or schema that would make a pass sort or scan every finished run fails
here instead of showing only as a slower benchmark at 1M calls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from domain import Metagraph
from domain.calls import ingest
from domain.retention import RetentionPolicy
from graphstore.data import DataDirectory
from graphstore.retention import run_pass, set_policy
from projections import Flowgraph, FlowgraphProjection, MetagraphProjection, Projector

TENANT: Final = "acme"
T0: Final = 1_700_000_000_000
RUNS: Final = 30


def run_events(i: int, *, failed: bool = False) -> list[dict[str, Any]]:
    run, at = f"r{i:03d}", T0 + i * 10
    done: dict[str, Any] = (
        {"code": "INTERNAL", "message": "no"}
        if failed
        else {"output": {"data": i, "meta": {"source": "local"}}}
    )
    return [
        {"type": "call.requested", "at": at,
         "payload": {"requestId": run, "operationId": "flows.run", "input": {"i": i}}},
        {"type": "call.requested", "at": at + 1,
         "payload": {"requestId": f"{run}.0", "operationId": "db.query", "input": {},
                     "parentRequestId": run}},
        {"type": "call.responded", "at": at + 2,
         "payload": {"requestId": f"{run}.0", "output": {"data": 1, "meta": {"source": "local"}}}},
        {"type": "call.error" if failed else "call.responded", "at": at + 3,
         "payload": {"requestId": run, **done}},
    ]  # fmt: skip


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[tuple[Metagraph, Flowgraph]]:
    """A tenant of finished runs (some failed), views caught up, and a policy that
    exercises every candidate query: by age, failed by age, and beyond a count."""
    directory = DataDirectory(tmp_path)
    directory.create_tenant_file(TENANT)
    env = directory.tenant_env(TENANT)
    with Metagraph(env=env) as app:
        ingest(app, [e for i in range(RUNS) for e in run_events(i, failed=i % 5 == 0)])
        for projection in (MetagraphProjection(), FlowgraphProjection()):
            with Projector.open(env, projection) as projector:
                projector.catch_up()
        set_policy(
            app,
            RetentionPolicy(
                finished_older_than_s=86_400, failed_older_than_s=2 * 86_400, keep_at_most=5
            ),
        )
        with Flowgraph.open(env) as views:
            yield app, views


def plans_of(views: Flowgraph, work: Any) -> list[tuple[str, str]]:
    """Each query ``work`` sends to the views, with SQLite's plan for it."""
    issued: list[tuple[str, list[Any]]] = []
    original = views.datastore.query

    def spy(sql: str, params: Any = ()) -> list[dict[str, Any]]:
        issued.append((sql, list(params or ())))
        return original(sql, params)

    views.datastore.query = spy  # type: ignore[method-assign]
    try:
        work()
    finally:
        views.datastore.query = original  # type: ignore[method-assign]
    return [
        (sql, " | ".join(str(r["detail"]) for r in original("EXPLAIN QUERY PLAN " + sql, params)))
        for sql, params in issued
    ]


def test_a_pass_chooses_its_runs_off_indexes_never_sorting_or_scanning_the_runs(
    tenant: tuple[Metagraph, Flowgraph],
) -> None:
    app, views = tenant
    plans = plans_of(views, lambda: run_pass(app, views, TENANT, dry_run=True))
    ordered = [plan for sql, plan in plans if "ORDER BY completed_at" in sql]
    assert len(ordered) == 3, plans  # completed by age, failed by age, beyond the count
    for sql, plan in plans:
        assert "TEMP B-TREE" not in plan, (sql, plan)  # no sort of every finished run
        assert not re.search(r"\bSCAN\b", plan), (sql, plan)  # no walk of every run
    for plan in ordered:
        assert "flow_runs_completed" in plan, plan


def test_the_plans_checked_are_those_of_a_pass_that_chooses(
    tenant: tuple[Metagraph, Flowgraph],
) -> None:
    """The dry run above chose runs through those queries (not an empty short cut):
    every run is older than both periods, oldest completion first."""
    app, views = tenant
    report = run_pass(app, views, TENANT, dry_run=True)
    assert len(report.runs) == RUNS
    assert [r.completed_at for r in report.runs] == sorted(r.completed_at for r in report.runs)
