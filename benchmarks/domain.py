"""The ``domain`` suite: big graphs stay fast (issue 3, item 9).

Everything goes through :class:`domain.Metagraph` on ``streams.persistence`` (real tenant
files in a temporary directory, ``HONKER_SYNCHRONOUS`` NORMAL, the application's default
cache and snapshot settings):

- write latency: ``add_node`` and ``add_edge`` on a graph of 100,000 nodes and 200,000
  edges, ``add_node`` on one of 1,000 nodes and 2,000 edges; one command per timing,
  snapshots taken when due (inside the timed command that triggers them);
- cold start: a fresh Python process opens the tenant file and adds one node (or one
  edge) to the big graph; its timestamps split interpreter start, imports, and the cold
  load proper (application construction to the first write committed);
- ingestion: one event per command and transaction, beside the streams suite's raw
  one-event appends (a plain eventsourcing ``Application``), in the same rounds;
- call history (:mod:`benchmarks._call_history`): ingestion of workflow runs beside raw
  sqlite3, with 10,000 and with 1,000,000 calls in the tenant (200,000 with ``--quick``),
  and a fresh process's cold start and peak RSS on the big tenant;
- call storage (:mod:`benchmarks._call_storage`): tenant file bytes and stored events
  per call event, and how a subscription's bytes per output grow with its outputs.

The big graph is built ONCE per run, in batches through the public aggregate API
(``Graph.add_node`` / ``Graph.add_edge`` check every rule; ``Application.save`` records
2,000 events at a time), then snapshotted; every case reuses that file. README.md says
what each metric means.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from benchmarks._call_history import measure_call_history
from benchmarks._call_storage import measure_call_storage
from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    file_bytes,
    median,
    paired_ratio,
    percentile,
    profile,
    rounds,
)
from benchmarks.streams import BenchApp, Files, save_tickets
from domain import Actor, Graph, GraphType, Metagraph
from domain.application import snapshot_interval

__all__ = ["run"]

SYSTEM: Final = Actor(scope="system", id="bench")
TYPE: Final = "bench-graph"
ITEM: Final = "item"
LINK: Final = "link"
ITEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"i": {"type": "integer"}, "name": {"type": "string"}},
    "additionalProperties": False,
}
LINK_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"w": {"type": "integer"}},
    "additionalProperties": False,
}
BUILD_BATCH: Final = 2000  # events per save while building
ROOT: Final = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    big_nodes: int
    big_edges: int
    small_nodes: int
    small_edges: int
    samples: int  # timed commands of each kind, per round and graph
    cold_runs: int  # fresh processes per cold-start state
    ingest_events: int  # per round, for ours and for the raw appends


# Both modes build the same graphs (the headline figures are "at 100k"); --quick takes
# fewer samples and fewer cold processes.
FULL_SIZES = Sizes(
    big_nodes=100_000,
    big_edges=200_000,
    small_nodes=1_000,
    small_edges=2_000,
    samples=3000,
    cold_runs=5,
    ingest_events=5000,
)
QUICK_SIZES = Sizes(
    big_nodes=100_000,
    big_edges=200_000,
    small_nodes=1_000,
    small_edges=2_000,
    samples=1000,
    cold_runs=3,
    ingest_events=3000,
)


def store_env(path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(path),
        "HONKER_SNAPSHOTS": "latest",  # as DataDirectory configures every tenant file
    }


def node_key(i: int) -> str:
    return f"n{i}"


@dataclass(frozen=True)
class Built:
    path: Path
    graph_id: UUID
    nodes: int
    edges: int
    seconds: float


def _edge_pairs(nodes: int, edges: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """``edges`` distinct (source, target) pairs, no self-loops: in round ``r`` every node
    gets one edge to a node a random distance ahead, in a band of distances of its own."""
    per_node = -(-edges // nodes)
    band = max(1, (nodes - 1) // per_node)
    for j in range(edges):
        source, round_no = j % nodes, j // nodes
        yield source, (source + 1 + round_no * band + rng.randrange(band)) % nodes


def _graph_aggregates(app: Metagraph, graph_id: UUID, type_id: UUID) -> tuple[Graph, GraphType]:
    graph: object = app.repository.get(graph_id, deepcopy_from_cache=False)
    graph_type: object = app.repository.get(type_id, deepcopy_from_cache=False)
    if not isinstance(graph, Graph) or not isinstance(graph_type, GraphType):
        raise TypeError("expected a Graph and a GraphType")
    return graph, graph_type


def build_graph(path: Path, nodes: int, edges: int, name: str) -> Built:
    """A tenant file holding one graph of ``nodes`` nodes and ``edges`` edges, snapshotted.

    Built in batches through the public API: the Graph aggregate's own commands check
    every rule, and ``app.save`` records ``BUILD_BATCH`` events per transaction.
    """
    started = time.perf_counter()
    rng = random.Random(f"{name}-{nodes}-{edges}")
    with Metagraph(env=store_env(path)) as app:
        type_id = app.define_graph_type(TYPE, config={"graphType": "directed"})
        app.add_node_type(type_id, ITEM, schema=ITEM_SCHEMA)
        app.add_edge_type(
            type_id,
            LINK,
            schema=LINK_SCHEMA,
            allowed_source_types=[ITEM],
            allowed_target_types=[ITEM],
        )
        graph_id = app.create_graph(type_id, name, status="active")
        graph, graph_type = _graph_aggregates(app, graph_id, type_id)
        for i in range(nodes):
            graph.add_node(graph_type, node_key(i), ITEM, {"i": i})
            if len(graph.pending_events) >= BUILD_BATCH:
                app.save(graph)
        for j, (source, target) in enumerate(_edge_pairs(nodes, edges, rng)):
            graph.add_edge(graph_type, LINK, node_key(source), node_key(target), {"w": j})
            if len(graph.pending_events) >= BUILD_BATCH:
                app.save(graph)
        app.save(graph)
        app.take_snapshot(graph_id)
    return Built(path, graph_id, nodes, edges, time.perf_counter() - started)


def _advance(built: Built, events: int, label: str) -> None:
    """Record ``events`` more node additions (batched, no snapshot): a longer replay tail."""
    if events <= 0:
        return
    with Metagraph(env=store_env(built.path)) as app:
        info = app.get_graph(built.graph_id)
        graph, graph_type = _graph_aggregates(app, built.graph_id, info.graph_type_id)
        for i in range(events):
            graph.add_node(graph_type, f"{label}-{i}", ITEM, {"i": i})
            if len(graph.pending_events) >= BUILD_BATCH:
                app.save(graph)
        app.save(graph)


# ------------------------------------------------------------------------ write latency


@dataclass(frozen=True)
class Latencies:
    node_ms: list[float]
    edge_ms: list[float]
    snapshots: int  # timed commands that took a snapshot (by the application's rule)
    size: int  # nodes + edges when the round started


def _snapshots_due(app: Metagraph, before: int, after: int, size: int) -> int:
    interval = snapshot_interval(app.snapshot_interval, size)
    return after // interval - before // interval


def measure_writes(built: Built, samples: int, round_no: int, *, edges: bool) -> Latencies:
    """``samples`` add_node (then as many add_edge) commands, each timed on its own."""
    rng = random.Random(round_no)
    clock = time.perf_counter
    with Metagraph(env=store_env(built.path)) as app:
        graph = built.graph_id
        # Untimed: load the graph (a cold load) and compile the schemas.
        app.add_node(graph, f"warm-{round_no}", ITEM, {"i": -1})
        info = app.get_graph(graph)
        node_ms: list[float] = []
        for i in range(samples):
            key = f"r{round_no}-{i}"
            start = clock()
            app.add_node(graph, key, ITEM, {"i": i, "name": key})
            node_ms.append((clock() - start) * 1000)
        edge_ms: list[float] = []
        if edges:
            for i in range(samples):
                target = node_key(rng.randrange(built.nodes))
                start = clock()
                app.add_edge(graph, LINK, f"r{round_no}-{i}", target, {"w": i})
                edge_ms.append((clock() - start) * 1000)
        after = app.get_graph(graph)
        size = info.node_count + info.edge_count
        return Latencies(
            node_ms, edge_ms, _snapshots_due(app, info.version, after.version, size), size
        )


def write_latency(
    report: Report, big: Built, small: Built, sizes: Sizes, config: RunConfig
) -> None:
    sides: dict[str, Callable[[int], Latencies]] = {
        "big": lambda r: measure_writes(big, sizes.samples, r, edges=True),
        "small": lambda r: measure_writes(small, sizes.samples, r, edges=False),
    }
    figures = rounds(config.repeats, sides)
    big_runs, small_runs = figures["big"], figures["small"]

    def pct(runs: list[Latencies], kind: str, p: float) -> list[float]:
        return [percentile(getattr(run, kind), p) for run in runs]

    report.add("add_node_p50_ms_100k", median(pct(big_runs, "node_ms", 50)), Target("<=", 1.0))
    report.add("add_node_p99_ms_100k", median(pct(big_runs, "node_ms", 99)), Target("<=", 5.0))
    report.add(
        "add_node_growth_1k_to_100k",
        paired_ratio(pct(big_runs, "node_ms", 50), pct(small_runs, "node_ms", 50)),
        Target("<=", 1.5),
    )
    report.add("add_edge_p50_ms_100k", median(pct(big_runs, "edge_ms", 50)), Target("<=", 1.0))
    report.add("add_edge_p99_ms_100k", median(pct(big_runs, "edge_ms", 99)))
    report.add("add_node_p50_ms_1k", median(pct(small_runs, "node_ms", 50)))
    report.add("add_node_p99_ms_1k", median(pct(small_runs, "node_ms", 99)))
    big_all = [x for run in big_runs for x in run.node_ms + run.edge_ms]
    report.add("write_max_ms_100k", max(big_all))
    report.add("write_snapshots_timed_100k", sum(run.snapshots for run in big_runs))
    report.raw["writes"] = {
        "samples_per_round": sizes.samples,
        "big_size_per_round": [run.size for run in big_runs],
        "snapshots_per_round": [run.snapshots for run in big_runs],
        "ms": {
            f"{side}_{kind}": {
                "p50": pct(runs, kind, 50),
                "p99": pct(runs, kind, 99),
                "max": [max(getattr(run, kind)) for run in runs],
            }
            for side, runs in figures.items()
            for kind in ("node_ms", "edge_ms")
            if getattr(runs[0], kind)
        },
        "slowest_ms_100k": sorted(big_all)[-10:],
    }
    if config.profile:
        with Metagraph(env=store_env(big.path)) as app:
            app.get_graph(big.graph_id)

            def writes() -> None:
                for i in range(sizes.samples):
                    app.add_node(big.graph_id, f"profile-{i}", ITEM, {"i": i})
                    app.add_edge(big.graph_id, LINK, f"profile-{i}", node_key(i), {"w": i})

            profile("add_node + add_edge at 100k", writes)


# --------------------------------------------------------------------------- cold start

# The child: a fresh interpreter that opens the tenant file and writes once. Timestamps
# are CLOCK_MONOTONIC (time.monotonic), one clock for every process on Linux.
COLD_CHILD: Final = """
import time
started = time.monotonic()
import json, logging, sys
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from domain import Metagraph
imported = time.monotonic()
args = json.loads(sys.argv[1])
constructing = time.monotonic()
app = Metagraph(env=args["env"])
if args["op"] == "node":
    app.add_node(args["graph"], args["key"], "item", {"i": 0})
