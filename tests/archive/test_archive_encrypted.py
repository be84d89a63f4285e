"""The archive of an encrypted tenant (issue 16): a retired run's body is stored
encrypted with the tenant's cipher (``GRAPHSTORE_CIPHER_KEY``), each row saying so in
its ``encoding``; every reader decrypts with the key and, without it, says so in one
line (exit 5) and writes nothing; ``archive verify`` checks the stored bytes' digests
without the key. Real tenant files, the real CLI in real processes; a compressed-only
tenant's archive works as before."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import zlib
from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from graphstore.archive import ENCRYPTED, PLAIN, Archive, ArchiveKeyError
from graphstore.cli import ExitCode
from streams.directory import CIPHER_KEY_VARIABLE
from streams.reader import cipher_of
from tests.archive.conftest import Sample
from tests.archive.test_archive_digest import FIXTURE, MONTH, digest_of
from tests.retention.test_encrypted_tenant import (
    KEY,
    RETIRED,
    SETTINGS,
    _stream_offsets,
    gs,
    ok,
    written_with,
)
from tests.retention.test_retention import MARK


@pytest.fixture(params=["encrypted", "compressed"])
def retired(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """Tenant acme written with the settings from its first event on, its three finished
    runs (one holding MARK in its input) retired into the archive ``cold`` by a pass."""
    settings = SETTINGS[request.param]
    data, archive = written_with(tmp_path, settings), tmp_path / "cold"
    ok(data, settings, "projector", "catch-up", "--tenant", "acme")
    ok(data, settings, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d",
       "--archive", str(archive))  # fmt: skip
    done = ok(data, settings, "retention", "run", "--tenant", "acme")
    assert {r["run_id"] for r in done["runs"]} == RETIRED
    return data, settings, archive


def _archive_bytes(archive: Path) -> bytes:
    """Every byte under the archive (files, manifest, any journal a crash could leave)."""
    return b"".join(p.read_bytes() for p in sorted(archive.rglob("*")) if p.is_file())


def _stored(archive: Path) -> dict[str, tuple[str, bytes]]:
    """Each archived run's encoding and stored body, read with plain sqlite3."""
    rows: dict[str, tuple[str, bytes]] = {}
    for path in archive.glob("acme/*.sqlite"):
        db = sqlite3.connect(path)
        try:
            for run_id, encoding, body in db.execute("SELECT run_id, encoding, body FROM runs"):
                rows[run_id] = (encoding, bytes(body))
        finally:
            db.close()
    return rows


def _one_line(done: subprocess.CompletedProcess[str]) -> None:
    """Refused in one line naming the key's variable, exit 5 (as a tenant read without it)."""
    stderr = done.stderr
    assert done.returncode == ExitCode.STORAGE, stderr
    assert CIPHER_KEY_VARIABLE in stderr and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and errors[0].startswith("error:"), stderr


def test_an_encrypted_tenants_run_is_not_in_the_archive_in_clear(
    retired: tuple[Path, dict[str, str], Path],
) -> None:
    _data, settings, archive = retired
    stored = _stored(archive)
    assert set(stored) == RETIRED
    if CIPHER_KEY_VARIABLE in settings:
        assert {encoding for encoding, _ in stored.values()} == {ENCRYPTED}
        assert MARK.encode() not in _archive_bytes(archive)
        for _, body in stored.values():  # not merely compressed: zlib cannot read it
            with pytest.raises(zlib.error):
                zlib.decompress(body)
        assert KEY.encode() not in _archive_bytes(archive)
        assert not list(archive.rglob("*-journal")) and not list(archive.rglob("*-wal"))
    else:  # compressed only: the archive compresses, as for any tenant
        assert {encoding for encoding, _ in stored.values()} == {PLAIN}
        assert MARK.encode() in zlib.decompress(stored["secret"][1])


def test_runs_show_reads_an_archived_run_with_the_key_and_says_so_without_it(
    retired: tuple[Path, dict[str, str], Path],
) -> None:
    data, settings, _archive = retired
    shown = gs(data, settings, "--json", "runs", "show", "secret", "--tenant", "acme")
    assert shown.returncode == 0 and "archived" in shown.stderr, shown.stderr
    assert '"secret"' in shown.stdout and MARK not in shown.stderr
    exported = gs(data, settings, "runs", "export", "secret", "--tenant", "acme")
    assert exported.returncode == 0 and MARK in exported.stdout, exported.stderr
    if CIPHER_KEY_VARIABLE in settings:
        for command in (["runs", "show"], ["runs", "export"]):
            blind = gs(data, {}, *command, "secret", "--tenant", "acme")
            _one_line(blind)
            assert MARK not in blind.stdout + blind.stderr


