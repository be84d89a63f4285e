"""The archive manifest's content digests (version 2): a write adds its rows' hashes
instead of re-hashing the month's file, ``verify`` still finds one changed byte in a
run's data, in another table, or in the manifest, and an archive written by manifest
version 1 (the fixture ``tests/fixtures/archive-v1``, made by the code of 97fcea8) is
still read, verified, and upgraded by its next write."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import msgspec
import pytest

from graphstore.archive import MANIFEST, VERSION, Archive, content_digest
from tests.archive.conftest import Sample

FIXTURE = Path(__file__).parents[1] / "fixtures" / "archive-v1"
MONTH = "acme/2026-11.sqlite"


def digest_of(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return content_digest(db)
    finally:
        db.close()


def flip(path: Path, needle: bytes) -> None:
    """Change one byte of ``needle``'s first occurrence in ``path``'s bytes."""
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0x20  # a letter's case: the file stays a sound SQLite file
    path.write_bytes(bytes(data))


def test_the_digest_follows_writes_and_forgets_and_equals_a_full_recount(
    sample: Sample, tmp_path: Path
) -> None:
    archive = Archive(tmp_path / "archive")
    for start in range(0, 12, 4):  # three writes to one month's file
        archive.write("acme", sample.runs[start : start + 4])
        [entry] = archive.list("acme")
        assert entry.runs == start + 4
        assert entry.digest == digest_of(tmp_path / "archive" / MONTH) and entry.sha256 == ""
    archive.write("acme", sample.runs[:2])  # already there: nothing changes
    assert archive.list("acme") == [entry]
    archive.forget("acme", sample.runs[0].run_id)
    [after] = archive.list("acme")
    assert after.runs == 11 and after.digest == digest_of(tmp_path / "archive" / MONTH)
    manifest = json.loads((tmp_path / "archive" / MANIFEST).read_text())
    assert manifest["version"] == VERSION == 2 and len(manifest["sha256"]) == 64
    assert archive.verify() == []


@pytest.mark.parametrize("where", ["run data", "runs column", "archive_format", "manifest"])
def test_one_changed_byte_anywhere_is_named_by_verify(
    sample: Sample, tmp_path: Path, where: str
) -> None:
    root = tmp_path / "archive"
    archive = Archive(root)
    archive.write("acme", sample.runs[:5])
    path = root / MONTH
    if where == "run data":  # inside a run's compressed body
        db = sqlite3.connect(path)
        [(body,)] = db.execute("SELECT body FROM runs WHERE run_id = 'run-003'").fetchall()
        db.close()
        data = bytearray(path.read_bytes())
        data[data.index(body) + len(body) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif where == "runs column":  # a run's status, outside its body
        flip(path, b"completed")
    elif where == "archive_format":  # the other table
        flip(path, b"graphstore archive of retired")
    else:  # a digit of a size: still valid JSON, still a plausible manifest
        manifest = root / MANIFEST
        text = manifest.read_text()
        size = str(archive.list("acme")[0].bytes)
        manifest.write_text(text.replace(size, str(int(size) + 1), 1))
    problems = archive.verify()
    assert len(problems) >= 1, where
    expected = {
        "run data": (MONTH, "does not match its SHA-256"),
        "runs column": (MONTH, "content digest"),
        "archive_format": (MONTH, "content digest"),
        "manifest": (MANIFEST, "its own SHA-256"),
    }[where]
    assert (problems[0].path, expected[1] in problems[0].problem) == (expected[0], True), problems


def test_an_archive_of_manifest_version_1_is_read_verified_and_upgraded_by_a_write(
    sample: Sample, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    shutil.copytree(FIXTURE, root)
    archive = Archive(root)
    [old] = archive.list("acme")
    assert (old.runs, old.digest, len(old.sha256)) == (3, "", 64)
    found = archive.find("acme", "run-002", whole_file=True)
    assert found is not None and found.run_id == "run-002"
    assert archive.verify() == []

    archive.write("acme", [r for r in sample.runs if r.run_id == "run-004"])
    [new] = archive.list("acme")
    assert (new.runs, new.sha256, new.digest) == (4, "", digest_of(root / MONTH))
    manifest = msgspec.json.decode((root / MANIFEST).read_bytes())
    assert manifest["version"] == 2
    assert archive.verify() == []


def test_a_changed_byte_in_a_version_1_file_is_still_found(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    shutil.copytree(FIXTURE, root)
    flip(root / MONTH, b"graphstore archive of retired")
    [problem] = Archive(root).verify()
    assert problem.path == MONTH and "SHA-256" in problem.problem
