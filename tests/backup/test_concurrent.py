"""A backup taken while a writer process ingests call batches, then restored, gives a
store equal to the source as of the manifest's heads, stream entry by stream entry."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from graphstore.backup import read_manifest
from tests.backup.conftest import Source, gs, started, stream_rows


def _acks(side: Path) -> int:
    return side.read_text().count("ack ") if side.exists() else 0


def test_a_backup_under_ingestion_restores_to_the_source_as_of_its_heads(
    source: Source, tmp_path: Path
) -> None:
    side = tmp_path / "writer.side"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.backup._store", "write", str(source.data), str(side)]
    )
    try:
        deadline = time.monotonic() + 60
        while _acks(side) < 5:
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        backup = tmp_path / "backup"
        process = started(
            "--data-dir", str(source.data), "backup", str(backup), "--progress", "--step-pages", "1"
        )
        assert process.stderr is not None
        while not process.stderr.readline().startswith("progress tenant-acme.db "):
            pass
        # The backup is mid-copy of acme (blocked on its full progress pipe, its read
        # transaction open): the writer commits batches meanwhile.
        during = _acks(side)
        while _acks(side) < during + 3:
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        rest = process.stderr.read()
        assert process.wait() == 0, rest
        assert "backup written to" not in rest  # (that line is on stdout)
    finally:
        Path(f"{side}.stop").touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0

    manifest = read_manifest(backup)
    acme = manifest.file_of("acme")
    source_rows = stream_rows(source.data / "tenant-acme.db")
    assert source_rows[-1][0] > acme.head  # the source moved on after the snapshot
    restored = tmp_path / "restored"
    assert gs("restore", str(backup), "--data-dir", str(restored)).returncode == 0
    for entry in manifest.files:
        got = stream_rows(restored / entry.file)
        assert got == stream_rows(source.data / entry.file, upto=max(entry.heads.values()))
        assert got[-1][0] == max(entry.heads.values())
    # The restored tenant takes writes again after its head.
    more = subprocess.run(
        [sys.executable, "-m", "tests.backup._store", "build-more", str(restored), "acme", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert more.returncode == 0, more.stderr
    assert stream_rows(restored / "tenant-acme.db")[-1][0] > acme.head
