"""An encrypted tenant's retirement records through a real nats-server: the relay reads
them with the tenant's key (``GRAPHSTORE_CIPHER_KEY``) and deletes the retired entries'
copies from JetStream, a restore from JetStream reads them to tell the retired gap from
a hole, and without the key both say so instead of skipping the record (the relay stops
before it, so JetStream never holds a record whose deletions were not done)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.cipher import AESCipher
from structlog.testing import capture_logs

from domain import Principal
from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay
from graphstore.nats.restore import NatsRestoreError, restore_from_nats
from graphstore.store import Store
from graphstore.verify import verify
from projections.mirror import mirror_path
from streams.directory import CIPHER_KEY_VARIABLE
from tests.nats._relay_worker import register, subject_messages, write
from tests.nats._remote_data import assert_equal_views, positions, rows, write_history
from tests.nats._retired import SECRET, entries, new_graph, retire_graph, write_mixed
from tests.nats.conftest import NatsServer

KEY = AESCipher.create_key(32)


def _metagraph(data: Path) -> list[tuple[int, bytes]]:
    return [(o, p.encode()) for o, _, p in entries(data / "tenant-acme.db", "metagraph")]


def _relay(data: Path, url: str, upto: int | None = None, timeout: float = 10.0) -> None:
    with DataDirectory(data) as store, Relay(store, url) as relay:
        relay.wait_for("acme", upto or _metagraph(data)[-1][0], timeout=timeout)


def _target(tmp_path: Path, source: Path, name: str) -> Path:
    target = tmp_path / name
    target.mkdir()
    shutil.copyfile(source / "system.db", target / "system.db")
    return target


@pytest.fixture
def encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, UUID, UUID]:
    """A tenant written with the key from its first event on, with two graphs to retire."""
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, KEY)
    source = tmp_path / "source"
    with DataDirectory(source) as data:
        register(data, "acme")
        write(data, "acme", 20)
        doomed = new_graph(data, "acme", "doomed")
        write_mixed(data, "acme", doomed, 6, SECRET)
        later = new_graph(data, "acme", "later")
        write_mixed(data, "acme", later, 6, "later")
        write(data, "acme", 5)
    assert all('"data_b64"' in p.decode() for _, p in _metagraph(source))
    return source, doomed, later


def test_the_relay_and_a_restore_read_the_encrypted_record_with_the_key(
    encrypted: tuple[Path, UUID, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    source, doomed, _ = encrypted
    _relay(source, nats_server.url)
    record, ranges = retire_graph(DataDirectory(source, create=False), "acme", doomed)
    retired = {o for a, b in ranges for o in range(a, b + 1)}
    assert '"data_b64"' in dict(_metagraph(source))[record].decode()  # encrypted too
    _relay(source, nats_server.url)
    relayed = subject_messages(nats_server.url, "acme")
    assert relayed == _metagraph(source)  # the retired copies are gone from JetStream
    assert retired and not retired & {o for o, _ in relayed}
    target = _target(tmp_path, source, "restored")
    report = restore_from_nats(nats_server.url, "acme", target)
    assert report.restored_to == _metagraph(source)[-1][0]
    assert _metagraph(target) == _metagraph(source)
    checked = verify(target)
    assert checked.ok, checked.problems


def test_without_the_key_the_relay_stops_before_the_record_and_a_restore_refuses(
    encrypted: tuple[Path, UUID, UUID],
    tmp_path: Path,
    nats_server: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, doomed, later = encrypted
    _relay(source, nats_server.url)
    record, _ = retire_graph(DataDirectory(source, create=False), "acme", doomed)
    _relay(source, nats_server.url)  # with the key: relayed, deletions done
    second, ranges = retire_graph(DataDirectory(source, create=False), "acme", later)
    monkeypatch.delenv(CIPHER_KEY_VARIABLE)

    # a restore without the key cannot tell the first record's gap from a hole: refused
    target = _target(tmp_path, source, "blind")
    with pytest.raises(NatsRestoreError, match=CIPHER_KEY_VARIABLE):
        restore_from_nats(nats_server.url, "acme", target)
    assert not (target / "tenant-acme.db").exists()  # nothing written

    # the relay without the key relays up to the new record, not the record itself,
    # and says why once, although every wake of the tenant meets the record again
    with capture_logs() as logs, pytest.raises(TimeoutError, match="encrypted or compressed"):
        _relay(source, nats_server.url, upto=second, timeout=5)
    refusals = [e for e in logs if e["event"] == "relay refuses a tenant"]
    assert [e["tenant"] for e in refusals] == ["acme"], logs
    assert KEY not in str(logs)
    relayed = {o for o, _ in subject_messages(nats_server.url, "acme")}
    assert record in relayed and second not in relayed
    retired = {o for a, b in ranges for o in range(a, b + 1)}
    assert retired & relayed  # its copies stay until a relay with the key deletes them

    monkeypatch.setenv(CIPHER_KEY_VARIABLE, KEY)
    _relay(source, nats_server.url)
    assert subject_messages(nats_server.url, "acme") == _metagraph(source)


def _remote_process(url: str, remote_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "graphstore", "project-remote", "--data-dir"]
    command += [str(remote_dir), "--nats", url, "--tenant", "acme", "--status-every", "0"]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)


def _mirror_position(remote_dir: Path) -> int:
    mirror = mirror_path(remote_dir, "acme")
    return min(positions(mirror).values(), default=0) if mirror.exists() else 0


def _gs(data: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, (args, done.stderr)


def test_a_remote_projector_process_applies_the_encrypted_record_with_the_key(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`graphstore project-remote` (a process of its own, the key in its environment)
    mirrors an encrypted tenant, applies its retirement record, and its views equal the
    hub's, row for row."""
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, KEY)  # every process below inherits it
    hub = tmp_path / "hub"
    with Store(hub) as store:
        store.identity.create_account(
            "ada@acme.example", "Ada", actor=Principal.system(), access_level="admin"
        )
        store.create_tenant("acme", name="Acme", owner_email="ada@acme.example")
        write_history(store.tenant("acme"), "acme", 6, graph_nodes=3)
    path = hub / "tenant-acme.db"
    _gs(hub, "projector", "catch-up", "--tenant", "acme")
    remote_dir = tmp_path / "remote"
    log = tmp_path / "remote.log"
    process = _remote_process(nats_server.url, remote_dir, log)
    try:
        _relay(hub, nats_server.url)
        _gs(hub, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        _gs(hub, "retention", "run", "--tenant", "acme")
        _gs(hub, "projector", "catch-up", "--tenant", "acme")
        head = _metagraph(hub)[-1][0]
        assert '"data_b64"' in dict(_metagraph(hub))[head].decode()  # the record, encrypted
        _relay(hub, nats_server.url)
        deadline = time.monotonic() + 60
        while _mirror_position(remote_dir) < head:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert rows(path, "flow_runs") == []  # every run was finished and old: all retired
    assert_equal_views(path, mirror_path(remote_dir, "acme"))
