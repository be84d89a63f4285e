"""The archive on real files: write, find, list, verify, forget, and restore (issue 16
item 4)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

import graphstore
from domain.calls import call_event
from domain.errors import ConflictError, NotFoundError, ValidationError
from graphstore.archive import (
    MANIFEST,
    Archive,
    ArchiveCorruptError,
    ArchivedRun,
    archived_run,
    content_digest,
    restore_run,
)
from graphstore.operations.ingest import ingest_calls
from tests.archive.conftest import Sample, make_tenant

DAY = 86_400_000


def _moved(run: ArchivedRun, months: int) -> ArchivedRun:
    return msgspec.structs.replace(run, finished_at=run.finished_at + months * 31 * DAY)


def test_a_written_run_is_found_as_it_was_and_holds_what_runs_export_writes(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    reference = archive.write("acme", sample.runs)
    assert reference == "acme/2026-11.sqlite"
    for run in sample.runs:
        assert archive.find("acme", run.run_id) == run
    command = ["runs", "export", "run-004", "--tenant", "acme"]
    exported = subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(sample.data), *command],
        capture_output=True,
        check=True,
    ).stdout
    found = archive.find("acme", "run-004")
    assert found is not None and found.status == "failed"
    assert b"".join(msgspec.json.encode(e) + b"\n" for e in found.events) == exported
    watched = archive.find("acme", "run-039")  # a run with a subscription: ingest must know
    assert watched is not None and watched.operation_types["feed.watch"] == "subscription"
    assert archive.find("acme", "run-999") is None
    assert archive.find("beta", "run-004") is None  # another tenant's archive


def test_a_write_is_idempotent_by_run_id_and_changes_nothing_the_second_time(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs[:10])
    manifest = (tmp_path / "archive" / MANIFEST).read_bytes()
    file = (tmp_path / "archive" / "acme" / "2026-11.sqlite").read_bytes()
    assert archive.write("acme", sample.runs[:10] + sample.runs[:3]) == "acme/2026-11.sqlite"
    assert (tmp_path / "archive" / MANIFEST).read_bytes() == manifest
    assert (tmp_path / "archive" / "acme" / "2026-11.sqlite").read_bytes() == file
    archive.write("acme", sample.runs[5:15])  # half there already: the new half added
    [listed] = archive.list("acme")
    assert listed.runs == 15 and not listed.pending


def test_runs_go_to_the_file_of_their_tenant_and_month(sample: Sample, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    runs = [sample.runs[0], _moved(sample.runs[1], 1), _moved(sample.runs[2], 2)]
    assert archive.write("acme", runs) == (
        "acme/2026-11.sqlite,acme/2026-12.sqlite,acme/2027-01.sqlite"
    )
    beta = msgspec.structs.replace(sample.runs[3], org="beta")
    assert archive.write("beta", [beta]) == "beta/2026-11.sqlite"
    listed = archive.list()
    assert [(f.org, f.period, f.runs) for f in listed] == [
        ("acme", "2026-11", 1),
        ("acme", "2026-12", 1),
        ("acme", "2027-01", 1),
        ("beta", "2026-11", 1),
    ]
    assert [f.path for f in archive.list("beta")] == ["beta/2026-11.sqlite"]
    for entry in listed:
        path = tmp_path / "archive" / entry.path
        assert entry.bytes == path.stat().st_size
        assert entry.digest == _digest(path) and entry.sha256 == ""
    assert archive.find("acme", runs[2].run_id) == runs[2]
    assert archive.verify() == []


def test_a_file_describes_itself_to_any_sqlite_client(sample: Sample, tmp_path: Path) -> None:
    Archive(tmp_path / "archive").write("acme", sample.runs[:2])
    db = sqlite3.connect(tmp_path / "archive" / "acme" / "2026-11.sqlite")
    meta = dict(db.execute("SELECT key, value FROM archive_format").fetchall())
    assert meta["format"] == "graphstore-archive" and meta["org"] == "acme"
    assert "zlib" in meta["codec"] and "runs" in meta["description"]
    body = db.execute("SELECT body FROM runs WHERE run_id = ?", (sample.runs[0].run_id,))
    decoded = json.loads(zlib.decompress(body.fetchone()[0]))
    assert decoded["run_id"] == sample.runs[0].run_id and decoded["events"]
    db.close()


def test_a_run_of_another_tenant_or_no_run_is_refused_and_nothing_is_written(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    with pytest.raises(ValidationError, match="belongs to tenant 'acme', not 'beta'"):
        archive.write("beta", sample.runs[:2])
    with pytest.raises(ValidationError, match="no runs"):
        archive.write("acme", [])
    with pytest.raises(ValidationError, match="org id"):
        archive.write("../x", sample.runs[:1])
    assert not (tmp_path / "archive").exists()


def test_forget_erases_the_runs_bytes_from_its_file_and_the_manifest_follows(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs)
    path = tmp_path / "archive" / "acme" / "2026-11.sqlite"
    db = sqlite3.connect(path)
    [(body,)] = db.execute("SELECT body FROM runs WHERE run_id = 'run-007'").fetchall()
    db.close()
    assert body in path.read_bytes()
    assert archive.forget("acme", "run-007") is True
    assert body not in path.read_bytes()  # rewritten: not a free page, gone
    assert not list(path.parent.glob("*-journal"))
    assert archive.find("acme", "run-007") is None
    [entry] = archive.list("acme")
    assert entry.runs == len(sample.runs) - 1 and entry.digest == _digest(path)
    assert archive.verify() == []
    assert archive.forget("acme", "run-007") is False
    assert archive.forget("beta", "run-008") is False


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove", "manifest"])
def test_a_damaged_file_is_named_by_verify_and_refused_by_find(
    sample: Sample, tmp_path: Path, damage: str
) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs)
    path = tmp_path / "archive" / "acme" / "2026-11.sqlite"
    data = bytearray(path.read_bytes())
    if damage == "flip":  # a byte inside the last run's body
        data[-200] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "remove":
        path.unlink()
    else:
        (tmp_path / "archive" / MANIFEST).write_text("{not json")
    problems = archive.verify()
    assert problems, damage
    assert problems[0].path == (MANIFEST if damage == "manifest" else "acme/2026-11.sqlite")
    if damage == "flip":
        assert "SHA-256" in problems[0].problem
    if damage == "truncate":
        assert "truncated" in problems[0].problem
    with pytest.raises(ArchiveCorruptError, match="archive verify"):
        for run in sample.runs:
            archive.find("acme", run.run_id)


def test_a_lookup_while_another_process_writes_the_same_file_is_never_damage(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs[:1])
    runs_file = tmp_path / "runs.json"
    runs_file.write_bytes(msgspec.json.encode([[run] for run in sample.runs[1:]]))
    argv = ["-m", "tests.archive._worker", "write-quiet", str(tmp_path / "archive"), str(runs_file)]
    writer = subprocess.Popen([sys.executable, *argv], cwd=Path(__file__).resolve().parents[2])
    lookups = 0
    try:
        while writer.poll() is None:
            assert archive.find("acme", sample.runs[0].run_id) == sample.runs[0]
            if lookups % 10 == 0:
                assert archive.verify() == []
            lookups += 1
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and lookups > 5
    assert [f.runs for f in archive.list()] == [len(sample.runs)]
    # the race made certain: a lookup that read the manifest before a write changed the file
    [stale] = archive.list("acme")
    archive.forget("acme", sample.runs[-1].run_id)
    row = archive._row(stale, sample.runs[0].run_id, whole_file=True)
    assert row is not None


def test_a_file_not_in_the_manifest_is_a_problem(sample: Sample, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs[:1])
    shutil.copy(tmp_path / "archive/acme/2026-11.sqlite", tmp_path / "archive/acme/2026-10.sqlite")
    [problem] = archive.verify()
    assert problem.path == "acme/2026-10.sqlite" and "not in the manifest" in problem.problem


def test_a_run_in_flight_is_not_archived(tmp_path: Path) -> None:
    make_tenant(tmp_path / "data", ingest=False)
    with graphstore.open(tmp_path / "data") as store:
        acme = store.tenant("acme")
        requested = call_event(
            "call.requested",
            {"requestId": "r1", "operationId": "flows.run", "input": {}},
            at=1_795_000_000_000,
        )
        ingest_calls(acme, [requested], source="test")
        with pytest.raises(ConflictError, match="not finished"):
            archived_run(acme, "r1", org="acme")
        with pytest.raises(NotFoundError):
            archived_run(acme, "r2", org="acme")


def test_restore_brings_a_run_back_to_the_same_views_once(sample: Sample, tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.write("acme", sample.runs)
    make_tenant(tmp_path / "data", ingest=False)  # acme without the runs: as after retention
    with graphstore.open(tmp_path / "data") as store:
        acme = store.tenant("acme")
        head = acme.recorder.max_notification_id()
        with pytest.raises(NotFoundError, match="acme's archive"):
            restore_run(archive, acme, "acme", "run-999")
        assert acme.recorder.max_notification_id() == head
        run, report = restore_run(archive, acme, "acme", "run-004")
        assert run.run_id == "run-004" and report.applied == len(run.events)
        with pytest.raises(ConflictError, match="live in acme"):
            restore_run(archive, acme, "acme", "run-004")
        back = archived_run(acme, "run-004")  # the org: the file's name, tenant-acme.db
    assert back == archive.find("acme", "run-004")  # the same protocol events, status, time
    with (
        graphstore.open(sample.data) as source,
        graphstore.open(tmp_path / "data") as target,
        source.replay("acme") as before,
        target.replay("acme") as after,
    ):
        one = before.run_as_of("run-004", 2**62)
        two = after.run_as_of("run-004", 2**62)
    assert one is not None and two is not None
    assert _timeless(one.run) == _timeless(two.run)  # the same view, but when it was written
    assert [_timeless(c) for c in one.calls] == [_timeless(c) for c in two.calls]


def _timeless(row: Any) -> Any:
    return msgspec.structs.replace(row, created_at=0, updated_at=0)


def _digest(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return content_digest(db)
    finally:
        db.close()
