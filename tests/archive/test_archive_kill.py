"""kill -9 during :meth:`Archive.write` and :meth:`Archive.forget` (real processes, the
phase helper tests/_kill.py): the archive stays valid, each run is fully there or absent,
and running the write again completes it exactly once (issue 16 items 4 and 7)."""

from __future__ import annotations

import random
import sqlite3
import sys
from itertools import count
from pathlib import Path

import msgspec

from graphstore.archive import Archive, ArchivedRun
from tests._kill import PHASES, Coverage, Landing, PhasedProcess, aims, kill_series
from tests.archive.conftest import Sample

ROOT = Path(__file__).resolve().parents[2]
MONTH = 31 * 86_400_000


def _batches(sample: Sample) -> list[list[ArchivedRun]]:
    """Five writes of three runs, each spanning two months (two files per write)."""
    runs = sample.runs[:15]
    moved = [
        msgspec.structs.replace(run, finished_at=run.finished_at + MONTH) if i % 2 else run
        for i, run in enumerate(runs)
    ]
    return [moved[i : i + 3] for i in range(0, 15, 3)]


def _worker(action: str, root: Path, runs: Path, tmp: Path) -> PhasedProcess:
    return PhasedProcess(
        [sys.executable, "-m", "tests.archive._worker", action, str(root), str(runs)],
        cwd=ROOT,
        env={**__import__("os").environ},
        stderr=tmp / "worker.err",
    )


def _rows(root: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(root.glob("acme/*.sqlite")):
        db = sqlite3.connect(path)
        ids += [row[0] for row in db.execute("SELECT run_id FROM runs")]
        db.close()
    return ids


def test_kill_during_archive_write_leaves_every_run_whole_or_absent(
    sample: Sample, tmp_path: Path
) -> None:
    batches = _batches(sample)
    runs_file = tmp_path / "runs.json"
    runs_file.write_bytes(msgspec.json.encode(batches))
    roots = (tmp_path / f"archive-{n}" for n in count())
    current: list[Path] = []

    def start() -> PhasedProcess:
        current.append(next(roots))
        return _worker("write", current[-1], runs_file, tmp_path)

    def check(landing: Landing) -> None:
        archive = Archive(current[-1])
        if landing.phase in ("built", "commit", "committed") and landing.held:
            assert any(f.pending for f in archive.list()), "killed mid-write: marked pending"
        assert archive.verify() == [], landing
        for index, batch in enumerate(batches):
            unit = f"w{index}"
            for run in batch:
                found = archive.find("acme", run.run_id)
                assert found is None or found == run, (landing, run.run_id)  # whole or absent
                if unit in landing.acked:
                    assert found == run, (landing, run.run_id)
                elif unit not in landing.started:
                    assert found is None, (landing, run.run_id)
                elif unit == landing.unit:
                    outcome = landing.outcome(f"{run.period}.sqlite")
                    if outcome != "either":
                        assert (found is not None) == (outcome == "committed"), (landing, run)
        for batch in batches:  # the retention pass runs again: exactly once
            archive.write("acme", batch)
        everything = [run for batch in batches for run in batch]
        assert sorted(_rows(current[-1])) == sorted(run.run_id for run in everything)
        assert all(archive.find("acme", run.run_id) == run for run in everything)
        assert archive.verify() == [] and not any(f.pending for f in archive.list())

    rng = random.Random(16)
    kill_series(start, check, aims(rng, PHASES, 8, after=2), rng, Coverage())


def test_kill_during_archive_forget_leaves_every_run_whole_or_gone(
    sample: Sample, tmp_path: Path
) -> None:
    runs = sample.runs[:4]
    runs_file = tmp_path / "runs.json"
    runs_file.write_bytes(msgspec.json.encode([runs]))
    roots = (tmp_path / f"archive-{n}" for n in count())
    current: list[Path] = []

    def start() -> PhasedProcess:
        current.append(next(roots))
        Archive(current[-1]).write("acme", sample.runs[:8])
        return _worker("forget", current[-1], runs_file, tmp_path)

    def check(landing: Landing) -> None:
        archive = Archive(current[-1])
        assert archive.verify() == [], landing
        for run in runs:
            found = archive.find("acme", run.run_id)
            assert found is None or found == run, (landing, run.run_id)
            if run.run_id in landing.acked:
                assert found is None, (landing, run.run_id)
            elif run.run_id not in landing.started:
                assert found == run, (landing, run.run_id)
            elif run.run_id == landing.unit and landing.outcome() != "either":
                assert (found is None) == (landing.outcome() == "committed"), landing
        for run in runs:  # the erasure runs again: every one gone, the others kept
            archive.forget("acme", run.run_id)
        assert sorted(_rows(current[-1])) == sorted(r.run_id for r in sample.runs[4:8])
        assert archive.verify() == [] and not any(f.pending for f in archive.list())

    rng = random.Random(6)
    kill_series(start, check, aims(rng, PHASES, 6, after=2), rng, Coverage())