else:
    app.add_edge(args["graph"], "link", args["source"], args["target"], {"w": 0})
written = time.monotonic()
info = app.get_graph(args["graph"])
[snapshot] = app.snapshots.recorder.select_events(info.id, desc=True, limit=1)
app.close()
print(json.dumps({
    "started": started, "imported": imported, "constructing": constructing,
    "written": written, "version": info.version,
    "snapshot_version": snapshot.originator_version,
    # VmHWM, not getrusage's ru_maxrss: that keeps the forking parent's peak across exec.
    "maxrss_mb": next(
        int(line.split()[1]) / 1024
        for line in open("/proc/self/status")
        if line.startswith("VmHWM:")
    ),
}))
"""


@dataclass(frozen=True)
class Cold:
    interpreter_s: float  # spawn -> the child's first statement
    import_s: float  # importing structlog and domain
    load_s: float  # Metagraph(...) -> first write committed (the cold load proper)
    process_s: float  # spawn -> first write committed
    replayed: int  # events after the snapshot the load started from
    maxrss_mb: float


def cold_start(built: Built, op: str, key: str) -> Cold:
    args: dict[str, Any] = {"env": store_env(built.path), "graph": str(built.graph_id), "op": op}
    if op == "node":
        args["key"] = key
    else:
        args["source"], args["target"] = node_key(0), key
    spawned = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", COLD_CHILD, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the cold-start process failed:\n{done.stderr}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Cold(
        interpreter_s=out["started"] - spawned,
        import_s=out["imported"] - out["started"],
        load_s=out["written"] - out["constructing"],
        process_s=out["written"] - spawned,
        replayed=out["version"] - 1 - out["snapshot_version"],
        maxrss_mb=out["maxrss_mb"],
    )


def cold(report: Report, big: Built, sizes: Sizes, config: RunConfig) -> None:
    """Fresh processes, first right after a snapshot, then with the longest replay tail.

    The snapshot is put at a multiple of the snapshot interval (where the application's
    rule puts them), so the next one is due a whole interval later; the worst-case runs
    start just short of it, replaying almost a whole interval of events.
    """
    runs = sizes.cold_runs
    with Metagraph(env=store_env(big.path)) as app:
        info = app.get_graph(big.graph_id)
        interval = snapshot_interval(app.snapshot_interval, info.node_count + info.edge_count)
    aligned = (info.version // interval + 1) * interval
    _advance(big, aligned - info.version, "align")
    with Metagraph(env=store_env(big.path)) as app:
        app.take_snapshot(big.graph_id)
    fresh = [cold_start(big, "node", f"cold-fresh-{i}") for i in range(runs)]
    # The last run below then ends at aligned + interval - 2: no snapshot due yet.
    _advance(big, interval - 3 * runs - 2, "tail")
    worst: list[Cold] = []
    edge: list[Cold] = []
    for i in range(runs):
        worst.append(cold_start(big, "node", f"cold-{i}"))
        edge.append(cold_start(big, "edge", f"cold-{i}"))
    # The dearest first write: it replays a whole interval and then takes the snapshot.
    taking: list[Cold] = []
    for i in range(min(runs, 3)):
        with Metagraph(env=store_env(big.path)) as app:
            info = app.get_graph(big.graph_id)
            interval_now = snapshot_interval(
                app.snapshot_interval, info.node_count + info.edge_count
            )
        due = (info.version // interval_now + 1) * interval_now
        _advance(big, due - 1 - info.version, f"due-{i}")
        taking.append(cold_start(big, "node", f"cold-due-{i}"))
        if taking[-1].replayed != -1:  # the write's own version holds the new snapshot
            raise AssertionError(f"expected the cold write to take a snapshot: {taking[-1]}")
    report.add("cold_load_s_100k", median([c.load_s for c in worst]), Target("<=", 1.0))
    report.add("cold_load_taking_snapshot_s_100k", median([c.load_s for c in taking]))
    report.add("cold_load_edge_s_100k", median([c.load_s for c in edge]))
    report.add("cold_load_after_snapshot_s_100k", median([c.load_s for c in fresh]))
    report.add("cold_process_s_100k", median([c.process_s for c in worst]))
    report.add("cold_interpreter_start_s", median([c.interpreter_s for c in worst]))
    report.add("cold_import_s", median([c.import_s for c in worst]))
    report.add("cold_replayed_events_100k", median([c.replayed for c in worst]))
    report.add("cold_rss_mb_100k", median([c.maxrss_mb for c in worst]))
    report.add("snapshot_interval_100k", interval)
    report.raw["cold"] = {
        "measured": "load_s: Metagraph() construction -> first write committed, in a fresh "
        "process (the tenant file is in the OS page cache); process_s: spawn -> the same "
        "point; interpreter_s: spawn -> the child's first statement; import_s: importing "
        "structlog and domain",
        "interval": interval,
        "interval_at_the_end": interval_now,
        "snapshot_version": aligned,
        "after_snapshot": [c.__dict__ for c in fresh],
        "worst_tail_node": [c.__dict__ for c in worst],
        "worst_tail_edge": [c.__dict__ for c in edge],
        "taking_snapshot": [c.__dict__ for c in taking],
    }
    if config.profile:

        def load() -> None:
            with Metagraph(env=store_env(big.path)) as app:
                app.add_node(big.graph_id, "cold-profile", ITEM, {"i": 0})

        profile("cold load at 100k (in-process, tail of the interval)", load)


def snapshot_cost(report: Report, big: Built, sizes: Sizes) -> None:
    """What the write that takes a snapshot pays on top of its own work."""
    seconds: list[float] = []
    with Metagraph(env=store_env(big.path)) as app:
        app.get_graph(big.graph_id)
        for i in range(sizes.cold_runs):
            app.add_node(big.graph_id, f"snapshot-{i}", ITEM, {"i": i})  # a new version
            start = time.perf_counter()
            app.take_snapshot(big.graph_id)
            seconds.append(time.perf_counter() - start)
        if app.snapshots is None:
            raise RuntimeError("the application takes no snapshots")
        [stored] = app.snapshots.recorder.select_events(big.graph_id, desc=True, limit=1)
    report.add("snapshot_take_s_100k", median(seconds))
    report.add("snapshot_mb_100k", len(stored.state) / 1e6)
    report.raw["snapshot_take_s"] = seconds


# ---------------------------------------------------------------------------- ingestion


def call_events(calls: int, prefix: str) -> list[dict[str, Any]]:
    """Call protocol events of ``calls`` independent calls, each written in ONE store
    transaction: ``call.requested`` (a node), then ``call.responded`` (a query's output:
    running -> completed, a node update) or, for every tenth call, ``call.error``."""
    events: list[dict[str, Any]] = []
    at = 1_763_000_000_000
    for i in range(calls):
        request = f"{prefix}-{i:08d}"
        requested = {
            "requestId": request,
            "operationId": "tools.search",
            "input": {"query": f"graphs {i}", "limit": 10},
            "metadata": {"traceId": f"t-{i}"},
        }
        events.append({"type": "call.requested", "at": at + 10 * i, "payload": requested})
        if i % 10 == 9:
            ended = {"requestId": request, "code": "EXECUTION_ERROR", "message": "timed out"}
            events.append({"type": "call.error", "at": at + 10 * i + 7, "payload": ended})
        else:
            output = {"data": {"hits": i % 7}, "meta": {"source": "local"}}
            responded = {"requestId": request, "output": output}
            events.append({"type": "call.responded", "at": at + 10 * i + 5, "payload": responded})
    return events


@dataclass(frozen=True)
class Ingested:
    events_per_s: float  # one ingest() call per event, as a live feed delivers them
    batch_events_per_s: float  # one ingest() call for all of them, as a file is read
    writes_per_event: float


def ingest_calls(files: Files, events: int, round_no: int) -> Ingested:
    """The call ingestion module (``domain.calls.ingest``) on a fresh tenant file."""
    from domain.calls import ingest  # noqa: PLC0415 - written concurrently

    path = files.new("ingest")
    try:
        with Metagraph(env=store_env(path)) as app:
            ingest(app, call_events(5, "warm"))  # installs the module, creates the graph
            live = call_events(events // 2, f"live-{round_no}")
            clock = time.perf_counter
            start = clock()
            writes = 0
            for event in live:
                writes += ingest(app, [event]).writes
            live_rate = len(live) / (clock() - start)
            batch = call_events(events // 2, f"batch-{round_no}")
            start = clock()
            report = ingest(app, batch)
            batch_rate = len(batch) / (clock() - start)
        if writes != len(live) or report.writes != len(batch):
            raise AssertionError(f"expected one write per event, got {writes}, {report}")
        return Ingested(live_rate, batch_rate, writes / len(live))
    finally:
        Files.remove(path)


CALL_ATTRIBUTES: Final[dict[str, Any]] = {
    "operationId": "tools.search",
    "operationType": "query",
    "status": "completed",
    "input": {"query": "graphs", "limit": 10},
    "requestedAt": 1_763_000_000_000,
    "completedAt": 1_763_000_000_042,
}


def ingest_standin(files: Files, events: int, round_no: int) -> Ingested:
    """A STAND-IN for when ``domain.calls`` is missing: one ``add_node`` of a call-like
    node per command and transaction, on a fresh graph."""
    path = files.new("ingest")
    try:
        with Metagraph(env=store_env(path)) as app:
            type_id = app.define_graph_type("calls-like")
            app.add_node_type(type_id, "call", schema={"type": "object"})
            graph = app.create_graph(type_id, "calls", status="active")
            app.add_node(graph, "warm", "call", {**CALL_ATTRIBUTES, "requestId": "warm"})
            start = time.perf_counter()
            for i in range(events):
                request = f"req-{round_no}-{i:08d}"
                app.add_node(graph, request, "call", {**CALL_ATTRIBUTES, "requestId": request})
            rate = events / (time.perf_counter() - start)
        return Ingested(rate, rate, 1.0)
    finally:
        Files.remove(path)


def raw_append(files: Files, events: int) -> float:
    """Events/s: the streams suite's one-event saves through a plain Application."""
    path = files.new("raw-append")
    tickets = max(1, events // 5)
    try:
        app = BenchApp(env={**store_env(path), "HONKER_TENANT": "acme"})
        try:
            save_tickets(app, 2)  # warm-up
            start = time.perf_counter()
            save_tickets(app, tickets)
            return tickets * 5 / (time.perf_counter() - start)
        finally:
            app.close()
    finally:
        Files.remove(path)


def _has_call_ingestion() -> bool:
    try:
        from domain.calls import ingest  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def ingest(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    real = _has_call_ingestion()
    ours = ingest_calls if real else ingest_standin
    sides: dict[str, Callable[[int], Ingested | float]] = {
        "ours": lambda r: ours(files, sizes.ingest_events, r),
        "raw": lambda _r: raw_append(files, sizes.ingest_events),
    }
    figures = rounds(config.repeats, sides)
    runs = [run for run in figures["ours"] if isinstance(run, Ingested)]
    raw = [float(run) for run in figures["raw"] if not isinstance(run, Ingested)]
    live = [run.events_per_s for run in runs]
    report.add("ingest_call_events_per_s", median(live), Target(">=", 5000))
    report.add("ingest_vs_raw_append", paired_ratio(live, raw))
    report.add("ingest_call_batch_events_per_s", median([run.batch_events_per_s for run in runs]))
    report.add("raw_append_events_per_s", median(raw))
    if real:
        what = (
            "domain.calls.ingest, one call per event (a live feed): call.requested + "
            "call.responded (every tenth call: call.error) of independent calls, each "
            "event one store transaction; fresh tenant file per round. The batch figure "
            "is one ingest() call for as many events (as a JSON Lines file is read)"
        )
    else:
        what = (
            "STAND-IN (domain.calls missing): one Metagraph.add_node of a call-like node "
            "per command and transaction, fresh tenant file per round"
        )
        report.notes.append(f"ingest_call_events_per_s is a {what}")
    report.raw["ingest"] = {
        "stand_in": not real,
        "what": what,
        "raw_append": "benchmarks.streams.save_tickets: one-event saves through a plain "
        "eventsourcing Application on streams.persistence, fresh file per round",
        "events_per_round": sizes.ingest_events,
        "events_per_s": live,
        "batch_events_per_s": [run.batch_events_per_s for run in runs],
        "raw_append_events_per_s": raw,
    }
    if config.profile and real:
        from domain.calls import ingest as ingest_events  # noqa: PLC0415

        path = files.new("profile-ingest")
        with Metagraph(env=store_env(path)) as app:
            ingest_events(app, call_events(5, "warm"))
            events = call_events(sizes.ingest_events // 2, "profile")
            profile("ingest, one call per event", lambda: [ingest_events(app, [e]) for e in events])


# --------------------------------------------------------------------------------- run


def run(config: RunConfig) -> Report:
    report = Report("domain", config)
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    report.raw["sizes"] = sizes.__dict__
    report.notes.append(
        "ours = domain.Metagraph on streams.persistence (synchronous NORMAL), default "
        "cache and snapshot settings; latencies are per command, snapshots included"
    )
    root = Path(tempfile.mkdtemp(prefix="bench-domain-", dir=config.tmp_dir))
    try:
        files = Files(root)
        graph_cases = ("write_latency", "snapshot_cost", "cold")
        if any(config.runs(case) for case in graph_cases):
            print("building the graphs ...", flush=True)
            big = build_graph(files.new("big"), sizes.big_nodes, sizes.big_edges, "big")
            small = build_graph(files.new("small"), sizes.small_nodes, sizes.small_edges, "small")
            report.add("build_s_100k", big.seconds)
            report.raw["build"] = {
                "big": {"nodes": big.nodes, "edges": big.edges, "seconds": big.seconds},
                "small": {"nodes": small.nodes, "edges": small.edges, "seconds": small.seconds},
                "batch": BUILD_BATCH,
            }
            report.add("file_mb_100k", file_bytes(big.path) / 1e6)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("write_latency", lambda: write_latency(report, big, small, sizes, config)),
            ("snapshot_cost", lambda: snapshot_cost(report, big, sizes)),
            ("cold", lambda: cold(report, big, sizes, config)),
            ("ingest", lambda: ingest(report, files, sizes, config)),
            ("call_history", lambda: measure_call_history(report, files, config)),
            ("call_storage", lambda: measure_call_storage(report, files, config)),
        ]
        for name, step in steps:
            if not config.runs(name):
                continue
            started = time.perf_counter()
            print(f"{name} ...", flush=True)
            step()
            report.raw.setdefault("case_seconds", {})[name] = round(
                time.perf_counter() - started, 1
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report
