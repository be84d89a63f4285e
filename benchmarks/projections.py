"""The ``projections`` suite: projectors, the runner and time travel (issue 4 item 9).

- **Catch-up**: the metagraph projector catching up on a graph's stream from offset 0,
  beside stdlib ``sqlite3`` batch-inserting the same rows into the same tables in another
  file (WAL, NORMAL, foreign keys on, ``executemany``, one ``BEGIN IMMEDIATE`` per 500
  rows: the projector's batch size).
- **End to end across processes**: a writer process commits commands; this process runs
  a :class:`~projections.Runner` and a subscriber that waits, through Honker's update
  watcher, for the projector's saved offset to pass each command's offset. Both stamp
  ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for all processes on Linux).
- **Time travel**: ``Replay.run_as_of`` of a 10,000-call run at a middle offset.
- **Many idle tenants**: one runner serving 1,000 idle tenant files: its CPU over a
  window (``time.process_time``, all threads of this process), then commits in some of
  them (from a writer process) until their projection has committed them.
- **Many tenants, the real process** (issue 17 item 5): ``graphstore projector run``
  with its default settings on a data directory of 10,000 registered tenants (1,000
  with ``--quick``): catch-up time, RSS, its own idle CPU, wake latency of one tenant
  among them (:mod:`benchmarks._tenants_cli`).

README.md says what each metric means.
"""

from __future__ import annotations

import multiprocessing
import random
import shutil
import sqlite3
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    median,
    paired_ratio,
    percentile,
    rounds,
    scratch,
)
from benchmarks._tenants_cli import OffsetWatcher, build_tenants, measure_cli_runner
from benchmarks.cli import child_env, graphstore_command
from benchmarks.domain import build_graph
from domain import Actor, Metagraph
from domain.calls import ingest
from graphstore.data import DataDirectory
from projections import FlowgraphProjection, MetagraphProjection, Projector, Replay, Runner
from projections.metagraph import TABLES as METAGRAPH_TABLES
from projections.metagraph import MetagraphSql

__all__ = ["run"]

SYSTEM: Final = Actor(scope="system", id="bench")
RAW_BATCH: Final = 500
TENANT: Final = "acme"
WAKE_PACE_S: Final = (0.004, 0.008)  # e2e commits are 4-8 ms apart, at random
E2E_WARMUP: Final = 10


@dataclass(frozen=True)
class Sizes:
    nodes: int
    edges: int
    e2e_runs: int
    e2e_samples: int
    asof_calls: int
    asof_calls_timed: int
    tenants: int
    idle_window_s: float
    wake_samples: int
    cli_tenants: int
    cli_idle_window_s: float
    cli_wake_samples: int


FULL_SIZES: Final = Sizes(
    nodes=20_000,
    edges=20_000,
    e2e_runs=3,
    e2e_samples=300,
    asof_calls=10_000,
    asof_calls_timed=7,
    tenants=1000,
    idle_window_s=10.0,
    wake_samples=20,
    cli_tenants=10_000,
    cli_idle_window_s=60.0,
    cli_wake_samples=20,
)
QUICK_SIZES: Final = Sizes(
    nodes=10_000,
    edges=10_000,
    e2e_runs=2,
    e2e_samples=150,
    asof_calls=10_000,
    asof_calls_timed=5,
    tenants=1000,
    idle_window_s=5.0,
    wake_samples=10,
    cli_tenants=1000,
    cli_idle_window_s=20.0,
    cli_wake_samples=10,
)


def store_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(path),
        "HONKER_SNAPSHOTS": "latest",
    }


def _copy(source: Path, target: Path) -> None:
    for suffix in ("", "-wal"):
        src = Path(f"{source}{suffix}")
        if src.exists():
            shutil.copyfile(src, f"{target}{suffix}")


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- catch-up


def _projector_catchup(template: Path, work: Path) -> tuple[float, int]:
    """Seconds for a fresh metagraph projector to catch up on a copy of ``template``."""
    _copy(template, work)
    try:
        with Projector.open(store_env(work), MetagraphProjection()) as projector:
            start = time.perf_counter()
            consumed = projector.catch_up()
            return time.perf_counter() - start, consumed
    finally:
        _remove(work)


