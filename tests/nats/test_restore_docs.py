"""docs/backup.md's point-in-time block runs as typed (from a directory holding a store
at ``data`` relayed to a real nats-server, and a backup at ``backups/tuesday``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay
from tests.nats._relay_worker import stream_entries, write
from tests.nats.conftest import NatsServer
from tests.verify.conftest import make_demo

DOC = Path(__file__).resolve().parents[2] / "docs" / "backup.md"
GRAPHSTORE = str(Path(sys.executable).with_name("graphstore"))


def test_the_point_in_time_block_runs_as_typed(tmp_path: Path, nats_server: NatsServer) -> None:
    found = re.search(r"<!-- pitr -->\n```sh\n(.*?)```\n<!-- /pitr -->", DOC.read_text(), re.S)
    assert found, "docs/backup.md lost its point-in-time block"
    data = make_demo(tmp_path / "data")
    backup = subprocess.run(
        [GRAPHSTORE, "--data-dir", str(data), "backup", str(tmp_path / "backups" / "tuesday")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert backup.returncode == 0, backup.stderr
    with DataDirectory(data) as directory:
        write(directory, "acme", 600)  # after the backup: only JetStream will have these
        with Relay(directory, nats_server.url) as relay:
            relay.wait_for("acme", stream_entries(directory, "acme")[-1][0])
        entries = stream_entries(directory, "acme")
    assert entries[-1][0] > 1200
    outputs = []
    for line in found.group(1).splitlines():
        assert line.startswith(".venv/bin/graphstore "), line
        command = line.replace(".venv/bin/graphstore", GRAPHSTORE, 1).replace(
            "nats://127.0.0.1:4222", nats_server.url
        )
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert len(outputs) == 5
    assert f"restored tenant acme to offset {entries[-1][0]}" in outputs[1]
    assert "verify: OK" in outputs[2]
    assert "restored tenant acme to offset 1200" in outputs[3]
    with DataDirectory(tmp_path / "at-1200") as restored:
        assert stream_entries(restored, "acme") == [e for e in entries if e[0] <= 1200]
    shutil.rmtree(tmp_path / "restored")
