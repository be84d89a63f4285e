"""The ``domain`` suite's call history cases (issue 8, item 7): ingestion at scale.

Every case feeds ``domain.calls.ingest(app, events)`` one workflow run per call: a root
call and 9 children, ``call.requested`` + ``call.responded`` each (20 events, 10 calls),
into a tenant file opened as :mod:`benchmarks.domain` opens one (a
:class:`domain.Metagraph` on ``streams.persistence``, ``HONKER_SYNCHRONOUS`` NORMAL).

- ``ingest_batch_vs_raw_sqlite``: events/s into a fresh tenant ÷ stdlib sqlite3 (WAL,
  NORMAL) inserting as many rows per transaction (one transaction per run) into an
  equivalent indexed table, each row a payload as long as the envelopes the store
  writes (measured from the store's own stream once per run of the suite).
  ``ingest_batch_ceiling_vs_raw_sqlite``: the same, with the stored events the store
  wrote for each run given to its recorder alone (no call rules, aggregates or mapper):
  what the first ratio would be if the domain cost nothing.
- ``ingest_history_flatness`` / ``ingest_p99_growth``: events/s and the p99 latency of
  one ingest() call with the big history in the tenant ÷ the same with 10,000 calls.
- ``cold_start_ms_*_calls`` / ``rss_mb_*_calls``: a fresh process opens the big tenant
  and commits one run (timed inside the child, imports excluded); its peak RSS.

The big tenant is built ONCE per run of the suite (ingest() of 50 runs per call); the
10,000-call tenant is a copy of it taken on the way, copied afresh for every round. The
four sides (fresh tenant, raw sqlite3, 10k, big) run in every round, in rotated order;
the big tenant stays open across rounds and grows by each round's runs.
"""

from __future__ import annotations

import gc
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.persistence import StoredEvent

from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    median,
    paired_ratio,
    percentile,
    profile,
    rounds,
)
from benchmarks.streams import Files
from domain import Metagraph
from streams import envelope
from streams.persistence import HonkerApplicationRecorder

__all__ = ["HistorySizes", "measure_call_history", "workflow_run"]

ROOT: Final = Path(__file__).resolve().parents[1]
CHILDREN: Final = 9  # per workflow run, under one root call
CALLS_PER_RUN: Final = CHILDREN + 1
EVENTS_PER_RUN: Final = 2 * CALLS_PER_RUN
OPERATIONS: Final = ("db.query", "search.index", "mail.send", "files.store", "ai.summarize")


@dataclass(frozen=True)
class HistorySizes:
    big_calls: int  # calls in the big tenant before the rounds
    small_calls: int  # calls in the small tenant (a copy of the big one, taken on the way)
    runs_per_round: int  # timed ingest() calls per side and round, one run each
    warm_runs: int  # untimed ingest() calls before each side's timed ones
    build_runs_per_ingest: int  # runs per ingest() call while building the big tenant
    cold_runs: int  # fresh processes


FULL: Final = HistorySizes(
    big_calls=1_000_000,
    small_calls=10_000,
    runs_per_round=500,
    warm_runs=3,
    build_runs_per_ingest=50,
    cold_runs=5,
)
QUICK: Final = HistorySizes(
    big_calls=200_000,
    small_calls=10_000,
    runs_per_round=200,
    warm_runs=3,
    build_runs_per_ingest=50,
    cold_runs=3,
)


def size_label(calls: int) -> str:
    """``1_000_000`` -> ``"1m"``, ``10_000`` -> ``"10k"`` (for metric names)."""
    if calls % 1_000_000 == 0:
        return f"{calls // 1_000_000}m"
    if calls % 1000 == 0:
        return f"{calls // 1000}k"
    return str(calls)


# The metric names carry the full run's size, in --quick too (the table notes the size).
BIG: Final = size_label(FULL.big_calls)
SMALL: Final = size_label(FULL.small_calls)


def tenant_env(path: Path) -> dict[str, str]:
    """A tenant file's settings, as ``benchmarks.domain.store_env`` (and DataDirectory)."""
    return {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(path),
        "HONKER_SNAPSHOTS": "latest",
    }


