"""After a restore, the relay resumes exactly once against the same JetStream subject:
its position is in the tenant file, restored with the stream (a real nats-server)."""

from __future__ import annotations

import signal
from pathlib import Path

from graphstore.backup import read_manifest
from graphstore.nats.relay import DEFAULT_CONSUMER
from tests.backup.conftest import Source, gs, helper, saved_position, stream_rows
from tests.nats._relay_worker import relay_process, subject_messages
from tests.nats.conftest import NatsServer, until


def _relayed_to_head(data: Path, url: str) -> None:
    relay = relay_process(data, url, "--status-every", "0")
    try:
        for org in ("acme", "beta"):
            path = data / f"tenant-{org}.db"
            head = stream_rows(path)[-1][0]
            until(lambda p=path, h=head: saved_position(p, DEFAULT_CONSUMER) == h, 60, 0.05)
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=20)


def _metagraph(path: Path) -> list[tuple[int, bytes]]:
    return [(o, p.encode()) for o, topic, p in stream_rows(path) if topic == "metagraph"]


def test_the_relay_resumes_exactly_once_after_a_restore(
    source: Source, nats_server: NatsServer, tmp_path: Path
) -> None:
    _relayed_to_head(source.data, nats_server.url)
    backup, new = tmp_path / "backup", tmp_path / "restored"
    assert gs("--data-dir", str(source.data), "backup", str(backup)).returncode == 0
    acme = read_manifest(backup).file_of("acme")
    assert acme.relay_position == acme.head > 0
    assert gs("restore", str(backup), "--data-dir", str(new)).returncode == 0

    helper("build-more", str(new), "acme", "2")  # the restored store takes new writes
    assert _metagraph(new / "tenant-acme.db")[-1][0] > acme.head
    _relayed_to_head(new, nats_server.url)
    for org in ("acme", "beta"):
        # Every entry once, in order, no gap: the old ones from the source's relay, the
        # new ones from the restored store's, on the same subject.
        assert subject_messages(nats_server.url, org) == _metagraph(new / f"tenant-{org}.db")
