"""The ``retention`` suite: retiring finished runs (issue 16, docs/retention.md).

Every tenant here is a real data directory: workflow runs of 6 calls (a root and 5
children, requested and responded: 12 call events) ingested through
:func:`domain.calls.ingest`, the flowgraph and metagraph views caught up, and a policy
set; a pass is :func:`graphstore.retention.run_pass` (choose from the views, check in
the write model, retire in units of 25 runs, catch the views up, reclaim the pages).

- ``retire_vs_ingest``: runs/s retired by one pass ÷ runs/s ingested (one run per
  batch), the same runs, same round.
- ``file_after_retiring_90pct``: tenant file bytes (WAL folded in) after a pass that
  retires 90% of the runs ÷ before it.
- ``retention_pass_flatness``: runs/s of a pass retiring the same number of runs when
  the tenant holds a large history ÷ when it holds a small one (1.0: the cost does not
  grow with history), both files in the page cache (:func:`_cache`).
- ``retention_pass_flatness_cold`` (no target): the same with neither file's pages in
  the page cache, as after the machine needed the memory: the pass reads the old runs'
  pages from the disk.
- ``writer_p99_during_retention_ratio``: a writer process ingests runs back to back
  while another keeps the views caught up (as ``graphstore serve``'s runner does); the
  p99 of the writer's batch latency while a pass runs ÷ in a quiet window of the same
  length just before.

README.md and docs/retention.md say what each metric means.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final, TypeVar

from eventsourcing.persistence import OperationalError

from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    file_bytes,
    median,
    percentile,
    scratch,
)
from benchmarks.archive_write import archive_write
from domain import Metagraph
from domain.calls import ingest
from domain.retention import MAX_DURATION_S, RetentionPolicy
from graphstore.data import DataDirectory
from graphstore.retention import run_pass, set_policy
from projections import Flowgraph, FlowgraphProjection, MetagraphProjection, Projector
from streams.retirement import reclaim

__all__ = ["run"]

TENANT: Final = "acme"
OLD_MS: Final = 1_700_000_000_000
CALLS_PER_RUN: Final = 6
FOLLOW_S: Final = 0.05
"""The projection follower's pause between catch-ups (writer_latency)."""
BULK_RUNS: Final = 500
"""Runs per ingest batch when building a history only to retire from it."""
BUSY_TRIES: Final = 20
"""Tries of a step that finds the file busy (each after the busy timeout) before the
benchmark stops with the last error: a file held for good ends the run, not spins it."""
VIEW_EXIT_S: Final = 600.0
"""How long the build waits for a view's process to finish before it stops it."""

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    runs: int  # retire_vs_ingest and the file size
    small: int  # flatness: runs of history, small
    large: int  # flatness: runs of history, large
    retire: int  # flatness and writer: runs retired per pass
    writer_history: int


# flatness at 10k vs 1M calls of history (1,667 vs 166,667 runs of 6 calls)
FULL_SIZES: Final = Sizes(runs=2000, small=1667, large=166_667, retire=1000, writer_history=4000)
QUICK_SIZES: Final = Sizes(runs=400, small=170, large=1000, retire=50, writer_history=400)


def run_events(run: int, at: int = OLD_MS) -> list[dict[str, Any]]:
    """One workflow run: a root call and 5 children, requested and responded."""
    root = f"run-{run}"

    def requested(key: str, parent: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"requestId": key, "operationId": "op", "input": {"k": key}}
        if parent is not None:
            payload["parentRequestId"] = parent
        return {"type": "call.requested", "at": at + run, "payload": payload}

    def responded(key: str) -> dict[str, Any]:
        output = {"data": {"ok": key}, "meta": {"source": "local"}}
        return {
            "type": "call.responded",
            "at": at + run + 1,
            "payload": {"requestId": key, "output": output},
        }

    children = [f"{root}-{i}" for i in range(CALLS_PER_RUN - 1)]
    return [
        requested(root, None),
        *(requested(c, root) for c in children),
        *(responded(c) for c in children),
        responded(root),
    ]


def _env(data: Path) -> dict[str, str]:
    return DataDirectory(data).tenant_env(TENANT)