# --------------------------------------------------------------------------- workload


def workflow_run(prefix: str, number: int) -> list[dict[str, Any]]:
    """One workflow run's call protocol events, in delivery order: the root requested,
    its 9 children requested, the children responded, the root responded."""
    root = f"{prefix}-{number:07d}"
    at = 1_795_000_000_000 + 1000 * number
    children = [f"{root}.{i}" for i in range(CHILDREN)]
    events = [
        _event(root, "call.requested", at, {"operationId": "flows.run", "input": {"run": number}})
    ]
    for i, child in enumerate(children):
        requested = {
            "operationId": OPERATIONS[i % len(OPERATIONS)],
            "parentRequestId": root,
            "input": {"query": f"step {i} of {root}", "limit": 10},
        }
        events.append(_event(child, "call.requested", at + 1 + i, requested))
    for i, child in enumerate(children):
        output = {"data": {"ok": True, "items": i}, "meta": {"source": "local"}}
        events.append(_event(child, "call.responded", at + 20 + 7 * i, {"output": output}))
    output = {"data": {"ok": True}, "meta": {"source": "local"}}
    events.append(_event(root, "call.responded", at + 90, {"output": output}))
    return events


def _event(request: str, kind: str, at: int, fields: dict[str, Any]) -> dict[str, Any]:
    suffix = kind.removeprefix("call.")
    return {
        "id": f"{request}/{suffix}",
        "type": kind,
        "at": at,
        "payload": {"requestId": request, **fields},
    }


def _ingest(app: Metagraph, events: list[dict[str, Any]]) -> None:
    from domain.calls import ingest  # noqa: PLC0415 - rewritten concurrently

    report = ingest(app, events)
    if report.applied != len(events):
        raise AssertionError(f"expected every event applied, got {report}")


# ------------------------------------------------------------------------ big tenant


@dataclass(frozen=True)
class CallTenants:
    big: Path
    small: Path  # the big tenant as it was at small_calls (copied afresh each round)
    calls: int
    seconds: float  # building the big tenant (the small copy included)


def copy_tenant(source: Path, target: Path) -> None:
    """A closed tenant file and its WAL (if any) under a new name."""
    for suffix in ("", "-wal"):
        found = source.with_name(source.name + suffix)
        if found.exists():
            shutil.copyfile(found, target.with_name(target.name + suffix))


