"""A run of a tenant written before call trees (the fixture ``tests/fixtures/legacy-v1``),
relayed to a real nats-server, then forgotten (``graphstore runs forget``): the relay
deletes from JetStream the copies of the call graph's own events that held its inputs,
as it does the run's call trees, and a restore from JetStream equals the source and
verifies (the legacy graph replays over the retired gap)."""

from __future__ import annotations

import shutil
from pathlib import Path

from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay
from graphstore.nats.restore import restore_from_nats
from graphstore.verify import verify
from tests.cli.test_cli import gs
from tests.nats._relay_worker import subject_messages
from tests.nats._retired import entries
from tests.nats.conftest import NatsServer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy-v1"
FORGOTTEN = [b'"input":{"n":"run-a"}', b'"input":{"n":"a-1"}']
KEPT = b'"input":{"n":"run-b"}'


def _metagraph(data: Path) -> list[tuple[int, bytes]]:
    return [(o, p.encode()) for o, _, p in entries(data / "tenant-acme.db", "metagraph")]


def _relay(data: Path, url: str) -> None:
    with DataDirectory(data) as store, Relay(store, url) as relay:
        relay.wait_for("acme", _metagraph(data)[-1][0])


def test_a_forgotten_legacy_run_leaves_jetstream_and_a_restore_verifies(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    source = tmp_path / "source"
    shutil.copytree(FIXTURE, source)
    _relay(source, nats_server.url)
    relayed = subject_messages(nats_server.url, "acme")
    assert all(any(n in p for _, p in relayed) for n in FORGOTTEN)  # the test can fail

    done = gs(source, "runs", "forget", "run-a", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    _relay(source, nats_server.url)
    relayed = subject_messages(nats_server.url, "acme")
    assert relayed == _metagraph(source)  # the retired copies are gone, the rest stays
    assert not any(n in p for n in FORGOTTEN for _, p in relayed)
    assert any(KEPT in p for _, p in relayed)

    target = tmp_path / "restored"
    target.mkdir()
    shutil.copyfile(source / "system.db", target / "system.db")
    restore_from_nats(nats_server.url, "acme", target)
    assert _metagraph(target) == _metagraph(source)
    checked = verify(target)
    assert checked.ok, checked.problems