def test_verify_checks_the_stored_bytes_without_the_key_and_decodes_with_it(
    retired: tuple[Path, dict[str, str], Path],
) -> None:
    data, settings, archive = retired
    keyed = gs(data, settings, "archive", "verify", "--archive", str(archive))
    assert keyed.returncode == 0 and "all verified" in keyed.stdout, keyed.stderr
    listed = gs(data, {}, "--json", "archive", "list", "--archive", str(archive))
    assert listed.returncode == 0 and '"runs": 3' in listed.stdout, listed.stderr
    blind = gs(data, {}, "archive", "verify", "--archive", str(archive))
    assert blind.returncode == 0 and "all verified" in blind.stdout, blind.stderr
    if CIPHER_KEY_VARIABLE in settings:
        assert "no key given" in blind.stdout
    # one byte of a stored body changed: found with the key and without it
    (path,) = archive.glob("acme/*.sqlite")
    db = sqlite3.connect(path)
    try:
        (body,) = db.execute("SELECT body FROM runs WHERE run_id = 'done-2'").fetchone()
        changed = bytes(body[:-1]) + bytes([body[-1] ^ 1])
        db.execute("UPDATE runs SET body = ? WHERE run_id = 'done-2'", [changed])
        db.commit()
    finally:
        db.close()
    for environment in (settings, {}):
        damaged = gs(data, environment, "archive", "verify", "--archive", str(archive))
        assert damaged.returncode == 1, damaged.stdout + damaged.stderr
        assert "done-2" in damaged.stderr or "bytes" in damaged.stderr, damaged.stderr


def test_restore_needs_the_key_and_with_it_the_views_and_verify_agree(
    retired: tuple[Path, dict[str, str], Path],
) -> None:
    data, settings, archive = retired
    restore = ("archive", "restore", "done-1", "--tenant", "acme", "--archive", str(archive))
    if CIPHER_KEY_VARIABLE in settings:
        before = _stream_offsets(data)
        _one_line(gs(data, {}, *restore))
        other = {**settings, CIPHER_KEY_VARIABLE: AESCipher.create_key(32)}
        wrong = gs(data, other, *restore)
        assert wrong.returncode != 0 and other[CIPHER_KEY_VARIABLE] not in wrong.stderr
        assert "Traceback" not in wrong.stderr, wrong.stderr
        assert _stream_offsets(data) == before  # nothing written
    ok(data, settings, *restore)
    if CIPHER_KEY_VARIABLE in settings:  # the views behind: read from the stream, no key
        _one_line(gs(data, {}, "runs", "show", "done-1", "--tenant", "acme"))
    ok(data, settings, "projector", "catch-up", "--tenant", "acme")
    runs = ok(data, settings, "runs", "list", "--tenant", "acme", "--limit", "100")
    assert {r["run_id"] for r in runs} == {"done-1", "flying"}
    verified = gs(data, settings, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    ok(data, settings, "archive", "verify", "--archive", str(archive))
    # an erasure takes the encrypted copy out of the archive too
    ok(data, settings, "runs", "forget", "secret", "--tenant", "acme")
    assert "secret" not in _stored(archive)
    ok(data, settings, "archive", "verify", "--archive", str(archive))


def test_a_version_1_file_takes_encrypted_runs_and_each_row_is_read_by_its_encoding(
    sample: Sample, tmp_path: Path
) -> None:
    """A month's file of the version 1 fixture (no ``encoding`` column, plain runs)
    gets the column on its first encrypted write; each row is read by its own encoding,
    and the file's digest verifies with the key and without it."""
    cipher = cipher_of({"CIPHER_KEY": KEY})
    assert cipher is not None
    root = tmp_path / "archive"
    shutil.copytree(FIXTURE, root)
    sealed = Archive(root, cipher)
    [new] = [run for run in sample.runs if run.run_id == "run-004"]
    sealed.write("acme", [new])
    [month] = sealed.list("acme")
    assert (month.runs, month.digest) == (4, digest_of(root / MONTH))
    assert sealed.verify() == [] and Archive(root).verify() == []
    assert sealed.find("acme", "run-004") == new
    plain = Archive(root).find("acme", "run-002")  # a plain row needs no key
    assert plain is not None and plain == sealed.find("acme", "run-002")
    with pytest.raises(ArchiveKeyError, match=CIPHER_KEY_VARIABLE):
        Archive(root).find("acme", "run-004")
    another = cipher_of({"CIPHER_KEY": AESCipher.create_key(32)})
    with pytest.raises(ArchiveKeyError, match="does not decrypt") as refused:
        Archive(root, another).find("acme", "run-004")
    assert KEY not in str(refused.value)