def _ingest_history(path: Path, runs: range, sizes: HistorySizes, started: float) -> None:
    """``runs`` into the tenant, ``build_runs_per_ingest`` per ingest() call; prints the
    progress every tenth of the big tenant."""
    tenth = max(1, sizes.big_calls // CALLS_PER_RUN // 10)
    with Metagraph(env=tenant_env(path)) as app:
        for first in range(runs.start, runs.stop, sizes.build_runs_per_ingest):
            last = min(runs.stop, first + sizes.build_runs_per_ingest)
            _ingest(app, [e for n in range(first, last) for e in workflow_run("hist", n)])
            if last // tenth != first // tenth:
                seconds = time.perf_counter() - started
                print(f"  {last * CALLS_PER_RUN:,} calls ({seconds:.0f} s)", flush=True)


def build_call_tenants(files: Files, sizes: HistorySizes) -> CallTenants:
    started = time.perf_counter()
    big, small = files.new("tenant-big"), files.new("tenant-small")
    small_runs = sizes.small_calls // CALLS_PER_RUN
    big_runs = sizes.big_calls // CALLS_PER_RUN
    _ingest_history(big, range(small_runs), sizes, started)
    copy_tenant(big, small)
    _ingest_history(big, range(small_runs, big_runs), sizes, started)
    return CallTenants(big, small, big_runs * CALLS_PER_RUN, time.perf_counter() - started)


# ------------------------------------------------------------------ timed ingestion


@dataclass(frozen=True)
class Batches:
    """One side's round: each batch's latency and the whole loop's rate."""

    ms: list[float]
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def ingest_runs(app: Metagraph, prefix: str, sizes: HistorySizes) -> Batches:
    """``warm_runs`` untimed, then ``runs_per_round`` timed ingest() calls of one run each."""
    for n in range(sizes.warm_runs):
        _ingest(app, workflow_run(f"{prefix}-warm", n))
    runs = [workflow_run(prefix, n) for n in range(sizes.runs_per_round)]
    from domain.calls import ingest  # noqa: PLC0415 - rewritten concurrently

    clock = time.perf_counter
    ms: list[float] = []
    gc.collect()
    started = clock()
    for events in runs:
        before = clock()
        ingest(app, events)
        ms.append((clock() - before) * 1000)
    seconds = clock() - started
    return Batches(ms, len(runs) * EVENTS_PER_RUN, seconds)


def ingest_fresh(files: Files, prefix: str, sizes: HistorySizes, copy_of: Path | None) -> Batches:
    """:func:`ingest_runs` into a new tenant file, empty or a copy of ``copy_of``."""
    path = files.new("tenant-bench")
    try:
        if copy_of is not None:
            copy_tenant(copy_of, path)
        with Metagraph(env=tenant_env(path)) as app:
            return ingest_runs(app, prefix, sizes)
    finally:
        Files.remove(path)


# ------------------------------------------------------------------- raw sqlite3

RAW_TABLES: Final = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, key TEXT NOT NULL, payload TEXT NOT NULL)",
    'CREATE TABLE events_index (originator_id BLOB NOT NULL, version INTEGER NOT NULL, "offset" '
    "INTEGER NOT NULL, PRIMARY KEY (originator_id, version)) WITHOUT ROWID",
)
RAW_EVENT: Final = "INSERT INTO events (id, key, payload) VALUES (?, ?, ?)"
RAW_INDEX: Final = "INSERT INTO events_index VALUES (?, ?, ?)"

_Rows = tuple[list[tuple[int, str, str]], list[tuple[bytes, int, int]]]


def _raw_rows(runs: list[list[dict[str, Any]]], payload_bytes: int, first_id: int) -> list[_Rows]:
    """Each run's rows: one event row per call event (its requestId as key, a payload of
    ``payload_bytes``) and its index row (a stream per call: id, version, offset)."""
    rows: list[_Rows] = []
    next_id = first_id
    for events in runs:
        versions: dict[str, int] = {}
        event_rows: list[tuple[int, str, str]] = []
        index_rows: list[tuple[bytes, int, int]] = []
        for event in events:
            key = event["payload"]["requestId"]
            versions[key] = versions.get(key, 0) + 1
            payload = (json.dumps(event) + " " * payload_bytes)[:payload_bytes]
            event_rows.append((next_id, key, payload))
            index_rows.append((uuid5(NAMESPACE_URL, key).bytes, versions[key], next_id))
            next_id += 1
        rows.append((event_rows, index_rows))
    return rows


def raw_sqlite_runs(path: Path, prefix: str, sizes: HistorySizes, payload_bytes: int) -> Batches:
    """The same runs through stdlib sqlite3: one ``BEGIN IMMEDIATE`` transaction per run."""
    warm = [workflow_run(f"{prefix}-warm", n) for n in range(sizes.warm_runs)]
    runs = [workflow_run(prefix, n) for n in range(sizes.runs_per_round)]
    warm_rows = _raw_rows(warm, payload_bytes, 1)
    rows = _raw_rows(runs, payload_bytes, 1 + len(warm) * EVENTS_PER_RUN)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
        connection.execute("PRAGMA synchronous=NORMAL")
        for statement in RAW_TABLES:
            connection.execute(statement)

        def insert(event_rows: list[tuple[int, str, str]], index: list[Any]) -> None:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(RAW_EVENT, event_rows)
            connection.executemany(RAW_INDEX, index)
            connection.execute("COMMIT")

        for event_rows, index_rows in warm_rows:
            insert(event_rows, index_rows)
        clock = time.perf_counter
        ms: list[float] = []
        gc.collect()
        started = clock()
        for event_rows, index_rows in rows:
            before = clock()
            insert(event_rows, index_rows)
            ms.append((clock() - before) * 1000)
        seconds = clock() - started
    finally:
        connection.close()
    return Batches(ms, len(runs) * EVENTS_PER_RUN, seconds)


