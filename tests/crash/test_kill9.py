"""kill -9 while a batch, a cascade or a tenant creation is being written (issue 8).

Each test starts a worker process (``tests/crash/_worker.py``), lets it work, kills it
with SIGKILL at a seeded random moment and checks the files afterwards. A kill counts
only if it landed while a unit of work was in flight: the worker's side file (fsync'd
lines, see the worker) must end with ``start X`` (or a ``step`` of X) and no ``ack X``.
The test waits a random delay, then for the next ``start`` (or the chosen step), then a
random fraction of a unit's typical duration, and kills; a kill that landed between two
units is not counted and another is made (at most :data:`ATTEMPTS` per kill point).

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
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final
from uuid import UUID

import pytest

import graphstore
from domain import Metagraph, Principal
from domain.calls import get_call, ingest
from domain.errors import NotFoundError
from graphstore.data import DataDirectory
from projections import Flowgraph, FlowgraphProjection, MetagraphProjection, Projector
from projections.metagraph import TABLES as METAGRAPH_TABLES
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
ATTEMPTS: Final = 6
"""Kills per kill point at most, until one lands while work is in flight."""
STREAM: Final = "metagraph"
CONSUMERS: Final = ("metagraph@v1", "flowgraph@v1")


# --- worker processes -------------------------------------------------------------------


@dataclass
class Landing:
    """Where a kill landed, read from the dead worker's side file."""

    started: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    in_flight: str | None = None  # started, not acknowledged
    step: str | None = None  # the in-flight unit's last ``start``/``step`` marker


class Worker:
    """One ``tests.crash._worker`` process and its side file."""

    def __init__(self, work: Path, role: str, data: Path, *args: str) -> None:
        name = f"{role}-{time.monotonic_ns()}"
        self.side = work / f"{name}.side"
        self.side.touch()
        self._stderr = (work / f"{name}.stderr").open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash._worker", role, str(data), str(self.side), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self._reader: IO[bytes] = self.side.open("rb")
        self._partial = ""
        self._lines: list[str] = []

    def lines(self) -> list[str]:
        """The complete lines written so far."""
        chunk = self._reader.read()
        if chunk:
            *complete, self._partial = (self._partial + chunk.decode()).split("\n")
            self._lines += complete
        return self._lines

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready" not in self.lines():
            assert self.process.poll() is None, f"worker died: {self.stderr()}"
            assert time.monotonic() < deadline, f"worker not ready in {timeout}s: {self.stderr()}"
            time.sleep(0.005)

    def unit_ms(self) -> float:
        """The median duration of the acknowledged units so far (ms)."""
        durations = [float(line.split()[2]) for line in self.lines() if line.startswith("ack ")]
        return statistics.median(durations) if durations else 1.0

    def kill(self) -> Landing:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.returncode == -signal.SIGKILL, f"worker exited: {self.stderr()}"
        landing = landing_of(self.lines())
        self._reader.close()
        self._stderr.close()
        return landing

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]


def landing_of(lines: list[str]) -> Landing:
    landing = Landing()
    last: dict[str, str] = {}
    for line in lines:
        kind, *rest = line.split()
        if kind == "start":
            landing.started.append(rest[0])
            last[rest[0]] = "start"
        elif kind == "step":
            last[rest[0]] = rest[1]
        elif kind == "ack":
            landing.acked.append(rest[0])
    unacked = [unit for unit in landing.started if unit not in set(landing.acked)]
    assert len(unacked) <= 1, f"more than one unit unacknowledged: {unacked}"
    if unacked:
        landing.in_flight = unacked[0]
        landing.step = last[unacked[0]]
    return landing


def kill_in_flight(
    worker: Worker, rng: random.Random, *, delay: float, marker: str = "start", jitter: float = 0.5
) -> Landing:
    """Wait ``uniform(0, delay)`` s, then for the next ``marker`` line (``start`` or a
    step name), then ``uniform(0, jitter)`` times a unit's median duration; SIGKILL."""
    try:
        worker.wait_ready()
        time.sleep(rng.uniform(0.0, delay))
        seen = len(worker.lines())
        wait = rng.uniform(0.0, jitter) * worker.unit_ms() / 1000
        deadline = time.monotonic() + 20.0
        while True:
            fresh = worker.lines()[seen:]
            if any(_is_marker(line, marker) for line in fresh) or "done" in fresh:
                break
            assert worker.process.poll() is None, f"worker died: {worker.stderr()}"
            assert time.monotonic() < deadline, f"no {marker!r} line in 20 s: {worker.stderr()}"
            time.sleep(0.0001)
        time.sleep(wait)
    except BaseException:
        worker.process.kill()  # no worker outlives a failed test
        worker.process.wait()
        raise
    return worker.kill()


def _is_marker(line: str, marker: str) -> bool:
    words = line.split()
    return (words[:1] == ["start"]) if marker == "start" else words[2:] == [marker]


def kill_points(
    make_worker: Callable[[], Worker],
    check: Callable[[Landing], None],
    rng: random.Random,
    **kill: Any,
) -> tuple[Landing, int]:
    """Start, kill and check until a kill lands in flight; that landing and the kills."""
    for attempt in range(1, ATTEMPTS + 1):
        began = time.monotonic()
        worker = make_worker()
        landing = kill_in_flight(worker, rng, **kill)
        killed = time.monotonic()
        check(landing)  # whatever the kill hit, the files must be sound
        print(
            f"  kill {attempt}: in flight {landing.in_flight} at {landing.step!r}; worker "
            f"{killed - began:.2f}s, checks {time.monotonic() - killed:.2f}s"
        )
        if landing.in_flight is not None:
            return landing, attempt
    raise AssertionError(f"no kill of {ATTEMPTS} landed while work was in flight (seed {SEED})")


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