def _settle() -> None:
    """Flush what earlier work left in the kernel's page cache before a timed phase.
    Building a 1M-call history leaves gigabytes of dirty pages that the kernel writes out
    for minutes after; a pass timed meanwhile would pay for the build's I/O (and a copied
    small history for its copy's), a cost that is not the pass's own. Each phase still
    pays for its own writes and fsyncs."""
    os.sync()


def _catch_up(env: dict[str, str]) -> None:
    for projection in (MetagraphProjection(), FlowgraphProjection()):
        with Projector.open(env, projection) as projector:
            projector.catch_up()


def build(
    data: Path, runs: int, *, one_per_batch: bool = False, first: int = 0, per_batch: int = 100
) -> float:
    """Tenant ``acme`` with ``runs`` old runs (``first``...), views caught up; the
    seconds the ingestion took (one run per batch, or ``per_batch``)."""
    DataDirectory(data).create_tenant_file(TENANT)
    env = _env(data)
    with Metagraph(env=env) as app:
        reclaim(app.recorder.datastore)  # type: ignore[attr-defined]  # auto_vacuum, once
        per = 1 if one_per_batch else per_batch
        _settle()
        started = time.perf_counter()
        for start in range(first, first + runs, per):
            batch = [e for r in range(start, min(start + per, first + runs)) for e in run_events(r)]
            ingest(app, batch)
        took = time.perf_counter() - started
    _catch_up(env)
    return took


def _project(data: str, which: int, stop: Event) -> None:
    """Keep one of the tenant's views caught up until ``stop``, then to the head. A busy
    file (the builder's batches hold the write lock) is retried, as a runner would."""
    projection = (MetagraphProjection, FlowgraphProjection)[which]()
    with Projector.open(_env(Path(data)), projection) as projector:
        while True:
            stopping = stop.is_set()
            applied = _busy_retried(projector.catch_up)
            if stopping and not applied:
                return
            if not applied:
                time.sleep(FOLLOW_S)


def _busy_retried(step: Callable[[], T]) -> T:
    """``step()``, tried again while it finds the file busy (nothing was committed),
    at most :data:`BUSY_TRIES` times in all."""
    for _ in range(BUSY_TRIES - 1):
        try:
            return step()
        except OperationalError:  # another process's step held the file past the timeout
            time.sleep(FOLLOW_S)
    return step()


def build_following(data: Path, runs: int, *, per_batch: int = BULK_RUNS) -> float:
    """As :func:`build` (the same tenant, event for event), with each view built by a
    process of its own while the runs are ingested, as ``graphstore serve``'s runner
    keeps them: the history's CPU spread over the machine's cores. A batch that finds the
    file busy past the busy timeout is tried again, as the views' steps are. Its seconds,
    all in."""
    started = time.perf_counter()
    DataDirectory(data).create_tenant_file(TENANT)
    env = _env(data)
    with Metagraph(env=env) as app:
        reclaim(app.recorder.datastore)  # type: ignore[attr-defined]  # auto_vacuum, once
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        views = [
            context.Process(target=_project, args=(str(data), which, stop), daemon=True)
            for which in (0, 1)
        ]
        for process in views:
            process.start()
        try:
            for start in range(0, runs, per_batch):
                batch = [
                    e for r in range(start, min(start + per_batch, runs)) for e in run_events(r)
                ]
                _busy_retried(functools.partial(ingest, app, batch))
        finally:
            stop.set()
            for process in views:
                process.join(VIEW_EXIT_S)
                if process.is_alive():
                    process.kill()
                    process.join()
    _catch_up(env)  # nothing left, unless a view's process failed: then it is built here
    return time.perf_counter() - started