@dataclass(frozen=True)
class Envelopes:
    """What the store writes for ingested call events."""

    per_call_event: float  # stream entries (envelopes) per call event
    mean_bytes: int  # an envelope's length, UTF-8


def measure_envelopes(files: Files, runs: int = 20) -> Envelopes:
    """Ingest ``runs`` runs into a scratch tenant; its stream entries for them, re-encoded
    with :func:`streams.envelope.encode` (what the recorder stores)."""
    path = files.new("tenant-envelopes")
    try:
        with Metagraph(env=tenant_env(path)) as app:
            _ingest(app, workflow_run("envelopes-warm", 0))
            recorder = app.recorder
            if not isinstance(recorder, HonkerApplicationRecorder):
                raise TypeError(f"expected a HonkerApplicationRecorder, got {type(recorder)}")
            start = (recorder.max_notification_id() or 0) + 1
            for n in range(runs):
                _ingest(app, workflow_run("envelopes", n))
            written = recorder.select_notifications(start, limit=1_000_000)
            tenant, now = recorder.datastore.tenant, time.time_ns() // 1_000_000
            lengths = [
                len(
                    envelope.encode(
                        tenant=tenant,
                        topic=n.topic,
                        originator_id=n.originator_id,
                        originator_version=n.originator_version,
                        time_ms=now,
                        state=n.state,
                    ).encode()
                )
                for n in written
            ]
    finally:
        Files.remove(path)
    return Envelopes(len(lengths) / (runs * EVENTS_PER_RUN), round(median(lengths)))


# ----------------------------------------------------------------------- cold start

