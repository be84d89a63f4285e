"""The ``target`` suite: the event target's delivery latency (issue 10, item 1).

- **In-process** (composite mode): ``publish`` in this thread to a subscriber of the same
  target, from the call to the subscriber's receipt (``time.perf_counter_ns``), beside
  the baseline: a plain list of Python callbacks called in a loop (what an in-process
  ``EventTarget`` costs at least).
- **Across processes**: a subscriber in a spawned process receives events published in
  this one, from ``publish`` returning (committed) to its receipt, both stamped with
  ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for all processes on Linux).
  Composite (notify/listen) and durable (a named stream) targets, beside the baseline:
  Honker's own ``db.listen()`` on a plain ``notify`` in the other process.

Every round runs every side on a fresh file; figures are medians over rounds of each
round's percentile. docs/event-target.md says what each metric means.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

from benchmarks._report import Report, RunConfig, Target, median, percentile, rounds, scratch
from streams import EventTarget, TargetEvent

__all__ = ["run"]

PACE_S: Final = (0.002, 0.005)  # cross-process publishes 2-5 ms apart, at random
WARMUP: Final = 10


@dataclass(frozen=True)
class Sizes:
    inprocess: int
    cross: int


FULL_SIZES: Final = Sizes(inprocess=20_000, cross=300)
QUICK_SIZES: Final = Sizes(inprocess=5_000, cross=120)


# ------------------------------------------------------------------------- in-process


def inprocess_target(path: Path, samples: int) -> list[float]:
    """Latencies (us) of a composite target's in-process delivery."""
    received: list[int] = []
    with EventTarget(path, mode="composite") as target:
        target.subscribe("call.responded:*", lambda event: received.append(time.perf_counter_ns()))
        latencies = []
        for i in range(WARMUP + samples):
            start = time.perf_counter_ns()
            target.publish("call.responded:r1", {"i": i})
            latencies.append((received[-1] - start) / 1000)
    return latencies[WARMUP:]


def inprocess_baseline(samples: int) -> list[float]:
    """Latencies (us) of calling a list of callbacks with the same event."""
    received: list[int] = []
    handlers: list[Callable[[TargetEvent], None]] = [
        lambda event: received.append(time.perf_counter_ns())
    ]
    latencies = []
    for i in range(WARMUP + samples):
        start = time.perf_counter_ns()
        event = TargetEvent("call.responded:r1", {"i": i}, None, "origin", 0)
        for handler in handlers:
            handler(event)
        latencies.append((received[-1] - start) / 1000)
    return latencies[WARMUP:]


