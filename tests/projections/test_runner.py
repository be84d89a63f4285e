"""The runner: every tenant of a data directory, woken by commits from any process.

No test here asserts how fast anything is (benchmarks/ measures that). A test that a
wake works turns the other ways of waking off (intervals of an hour) and waits with a
generous deadline: it fails only if the wake never comes.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain import Metagraph, Principal
from graphstore.data import DataDirectory
from projections import FlowgraphProjection, MetagraphProjection, Runner
from projections.runner import UNTRUSTED_MTIME_AGE
from tests.projections._writer import Writer
from tests.projections.conftest import (
    FailingMetagraph,
    define_org,
    head,
    tables_match_aggregates,
)


def _metagraph_only() -> list[Any]:
    """These tests are about the runner: one projection keeps their counts simple."""
    return [MetagraphProjection()]


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


def _fill(data: DataDirectory, org_id: str, nodes: int = 3) -> tuple[UUID, int]:
    """A graph with ``nodes`` nodes in the tenant's file; (graph id, stream head)."""
    with Metagraph(env=data.tenant_env(org_id)) as app:
        if "org" not in app.graph_types():
            define_org(app)
        graph = app.create_graph("org", "team", status="active")
        for i in range(nodes):
            app.add_node(graph, f"n{i}", "project", {"i": i})
        return graph, head(app)


NEVER: float = 3600.0
"""An interval no test lasts: the sweep, poll or idle time it sets never comes."""
PATIENCE: float = 60.0
"""How long a test waits for something that must happen: only a hang reaches it."""


def _trusted_from(path: Path) -> float:
    """When the newest mtime of the tenant file and its WAL is old enough for the
    runner to trust (``UNTRUSTED_MTIME_AGE`` after it)."""
    files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
    return max(p.stat().st_mtime for p in files) + UNTRUSTED_MTIME_AGE


def _until(condition: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.005)
    return result


def _watcher_threads(path: Path, besides: frozenset[threading.Thread] = frozenset()) -> list[str]:
    """The commit watchers of files named like ``path`` (threads are named after the file
    name only), but those in ``besides`` (started before the test)."""
    name = f"honker-watcher:{path.name}"
    return [t.name for t in threading.enumerate() if t.name == name and t not in besides]


def test_the_runner_catches_up_every_tenant_registered_in_the_data_directory(
    data: DataDirectory,
) -> None:
    admin = data.identity.create_account(
        "ada@example.com", "Ada", actor=Principal.system(), access_level="admin"
    )
    for slug in ("acme", "globex"):
        data.identity.create_organization(
            slug.title(), slug, owner_id=admin.id, actor=Principal.system()
        )
    heads = {org: _fill(data, org, nodes=n) for org, n in (("acme", 3), ("globex", 5))}
    with Runner(data, _metagraph_only()) as runner:
        for org, (graph, last) in heads.items():
            statuses = runner.wait_for(org, last)
            assert [(s.tenant, s.projector, s.position) for s in statuses] == [
                (org, "metagraph@v1", last)
            ]
            with Metagraph(env=data.tenant_env(org)) as app:
                tables_match_aggregates(app, data.tenant_path(org), [graph])


def test_a_tenant_registered_while_running_is_followed(data: DataDirectory) -> None:
    tenants = ["acme"]
    _fill(data, "acme")
    with Runner(data, _metagraph_only(), tenants=lambda: tenants, sweep_interval=0.02) as runner:
        _, last = _fill(data, "globex")
        tenants.append("globex")
        runner.wait_for("globex", last)
        assert {s.tenant for s in runner.status()} == {"acme", "globex"}