INGEST_SERIES: Final = 3
INGEST_ROUNDS: Final = 4
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
) -> Counter[str]:
    """Every started run whole or absent, in the call trees (``get_call``) and in the
    flowgraph views alike; every acknowledged run whole. The counts of each."""
    catch_up(path)
    expected = reference.runs(started)
    states: Counter[str] = Counter()
    with Metagraph(env=tenant_env(path)) as app, Flowgraph.open(tenant_env(path)) as views:
        for index in sorted(started):
            whole = expected[index]
            state = whole_or_absent(recorded_run(app, index), whole.recorded, f"run{index}")
            if whole.viewed["run"] is not None:
                shown = whole_or_absent(
                    viewed_run(views, index), whole.viewed, f"view of run{index}"
                )
                assert shown == state, f"run{index} is {state}, its view {shown}"
                states["viewed"] += 1
            assert index not in acked or state == "whole", f"acknowledged run{index} is absent"
            states[state] += 1
    if not states["viewed"]:
        warnings.warn(
            "the flowgraph views show no call of a whole run: runs were checked in the call "
            "trees only (domain.calls.get_call)",
            stacklevel=2,
        )
    return states


@pytest.mark.parametrize("series", range(INGEST_SERIES))
def test_kill9_during_call_ingestion_leaves_each_run_whole_or_absent(
    tmp_path: Path, series: int, reference: Reference
) -> None:
    data = tmp_path / "data"
    path = DataDirectory(data).create_tenant_file(TENANT)
    started: set[int] = set()
    acked: set[int] = set()
    with seeded("ingestion", series) as rng:

        def start() -> Worker:  # from the first unacknowledged run: delivered again
            return Worker(tmp_path, "ingest", data, str(max(acked, default=-1) + 1))

        def check(landing: Landing) -> None:
            started.update(int(i) for i in landing.started)
            acked.update(int(i) for i in landing.acked)
            states = check_runs(path, started, acked, reference)
            rows = projections_equal_rebuild(path, tmp_path)
            print(f"  in flight: run{landing.in_flight}; runs {dict(states)}; rows {rows}")

        for _ in range(INGEST_ROUNDS):
            landing, _attempts = kill_points(start, check, rng, delay=0.2)
            assert landing.in_flight is not None and int(landing.in_flight) not in acked


# --- 2. cascading node deletes ----------------------------------------------------------

HUB_SERIES: Final = 2
HUB_ROUNDS: Final = 5
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

        def start() -> Worker:  # new hubs each time, named after the worker
            label = next(workers)
            hubs.extend(f"r{label}-hub{i}" for i in range(HUBS_PER_ROUND))
            return Worker(tmp_path, "hubs", data, str(graph), str(label), str(HUBS_PER_ROUND))

        def check(landing: Landing) -> None:
            gone.update(landing.acked)
            recent = hubs[-HUBS_PER_ROUND:]
            present = check_hubs(path, graph, hubs, gone, recent)
            rows = projections_equal_rebuild(path, tmp_path)
            state = "present" if landing.in_flight in present else "gone"
            print(f"  in flight: {landing.in_flight} ({state}); hubs {len(present)}; rows {rows}")

        for _ in range(HUB_ROUNDS):
            landing, _attempts = kill_points(start, check, rng, delay=0.03)
            assert landing.in_flight is not None and landing.in_flight not in gone


# --- 3. tenant creation -----------------------------------------------------------------

TENANT_SERIES: Final = 2
TENANT_ROUNDS: Final = 5
OWNER: Final = "owner@example.com"
STEPS: Final = ("start", "file", "filed", "save", "saved", "open")
"""Where ``Store.create_tenant`` is killed: before it, when it begins or ends creating
the tenant file, when it saves or has saved the organization in ``system.db``, when it
opens the tenant's metagraph (markers written by the worker, see ``_worker.py``)."""


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
    landed: Counter[str] = Counter()
    workers = itertools.count()
    with seeded("tenants", series) as rng:

        def start() -> Worker:  # new org ids each time, named after the worker
            return Worker(tmp_path, "tenants", data, f"w{next(workers)}", OWNER)

        def check(landing: Landing) -> None:
            fresh = set(landing.started) - started
            started.update(landing.started)
            acked.update(landing.acked)
            with graphstore.open(data) as store:
                registered = set(store.tenants())
                assert acked <= registered, f"acknowledged, not registered: {acked - registered}"
                assert registered <= started, f"never created: {registered - started}"
                for org_id in sorted(fresh):
                    check_tenant(store, org_id, org_id in registered, landing, complete)
                assert set(store.tenants()) == started
            landed[str(landing.step)] += 1

        for _ in range(TENANT_ROUNDS):
            step = rng.choice(STEPS)
            jitter = 0.3 if step == "start" else 0.1
            landing, _attempts = kill_points(
                start, check, rng, delay=0.05, marker=step, jitter=jitter
            )
            print(f"  aimed at {step!r}, landed at {landing.step!r} of {landing.in_flight}")
    print(f"  kills by the last step reached: {dict(landed)}")


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
    assert org_id == landing.in_flight, f"{org_id} was created, then lost"
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
    states = check_runs(path, {8, 9}, {8}, reference)
    assert (states["whole"], states["absent"]) == (1, 1)
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
        check_tenant(store, "acme", True, Landing(), complete)
