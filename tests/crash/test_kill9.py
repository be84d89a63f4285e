"""kill -9 while a batch, a cascade or a tenant creation is being written (issue 8).

Each test starts a worker process (``tests/crash/_worker.py``) that reports the phases
of every unit of work through a pipe (``tests/_kill.py``: started, events built, inside
the commit, committed but not acknowledged, acknowledged), kills it with SIGKILL at a
chosen phase of a chosen unit (held at the phase's start, or running, after a random
fraction of the phase's typical duration), and checks the files afterwards. Each series
aims at every phase and fails if a phase was never hit; each check knows the phase the
kill hit, so the unit in flight must be absent (killed before its COMMIT), present
(killed after it) or either (killed while COMMIT ran).

1. **Call ingestion.** One whole run (20-30 call events) per ``domain.calls.ingest``.
   After each kill, with the projections caught up: every run the worker started is
   either whole (each call, read with ``domain.calls.get_call`` and in the flowgraph
   views, as one uninterrupted ingestion of the batch leaves it, the run row too) or
   absent (none of its calls); every acknowledged run is whole; both projections equal
   a clean rebuild from offset 0. On the code before a batch was one transaction
   (commit 944085a) every series fails at its first kill with a torn run.
2. **Cascading node deletes.** Hubs with :data:`~tests.crash._worker.EDGES` edges each,
   deleted one ``delete_node`` (one save) at a time: every hub is present with all its
   edges or gone with all of them, in the aggregate and in the metagraph tables; the
   projections equal a clean rebuild.
3. **Tenant creation.** ``Store.create_tenant`` killed before, inside or between its
   steps (tenant file, ``system.db`` save, opening the tenant): a registered tenant has
   its complete file (every table) before anyone opens it and accepts a write; an
   unregistered one is invisible and ``create_tenant`` with the same org id succeeds.

``CRASH_SEED`` replays a run's delays (printed, and in every failure message).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import pytest

import graphstore
from domain import Metagraph, Principal
from domain.calls import get_call, ingest
from domain.errors import NotFoundError
from graphstore.data import DataDirectory
from projections import Flowgraph, FlowgraphProjection, MetagraphProjection, Projector
from projections.metagraph import TABLES as METAGRAPH_TABLES
from tests._kill import PHASES, Aim, Coverage, Landing, PhasedProcess, aims, kill_series
from tests.crash._worker import (
    EDGES,
    HUB_GRAPH_TYPE,
    LEAVES,
    OPERATION_TYPES,
    TENANT,
    run_batch,
)
from tests.projections.rebuild_check import file_env as tenant_env
from tests.projections.rebuild_check import opened, projections_equal_rebuild

ROOT: Final = Path(__file__).resolve().parents[2]
SEED: Final = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
STREAM: Final = "metagraph"
CONSUMERS: Final = ("metagraph@v1", "flowgraph@v1")


# --- worker processes -------------------------------------------------------------------


def start_worker(work: Path, role: str, data: Path, *args: str) -> PhasedProcess:
    """One ``tests.crash._worker`` process, reporting its phases (``tests/_kill.py``)."""
    name = f"{role}-{time.monotonic_ns()}"
    return PhasedProcess(
        [sys.executable, "-m", "tests.crash._worker", role, str(data), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=work / f"{name}.stderr",
    )


@contextlib.contextmanager
def seeded(test: str, series: int) -> Iterator[random.Random]:
    seed = SEED * 1000 + series
    print(f"{test} series {series}: CRASH_SEED={SEED}")
    try:
        yield random.Random(seed)
    except BaseException as exc:
        raise AssertionError(f"failed with CRASH_SEED={SEED} (series {series}): {exc}") from exc


# --- projections: caught up, and equal to a clean rebuild -------------------------------


def catch_up(path: Path) -> None:
    """Run both live projectors (the runner's) until they reach the stream's head."""
    for projection in (MetagraphProjection(), FlowgraphProjection()):
        with Projector.open(tenant_env(path), projection) as projector:
            projector.catch_up()
            status = projector.status()
            assert status.lag_events == 0, f"{projection.consumer} stopped: {status}"


# --- 1. call ingestion ------------------------------------------------------------------

INGEST_SERIES: Final = 2
INGEST_KILLS: Final = 10
"""Kills per series: one aimed at each phase, the rest at random phases."""
RECORDING_TIMES: Final = frozenset({"created_at", "updated_at"})  # when rows were written


def request_ids(index: int) -> list[str]:
    return sorted({event["payload"]["requestId"] for event in run_batch(index)})


def recorded_run(app: Metagraph, index: int) -> dict[str, Any]:
    """Run ``index`` as recorded: each call's attributes (None where absent)."""
    return {request_id: get_call(app, request_id) for request_id in request_ids(index)}


def viewed_run(views: Flowgraph, index: int) -> dict[str, Any]:
    """Run ``index`` in the flowgraph views: its run row and each of its calls (None where
    absent), without the times the rows were written."""
    run = views.run(f"run{index}")
    found: dict[str, Any] = {"run": None if run is None else _fields(run)}
    for request_id in request_ids(index):
        call = views.call(request_id)
        found[request_id] = None if call is None else _fields(call)
    return found


def _fields(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in row.__struct_fields__ if k not in RECORDING_TIMES}


@dataclass(frozen=True)
class WholeRun:
    """What one uninterrupted ingestion of a run's batch records and shows."""

    recorded: dict[str, Any]
    viewed: dict[str, Any]


class Reference:
    """Whole runs: each batch ingested once, uninterrupted, into a tenant of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        DataDirectory(path.parent).create_tenant_file(TENANT)
        self._runs: dict[int, WholeRun] = {}

    def runs(self, indices: set[int]) -> dict[int, WholeRun]:
        missing = sorted(indices - set(self._runs))
        if missing:
            with Metagraph(env=tenant_env(self.path)) as app:
                recorded = {}
                for index in missing:
                    ingest(app, run_batch(index), operation_types=OPERATION_TYPES)
                    recorded[index] = recorded_run(app, index)
                    assert None not in recorded[index].values(), f"run{index} not recorded"
            catch_up(self.path)
            with Flowgraph.open(tenant_env(self.path)) as views:
                for index in missing:
                    self._runs[index] = WholeRun(recorded[index], viewed_run(views, index))
        return {index: self._runs[index] for index in indices}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    data = tmp_path_factory.mktemp("reference")
    return Reference(DataDirectory(data).tenant_path(TENANT))


def whole_or_absent(found: dict[str, Any], whole: dict[str, Any], what: str) -> str:
    """``whole`` or ``absent``; AssertionError naming the differing calls if torn."""
    if found == whole:
        return "whole"
    if all(value is None for value in found.values()):
        return "absent"
    torn = {
        key: None if value is None else value["status"]
        for key, value in found.items()
        if value != whole[key]
    }
    raise AssertionError(
        f"{what} is torn: {len(torn)} of {len(found)} entries are not as the whole batch "
        f"leaves them (entry: status found, None = absent): {torn}"
    )


def check_runs(
    path: Path, started: set[int], acked: set[int], reference: Reference
) -> dict[int, str]:
    """Every started run whole or absent, in the call trees (``get_call``) and in the
    flowgraph views alike (which must show some); every acknowledged run whole. The
    state of each run."""
    catch_up(path)
    expected = reference.runs(started)
    states: dict[int, str] = {}
    viewed = 0
    with Metagraph(env=tenant_env(path)) as app, Flowgraph.open(tenant_env(path)) as views:
        for index in sorted(started):
            whole = expected[index]
            state = whole_or_absent(recorded_run(app, index), whole.recorded, f"run{index}")
            if whole.viewed["run"] is not None:
                shown = whole_or_absent(
                    viewed_run(views, index), whole.viewed, f"view of run{index}"
                )
                assert shown == state, f"run{index} is {state}, its view {shown}"
                viewed += 1
            assert index not in acked or state == "whole", f"acknowledged run{index} is absent"
            states[index] = state
    assert viewed or not started, (
        "the flowgraph views show no run: the runs could be checked in the call trees only"
    )
    return states


def expected_state(landing: Landing, present: str, absent: str) -> set[str]:
    """The states the unit the kill hit may be in, from the phase it hit."""
    outcome = landing.outcome()
    return (
        {present}
        if outcome == "committed"
        else {present, absent}
        if outcome == "either"
        else {absent}
    )


@pytest.mark.parametrize("series", range(INGEST_SERIES))
def test_kill9_during_call_ingestion_leaves_each_run_whole_or_absent(
    tmp_path: Path, series: int, reference: Reference
) -> None:
    data = tmp_path / "data"
    path = DataDirectory(data).create_tenant_file(TENANT)
    started: set[int] = set()
    acked: set[int] = set()
    whole: set[int] = set()  # runs found whole: delivered again, they stay so
    with seeded("ingestion", series) as rng:

        def start() -> PhasedProcess:  # from the first unacknowledged run: delivered again
            return start_worker(tmp_path, "ingest", data, str(max(acked, default=-1) + 1))

        def check(landing: Landing) -> None:
            started.update(int(i) for i in landing.started)
            acked.update(int(i) for i in landing.acked)
            states = check_runs(path, started, acked, reference)
            assert landing.unit is not None
            hit = states[int(landing.unit)]
            allowed = expected_state(landing, "whole", "absent")
            if int(landing.unit) in whole:
                allowed = {"whole"}
            whole.update(i for i, state in states.items() if state == "whole")
            assert hit in allowed, f"killed at {landing}, run{landing.unit} is {hit}"
            rows = projections_equal_rebuild(path, tmp_path)
            print(f"  run{landing.unit}: {hit}; runs {dict(Counter(states.values()))}; {rows}")

        kill_series(start, check, aims(rng, PHASES, INGEST_KILLS), rng, Coverage())


# --- 2. cascading node deletes ----------------------------------------------------------

HUB_SERIES: Final = 2
HUB_KILLS: Final = 8
HUBS_PER_ROUND: Final = 24


def hub_edges(hub: str) -> dict[str, tuple[str, str]]:
    """The edges the worker gives ``hub``: key -> (source, target)."""
    return {
        f"{hub}:{j}": ((hub, leaf) if j % 2 == 0 else (leaf, hub)) for j, leaf in enumerate(LEAVES)
    }


def new_hub_graph(path: Path) -> UUID:
    with Metagraph(env=tenant_env(path)) as app:
        app.define_graph_type(HUB_GRAPH_TYPE, config={"graphType": "directed"})
        app.add_node_type(HUB_GRAPH_TYPE, "node")
        app.add_edge_type(HUB_GRAPH_TYPE, "link")
        graph = app.create_graph(HUB_GRAPH_TYPE, "hubs", status="active")
        for leaf in LEAVES:
            app.add_node(graph, leaf, "node", {})
    return graph


def check_hubs(
    path: Path, graph: UUID, hubs: list[str], gone: set[str], recent: list[str]
) -> set[str]:
    """Every hub present with all its edges or gone with all of them, in the aggregate
    (edge by edge for ``recent`` hubs) and in the metagraph tables; the hubs present."""
    with Metagraph(env=tenant_env(path)) as app:
        nodes = app.nodes(graph)
        present = {hub for hub in hubs if hub in nodes}
        info = app.get_graph(graph)
        assert (info.node_count, info.edge_count) == (
            len(LEAVES) + len(present),
            EDGES * len(present),
        ), f"{len(present)} hubs present, but the graph counts {info}"
        for hub in recent:
            for key, ends in hub_edges(hub).items():
                if hub in present:
                    edge = app.find_edge(graph, key)
                    assert (edge.source, edge.target) == ends, f"edge {key} joins {edge}"
                else:
                    with pytest.raises(NotFoundError):
                        app.find_edge(graph, key)
    assert not present & gone, f"deleted (acknowledged) hubs are back: {present & gone}"
    catch_up(path)
    names = dict(zip(METAGRAPH_TABLES, MetagraphProjection().table_names(), strict=True))
    nodes_table, edges_table = names["nodes"], names["edges"]
    with opened(path) as db:
        keys = {
            row["key"]
            for row in db.query(f'SELECT key FROM "{nodes_table}" WHERE graph_id = ?', [str(graph)])
        }
        edges = db.query(
            f'SELECT key, source_node_key AS s, target_node_key AS t FROM "{edges_table}" '
            "WHERE graph_id = ?",
            [str(graph)],
        )
    assert keys == set(LEAVES) | present, "the nodes table disagrees with the graph"
    projected = {row["key"]: (row["s"], row["t"]) for row in edges}
    expected = {key: ends for hub in present for key, ends in hub_edges(hub).items()}
    assert projected == expected, "the edges table holds part of a hub's edges"
    return present


@pytest.mark.parametrize("series", range(HUB_SERIES))
def test_kill9_during_cascading_deletes_leaves_each_hub_whole_or_gone(
    tmp_path: Path, series: int
) -> None:
    data = tmp_path / "data"
    path = DataDirectory(data).create_tenant_file(TENANT)
    graph = new_hub_graph(path)
    hubs: list[str] = []
    gone: set[str] = set()
    workers = itertools.count()
    with seeded("cascades", series) as rng:

        def start() -> PhasedProcess:  # new hubs each time, named after the worker
            label = next(workers)
            hubs.extend(f"r{label}-hub{i}" for i in range(HUBS_PER_ROUND))
            return start_worker(tmp_path, "hubs", data, str(graph), str(label), str(HUBS_PER_ROUND))

        def check(landing: Landing) -> None:
            gone.update(landing.acked)
            recent = hubs[-HUBS_PER_ROUND:]
            present = check_hubs(path, graph, hubs, gone, recent)
            state = "present" if landing.unit in present else "gone"
            allowed = expected_state(landing, "gone", "present")
            assert state in allowed, f"killed at {landing}, the hub is {state}"
            rows = projections_equal_rebuild(path, tmp_path)
            print(f"  {landing.unit}: {state}; hubs {len(present)}; rows {rows}")

        kill_series(start, check, aims(rng, PHASES, HUB_KILLS), rng, Coverage())


# --- 3. tenant creation -----------------------------------------------------------------

TENANT_SERIES: Final = 2
TENANT_KILLS: Final = 10
OWNER: Final = "owner@example.com"
STEPS: Final = ("started", "file", "filed", "built", "commit", "committed", "open", "acked")
"""Where ``Store.create_tenant`` is killed: before it, when it begins or ends creating
the tenant file, when the organization's save in ``system.db`` begins, commits or has
committed, when it opens the tenant's metagraph, once it returned (the worker's phases,
see ``_worker.py``)."""
SYSTEM_FILE: Final = "system.db"


def tables_of(path: Path) -> set[str]:
    with opened(path) as db:
        return {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}


def probe_write(store: graphstore.Store, org_id: str) -> None:
    """A write to the tenant is accepted and read back."""
    app = store.tenant(org_id)
    app.define_graph_type("probe")
    assert "probe" in app.graph_types()


@pytest.mark.parametrize("series", range(TENANT_SERIES))
def test_kill9_during_tenant_creation_leaves_it_usable_or_creatable(
    tmp_path: Path, series: int
) -> None:
    data = tmp_path / "data"
    with DataDirectory(tmp_path / "fresh") as fresh:
        complete = tables_of(fresh.create_tenant_file("x"))
    with graphstore.open(data) as store:
        store.identity.create_account(OWNER, "Owner", actor=Principal.system())
    started: set[str] = set()
    acked: set[str] = set()
    workers = itertools.count()
    with seeded("tenants", series) as rng:

        def start() -> PhasedProcess:  # new org ids each time, named after the worker
            return start_worker(tmp_path, "tenants", data, f"w{next(workers)}", OWNER)

        def check(landing: Landing) -> None:
            fresh = set(landing.started) - started
            started.update(landing.started)
            acked.update(landing.acked)
            with graphstore.open(data) as store:
                registered = set(store.tenants())
                assert acked <= registered, f"acknowledged, not registered: {acked - registered}"
                assert registered <= started, f"never created: {registered - started}"
                hit = "registered" if landing.unit in registered else "unregistered"
                outcome = landing.outcome(SYSTEM_FILE)
                allowed = {
                    "committed": {"registered"},
                    "either": {"registered", "unregistered"},
                    "absent": {"unregistered"},
                }[outcome]
                assert hit in allowed, f"killed at {landing}, the tenant is {hit}"
                for org_id in sorted(fresh):
                    check_tenant(store, org_id, org_id in registered, landing, complete)
                assert set(store.tenants()) == started

        planned = [
            Aim(a.phase, a.after, a.held, SYSTEM_FILE if a.phase in PHASES[1:4] else None)
            for a in aims(rng, STEPS, TENANT_KILLS, after=2)
        ]
        kill_series(start, check, planned, rng, Coverage(STEPS))


def check_tenant(
    store: graphstore.Store, org_id: str, registered: bool, landing: Landing, complete: set[str]
) -> None:
    """Registered: its file complete before anyone opens it, and usable. Unregistered
    (only the one in flight may be): invisible, and created again by ``create_tenant``."""
    tenant_file = store.data.tenant_path(org_id)
    if registered:
        assert tenant_file.is_file(), f"{org_id} is registered without its file"
        assert tables_of(tenant_file) == complete, f"{org_id} is registered, tables missing"
        probe_write(store, org_id)
        return
    assert org_id == landing.unit, f"{org_id} was created, then lost"
    with pytest.raises(NotFoundError):
        store.tenant(org_id)  # an unfinished creation is invisible
    kind = "with a file" if tenant_file.exists() else "without a file"
    store.create_tenant(org_id, name=f"Org {org_id}", owner_email=OWNER)
    assert org_id in store.tenants() and tables_of(tenant_file) == complete
    probe_write(store, org_id)
    print(f"  {org_id}: unfinished creation ({kind}) created again")


# --- the checks can fail ----------------------------------------------------------------


def test_the_checks_catch_a_torn_run_a_torn_hub_and_a_tenant_without_its_file(
    tmp_path: Path, reference: Reference
) -> None:
    data = tmp_path / "data"
    path = DataDirectory(data).create_tenant_file(TENANT)
    graph = new_hub_graph(path)
    torn = run_batch(7)
    with Metagraph(env=tenant_env(path)) as app:
        ingest(app, torn[: len(torn) // 2], operation_types=OPERATION_TYPES)
        ingest(app, run_batch(8), operation_types=OPERATION_TYPES)
        for hub in ("a", "b"):
            app.add_node(graph, hub, "node", {})
            for key, (source, target) in hub_edges(hub).items():
                app.add_edge(graph, "link", source, target, key=key)
        app.delete_node(graph, "b")
    assert check_runs(path, {8, 9}, {8}, reference) == {8: "whole", 9: "absent"}
    with pytest.raises(AssertionError, match="run7 is torn"):
        check_runs(path, {7}, set(), reference)
    with pytest.raises(AssertionError, match="acknowledged run9 is absent"):
        check_runs(path, {9}, {9}, reference)
    assert check_hubs(path, graph, ["a", "b"], {"b"}, ["a", "b"]) == {"a"}
    with Metagraph(env=tenant_env(path)) as app:
        app.delete_edge(graph, app.find_edge(graph, "a:3").id)
    with pytest.raises(AssertionError, match="counts"):
        check_hubs(path, graph, ["a", "b"], {"b"}, ["a"])

    with graphstore.open(tmp_path / "tenants") as store:
        store.identity.create_account(OWNER, "Owner", actor=Principal.system())
        store.create_tenant("acme", name="Acme", owner_email=OWNER)
        tenant_file = store.data.tenant_path("acme")
        complete = tables_of(tenant_file)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tenant_file}{suffix}").unlink(missing_ok=True)
    with (
        graphstore.open(tmp_path / "tenants") as store,
        pytest.raises(AssertionError, match="registered without its file"),
    ):
        check_tenant(store, "acme", True, Landing("acked", "acme", held=True), complete)