@pytest.mark.multiprocess
def test_commits_from_another_process_wake_a_hot_tenant_through_the_update_watcher(
    data: DataDirectory,
) -> None:
    path = data.tenant_path("acme")
    with Writer(path) as writer:
        graph, last = writer.ask("setup").split()
        # No sweep, no poll, no file events, never idle: only Honker's update watcher can
        # wake it (the checks just after it goes hot may take the first commit).
        with Runner(
            data,
            _metagraph_only(),
            tenants=lambda: ["acme"],
            sweep_interval=NEVER,
            poll_interval=NEVER,
            idle_after=NEVER,
            file_events=False,
        ) as runner:
            runner.wait_for("acme", int(last), timeout=PATIENCE)
            _until(lambda: runner.hot_tenants() == ["acme"])  # its events are recent
            offsets = []
            for i in range(20):
                offset = int(writer.ask(f"nodes {graph} 1 n{i}-"))
                [status] = runner.wait_for("acme", offset, timeout=PATIENCE)
                # Each commit woke it, and it applied exactly that commit, in order.
                assert (status.position, status.lag_events, status.state) == (
                    offset,
                    0,
                    "running",
                )
                offsets.append(offset)
            assert runner.hot_tenants() == ["acme"] and runner.open_tenants() == ["acme"]
    assert offsets == sorted(set(offsets)) and offsets[0] > int(last)
    with Metagraph(env=data.tenant_env("acme")) as app:
        tables_match_aggregates(app, path, [UUID(graph)])


@pytest.mark.multiprocess
def test_an_idle_tenant_is_closed_and_woken_by_the_file_sweep(data: DataDirectory) -> None:
    path = data.tenant_path("acme")
    others = frozenset(threading.enumerate())
    with Writer(path) as writer:
        graph, last = writer.ask("setup").split()
        with Runner(
            data,
            _metagraph_only(),
            tenants=lambda: ["acme"],
            sweep_interval=0.05,
            poll_interval=0.05,
            idle_after=0.3,
            file_events=False,  # only the sweep can wake a closed tenant
        ) as runner:
            runner.wait_for("acme", int(last), timeout=PATIENCE)
            # No new event for 0.3 s: closed, its watcher thread stopped (the tenant leaves
            # the open list as its close starts; the thread is joined as it ends).
            _until(lambda: runner.open_tenants() == [] and _watcher_threads(path, others) == [])
            assert runner.hot_tenants() == []
            # From now on every event counts as recent, however long the wake takes: the
            # woken tenant must go hot (not close again before it is seen hot).
            runner.idle_after = NEVER
            offset = int(writer.ask(f"nodes {graph} 2 late-"))
            [status] = runner.wait_for("acme", offset, timeout=PATIENCE)
            assert (status.position, status.lag_events) == (offset, 0)
            _until(lambda: runner.hot_tenants() == ["acme"])  # recent events: followed closely


@pytest.mark.multiprocess
def test_an_idle_tenant_is_woken_by_a_file_event_without_waiting_for_a_sweep(
    data: DataDirectory,
) -> None:
    path = data.tenant_path("acme")
    rechecks: list[float] = []

    class RecheckingRunner(Runner):
        def _recheck(self, tenant: Any) -> None:
            super()._recheck(tenant)
            rechecks.append(time.time())

    def rechecked() -> bool:  # the recheck once the file's newest mtime is trusted, done
        return bool(rechecks) and rechecks[-1] > _trusted_from(path)

    with Writer(path) as writer:
        graph, last = writer.ask("setup").split()
        with RecheckingRunner(
            data,
            _metagraph_only(),
            tenants=lambda: ["acme"],
            sweep_interval=NEVER,  # no sweep during the test: only a file event can wake it
            poll_interval=NEVER,
            idle_after=0.2,
        ) as runner:
            runner.wait_for("acme", int(last), timeout=PATIENCE)
            _until(lambda: rechecked() and runner.open_tenants() == [])
            offset = int(writer.ask(f"nodes {graph} 2 evented-"))
            [status] = runner.wait_for("acme", offset, timeout=PATIENCE)
            assert (status.position, status.lag_events) == (offset, 0)