def _projected_rows(template: Path, work: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows the metagraph projector writes for ``template``'s stream, per table."""
    _copy(template, work)
    try:
        with Projector.open(store_env(work), MetagraphProjection()) as projector:
            projector.catch_up()
            return {t: projector.datastore.query(f'SELECT * FROM "{t}"') for t in METAGRAPH_TABLES}
    finally:
        _remove(work)


def _raw_insert(rows: dict[str, list[dict[str, Any]]], path: Path) -> float:
    """Seconds for stdlib sqlite3 to insert ``rows`` into the same tables, batched."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        for statement in MetagraphSql("").create:
            connection.execute(statement)
        start = time.perf_counter()
        for name in METAGRAPH_TABLES:
            table_rows = rows[name]
            if not table_rows:
                continue
            columns = list(table_rows[0])
            sql = (
                f'INSERT INTO "{name}" ({", ".join(columns)}) '
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            values = [tuple(row[c] for c in columns) for row in table_rows]
            for first in range(0, len(values), RAW_BATCH):
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(sql, values[first : first + RAW_BATCH])
                connection.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        connection.close()
        _remove(path)


def catchup(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    template = root / "catchup-template.db"
    build_graph(template, sizes.nodes, sizes.edges, "catchup")
    rows = _projected_rows(template, root / "catchup-rows.db")
    row_count = sum(len(r) for r in rows.values())
    events: list[int] = []

    def ours(round_no: int) -> float:
        seconds, consumed = _projector_catchup(template, root / f"catchup-{round_no}.db")
        events.append(consumed)
        return seconds

    def raw(round_no: int) -> float:
        return _raw_insert(rows, root / f"raw-{round_no}.db")

    ours(-1), raw(-1)  # warm-up
    figures = rounds(config.repeats, {"ours": ours, "raw_sqlite": raw})
    consumed = events[-1]
    ours_rate = [consumed / s for s in figures["ours"]]
    raw_rate = [row_count / s for s in figures["raw_sqlite"]]
    report.add("catchup_vs_raw_sqlite", paired_ratio(ours_rate, raw_rate), Target(">=", 0.5))
    report.add("catchup_events_per_s", median(ours_rate))
    report.add("catchup_raw_sqlite_rows_per_s", median(raw_rate))
    report.raw["catchup"] = {
        "events": consumed,
        "rows": row_count,
        "ours_s": figures["ours"],
        "raw_sqlite_s": figures["raw_sqlite"],
    }
    _remove(template)


# ------------------------------------------------------------------ end to end (cross)


def _e2e_writer(path: str, samples: int, ready: Any, go: Any, out: Queue[Any]) -> None:
    """The writer process: one graph, then ``samples`` add_node commands, paced."""
    rng = random.Random(path)
    with Metagraph(env=store_env(Path(path))) as app:
        type_id = app.define_graph_type("bench")
        app.add_node_type(type_id, "item")
        graph = app.create_graph(type_id, "g", status="active")
        ready.set()
        go.wait()
        stamps: list[tuple[int, int]] = []
        for i in range(samples):
            time.sleep(rng.uniform(*WAKE_PACE_S))
            app.add_node(graph, f"n{i}", "item", {"i": i})
            committed = time.monotonic_ns()
            stamps.append((app.recorder.max_notification_id() or 0, committed))
        out.put(stamps)


def e2e_run(root: Path, samples: int, round_no: int) -> list[float]:
    data = DataDirectory(root / f"e2e-{round_no}")
    path = data.tenant_path(TENANT)
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Event(), context.Event(), context.Queue()
    writer = context.Process(
        target=_e2e_writer, args=(str(path), samples + E2E_WARMUP, ready, go, out)
    )
    writer.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the writer did not start")
        projection = MetagraphProjection()
        runner = Runner(data, [projection], tenants=lambda: [TENANT]).start()
        watcher = OffsetWatcher(path, projection.consumer, "metagraph")
        try:
            time.sleep(0.5)  # the tenant goes hot (its watcher subscribes)
            go.set()
            stamps = out.get(timeout=120)
            runner.wait_for(TENANT, stamps[-1][0], timeout=30)
            time.sleep(0.05)
        finally:
            runner.stop()
            watcher.close()
        return watcher.latencies_ms(stamps[E2E_WARMUP:])
    finally:
        writer.join(30)
        shutil.rmtree(data.path, ignore_errors=True)


def e2e(report: Report, root: Path, sizes: Sizes) -> None:
    runs = [e2e_run(root, sizes.e2e_samples, n) for n in range(sizes.e2e_runs)]
    p50 = [percentile(r, 50) for r in runs]
    p99 = [percentile(r, 99) for r in runs]
    report.add("e2e_cross_p50_ms", median(p50), Target("<=", 5))
    report.add("e2e_cross_p99_ms", median(p99), Target("<=", 25))
    report.add("e2e_cross_max_ms", max(max(r) for r in runs))
    report.raw["e2e"] = {"p50_ms": p50, "p99_ms": p99, "samples_per_run": sizes.e2e_samples}


# ---------------------------------------------------------------------- time travel


def _run_events(calls: int) -> list[dict[str, Any]]:
    """One workflow run of ``calls`` calls (a tree, ten children per call), all answered."""
    at = 1_763_000_000_000
    events: list[dict[str, Any]] = []
    for i in range(calls):
        payload: dict[str, Any] = {"requestId": f"c{i}", "operationId": "tools.step", "input": {}}
        if i:
            payload["parentRequestId"] = f"c{(i - 1) // 10}"
        events.append({"type": "call.requested", "at": at + i, "payload": payload})
    for i in reversed(range(calls)):
        output = {"data": {"i": i}, "meta": {"source": "local"}}
        responded = {"requestId": f"c{i}", "output": output}
        events.append({"type": "call.responded", "at": at + calls + i, "payload": responded})
    return events


def asof(report: Report, root: Path, sizes: Sizes) -> None:
    path = root / "asof.db"
    env = store_env(path)
    start = time.perf_counter()
    with Metagraph(env=env) as app:
        ingest(app, _run_events(sizes.asof_calls))
        head = app.recorder.max_notification_id() or 0
    with Projector.open(env, FlowgraphProjection()) as projector:
        projector.catch_up()
    built = time.perf_counter() - start
    times: list[float] = []
    with Replay.open(env) as replay:
        snapshot = replay.run_as_of("c0", head // 2)
        if snapshot is None or len(snapshot.calls) < sizes.asof_calls // 4:
            raise AssertionError(f"unexpected view as of {head // 2}: {snapshot}")
        for _ in range(sizes.asof_calls_timed):
            t = time.perf_counter()
            replay.run_as_of("c0", head // 2)
            times.append((time.perf_counter() - t) * 1000)
    report.add("asof_10k_calls_ms", median(times), Target("<=", 200))
    report.raw["asof"] = {
        "calls": sizes.asof_calls,
        "head": head,
        "offset": head // 2,
        "calls_in_view": len(snapshot.calls),
        "ms": times,
        "build_s": round(built, 2),
    }
    _remove(path)


# --------------------------------------------------------------- many idle tenants


def _tenant_writer(
    data_dir: str, org_ids: list[str], graph: UUID, inbox: Queue[Any], out: Queue[Any]
) -> None:
    """Opens the tenants' metagraphs, then adds one node to the one each message names."""
    data = DataDirectory(data_dir)
    apps = {org: Metagraph(env=store_env(data.tenant_path(org))) for org in org_ids}
    out.put("ready")
    while (org := inbox.get()) is not None:
        app = apps[org]
        app.add_node(graph, f"wake-{time.time_ns()}", "item", {})
        committed = time.time()
        out.put((app.recorder.max_notification_id() or 0, committed))
    for app in apps.values():
        app.close()


def many_tenants(report: Report, root: Path, sizes: Sizes) -> None:
    data_dir = root / "tenants"
    data_dir.mkdir()
    data = DataDirectory(data_dir)
    template = root / "tenant-template.db"
    with Metagraph(env=store_env(template)) as app:
        type_id = app.define_graph_type("bench")
        app.add_node_type(type_id, "item")
        graph = app.create_graph(type_id, "g", status="active")
        for i in range(20):
            app.add_node(graph, f"n{i}", "item", {"i": i})
    with Projector.open(store_env(template), MetagraphProjection()) as projector:
        projector.catch_up()
    with Projector.open(store_env(template), FlowgraphProjection()) as projector:
        projector.catch_up()
    org_ids = [f"t{n:04d}" for n in range(sizes.tenants)]
    for org in org_ids:
        _copy(template, data.tenant_path(org))
    woken = org_ids[:: max(1, len(org_ids) // sizes.wake_samples)][: sizes.wake_samples]

    context = multiprocessing.get_context("spawn")
    inbox, out = context.Queue(), context.Queue()
    writer = context.Process(target=_tenant_writer, args=(str(data_dir), woken, graph, inbox, out))
    writer.start()
    # idle_after=2: the template's events are seconds old, so tenants go idle quickly.
    runner = Runner(data, tenants=lambda: org_ids, idle_after=2.0).start()
    try:
        if out.get(timeout=120) != "ready":
            raise RuntimeError("the writer did not start")
        deadline = time.monotonic() + 60
        while runner.open_tenants() or len(runner.status()) < 2 * len(org_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tenants still open: {runner.open_tenants()[:5]}")
            time.sleep(0.2)
        time.sleep(1.5)  # the last rechecks of fresh file times
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(sizes.idle_window_s)
        cpu_pct = 100 * (time.process_time() - cpu) / (time.monotonic() - wall)
        wakes: list[float] = []
        for org in woken:
            time.sleep(random.uniform(0.2, 0.6))
            inbox.put(org)
            offset, committed = out.get(timeout=30)
            statuses = runner.wait_for(org, offset, timeout=30)
            projected = max(s.updated_at or 0.0 for s in statuses)
            wakes.append((projected - committed) * 1000)
        inbox.put(None)
    finally:
        runner.stop()
        writer.join(30)
    report.add("idle_cpu_pct_1000_tenants", cpu_pct, Target("<=", 5))
    report.add("wake_ms_1000_tenants", median(wakes), Target("<=", 50))
    report.add("wake_p90_ms_1000_tenants", percentile(wakes, 90))
    report.raw["tenants"] = {
        "tenants": len(org_ids),
        "idle_window_s": sizes.idle_window_s,
        "wake_ms": wakes,
        "runner": {"sweep_interval": runner.sweep_interval, "idle_after": runner.idle_after},
    }
    shutil.rmtree(data_dir, ignore_errors=True)
    _remove(template)


# ------------------------------------------------------- many tenants, real process


def many_tenants_cli(report: Report, root: Path, sizes: Sizes) -> None:
    data_dir = root / "cli-tenants"
    org_ids, graph, newest = build_tenants(data_dir, sizes.cli_tenants)
    figures = measure_cli_runner(
        data_dir,
        org_ids,
        graph,
        newest,
        command=graphstore_command(),
        env=child_env(),
        idle_window_s=sizes.cli_idle_window_s,
        wake_samples=sizes.cli_wake_samples,
    )
    shutil.rmtree(data_dir, ignore_errors=True)
    if figures.caught_up != figures.tenants:
        raise RuntimeError(f"{figures.tenants - figures.caught_up} tenants not caught up")
    # Named after the full run's 10,000 tenants; --quick runs 1,000 (raw.cli_tenants).
    report.add("idle_cpu_pct_10k_tenants_cli", figures.idle_cpu_pct, Target("<=", 5))
    report.add("wake_ms_10k_tenants_cli", median(figures.wake_ms), Target("<=", 50))
    report.add("wake_p90_ms_10k_tenants_cli", percentile(figures.wake_ms, 90))
    report.add("catch_up_s_10k_tenants_cli", figures.catch_up_s)
    report.add("rss_mb_10k_tenants_cli", figures.rss_mb)
    report.raw["cli_tenants"] = {
        "tenants": figures.tenants,
        "idle_window_s": figures.idle_window_s,
        "wake_ms": figures.wake_ms,
        "peak_rss_mb": figures.peak_rss_mb,
        "threads": figures.threads,
    }


# ----------------------------------------------------------------------------- suite


def run(config: RunConfig) -> Report:
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    report = Report("projections", config)
    with scratch(config, "projections") as root:
        catchup(report, root, sizes, config)
        e2e(report, root, sizes)
        asof(report, root, sizes)
        many_tenants(report, root, sizes)
        many_tenants_cli(report, root, sizes)
    report.notes.append(
        "wake_ms_1000_tenants: runner defaults except idle_after=2 s (so copied tenants "
        "go idle within the run); from the writer's commit (time.time) to the projector's "
        "commit (status.updated_at)"
    )
    report.notes.append(
        "*_10k_tenants_cli: `graphstore projector run` with its defaults, measured from "
        f"outside (/proc); {sizes.cli_tenants} tenants in this run; idle CPU is the "
        "process's own utime+stime over the window"
    )
    return report
