"""Two restores into one data directory at once: the second is refused at once, in one
line, writing nothing, while the first goes on and completes (real processes, a real
nats-server). A killed restore never leaves the lock held."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from graphstore.backup import RestoreBusyError, restore_backup, restore_lock
from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay
from graphstore.nats.restore import RestoreTargetError, restore_from_nats
from tests.nats._relay_worker import register, stream_entries, write
from tests.nats.conftest import NatsServer

ROOT = Path(__file__).resolve().parents[2]
GRAPHSTORE = str(Path(sys.executable).with_name("graphstore"))

_SLOW_RESTORE = """
import sys
from pathlib import Path
from graphstore.nats.restore import restore_from_nats

def batch(offset):
    print(offset, flush=True)
    sys.stdin.readline()  # mid-restore until the test closes stdin (then: at once)

report = restore_from_nats(sys.argv[1], "acme", Path(sys.argv[2]), batch=20, on_batch=batch)
print("done", report.restored_to, flush=True)
"""


@pytest.fixture
def relayed(tmp_path: Path, nats_server: NatsServer) -> Path:
    source = tmp_path / "source"
    with DataDirectory(source) as data:
        register(data, "acme")
        write(data, "acme", 200)
        with Relay(data, nats_server.url) as relay:
            relay.wait_for("acme", stream_entries(data, "acme")[-1][0])
    return source


def _slow_restore(url: str, target: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RESTORE, url, str(target)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip().isdigit()  # a batch is written: mid-restore,
    return process  # and it stays there until the test closes its stdin (communicate)


def test_a_second_restore_into_the_same_directory_is_refused_while_the_first_completes(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    target = tmp_path / "restored"
    target.mkdir()
    shutil.copyfile(relayed / "system.db", target / "system.db")
    backup = tmp_path / "backup"
    made = subprocess.run(
        [GRAPHSTORE, "--data-dir", str(relayed), "backup", str(backup)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    first = _slow_restore(nats_server.url, target)
    try:
        second = subprocess.run(
            [GRAPHSTORE, "restore", "--nats", nats_server.url, "--tenant", "acme",
             "--data-dir", str(target)],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )  # fmt: skip
        assert first.poll() is None  # the first was still at work
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another restore (process {first.pid}) is writing into" in second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
        with pytest.raises(RestoreTargetError, match="another restore"):
            restore_from_nats(nats_server.url, "acme", target)
        with pytest.raises(RestoreBusyError, match="another restore"):
            restore_backup(backup, target, tenants=["acme"], replace=True)
        assert first.poll() is None
        assert first.stdout is not None
        out, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0
    head = stream_entries(DataDirectory(relayed, create=False), "acme")[-1][0]
    assert out.strip().splitlines()[-1] == f"done {head}"  # the first completed, alone
    assert stream_entries(DataDirectory(target, create=False), "acme") == stream_entries(
        DataDirectory(relayed, create=False), "acme"
    )


def test_a_restore_killed_mid_work_does_not_leave_the_lock_held(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    target = tmp_path / "restored"
    target.mkdir()
    shutil.copyfile(relayed / "system.db", target / "system.db")
    first = _slow_restore(nats_server.url, target)
    first.send_signal(signal.SIGKILL)
    first.wait()
    with restore_lock(target):  # the kernel released it with the process
        pass
    report = restore_from_nats(nats_server.url, "acme", target)
    assert report.restored_to == stream_entries(DataDirectory(relayed, create=False), "acme")[-1][0]
