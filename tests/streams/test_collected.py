"""A datastore its owner never closed releases its file when collected, or at exit.

Collection can run on any thread at any allocation, including one that holds the lock
of the process's open files: the release must never deadlock there. The deadlocking
cases run in a child process, so a regression hangs the child (killed by its timeout),
not this test session.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from pathlib import Path

from streams import HonkerDatastore, _honker
from tests.streams._writer import ROOT

# The owner sits in a reference cycle, so only the cycle collector frees it: the
# collection then runs wherever gc.collect() is called.
_COLLECTED_UNDER_LOCK = """
import gc, sys, threading, time
from streams import HonkerDatastore, _honker

datastore = HonkerDatastore(sys.argv[1])
datastore.cycle = datastore
del datastore

def collect_while_holding_the_lock():
    with _honker._files_lock:  # as open_file does when an allocation triggers the GC
        gc.collect()

worker = threading.Thread(target=collect_while_holding_the_lock, daemon=True)
worker.start()
worker.join(20)
if worker.is_alive():
    print("deadlocked", flush=True)
    sys.exit(3)
deadline = time.monotonic() + 20
while _honker.is_open(sys.argv[1]):
    if time.monotonic() > deadline:
        print("never released", flush=True)
        sys.exit(4)
    time.sleep(0.01)
print("released", flush=True)
"""

_LEFT_OPEN_AT_EXIT = """
import sys
from streams import HonkerDatastore

kept = HonkerDatastore(sys.argv[1])  # alive at exit
with kept.transaction() as tx:
    tx.execute("CREATE TABLE t (x)")
    tx.execute("INSERT INTO t VALUES (1)")
dropped = HonkerDatastore(sys.argv[2])  # collected just before exit
dropped.cycle = dropped
del dropped
print("exiting", flush=True)
"""


def _run(script: str, *args: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_a_collection_while_the_files_lock_is_held_releases_later_without_deadlock(
    tenant_file: Path,
) -> None:
    done = _run(_COLLECTED_UNDER_LOCK, tenant_file)
    assert (done.returncode, done.stdout.strip()) == (0, "released"), done.stderr
    assert "Exception ignored" not in done.stderr


def test_datastores_left_open_at_exit_are_closed_cleanly(tmp_path: Path) -> None:
    kept, dropped = tmp_path / "tenant-kept.db", tmp_path / "tenant-dropped.db"
    done = _run(_LEFT_OPEN_AT_EXIT, kept, dropped)
    assert (done.returncode, done.stdout.strip()) == (0, "exiting"), done.stderr
    assert "Exception ignored" not in done.stderr
    # SQLite removes a WAL file when its last connection closes: both were closed.
    assert kept.exists() and dropped.exists()
    assert not Path(f"{kept}-wal").exists()
    assert not Path(f"{dropped}-wal").exists()


def test_a_collected_datastore_releases_its_file(tenant_file: Path) -> None:
    datastore = HonkerDatastore(tenant_file)
    datastore.cycle = datastore  # type: ignore[attr-defined]
    assert _honker.is_open(tenant_file)
    del datastore
    gc.collect()
    deadline = time.monotonic() + 20
    while _honker.is_open(tenant_file):
        assert time.monotonic() < deadline, "the collected datastore's file stayed open"
        time.sleep(0.01)


def test_closing_first_releases_once_and_collection_adds_nothing(tenant_file: Path) -> None:
    first, second = HonkerDatastore(tenant_file), HonkerDatastore(tenant_file)
    first.close()
    del first
    gc.collect()
    time.sleep(0.2)  # a second release by the reaper would close the shared file now
    assert _honker.is_open(tenant_file)
    with second.transaction() as tx:
        tx.execute("CREATE TABLE t (x)")
    second.close()
    assert not _honker.is_open(tenant_file)
