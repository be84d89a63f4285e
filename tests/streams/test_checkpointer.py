"""The WAL copier of background jobs: a helper process making PASSIVE checkpoints.

Real tenant files and real helper processes. A copy must reach the database file itself
(not only the WAL), the helper must end with its job (closed, or its process killed), and
a helper that cannot start or dies must cost the job nothing but the overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams import HonkerDatastore
from streams._honker import Synchronous
from streams.checkpointer import Checkpointer
from streams.pauses import Pauses

ROWS = 2000


def _fill(datastore: HonkerDatastore) -> None:
    """Rows enough for many pages, left in the WAL (below wal_autocheckpoint)."""
    with datastore.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        for i in range(ROWS):
            tx.execute("INSERT INTO t (body) VALUES (?)", [f"row {i} " + "x" * 200])


def _started(datastore: HonkerDatastore, synchronous: Synchronous) -> tuple[Checkpointer, int]:
    """A helper for ``datastore``'s file, which holds rows only in its WAL; its pid."""
    _fill(datastore)
    checkpointer = Checkpointer(datastore.path, synchronous)
    assert checkpointer.pid is not None
    return checkpointer, checkpointer.pid


def _file_bytes(path: Path) -> int:
    """The database file's own size: pages still only in the WAL are not counted."""
    return path.stat().st_size


def _gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in state:  # exited, not yet reaped by its new parent
            return True
        time.sleep(0.05)
    return False


def test_a_requested_copy_reaches_the_database_file(datastore: HonkerDatastore) -> None:
    _fill(datastore)
    before = _file_bytes(datastore.path)
    with Checkpointer(datastore.path, "NORMAL") as checkpointer:
        assert checkpointer.alive
        checkpointer.request()
        checkpointer.wait()
        after = _file_bytes(datastore.path)
    # The rows' pages were only in the WAL; the helper wrote them into the file.
    assert after > before + ROWS * 200
    assert datastore.query("SELECT count(*) AS n FROM t")[0]["n"] == ROWS


def test_a_file_whose_path_is_special_in_a_uri_is_copied(tmp_path: Path) -> None:
    directory = tmp_path / "data #1?x=%41 y"
    directory.mkdir()
    datastore = HonkerDatastore(directory / "tenant-acme.db")
    try:
        _fill(datastore)
        before = _file_bytes(datastore.path)
        with Checkpointer(datastore.path, "NORMAL") as checkpointer:
            checkpointer.request()
            checkpointer.wait()
            assert checkpointer.alive  # it opened that file, not another, and copied it
        assert _file_bytes(datastore.path) > before + ROWS * 200
        assert sorted(p.name for p in directory.parent.iterdir()) == [directory.name]
    finally:
        datastore.close()


def test_requests_while_a_copy_runs_are_one_copy_and_close_ends_the_helper(
    datastore: HonkerDatastore,
) -> None:
    checkpointer, pid = _started(datastore, "FULL")
    for _ in range(50):
        checkpointer.request()  # never waits: at most one copy is asked for at a time
    checkpointer.close()
    assert checkpointer.pid is None and not checkpointer.alive
    assert _gone(pid)
    checkpointer.request()  # after close: nothing, no error
    checkpointer.wait()


def test_a_helper_that_cannot_start_leaves_pauses_working(
    datastore: HonkerDatastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # read at each start
    _fill(datastore)
    with Pauses(datastore.file) as pauses:
        started = time.monotonic()
        pauses.after(started)  # starts (fails to start) the helper, then only pauses
        pauses.settle()
    with datastore.transaction() as tx:  # the file is as usable as before
        tx.execute("INSERT INTO t (body) VALUES ('after')")
    assert datastore.query("SELECT count(*) AS n FROM t")[0]["n"] == ROWS + 1


def test_a_helper_killed_mid_job_is_dropped_and_the_job_goes_on(
    datastore: HonkerDatastore,
) -> None:
    checkpointer, pid = _started(datastore, "NORMAL")
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    checkpointer.request()  # writing to a dead helper: dropped, no error
    checkpointer.request()
    checkpointer.wait()
    assert not checkpointer.alive
    checkpointer.close()


_PARENT = """
import sys, time
from pathlib import Path
from streams.checkpointer import Checkpointer
checkpointer = Checkpointer(Path(sys.argv[1]), "NORMAL")
print(checkpointer.pid, flush=True)
time.sleep(600)
"""


def test_the_helper_ends_when_its_job_is_killed(tenant_file: Path) -> None:
    datastore = HonkerDatastore(tenant_file)
    try:
        _fill(datastore)
    finally:
        datastore.close()
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tenant_file)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        assert not _gone(helper, within=0.2)  # running while its job runs
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert parent.returncode == -signal.SIGKILL  # the kill landed on a live job
        assert _gone(helper)  # its input closed with the job: it ended
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("synchronous", ["OFF", "NORMAL; DROP TABLE t"])
def test_the_helper_refuses_a_synchronous_value_it_does_not_know(
    datastore: HonkerDatastore, synchronous: str
) -> None:
    _fill(datastore)
    checkpointer = Checkpointer(datastore.path, synchronous)  # type: ignore[arg-type]
    checkpointer.request()
    checkpointer.wait()
    assert not checkpointer.alive  # it exited at once: nothing was run
    checkpointer.close()
    assert datastore.query("SELECT count(*) AS n FROM t")[0]["n"] == ROWS
