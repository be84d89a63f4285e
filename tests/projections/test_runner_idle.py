"""The runner with many idle tenants: an idle tenant costs nothing per tick.

Wakes come from commits (file events), not from polling every tenant. These tests count
the runner's work through :attr:`Runner.counters` (no timing assertions: benchmarks/
measures the cost); a wait has a generous deadline and fails only on a hang.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain import Metagraph, Principal
from graphstore.data import DataDirectory
from projections import MetagraphProjection, Runner, RunnerCounters
from tests.projections.conftest import define_org, head

TENANTS = 200
NEVER = 3600.0
PATIENCE = 60.0


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


def _until(condition: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.01)
    return result


def _tenants(data: DataDirectory, count: int) -> tuple[list[str], int, UUID]:
    """``count`` tenant files, copies of one with a graph of 3 nodes; (org ids, head,
    the graph's id)."""
    with Metagraph(env=data.tenant_env("template")) as app:
        define_org(app)
        graph = app.create_graph("org", "team", status="active")
        for i in range(3):
            app.add_node(graph, f"n{i}", "project", {"i": i})
        last = head(app)
    template = data.tenant_path("template")
    org_ids = [f"t{n:03d}" for n in range(count)]
    for org in org_ids:
        for suffix in ("", "-wal"):
            if Path(f"{template}{suffix}").exists():
                shutil.copyfile(f"{template}{suffix}", f"{data.tenant_path(org)}{suffix}")
    return org_ids, last, graph


QUIET_TICKS = 20


def _quiet(runner: Runner, org_ids: list[str], last: int) -> RunnerCounters:
    """Wait until every tenant is caught up and closed, no timer is pending (the recheck
    of fresh file times) and no check ran for ``QUIET_TICKS`` ticks; the counters then."""
    for org in org_ids:
        runner.wait_for(org, last, timeout=PATIENCE)

    def settled() -> tuple[int, int] | None:
        c = runner.counters
        idle = c.timers_fired == c.timers_set and runner.open_tenants() == []
        return (c.checks, c.ticks) if idle else None

    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        checks, ticks = _until(settled)
        _until(lambda t=ticks: runner.counters.ticks >= t + QUIET_TICKS)
        now = settled()
        if now is not None and now[0] == checks:
            return _copy(runner.counters)
    raise AssertionError(f"the runner did not go quiet within {PATIENCE}s")


def _copy(counters: RunnerCounters) -> RunnerCounters:
    return RunnerCounters(**{f: getattr(counters, f) for f in RunnerCounters.__slots__})


def test_many_idle_tenants_cost_no_work_per_tick(data: DataDirectory) -> None:
    org_ids, last, _ = _tenants(data, TENANTS)
    with Runner(
        data,
        [MetagraphProjection()],
        tenants=lambda: org_ids,
        sweep_interval=0.01,  # many ticks in the window below
        fallback_sweep_interval=NEVER,  # the minute's fallback sweep is not a tick's work
        idle_after=0.0,  # the copies' events are old enough: idle at once
    ) as runner:
        before = _quiet(runner, org_ids, last)
        _until(lambda: runner.counters.ticks >= before.ticks + 20)
        after = runner.counters
        assert runner.open_tenants() == [] and runner.hot_tenants() == []
        assert (after.checks, after.signatures_read, after.sweeps_of_idle) == (
            before.checks,
            before.signatures_read,
            before.sweeps_of_idle,
        )


def test_without_file_events_every_tick_sweeps_the_idle_tenants(data: DataDirectory) -> None:
    """The counter above would see per-tenant work: the sweep without file events has it."""
    org_ids, last, _ = _tenants(data, 20)
    with Runner(
        data,
        [MetagraphProjection()],
        tenants=lambda: org_ids,
        sweep_interval=0.01,
        idle_after=0.0,
        file_events=False,
    ) as runner:
        before = _quiet(runner, org_ids, last)
        # A sweep is counted as it begins, then reads: once the sixth after ``before``
        # has begun, five have read every tenant's signature since.
        _until(lambda: runner.counters.sweeps_of_idle >= before.sweeps_of_idle + 6)
        assert runner.counters.signatures_read >= before.signatures_read + 5 * len(org_ids)


def test_a_commit_in_one_idle_tenant_among_many_is_applied_and_only_it_is_checked(
    data: DataDirectory,
) -> None:
    org_ids, last, graph = _tenants(data, TENANTS)
    woken = org_ids[137]
    with Runner(
        data,
        [MetagraphProjection()],
        tenants=lambda: org_ids,
        sweep_interval=0.01,  # ticks for _quiet (a tick sweeps only hot tenants)
        fallback_sweep_interval=NEVER,  # only the commit's file event can wake it
        idle_after=0.0,
    ) as runner:
        before = _quiet(runner, org_ids, last)
        with Metagraph(env=data.tenant_env(woken)) as app:
            app.add_node(graph, "woken", "project", {"i": 99})
            offset = head(app)
        [status] = runner.wait_for(woken, offset, timeout=PATIENCE)
        assert (status.position, status.lag_events) == (offset, 0)
        others = {s.position for s in runner.status() if s.tenant != woken}
        assert others == {last}
        # The woken tenant, and its re-checks; never a pass over the others.
        assert runner.counters.checks - before.checks < 10
        assert runner.counters.sweeps_of_idle == before.sweeps_of_idle


def test_the_registry_is_read_again_only_when_system_db_changes(data: DataDirectory) -> None:
    system = Principal.system()
    admin = data.identity.create_account(
        "ada@example.com", "Ada", actor=system, access_level="admin"
    )
    data.identity.create_organization("Acme", "acme", owner_id=admin.id, actor=system)
    with Runner(data, [MetagraphProjection()], sweep_interval=0.01) as runner:
        _until(lambda: {s.tenant for s in runner.status()} == {"acme"})
        _until(lambda: runner.registry_settled)  # past the read that follows a fresh mtime
        ticks = runner.counters.ticks
        _until(lambda: runner.counters.ticks > ticks)  # that read is over
        reads = runner.counters.registry_reads
        ticks = runner.counters.ticks
        _until(lambda: runner.counters.ticks >= ticks + 20)
        assert runner.counters.registry_reads == reads
        data.identity.create_organization("Globex", "globex", owner_id=admin.id, actor=system)
        _until(lambda: {s.tenant for s in runner.status()} == {"acme", "globex"})
        assert runner.counters.registry_reads > reads
