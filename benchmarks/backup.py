"""The ``backup`` suite: an online backup of a data directory (issue 15, docs/backup.md).

The data directory: ``system.db`` and one tenant whose stream holds ``events`` events
(written in batches through the Honker recorder, then checkpointed), the same files for
every side of every round.

- **Backup vs file copy** (``backup_vs_file_copy``): MB/s of :func:`graphstore.backup.
  take_backup` (SQLite's online backup API, the default: snapshot, fsync, SHA-256,
  manifest, rename) ÷ MB/s of a plain copy of the same checkpointed files
  (``shutil.copyfile`` + fsync of each file and of the directory), same rounds.
  ``vacuum_vs_file_copy``: the same with ``VACUUM INTO``; ``backup_nice0_vs_file_copy``:
  the backup API at the caller's CPU priority (the default copies at nice 10).
- **The writer during a backup** (``writer_p99_during_backup_ratio``): a writer process
  ingests workflow runs (one call batch of 13 events per :func:`domain.calls.ingest`)
  into the tenant back to back; each round the p99 of its batch latency while a backup
  runs ÷ the p99 in a quiet window of the same length just before it (each window
  starts a second after the previous backup, past its after-effects). The same for
  ``VACUUM INTO`` (``writer_p99_during_vacuum_ratio``).

README.md says what each metric means.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import Environment

from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    file_bytes,
    median,
    paired_ratio,
    percentile,
    rounds,
    scratch,
)
from benchmarks.streams import ticket_events
from graphstore.backup import take_backup
from graphstore.data import DataDirectory
from streams.persistence import HonkerApplicationRecorder, HonkerFactory
from streams.snapshot import SnapshotMethod, fsync_path

__all__ = ["run"]

TENANT: Final = "acme"
BATCH: Final = 2000
SETTLE_S: Final = 1.0


@dataclass(frozen=True)
class Sizes:
    events: int


FULL_SIZES: Final = Sizes(events=1_000_000)
QUICK_SIZES: Final = Sizes(events=150_000)


# ------------------------------------------------------------------------------ the data


def build(data: Path, events: int) -> int:
    """A data directory with system.db and tenant acme holding ``events`` events; its
    bytes (checkpointed). The events go straight through an application recorder (far
    faster than the domain's commands): a writer, so it builds its own ``HonkerFactory``
    for the recorder; readers open files with ``streams.TenantReader``."""
    directory = DataDirectory(data)
    try:
        directory.identity  # noqa: B018 - creates system.db
    finally:
        directory.close()
    template = ticket_events(BATCH // 5)
    factory = HonkerFactory(Environment("metagraph", directory.tenant_env(TENANT)))
    try:
        recorder = factory.application_recorder()
        assert isinstance(recorder, HonkerApplicationRecorder)
        written = 0
        while written < events:
            batch = _renamed(template)[: events - written]
            recorder.insert_events(batch)
            written += len(batch)
    finally:
        factory.close()
    return sum(file_bytes(p) for p in (directory.system_path, directory.tenant_path(TENANT)))


def _renamed(template: list[StoredEvent]) -> list[StoredEvent]:
    """The template's events under fresh aggregate ids (same versions, states)."""
    ids: dict[Any, Any] = {}
    return [
        StoredEvent(
            originator_id=ids.setdefault(e.originator_id, uuid4()),
            originator_version=e.originator_version,
            topic=e.topic,
            state=e.state,
        )
        for e in template
    ]


def _files(data: Path) -> list[Path]:
    return [data / "system.db", data / f"tenant-{TENANT}.db"]


def _remove(path: Path) -> None:
    if path.exists():
        for child in path.iterdir():
            child.chmod(0o644)
        shutil.rmtree(path)


# ----------------------------------------------------------------- backup vs file copy


def _copy_files(data: Path, dest: Path) -> float:
    _remove(dest)
    start = time.perf_counter()
    dest.mkdir()
    for path in _files(data):
        shutil.copyfile(path, dest / path.name)
        fsync_path(dest / path.name)
    fsync_path(dest)
    fsync_path(dest.parent)
    return time.perf_counter() - start


def _backup(data: Path, dest: Path, method: SnapshotMethod, nice: int = 10) -> float:
    _remove(dest)
    start = time.perf_counter()
    take_backup(data, dest, tenants=[TENANT], method=method, nice=nice)
    return time.perf_counter() - start


def throughput(report: Report, root: Path, data: Path, size: int, config: RunConfig) -> None:
    mb = size / 1e6
    work = root / "out"
    sides: dict[str, Callable[[int], float]] = {
        "file_copy": lambda _r: mb / _copy_files(data, work),
        "backup": lambda _r: mb / _backup(data, work, "backup"),
        "vacuum": lambda _r: mb / _backup(data, work, "vacuum"),
        "backup_nice0": lambda _r: mb / _backup(data, work, "backup", nice=0),
    }
    for side in sides.values():  # warm-up: the page cache
        side(-1)
    figures = rounds(config.repeats, sides)
    _remove(work)
    report.add(
        "backup_vs_file_copy",
        paired_ratio(figures["backup"], figures["file_copy"]),
        Target(">=", 0.5),
    )
    report.add("vacuum_vs_file_copy", paired_ratio(figures["vacuum"], figures["file_copy"]))
    report.add(
        "backup_nice0_vs_file_copy", paired_ratio(figures["backup_nice0"], figures["file_copy"])
    )
    for name, values in figures.items():
        report.add(f"{name}_mb_per_s", median(values))
    report.raw["mb_per_s"] = {k: [round(v, 1) for v in vs] for k, vs in figures.items()}


# --------------------------------------------------------------- the writer's latency


def _writer(data: str, ready: Event, stop: Event, out: Queue[Any]) -> None:
    """Ingest one workflow run per batch, back to back, until ``stop``; put the
    (monotonic end, seconds) of every batch."""
    from domain import Metagraph  # noqa: PLC0415 - in the child process
    from domain.calls import ingest  # noqa: PLC0415

    directory = DataDirectory(data, create=False)
    samples: list[tuple[float, float]] = []
    with Metagraph(env=directory.tenant_env(TENANT)) as app:
        run = 0
        ready.set()
        while not stop.is_set():
            batch = _run_events(run)
            start = time.monotonic()
            ingest(app, batch)
            end = time.monotonic()
            samples.append((end, end - start))
            run += 1
    out.put(samples)


def _run_events(run: int) -> list[dict[str, Any]]:
    """One workflow run: a root call and 5 children, requested and responded."""
    root = f"bench-run-{run}"
    at = 1_800_000_000_000 + run

    def requested(key: str, parent: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"requestId": key, "operationId": "op", "input": {"k": key}}
        if parent is not None:
            payload["parentRequestId"] = parent
        return {"type": "call.requested", "at": at, "payload": payload}

    def responded(key: str) -> dict[str, Any]:
        output = {"data": {"ok": key}, "meta": {"source": "local"}}
        return {
            "type": "call.responded",
            "at": at + 1,
            "payload": {"requestId": key, "output": output},
        }

    children = [f"{root}-{i}" for i in range(5)]
    return [
        requested(root, None),
        *(requested(c, root) for c in children),
        *(responded(c) for c in children),
        responded(root),
    ]


def writer_latency(report: Report, root: Path, data: Path, config: RunConfig) -> None:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    out: Queue[Any] = context.Queue()
    writer = context.Process(target=_writer, args=(str(data), ready, stop, out), daemon=True)
    writer.start()
    methods: tuple[SnapshotMethod, ...] = ("backup", "vacuum")
    windows: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    try:
        if not ready.wait(120):
            raise RuntimeError("the writer process did not start")
        time.sleep(0.5)  # past its first batches
        durations = {}
        for method in methods:  # warm-up: how long each takes
            _remove(root / "during")
            started = time.monotonic()
            take_backup(data, root / "during", tenants=[TENANT], method=method)
            durations[method] = time.monotonic() - started
        for _round in range(config.repeats):
            if not writer.is_alive():
                raise RuntimeError("the writer process died; see its traceback above")
            for method in methods:
                work = root / "during"
                _remove(work)
                time.sleep(SETTLE_S)  # the last backup's after-effects (checkpoint) pass
                quiet_from = time.monotonic()
                time.sleep(durations[method])  # the quiet window: as long as a backup
                start = time.monotonic()
                take_backup(data, work, tenants=[TENANT], method=method)
                end = time.monotonic()
                durations[method] = end - start
                windows[method].append((quiet_from, start, end))
                _remove(work)
    finally:
        stop.set()
        samples: list[tuple[float, float]] = out.get(timeout=120)
        writer.join(timeout=60)
    for name, spans in windows.items():
        during_p99, quiet_p99, ratios = [], [], []
        for quiet_start, start, end in spans:
            during = [s for t, s in samples if start <= t <= end]
            quiet = [s for t, s in samples if quiet_start <= t < start]
            if not during or not quiet:
                continue
            during_p99.append(percentile(during, 99))
            quiet_p99.append(percentile(quiet, 99))
            ratios.append(during_p99[-1] / quiet_p99[-1])
        target = Target("<=", 2) if name == "backup" else None
        report.add(f"writer_p99_during_{name}_ratio", median(ratios), target)
        report.add(f"writer_p99_during_{name}_ms", median(during_p99) * 1000)
        report.add(f"writer_p99_quiet_{name}_ms", median(quiet_p99) * 1000)
        report.raw[f"writer_{name}"] = {
            "during_p99_ms": [round(v * 1000, 2) for v in during_p99],
            "quiet_p99_ms": [round(v * 1000, 2) for v in quiet_p99],
            "batches_per_window": [sum(1 for t, _ in samples if s <= t <= e) for _, s, e in spans],
        }


def run(config: RunConfig) -> Report:
    report = Report("backup", config)
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    with scratch(config, "backup") as root:
        data = root / "data"
        started = time.perf_counter()
        size = build(data, sizes.events)
        report.raw["build_s"] = round(time.perf_counter() - started, 1)
        report.raw["events"] = sizes.events
        report.raw["bytes"] = size
        throughput(report, root, data, size, config)
        writer_latency(report, root, data, config)
    report.notes.append(
        f"{sizes.events:,} events, {size / 1e6:.0f} MB (system.db + one tenant, checkpointed); "
        "MB/s ratios: higher is better; p99 ratios: during a backup ÷ a quiet window of the "
        f"same length just before it (lower is better); cpu_count {os.cpu_count()}"
    )
    return report
