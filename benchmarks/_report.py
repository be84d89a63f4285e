"""What every suite shares: repeated timings, medians, targets, the table and the JSON file.

A suite measures each case beside its baselines in *rounds*: every round runs every side
once, in a rotated order, so slow drift on a noisy machine hits all sides alike. A side's
figure is the median over rounds; a ratio is the median of the per-round ratios (each
taken between runs made seconds apart).

Every JSON file records the commit it was measured on (``commit``: ``git rev-parse
HEAD`` of this checkout, and whether the work tree had changes), so ``python -m
benchmarks stale`` can tell which results predate a change to what they measure. A ratio
states both of its sides (:class:`Side`: what is timed, durability, batch size, indexes)
in the table and in the JSON's ``baselines``.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "Report",
    "RunConfig",
    "Side",
    "Target",
    "file_bytes",
    "git_commit",
    "machine_info",
    "median",
    "paired_ratio",
    "percentile",
    "print_table",
    "profile",
    "rounds",
    "scratch",
    "timed",
    "write_json",
]


@dataclass(frozen=True)
class RunConfig:
    """How the dispatcher asks a suite to run."""

    quick: bool
    repeats: int
    tmp_dir: Path | None = None
    profile: bool = False
    only: frozenset[str] = frozenset()  # the cases to run (a suite that lists them); all if empty

    def runs(self, case: str) -> bool:
        """Whether ``case`` is to run: ``--only`` names it, or ``--only`` was not given."""
        return not self.only or case in self.only


@dataclass(frozen=True)
class Target:
    """A figure a metric should reach: ``value >= threshold`` or ``value <= threshold``."""

    op: Literal[">=", "<="]
    threshold: float

    def met(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Side:
    """One side of a ratio, stated with the figure so a reader can judge the comparison."""

    what: str
    """What is timed, from which moment to which."""
    durability: str
    """``synchronous`` setting (or the transport's acknowledgement) of its commits."""
    batch: str
    """Events (rows) per transaction or per call."""
    indexes: str
    """The indexes (and constraints) its writes maintain."""


@dataclass
class Report:
    """A suite's results: headline metrics, their targets, and the raw figures behind them."""

    suite: str
    config: RunConfig
    metrics: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    baselines: dict[str, dict[str, Side]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def add(self, name: str, value: float, target: Target | None = None) -> None:
        self.metrics[name] = round(float(value), 4)
        if target is not None:
            self.targets[name] = target

    def compare(self, name: str, *, ours: Side, theirs: Side) -> None:
        """State the two sides of the ratio ``name`` (printed and written with it)."""
        self.baselines[name] = {"ours": ours, "theirs": theirs}

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "commit": git_commit(),
            "quick": self.config.quick,
            "repeats": self.config.repeats,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - self.started, 1),
            "metrics": self.metrics,
            "targets": {
                name: {
                    "op": target.op,
                    "threshold": target.threshold,
                    "met": target.met(self.metrics[name]),
                }
                for name, target in self.targets.items()
            },
            "baselines": {
                name: {side: vars(facts) for side, facts in sides.items()}
                for name, sides in self.baselines.items()
            },
            "raw": self.raw,
            "notes": self.notes,
            "machine": machine_info(),
        }


# ------------------------------------------------------------------------------ timing


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes, after a full garbage collection (so none is inherited)."""
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


_T = TypeVar("_T")


def rounds(repeats: int, sides: Mapping[str, Callable[[int], _T]]) -> dict[str, list[_T]]:
    """Run every side once per round, rotating the order; returns each side's figures.

    A side is called with the round number and returns its figure for that round.
    """
    names = list(sides)
    figures: dict[str, list[_T]] = {name: [] for name in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            figures[name].append(sides[name](round_no))
    return figures


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """The median of the per-round ratios ``ours[i] / theirs[i]``."""
    return median([a / b for a, b in zip(ours, theirs, strict=True)])


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def profile(label: str, action: Callable[[], object], top: int = 18) -> str:
    """Run ``action`` under cProfile; print and return the top lines by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(action)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    text = f"--- profile: {label} (sorted by own time) ---\n{out.getvalue()}"
    print(text)
    return text


# ------------------------------------------------------------------------------- files


@contextmanager
def scratch(config: RunConfig, suite: str) -> Iterator[Path]:
    """A directory for a suite's files (under ``--tmp-dir``, else ``$TMPDIR``), removed
    with everything in it when the suite ends."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-{suite}-", dir=config.tmp_dir))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def file_bytes(path: Path) -> int:
    """Bytes of an SQLite file and its WAL, after folding the WAL into the file.

    ``PRAGMA wal_checkpoint(TRUNCATE)`` leaves an empty WAL, so both engines are measured
    the same way whatever their checkpoint settings were; ``-shm`` (an index of the WAL in
    shared memory, not data) is not counted.
    """
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# ------------------------------------------------------------------------------ output


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


REPOSITORY = Path(__file__).resolve().parents[1]


def git_commit() -> dict[str, Any] | None:
    """The checkout's commit (``sha``, ``date``) and whether tracked files had changes
    (``dirty``), the results files aside (a run of several suites writes each in turn);
    None outside a git checkout."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        sha, date = git("log", "-1", "--format=%H %cI").split()
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
        )
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None
    return {"sha": sha, "date": date, "dirty": dirty}


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "stdlib_sqlite": sqlite3.sqlite_version,
        "packages": {name: _version(name) for name in ("honker", "eventsourcing", "msgspec")},
    }


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def print_table(report: Report) -> None:
    """The headline table: every metric, its target and whether it is met."""
    width = max(len(name) for name in report.metrics)
    mode = "quick" if report.config.quick else "full"
    print(f"\n{report.suite} ({mode}, median of {report.config.repeats} rounds)")
    commit = git_commit()
    if commit is not None:
        dirty = " (with uncommitted changes)" if commit["dirty"] else ""
        print(f"measured on commit {commit['sha'][:12]}{dirty}")
    print(f"{'metric':<{width}}  {'value':>12}  {'target':>8}")
    for name, value in report.metrics.items():
        target = report.targets.get(name)
        verdict = "" if target is None else ("  ok" if target.met(value) else "  MISSED")
        print(f"{name:<{width}}  {_fmt(value):>12}  {target or ''!s:>8}{verdict}")
    for name, sides in report.baselines.items():
        for side, facts in sides.items():
            print(
                f"{name} {side}: {facts.what}; durability {facts.durability}; "
                f"batch {facts.batch}; indexes {facts.indexes}"
            )
    for note in report.notes:
        print(f"note: {note}")


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {path}")