def test_an_idle_tenant_is_not_reopened_while_nothing_changes(data: DataDirectory) -> None:
    _, last = _fill(data, "acme")
    opened: list[str] = []
    trusted_sweeps: list[float] = []  # sweeps once the file's newest mtime is trusted
    path = data.tenant_path("acme")

    class CountingRunner(Runner):
        def _open(self, tenant: Any) -> None:
            opened.append(tenant.org_id)
            super()._open(tenant)

        def _sweep(self, *, idle: bool) -> None:
            super()._sweep(idle=idle)
            if idle and time.time() > _trusted_from(path):  # closed files' signatures compared
                trusted_sweeps.append(time.time())

    with CountingRunner(
        data,
        _metagraph_only(),
        tenants=lambda: ["acme"],
        sweep_interval=0.01,
        poll_interval=0.01,
        idle_after=0.0,
        fallback_sweep_interval=0.01,  # every tick compares the closed file's signature
    ) as runner:
        runner.wait_for("acme", last)
        # Counted, not timed: 100 sweeps after the second in which an mtime is not trusted.
        _until(lambda: len(trusted_sweeps) >= 100)
        # The first check, and one more a second after the file's last change.
        assert len(opened) <= 3, opened
        assert runner.open_tenants() == []


def test_many_idle_tenants_keep_no_file_open_and_no_thread(data: DataDirectory) -> None:
    _, last = _fill(data, "t0")
    tenants = [f"t{i}" for i in range(60)]
    for org in tenants[1:]:
        shutil.copy(data.tenant_path("t0"), data.tenant_path(org))
    before = set(threading.enumerate())
    with Runner(
        data, _metagraph_only(), tenants=lambda: tenants, sweep_interval=0.05, idle_after=0.0
    ) as runner:
        for org in tenants:
            runner.wait_for(org, last)
        _until(lambda: runner.open_tenants() == [])
        statuses = runner.status()
        assert len(statuses) == 60
        assert {(s.position, s.head, s.lag_events, s.state) for s in statuses} == {
            (last, last, 0, "running")
        }
        started = [t for t in threading.enumerate() if t not in before]
        ours = sorted(t.name for t in started if t.name.startswith("projections-"))
        assert ours == ["projections-0", "projections-sweeper"]  # the sweeper and one worker
        # The file-event observer's few threads (watchdog's inotify observer, emitter,
        # reader and, from watchdog 7, a dispatcher), whatever the number of tenants; no
        # watcher thread per tenant.
        others = [t for t in started if not t.name.startswith("projections-")]
        assert len(others) <= 4 and not any("honker" in t.name for t in others)


def test_status_reports_position_head_lag_state_and_times_per_tenant_and_projector(
    data: DataDirectory,
) -> None:
    _, acme = _fill(data, "acme", nodes=2)
    _, globex = _fill(data, "globex", nodes=4)
    started = time.time()
    with Runner(data, _metagraph_only(), tenants=lambda: ["acme", "globex"]) as runner:
        runner.wait_for("acme", acme)
        runner.wait_for("globex", globex)
        statuses = {s.tenant: s for s in runner.status()}
        assert set(statuses) == {"acme", "globex"}
        for org, last in (("acme", acme), ("globex", globex)):
            status = statuses[org]
            assert (status.projector, status.stream, status.policy) == (
                "metagraph@v1",
                "metagraph",
                "stop",
            )
            assert (status.position, status.head, status.lag_events) == (last, last, 0)
            assert (status.lag_seconds, status.state, status.error) == (0.0, "running", None)
            assert status.updated_at is not None and started <= status.updated_at <= time.time()
    assert {s.state for s in runner.status()} == {"stopped"}


def test_a_failing_projector_stops_alone_and_can_be_resumed(data: DataDirectory) -> None:
    _, short = _fill(data, "acme", nodes=1)
    graph, long = _fill(data, "globex", nodes=4)
    projection = FailingMetagraph({long})  # an offset only globex's stream reaches
    with Runner(data, [projection], tenants=lambda: ["acme", "globex"]) as runner:
        runner.wait_for("acme", short)
        failed = _until(
            lambda: [s for s in runner.status() if s.tenant == "globex" and s.state == "failed"]
        )[0]
        assert failed.error == f"ValueError: poison event {long}"
        # Nothing of the failing batch (here: the whole history) was committed.
        assert failed.error_offset == long and failed.position == 0
        assert failed.head == long and failed.lag_events == long
        with pytest.raises(RuntimeError, match="cannot reach"):
            runner.wait_for("globex", long, timeout=1)
        projection.fail_at.clear()
        runner.resume("globex", "metagraph@v1")
        runner.wait_for("globex", long)
    with Metagraph(env=data.tenant_env("globex")) as app:
        tables_match_aggregates(app, data.tenant_path("globex"), [graph])