# The child: a fresh interpreter opens the big tenant and ingests one run. Timed from
# before the Metagraph is constructed to after ingest() returned (the run committed).
COLD_CHILD: Final = """
import time
started = time.perf_counter()
import json, logging, resource, sys
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from domain import Metagraph
from domain.calls import ingest
imported = time.perf_counter()
args = json.loads(sys.argv[1])
opening = time.perf_counter()
app = Metagraph(env=args["env"])
report = ingest(app, args["events"])
committed = time.perf_counter()
app.close()
print(json.dumps({
    "import_s": imported - started,
    "open_to_commit_ms": (committed - opening) * 1000,
    "applied": report.applied,
    # VmHWM is this process's own peak. ru_maxrss may be the spawning parent's: Python
    # spawns with vfork, and Linux carries the pre-exec peak (the parent's) across exec.
    "vmhwm_mb": next(
        int(line.split()[1]) / 1024
        for line in open("/proc/self/status")
        if line.startswith("VmHWM:")
    ),
    "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@dataclass(frozen=True)
class Cold:
    open_to_commit_ms: float
    import_s: float
    rss_mb: float  # VmHWM
    ru_maxrss_mb: float


def cold_start(path: Path, number: int) -> Cold:
    events = workflow_run("cold", number)
    args = {"env": tenant_env(path), "events": events}
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
    if out["applied"] != len(events):
        raise AssertionError(f"the cold-start process applied {out['applied']} events")
    return Cold(out["open_to_commit_ms"], out["import_s"], out["vmhwm_mb"], out["ru_maxrss_mb"])


# ------------------------------------------------------------------- recorder only


def recorded_runs(files: Files, sizes: HistorySizes) -> list[list[StoredEvent]]:
    """The stored events the store writes for each of ``runs_per_round`` runs (warm runs
    first), read back from a scratch tenant: what one ingest() call of a run commits."""
    path = files.new("tenant-recorded")
    batches: list[list[StoredEvent]] = []
    try:
        with Metagraph(env=tenant_env(path)) as app:
            _ingest(app, workflow_run("recorded-first", 0))  # the call graph, made once
            recorder = app.recorder
            runs = [workflow_run("recorded", n) for n in range(sizes.warm_runs)]
            runs += [
                workflow_run("recorded", sizes.warm_runs + n) for n in range(sizes.runs_per_round)
            ]
            for events in runs:
                start = (recorder.max_notification_id() or 0) + 1
                _ingest(app, events)
                written = recorder.select_notifications(start, limit=1_000_000)
                batches.append(
                    [
                        StoredEvent(
                            originator_id=n.originator_id,
                            originator_version=n.originator_version,
                            topic=n.topic,
                            state=n.state,
                        )
                        for n in written
                    ]
                )
    finally:
        Files.remove(path)
    return batches


def recorder_fresh(files: Files, batches: list[list[StoredEvent]], sizes: HistorySizes) -> Batches:
    """The same rows through the store's recorder alone (``insert_events``, one
    transaction per run) into a fresh tenant: no call rules, aggregates or mapper. What
    ``ingest_batch_vs_raw_sqlite`` would be if those cost nothing."""
    path = files.new("tenant-recorder")
    try:
        with Metagraph(env=tenant_env(path)) as app:
            recorder = app.recorder
            for batch in batches[: sizes.warm_runs]:
                recorder.insert_events(batch)
            clock = time.perf_counter
            ms: list[float] = []
            gc.collect()
            started = clock()
            for batch in batches[sizes.warm_runs :]:
                before = clock()
                recorder.insert_events(batch)
                ms.append((clock() - before) * 1000)
            seconds = clock() - started
    finally:
        Files.remove(path)
    return Batches(ms, sizes.runs_per_round * EVENTS_PER_RUN, seconds)


# ------------------------------------------------------------------------- the case


def raw_fresh(files: Files, prefix: str, sizes: HistorySizes, payload_bytes: int) -> Batches:
    path = files.new("raw-calls")
    try:
        return raw_sqlite_runs(path, prefix, sizes, payload_bytes)
    finally:
        Files.remove(path)


def _open_big(path: Path) -> tuple[Metagraph, float]:
    """The big tenant, opened and loaded (its first ingest() done); the seconds that took."""
    started = time.perf_counter()
    app = Metagraph(env=tenant_env(path))
    _ingest(app, workflow_run("open", 0))
    return app, time.perf_counter() - started


def measure_call_history(report: Report, files: Files, config: RunConfig) -> None:
    sizes = QUICK if config.quick else FULL
    print(f"  building a tenant of {sizes.big_calls:,} calls", flush=True)
    tenants = build_call_tenants(files, sizes)
    envelopes = measure_envelopes(files)
    recorded = recorded_runs(files, sizes)
    big, big_open_s = _open_big(tenants.big)
    try:
        sides: dict[str, Callable[[int], Batches]] = {
            "fresh": lambda r: ingest_fresh(files, f"fresh-r{r}", sizes, None),
            "raw_sqlite": lambda r: raw_fresh(files, f"raw-r{r}", sizes, envelopes.mean_bytes),
            "recorder": lambda _r: recorder_fresh(files, recorded, sizes),
            "small": lambda r: ingest_fresh(files, f"small-r{r}", sizes, tenants.small),
            "big": lambda r: ingest_runs(big, f"big-r{r}", sizes),
        }
        print("  ingest rounds", flush=True)
        figures = rounds(config.repeats, sides)
        if config.profile:
            runs = [workflow_run("profile", n) for n in range(sizes.runs_per_round)]

            def ingest_all() -> None:
                for events in runs:
                    _ingest(big, events)

            profile(f"ingest, one run per call, {tenants.calls:,} calls in the tenant", ingest_all)
    finally:
        big.close()
    print("  cold starts", flush=True)
    cold = [cold_start(tenants.big, n) for n in range(sizes.cold_runs)]
    _report_ingest(report, figures, sizes)
    _report_cold(report, cold, sizes)
    report.add("call_history_calls", tenants.calls)
    report.add("call_history_build_s", tenants.seconds)
    report.raw["call_history"] = {
        "sizes": sizes.__dict__,
        "workload": f"one workflow run per ingest() call: a root call and {CHILDREN} "
        f"children, call.requested + call.responded each ({EVENTS_PER_RUN} events)",
        "build": {
            "calls": tenants.calls,
            "seconds": tenants.seconds,
            "events_per_s": tenants.calls * 2 / tenants.seconds,
            "runs_per_ingest": sizes.build_runs_per_ingest,
        },
        "big_open_s": big_open_s,
        "envelopes": envelopes.__dict__,
        "raw_sqlite": "stdlib sqlite3, WAL, synchronous NORMAL, one BEGIN IMMEDIATE "
        "transaction per run: executemany into events (id INTEGER PRIMARY KEY, key, "
        "payload) and events_index (originator_id BLOB, version, offset; PRIMARY KEY "
        "(originator_id, version) WITHOUT ROWID), one row each per call event (a stream "
        "per call), payloads of envelopes.mean_bytes",
        "recorder": "the stored events the store wrote for each run (read back from a "
        "scratch tenant), given to the recorder's insert_events one run per transaction in "
        "a fresh tenant: the ceiling of ingest_batch_vs_raw_sqlite",
        "rounds": {
            side: {
                "events_per_s": [b.events_per_s for b in runs],
                "p50_ms": [percentile(b.ms, 50) for b in runs],
                "p99_ms": [percentile(b.ms, 99) for b in runs],
                "max_ms": [max(b.ms) for b in runs],
            }
            for side, runs in figures.items()
        },
        "cold": [c.__dict__ for c in cold],
    }


def _report_ingest(report: Report, figures: dict[str, list[Batches]], sizes: HistorySizes) -> None:
    def rates(side: str) -> list[float]:
        return [b.events_per_s for b in figures[side]]

    def pct(side: str, p: float) -> list[float]:
        return [percentile(b.ms, p) for b in figures[side]]

    report.add(
        "ingest_batch_vs_raw_sqlite",
        paired_ratio(rates("fresh"), rates("raw_sqlite")),
        Target(">=", 0.35),
    )
    # What the ratio would be if the call rules, aggregates and mapper cost nothing: the
    # same stored events through the recorder alone (its rows per call event included).
    report.add(
        "ingest_batch_ceiling_vs_raw_sqlite", paired_ratio(rates("recorder"), rates("raw_sqlite"))
    )
    report.add("ingest_batch_events_per_s", median(rates("fresh")))
    report.add("ingest_batch_raw_sqlite_events_per_s", median(rates("raw_sqlite")))
    report.add(
        "ingest_history_flatness",
        paired_ratio(rates("big"), rates("small")),
        Target(">=", 0.8),
    )
    report.add(f"ingest_events_per_s_{SMALL}_calls", median(rates("small")))
    report.add(f"ingest_events_per_s_{BIG}_calls", median(rates("big")))
    report.add("ingest_p99_growth", paired_ratio(pct("big", 99), pct("small", 99)), Target("<=", 2))
    report.add(f"ingest_p50_ms_{SMALL}_calls", median(pct("small", 50)))
    report.add(f"ingest_p99_ms_{SMALL}_calls", median(pct("small", 99)))
    report.add(f"ingest_p50_ms_{BIG}_calls", median(pct("big", 50)))
    report.add(f"ingest_p99_ms_{BIG}_calls", median(pct("big", 99)))
    report.add(f"ingest_max_ms_{BIG}_calls", max(max(b.ms) for b in figures["big"]))
    if sizes.big_calls != FULL.big_calls:
        report.notes.append(
            f"--quick: the *_{BIG}_calls metrics are measured with {sizes.big_calls:,} calls "
            f"in the tenant (the full run: {FULL.big_calls:,})"
        )


def _report_cold(report: Report, cold: list[Cold], sizes: HistorySizes) -> None:
    report.add(
        f"cold_start_ms_{BIG}_calls",
        median([c.open_to_commit_ms for c in cold]),
        Target("<=", 150),
    )
    report.add(f"rss_mb_{BIG}_calls", median([c.rss_mb for c in cold]), Target("<=", 250))
    report.notes.append(
        f"cold_start_ms_{BIG}_calls: a fresh process opens the {sizes.big_calls:,}-call tenant "
        "and ingests one run; Metagraph() -> ingest() returned, imports excluded. "
        f"rss_mb_{BIG}_calls: that process's peak RSS (VmHWM; ru_maxrss can be the parent's)"
    )
