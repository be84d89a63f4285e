"""kill -9 of `graphstore backup` and `graphstore restore` mid-copy, at 10 points each:
no directory that looks like a complete backup, no data directory a server would open;
the same command run again succeeds (docs/backup.md, "Atomic").

Each process reports its progress on stderr (``--progress``), one line per step, into a
pipe shrunk to one page: once the pipe is full the process blocks in the middle of its
copy until the test reads a line, so "kill after the k-th line" lands mid-copy, and the
lines it wrote before the kill say exactly where it was.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from graphstore.backup import check_backup, read_manifest
from tests.backup.conftest import (
    Source,
    build_source,
    gs,
    helper,
    started,
    store_files,
    stream_rows,
)

POINTS = 10


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """A store whose tenant acme is about 20 MB (1500 workflow runs)."""
    return build_source(tmp_path_factory.mktemp("big") / "data", runs=1500)


def _kill_after(process: subprocess.Popen[str], file: str, lines: int) -> tuple[int, int]:
    """Read progress lines until the ``lines``-th one about ``file``; kill -9; read what
    the process wrote before it died. The last ``(done, total)`` it reported for ``file``."""
    assert process.stderr is not None
    seen = 0
    while seen < lines:
        line = process.stderr.readline()
        assert line, f"the process ended before {lines} steps of {file}"
        if line.startswith(f"progress {file} "):
            seen += 1
    assert process.poll() is None  # still working: blocked on its next progress line
    process.send_signal(signal.SIGKILL)
    rest = process.stderr.read()
    process.wait()
    assert process.returncode == -signal.SIGKILL
    last = [ln for ln in rest.splitlines() if ln.startswith(f"progress {file} ")] or [line]
    done, total = last[-1].split()[-1].split("/")
    return int(done), int(total)


def test_a_backup_killed_mid_copy_leaves_no_directory_that_looks_complete(
    big: Source, tmp_path: Path
) -> None:
    acme_pages = (big.data / "tenant-acme.db").stat().st_size // 4096
    steps = acme_pages // 4  # the kill points spread over the copy, whatever the file's size
    assert steps > 40 + POINTS, steps
    for point in range(POINTS):
        dest = tmp_path / f"backup-{point}"
        process = started(
            "--data-dir", str(big.data), "backup", str(dest), "--progress", "--step-pages", "4"
        )
        done, total = _kill_after(process, "tenant-acme.db", 20 + point * (steps - 40) // POINTS)
        assert 0 < done < total == acme_pages, (point, done, total)  # landed mid-copy
        assert not dest.exists()
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(f".{dest.name}.partial-")]
        assert len(partial) == 1
        assert not (partial[0] / "manifest.json").exists()
        assert store_files(partial[0]) == ["system.db", "tenant-acme.db"]
        # A leftover partial directory is never taken for a backup.
        refused = gs("restore", str(partial[0]), "--data-dir", str(tmp_path / "x"))
        assert refused.returncode == 1 and "unfinished backup" in refused.stderr
        assert gs("restore", str(dest), "--data-dir", str(tmp_path / "x")).returncode == 3
    # The same command again: a complete backup beside the leftovers.
    dest = tmp_path / "backup-0"
    again = gs("--data-dir", str(big.data), "backup", str(dest))
    assert again.returncode == 0, again.stderr
    assert check_backup(dest) == []


def test_a_restore_killed_mid_copy_leaves_no_data_directory(big: Source, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    assert gs("--data-dir", str(big.data), "backup", str(backup)).returncode == 0
    chunks = -(-read_manifest(backup).file_of("acme").size // 65536)
    target = tmp_path / "restored"
    for point in range(POINTS):
        process = started("restore", str(backup), "--data-dir", str(target), "--progress")
        done, total = _kill_after(process, "tenant-acme.db", 1 + point * 15)
        assert 0 < done < total, (point, done, total)  # landed mid-copy
        assert chunks > 100
        # Nothing at the target: no directory `graphstore serve` would open.
        assert not target.exists()
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".restored.restore-")]
        assert len(staging) == point + 1
    # Run again: the restore completes, equal to the backup.
    again = gs("restore", str(backup), "--data-dir", str(target))
    assert again.returncode == 0, again.stderr
    for name in ("system.db", "tenant-acme.db", "tenant-beta.db"):
        assert stream_rows(target / name) == stream_rows(backup / name)


def test_a_replace_killed_mid_copy_leaves_the_tenant_file_as_it_was(
    big: Source, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(big.data, data)
    backup = tmp_path / "backup"
    assert gs("--data-dir", str(data), "backup", str(backup)).returncode == 0
    helper("build-more", str(data), "acme", "2")
    acme = data / "tenant-acme.db"
    before = stream_rows(acme)
    args = ("restore", str(backup), "--data-dir", str(data), "--tenant", "acme", "--replace")
    for point in range(POINTS):
        process = started(*args, "--progress")
        done, total = _kill_after(process, "tenant-acme.db", 1 + point * 15)
        assert 0 < done < total, (point, done, total)  # landed mid-copy
        assert stream_rows(acme) == before  # the live file untouched
        assert not [p for p in data.iterdir() if ".replaced-" in p.name]
    again = gs(*args)
    assert again.returncode == 0, again.stderr
    assert stream_rows(acme) == stream_rows(backup / "tenant-acme.db")