def test_skip_and_park_goes_on_and_the_parked_events_can_be_replayed(
    data: DataDirectory,
) -> None:
    graph, last = _fill(data, "acme", nodes=3)
    projection = FailingMetagraph({last - 1})
    with Runner(
        data, [projection], policy={"metagraph@v1": "skip-and-park"}, tenants=lambda: ["acme"]
    ) as runner:
        [status] = runner.wait_for("acme", last)
        assert (status.parked, status.state) == (1, "running")
        projection.fail_at.clear()
        result = runner.replay_parked("acme", "metagraph@v1")
        assert (result.replayed, result.still_parked) == ([last - 1], [])
        assert [s.parked for s in runner.status()] == [0]
    with Metagraph(env=data.tenant_env("acme")) as app:
        tables_match_aggregates(app, data.tenant_path("acme"), [graph])


def test_database_trouble_is_reported_and_retried_without_parking(data: DataDirectory) -> None:
    graph, last = _fill(data, "acme")
    projection = FailingMetagraph()
    projection.database_trouble_at.add(last)
    with Runner(
        data,
        [projection],
        policy="skip-and-park",
        tenants=lambda: ["acme"],
        sweep_interval=0.02,
    ) as runner:
        troubled = _until(lambda: [s for s in runner.status() if s.error])[0]
        assert troubled.state in ("running", "catching-up")
        assert "database is locked (simulated)" in (troubled.error or "")
        projection.database_trouble_at.clear()
        [status] = runner.wait_for("acme", last)
        assert (status.parked, status.error) == (0, None)
    with Metagraph(env=data.tenant_env("acme")) as app:
        tables_match_aggregates(app, data.tenant_path("acme"), [graph])


def test_the_runner_can_run_inside_the_writers_process(data: DataDirectory) -> None:
    with (
        Metagraph(env=data.tenant_env("acme")) as app,
        Runner(
            data, _metagraph_only(), tenants=lambda: ["acme"], poll_interval=60, sweep_interval=60
        ) as runner,
    ):
        define_org(app)
        graph = app.create_graph("org", "team")
        runner.wait_for("acme", head(app))
        for i in range(10):
            app.add_node(graph, f"n{i}", "project")
            runner.wait_for("acme", head(app), timeout=5)
        tables_match_aggregates(app, data.tenant_path("acme"), [graph])
        runner.stop()
        app.add_node(graph, "after", "project")  # the shared file is still open for the app
        assert runner.status()[0].state == "stopped"


def test_operations_need_a_running_runner_and_known_names(data: DataDirectory) -> None:
    _, last = _fill(data, "acme")
    runner = Runner(data, _metagraph_only(), tenants=lambda: ["acme"])
    with pytest.raises(RuntimeError, match="not running"):
        runner.resume("acme", "metagraph@v1")
    with runner:
        runner.wait_for("acme", last)
        with pytest.raises(KeyError, match="unknown tenant"):
            runner.resume("nobody", "metagraph@v1")
        with pytest.raises(KeyError, match="unknown projector"):
            runner.resume("acme", "metagraph@v9")
        runner.stop_projector("acme", "metagraph@v1")
        assert runner.status()[0].state == "stopped"
    with pytest.raises(ValueError, match="unknown error policy"):
        Runner(data, policy="sometimes")  # type: ignore[arg-type]


def test_by_default_the_runner_keeps_the_metagraph_tables_and_the_flowgraph_views(
    data: DataDirectory,
) -> None:
    _, last = _fill(data, "acme")
    with Runner(data, tenants=lambda: ["acme"]) as runner:
        assert [type(p) for p in runner.projections] == [MetagraphProjection, FlowgraphProjection]
        statuses = runner.wait_for("acme", last)
        assert sorted(s.projector for s in statuses) == ["flowgraph@v1", "metagraph@v1"]
        assert all(s.position == last and s.lag_events == 0 for s in statuses)