def _cache(data: Path, *, warm: bool) -> None:
    """Put the tenant's files (the database, its WAL) in the page cache (``warm``: read
    through), or out of it (written out, then dropped with ``POSIX_FADV_DONTNEED``).

    The state is set, not left to chance: the VM's host pages out what was not touched
    for a minute (a DAMON ``pageout`` scheme), so a large history built over minutes
    is partly on disk and a small one copied just before is all in memory, and a
    ratio of the two would measure that. A server with memory to spare keeps its
    tenant files cached (``warm``); ``cold`` is one that needed the memory meanwhile."""
    files = [f for f in data.iterdir() if f.is_file() and not f.name.endswith("-shm")]
    if not warm:
        os.sync()
    for path in files:
        with path.open("rb") as file:
            if warm:
                while file.read(1 << 20):
                    pass
            else:
                os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def retire(data: Path, runs: int, *, warm: bool = True) -> tuple[float, int]:
    """One pass retiring the oldest ``runs`` finished runs, the tenant's files in the page
    cache or not (:func:`_cache`); (seconds, runs retired)."""
    env = _env(data)
    with Metagraph(env=env) as app, Flowgraph.open(env) as views:
        keep = views.count_runs(("completed", "failed", "aborted")) - runs
        set_policy(app, RetentionPolicy(finished_older_than_s=MAX_DURATION_S, keep_at_most=keep))
        _settle()
        _cache(data, warm=warm)
        started = time.perf_counter()
        report = run_pass(app, views, TENANT)
        return time.perf_counter() - started, len(report.runs)