def inprocess(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    files = iter(range(10_000))
    figures = rounds(
        config.repeats,
        {
            "target": lambda _: inprocess_target(root / f"in-{next(files)}.db", sizes.inprocess),
            "baseline": lambda _: inprocess_baseline(sizes.inprocess),
        },
    )
    p50 = {side: [percentile(r, 50) for r in runs] for side, runs in figures.items()}
    p99 = {side: [percentile(r, 99) for r in runs] for side, runs in figures.items()}
    report.add("event_target_inprocess_p50_us", median(p50["target"]), Target("<=", 50))
    report.add("event_target_inprocess_p99_us", median(p99["target"]))
    report.add("event_target_inprocess_baseline_p50_us", median(p50["baseline"]))
    report.raw["inprocess"] = {"samples": sizes.inprocess, "p50_us": p50, "p99_us": p99}


# ---------------------------------------------------------------------- across processes


def subscriber(path: str, side: str, count: int, ready: Event, out: Queue[Any]) -> None:
    """In a spawned process: receive ``count`` events, stamp each, send the stamps back."""
    import logging  # noqa: PLC0415 - a fresh process: configure before anything logs

    import structlog  # noqa: PLC0415

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    stamps: dict[int, int] = {}
    done = threading.Event()
    try:
        if side == "honker_listen":
            _listen_baseline(path, count, ready, stamps)
            return
        mode = "durable" if side == "durable" else "composite"
        with EventTarget(path, mode=mode) as target:  # type: ignore[arg-type]

            def received(event: TargetEvent) -> None:
                stamps[int(event.detail["i"])] = time.monotonic_ns()
                if len(stamps) >= count:
                    done.set()

            target.subscribe("call.responded:*", received)
            ready.set()
            done.wait(120)
    finally:
        out.put(stamps)


def _listen_baseline(path: str, count: int, ready: Event, stamps: dict[int, int]) -> None:
    import honker  # noqa: PLC0415 - the baseline only: Honker itself

    database = honker.open(path)

    async def follow() -> None:
        listener = database.listen("call.responded:r1")
        ready.set()
        async for notification in listener:
            stamps[int(notification.payload["i"])] = time.monotonic_ns()
            if len(stamps) >= count:
                return

    try:
        asyncio.run(follow())
    finally:
        database.close()


def cross_run(path: Path, side: str, samples: int, rng: random.Random) -> list[float]:
    """One subscriber process, ``samples`` paced publishes; latencies in ms."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    out: Queue[Any] = context.Queue()
    count = WARMUP + samples
    mode = "durable" if side == "durable" else "composite"
    with EventTarget(path, mode=mode) as target:  # type: ignore[arg-type]
        process = context.Process(
            target=subscriber, args=(str(path), side, count, ready, out), daemon=True
        )
        process.start()
        try:
            deadline = time.monotonic() + 60
            while not ready.wait(0.1):
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the subscriber process failed to subscribe (see above)")
            time.sleep(0.2)  # let its watcher settle
            committed: dict[int, int] = {}
            for i in range(count):
                time.sleep(rng.uniform(*PACE_S))
                if side == "honker_listen":
                    with target.datastore.transaction() as tx:
                        tx.query("SELECT notify(?, ?)", ["call.responded:r1", f'{{"i": {i}}}'])
                else:
                    target.publish("call.responded:r1", {"i": i})
                committed[i] = time.monotonic_ns()
            stamps: dict[int, int] = out.get(timeout=60)
        finally:
            process.join(30)
            if process.is_alive():
                process.terminate()
    if len(stamps) != count:
        raise AssertionError(f"{side}: the subscriber received {len(stamps)} of {count}")
    return [(stamps[i] - committed[i]) / 1e6 for i in range(WARMUP, count)]


def cross(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    rng = random.Random(20261210)
    files = iter(range(10_000))
    sides = ("composite", "durable", "honker_listen")

    def side_run(side: str) -> Callable[[int], list[float]]:
        return lambda _: cross_run(root / f"cross-{next(files)}.db", side, sizes.cross, rng)

    figures = rounds(config.repeats, {side: side_run(side) for side in sides})
    p50 = {side: [percentile(r, 50) for r in runs] for side, runs in figures.items()}
    p99 = {side: [percentile(r, 99) for r in runs] for side, runs in figures.items()}
    report.add("event_target_cross_p50_ms", median(p50["composite"]), Target("<=", 2))
    report.add("event_target_cross_p99_ms", median(p99["composite"]))
    report.add("event_target_cross_durable_p50_ms", median(p50["durable"]))
    report.add("event_target_cross_durable_p99_ms", median(p99["durable"]))
    report.add("honker_listen_cross_p50_ms", median(p50["honker_listen"]))
    report.add("honker_listen_cross_p99_ms", median(p99["honker_listen"]))
    report.raw["cross"] = {
        "samples_per_run": sizes.cross,
        "pace_ms": [x * 1000 for x in PACE_S],
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": {side: max(max(r) for r in runs) for side, runs in figures.items()},
    }


def run(config: RunConfig) -> Report:
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    report = Report("target", config)
    with scratch(config, "target") as root:
        inprocess(report, root, sizes, config)
        cross(report, root, sizes, config)
    report.notes.append(
        "in-process: composite target, publish() call -> the subscriber's receipt, in the "
        "publisher's thread (the Honker write follows the dispatch); cross: publish() "
        "returned (committed) -> receipt in a spawned process; composite and honker_listen "
        "use notify/listen, durable a named stream"
    )
    return report
