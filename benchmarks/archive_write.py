"""Part of the ``retention`` suite: what one archive write costs as the month grows.

A retention pass that names an archive writes each unit's runs (25) to the month's file
before it deletes them (docs/archive.md). Version 1 of the manifest re-hashed the whole
month file on every write (about 0.4 s at 700 MB); version 2 adds the new rows' hashes to
the file's content digest, so a write should cost the same whatever the month holds.

- ``archive_write_flatness``: runs/s of 25-run writes into a month file holding
  ``large`` runs ÷ into one holding ``small`` runs (1.0: flat), median of the rounds'
  ratios; the two files' sizes are in ``raw``. A round times :data:`WRITES_PER_ROUND`
  writes into each file, alternating: one write takes a few milliseconds, most of it
  an fsync, and a single one per round made the ratio swing with the VM's disk.

The runs are the bundled sample's (``graphstore/samples/workflows.jsonl``), copied under
new ids; every write is fsync'd, as a pass's is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

import msgspec

from benchmarks._report import Report, RunConfig, Target, median
from domain.calls import CallEvent, read_jsonl
from graphstore.archive import Archive, ArchivedRun
from graphstore.retention import BATCH_RUNS
from graphstore.samples import OPERATION_TYPES, WORKFLOWS

__all__ = ["archive_write"]

QUICK: Final = (100, 4000)
FULL: Final = (1000, 100_000)
"""Runs the month file holds before the timed writes: small, large (about 70 MB)."""
BUILD_BATCH: Final = 1000
WRITES_PER_ROUND: Final = 8
"""Timed writes into each month file per round (alternating small and large)."""


def _sample_runs() -> list[ArchivedRun]:
    """The sample's runs (each root's events), as archived runs of one month."""
    events: dict[str, list[CallEvent]] = {}
    for _, event in read_jsonl(WORKFLOWS):
        root = event.payload.request_id.split(".")[0]
        events.setdefault(root, []).append(event)
    last = max(e.at for run in events.values() for e in run)  # one month: the file's
    return [
        ArchivedRun(
            run_id=root,
            org="acme",
            status="completed",
            finished_at=last,
            events=run,
            operation_types=OPERATION_TYPES,
        )
        for root, run in sorted(events.items())
    ]


class _Copies:
    """Fresh copies of the sample's runs, under ids never used before."""

    def __init__(self) -> None:
        self.sample = _sample_runs()
        self.made = 0

    def take(self, count: int) -> list[ArchivedRun]:
        runs = []
        for _ in range(count):
            run = self.sample[self.made % len(self.sample)]
            runs.append(msgspec.structs.replace(run, run_id=f"{run.run_id}~{self.made}"))
            self.made += 1
        return runs


def archive_write(report: Report, root: Path, config: RunConfig) -> None:
    """Build a small and a large month, then time ``BATCH_RUNS``-run writes into each,
    in rounds (small then large, each round)."""
    small, large = QUICK if config.quick else FULL
    copies = _Copies()
    archives = {}
    for name, size in (("small", small), ("large", large)):
        archive = Archive(root / f"archive-{name}")
        for start in range(0, size, BUILD_BATCH):
            archive.write("acme", copies.take(min(BUILD_BATCH, size - start)))
        archives[name] = archive
    rates: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(max(config.repeats, 3)):
        took = dict.fromkeys(archives, 0.0)
        for _ in range(WRITES_PER_ROUND):
            for name, archive in archives.items():
                runs = copies.take(BATCH_RUNS)
                started = time.perf_counter()
                archive.write("acme", runs)
                took[name] += time.perf_counter() - started
        for name, seconds in took.items():
            rates[name].append(WRITES_PER_ROUND * BATCH_RUNS / seconds)
    report.raw["archive_write_runs_per_s"] = {
        k: [round(v, 1) for v in vs] for k, vs in rates.items()
    }
    report.raw["archive_month_bytes"] = {
        name: archive.list("acme")[0].bytes for name, archive in archives.items()
    }
    report.add(
        "archive_write_flatness",
        median([lg / sm for lg, sm in zip(rates["large"], rates["small"], strict=True)]),
        Target(">=", 0.8),
    )
    report.notes.append(
        f"archive writes of {BATCH_RUNS} runs into a month of {small} vs {large} runs, "
        f"{WRITES_PER_ROUND} of each a round"
    )