def retire_vs_ingest(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    ratios, sizes_ratio = [], []
    for i in range(config.repeats):
        data = root / f"rvi-{i}"
        ingest_s = build(data, sizes.runs, one_per_batch=True)
        path = DataDirectory(data).tenant_path(TENANT)
        before = file_bytes(path)
        retire_s, retired = retire(data, sizes.runs - sizes.runs // 10)
        after = file_bytes(path)
        ratios.append((retired / retire_s) / (sizes.runs / ingest_s))
        sizes_ratio.append(after / before)
        report.raw.setdefault("ingest_runs_per_s", []).append(round(sizes.runs / ingest_s, 1))
        report.raw.setdefault("retire_runs_per_s", []).append(round(retired / retire_s, 1))
        report.raw.setdefault("file_bytes_before_after", []).append([before, after])
    report.add("retire_vs_ingest", median(ratios), Target(">=", 0.5))
    report.add("file_after_retiring_90pct", median(sizes_ratio), Target("<=", 0.15))


def flatness(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    """Each history is built once (:func:`build_following`: runs ingested
    :data:`BULK_RUNS` per batch while a process per view keeps it caught up). The small
    one is copied for every pass (a pass retires most of it); the large one is retired
    from pass after pass: each takes ``sizes.retire`` more of its oldest runs, so its
    history shrinks by under 1% a pass (FULL sizes) and stays large. A round is a pass
    on each, files cached; ``2 * repeats - 1`` rounds (a pass is short and varies most:
    the median of more), the first ``repeats`` of them followed by a pass on each with
    neither file cached."""
    rates: dict[str, list[float]] = {"small": [], "large": [], "small_cold": [], "large_cold": []}
    small, large = root / "flat-small", root / "flat-large"
    report.raw["flatness_build_s"] = [
        round(build_following(small, sizes.small), 1),
        round(build_following(large, sizes.large), 1),
    ]

    def rate(of: Path, *, warm: bool) -> float:
        data = of
        if of == small:
            data = root / "flat-small-copy"
            shutil.copytree(small, data)
        took, retired = retire(data, sizes.retire, warm=warm)
        if data != of:
            shutil.rmtree(data)
        return retired / took

    for i in range(2 * config.repeats - 1):
        rates["small"].append(rate(small, warm=True))
        rates["large"].append(rate(large, warm=True))
        if i < config.repeats:
            rates["small_cold"].append(rate(small, warm=False))
            rates["large_cold"].append(rate(large, warm=False))
    report.raw["flatness_runs_per_s"] = {k: [round(v, 1) for v in vs] for k, vs in rates.items()}
    for name, suffix, target in (
        ("retention_pass_flatness", "", Target(">=", 0.8)),
        ("retention_pass_flatness_cold", "_cold", None),
    ):
        pairs = zip(rates["large" + suffix], rates["small" + suffix], strict=True)
        report.add(name, median([lg / sm for lg, sm in pairs]), target)


def _writer(data: str, ready: Event, stop: Event, out: Queue[Any]) -> None:
    """Ingest one new run per batch, back to back, until ``stop``; put (end, seconds)."""
    samples: list[tuple[float, float]] = []
    with Metagraph(env=_env(Path(data))) as app:
        run = 10_000_000
        ready.set()
        while not stop.is_set():
            batch = run_events(run, at=int(time.time() * 1000))
            start = time.monotonic()
            ingest(app, batch)
            end = time.monotonic()
            samples.append((end, end - start))
            run += 1
    out.put(samples)


def _follower(data: str, stop: Event) -> None:
    """Keep the tenant's views caught up until ``stop``, as ``graphstore serve``'s
    projection runner does beside the writers."""
    env = _env(Path(data))
    # Opened once and kept, as the runner keeps its projectors: reopening them on every
    # catch-up would run their DDL each time and slow the quiet window's writer too.
    with (
        Projector.open(env, MetagraphProjection()) as metagraph,
        Projector.open(env, FlowgraphProjection()) as flowgraph,
    ):
        while not stop.is_set():
            metagraph.catch_up()
            flowgraph.catch_up()
            time.sleep(FOLLOW_S)


def writer_latency(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    data = root / "writer"
    build(data, sizes.writer_history)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    out: Queue[Any] = context.Queue()
    writer = context.Process(target=_writer, args=(str(data), ready, stop, out), daemon=True)
    writer.start()
    follower = context.Process(target=_follower, args=(str(data), stop), daemon=True)
    follower.start()
    spans: list[tuple[float, float, float]] = []
    env = _env(data)
    try:
        if not ready.wait(120):
            raise RuntimeError("the writer process did not start")
        time.sleep(0.5)
        took = 0.5
        with Metagraph(env=env) as app, Flowgraph.open(env) as views:
            for _round in range(config.repeats):
                _catch_up(env)
                keep = views.count_runs(("completed", "failed", "aborted")) - sizes.retire
                set_policy(
                    app, RetentionPolicy(finished_older_than_s=MAX_DURATION_S, keep_at_most=keep)
                )
                time.sleep(0.5)  # past the catch-up's and the policy's writes
                quiet_from = time.monotonic()
                time.sleep(took)
                start = time.monotonic()
                run_pass(app, views, TENANT)  # only the pass is in the window
                end = time.monotonic()
                took = end - start
                spans.append((quiet_from, start, end))
    finally:
        stop.set()
        samples: list[tuple[float, float]] = out.get(timeout=120)
        writer.join(timeout=60)
        follower.join(timeout=60)
    ratios, during_p99, quiet_p99 = [], [], []
    for quiet_start, start, end in spans:
        during = [s for t, s in samples if start <= t <= end]
        quiet = [s for t, s in samples if quiet_start <= t < start]
        if during and quiet:
            during_p99.append(percentile(during, 99))
            quiet_p99.append(percentile(quiet, 99))
            ratios.append(during_p99[-1] / quiet_p99[-1])
    report.add("writer_p99_during_retention_ratio", median(ratios), Target("<=", 2))
    report.add("writer_p99_during_retention_ms", median(during_p99) * 1000)
    report.add("writer_p99_quiet_retention_ms", median(quiet_p99) * 1000)


def run(config: RunConfig) -> Report:
    report = Report("retention", config)
    sizes = QUICK_SIZES if config.quick else FULL_SIZES

    def archive(report: Report, root: Path, _sizes: Sizes, config: RunConfig) -> None:
        archive_write(report, root, config)

    cases: dict[str, Callable[[Report, Path, Sizes, RunConfig], None]] = {
        "retire_vs_ingest": retire_vs_ingest,
        "flatness": flatness,
        "writer": writer_latency,
        "archive_write": archive,
    }
    with scratch(config, "retention") as root:
        for case, measure in cases.items():
            if config.runs(case):  # --only (e.g. `--only flatness`)
                measure(report, root, sizes, config)
    report.notes.append(
        f"runs of {CALLS_PER_RUN} calls; {sizes.runs} runs for retire_vs_ingest and the "
        f"file size (90% retired); flatness: {sizes.retire} runs retired at "
        f"{sizes.small * CALLS_PER_RUN:,} vs {sizes.large * CALLS_PER_RUN:,} calls of history; "
        f"writer: {sizes.retire} runs per pass over {sizes.writer_history} runs; "
        f"cpu_count {os.cpu_count()}"
    )
    return report
