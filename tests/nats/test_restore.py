"""Point-in-time restore of a tenant from its relayed JetStream subject, against a real
nats-server and real files: byte for byte to the head, to an offset (runs as `runs show
--as-of` showed them), to a time; a subject with a gap or another tenant's entry is
refused with nothing written; a kill -9 mid-restore leaves no tenant file."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest

from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay
from graphstore.nats.restore import (
    ForeignEntryError,
    RestoreTargetError,
    SubjectGapError,
    discard_relayed_after,
    restore_from_nats,
    restore_system_from_nats,
)
from graphstore.nats.subjects import (
    EVENTS_STREAM,
    MSG_ID,
    OFFSET_HEADER,
    PREVIOUS_HEADER,
    SYSTEM_KEY,
    events_subject,
    message_id,
)
from graphstore.verify import verify
from tests.nats._relay_worker import stream_entries, subject_messages, write
from tests.nats.conftest import NatsServer, until
from tests.verify.conftest import make_demo

ROOT = Path(__file__).resolve().parents[2]
GRAPHSTORE = str(Path(sys.executable).with_name("graphstore"))


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture
def relayed(demo_source: Path, tmp_path: Path, nats_server: NatsServer) -> Path:
    """A copy of the demo's data directory, every tenant relayed to ``nats_server``."""
    source = tmp_path / "source"
    shutil.copytree(demo_source, source)
    with DataDirectory(source) as data, Relay(data, nats_server.url) as relay:
        relay.wait_for("acme", _rows(source, 'SELECT max("offset") FROM _honker_stream')[0][0])
    return source


def _rows(data: Path, sql: str, org: str = "acme") -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"{(data / f'tenant-{org}.db').as_uri()}?mode=ro", uri=True)
    try:
        return list(connection.execute(sql).fetchall())
    finally:
        connection.close()


def _stream(data: Path, upto: int | None = None) -> list[tuple[Any, ...]]:
    where = "" if upto is None else f'WHERE "offset" <= {upto}'
    return _rows(data, f'SELECT "offset", topic, payload FROM _honker_stream {where} ORDER BY 1')


def _index(data: Path, upto: int | None = None) -> list[tuple[Any, ...]]:
    where = "" if upto is None else f'WHERE "offset" <= {upto}'
    return _rows(data, f"SELECT * FROM es_metagraph_index {where} ORDER BY 3")


def _target(tmp_path: Path, source: Path) -> Path:
    """A new data directory holding the source's system.db (restored first: accounts,
    keys, the registry) and no tenant file."""
    target = tmp_path / "restored"
    target.mkdir()
    shutil.copyfile(source / "system.db", target / "system.db")
    return target


def _cli(data: Path, *args: str) -> Any:
    done = subprocess.run(
        [GRAPHSTORE, "--data-dir", str(data), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout)


def _nothing_written(target: Path) -> None:
    assert sorted(p.name for p in target.iterdir()) == ["system.db"]


def test_restore_to_the_head_is_the_source_byte_for_byte_and_verifies(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    target = _target(tmp_path, relayed)
    report = restore_from_nats(nats_server.url, "acme", target)
    head = _stream(relayed)[-1][0]
    assert (report.base_head, report.restored_to, report.events_replayed) == (0, head, head)
    assert _stream(target) == _stream(relayed)  # same offsets, same payloads
    assert _index(target) == _index(relayed)
    checked = verify(target, nats_url=nats_server.url)
    assert checked.ok, checked.problems
    assert checked.files[1].projections == {"metagraph@v1": head, "flowgraph@v1": head}
    assert _cli(target, "runs", "list", "--tenant", "acme") == _cli(
        relayed, "runs", "list", "--tenant", "acme"
    )
    with pytest.raises(RestoreTargetError, match="exists"):
        restore_from_nats(nats_server.url, "acme", target)
    # The relay resumes on the same subject exactly once: the new writes follow, once.
    with DataDirectory(target) as data:
        write(data, "acme", 30)
        with Relay(data, nats_server.url) as relay:
            relay.wait_for("acme", stream_entries(data, "acme")[-1][0])
        assert subject_messages(nats_server.url, "acme") == stream_entries(data, "acme")


@pytest.mark.parametrize("offset", [112, 500])
def test_restore_to_an_offset_shows_runs_as_runs_show_as_of_did(
    relayed: Path, tmp_path: Path, nats_server: NatsServer, offset: int
) -> None:
    target = _target(tmp_path, relayed)
    report = restore_from_nats(nats_server.url, "acme", target, until_offset=offset)
    assert report.restored_to == offset
    assert _stream(target) == _stream(relayed, offset)
    assert _index(target) == _index(relayed, offset)
    assert any("relay refuses" in note for note in report.notes)
    for run in ("run-001", "run-004"):
        then = _cli(relayed, "runs", "show", run, "--tenant", "acme", "--as-of", str(offset))
        now = _cli(target, "runs", "show", run, "--tenant", "acme")
        assert then.pop("as_of") == offset and now.pop("as_of") is None
        assert now == then  # the run and every call, times included
    assert verify(target).ok


def test_restore_until_a_time_stops_at_the_last_entry_recorded_by_then(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    times = [(o, json.loads(p)["time"]) for o, _, p in _stream(relayed)]
    moment = times[300][1]
    expected = max(o for o, t in times if t <= moment)
    target = _target(tmp_path, relayed)
    report = restore_from_nats(nats_server.url, "acme", target, until_time_ms=moment)
    assert report.restored_to == expected
    assert _stream(target) == _stream(relayed, expected)


def _delete(url: str, seq: int) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_msg(EVENTS_STREAM, seq)
        finally:
            await nc.close()

    asyncio.run(run())


def test_a_subject_with_a_gap_is_refused_and_nothing_is_written(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    _delete(nats_server.url, 40)  # the 40th relayed entry (one tenant: sequence = offset)
    target = _target(tmp_path, relayed)
    with pytest.raises(SubjectGapError, match="breaks after offset 39"):
        restore_from_nats(nats_server.url, "acme", target)
    _nothing_written(target)
    # Up to before the hole, it restores.
    assert restore_from_nats(nats_server.url, "acme", target, until_offset=39).restored_to == 39


def _publish_foreign(url: str, head: int, payload: bytes) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().publish(
                events_subject("acme"),
                payload,
                headers={
                    MSG_ID: message_id("globex", head + 1),
                    OFFSET_HEADER: str(head + 1),
                    PREVIOUS_HEADER: str(head),
                },
            )
        finally:
            await nc.close()

    asyncio.run(run())


def test_another_tenant_s_entry_on_the_subject_is_refused_and_nothing_is_written(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    head, _, payload = _stream(relayed)[-1]
    foreign = payload.replace('"tenant":"acme"', '"tenant":"globex"').encode()
    _publish_foreign(nats_server.url, head, foreign)
    target = _target(tmp_path, relayed)
    with pytest.raises(ForeignEntryError, match="globex"):
        restore_from_nats(nats_server.url, "acme", target)
    _nothing_written(target)


def test_the_relay_refuses_a_tenant_restored_to_a_point_until_the_rest_is_discarded(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    target = _target(tmp_path, relayed)
    restore_from_nats(nats_server.url, "acme", target, until_offset=500)
    with DataDirectory(target) as data, Relay(data, nats_server.url, poll_interval=0.05) as relay:
        refused = until(lambda: [t for t in relay.status().tenants if t.error])
        assert refused[0].tenant == "acme" and "restored to an earlier point" in refused[0].error
    head = _stream(relayed)[-1][0]
    assert discard_relayed_after(nats_server.url, "acme", 500) == head - 500
    with DataDirectory(target) as data, Relay(data, nats_server.url, poll_interval=0.05) as relay:
        until(lambda: [t for t in relay.status().tenants if t.tenant == "acme" and t.jetstream])
        assert all(t.error is None for t in relay.status().tenants)


_RESTORER = """
import sys
from pathlib import Path
from graphstore.nats.restore import restore_from_nats

def batch(offset):
    print(offset, flush=True)
    sys.stdin.readline()  # the next batch when the test says so: a kill lands here

restore_from_nats(sys.argv[1], "acme", Path(sys.argv[2]), batch=int(sys.argv[3]), on_batch=batch)
print("done", flush=True)
"""


@pytest.mark.parametrize("batches", [1, 2, 3, 5, 7, 9, 11, 13, 16, 19])
def test_a_kill_during_restore_leaves_no_tenant_file_and_a_rerun_completes(
    relayed: Path, tmp_path: Path, nats_server: NatsServer, batches: int
) -> None:
    target = _target(tmp_path, relayed)
    process = subprocess.Popen(
        [sys.executable, "-c", _RESTORER, nats_server.url, str(target), "30"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdin is not None
    written = 0
    for done in range(1, batches + 1):
        line = process.stdout.readline().strip()
        assert line.isdigit(), line  # a batch was written
        written = int(line)
        if done < batches:
            process.stdin.write("\n")  # go on to the next batch
            process.stdin.flush()
    process.send_signal(signal.SIGKILL)  # it waits after batch `batches`: no race
    assert 0 < written < _stream(relayed)[-1][0]  # the kill landed mid-restore
    process.wait()
    assert not (target / "tenant-acme.db").exists()
    assert any(p.name.startswith(".restore-acme.") for p in target.iterdir())  # mid-work
    with DataDirectory(target) as data:
        assert data.tenants() == ["acme"]  # registered in system.db, but no file to open
    report = restore_from_nats(nats_server.url, "acme", target)
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".restore")) == []
    assert report.restored_to == _stream(relayed)[-1][0]
    assert _stream(target) == _stream(relayed)


def _system_stream(data: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"{(data / 'system.db').as_uri()}?mode=ro", uri=True)
    try:
        return list(
            connection.execute('SELECT "offset", topic, payload FROM _honker_stream ORDER BY 1')
        )
    finally:
        connection.close()


def test_system_db_is_relayed_on_its_own_subject_and_restored_then_the_tenant(
    demo_source: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    source = tmp_path / "source"
    shutil.copytree(demo_source, source)
    system_head = _system_stream(source)[-1][0]
    with DataDirectory(source) as data, Relay(data, nats_server.url, identity=True) as relay:
        relay.wait_for("acme", _stream(source)[-1][0])
        relay.wait_for(SYSTEM_KEY, system_head)
        assert {t.tenant for t in relay.status().tenants} == {"acme", SYSTEM_KEY}
    target = tmp_path / "restored"
    report = restore_system_from_nats(nats_server.url, target)
    assert report.restored_to == system_head
    assert _system_stream(target) == _system_stream(source)
    restore_from_nats(nats_server.url, "acme", target)
    assert _cli(target, "account", "list") == _cli(source, "account", "list")
    assert _cli(target, "tenant", "list") == _cli(source, "tenant", "list")
    checked = verify(target)
    assert checked.ok, checked.problems
    with pytest.raises(RestoreTargetError):
        restore_system_from_nats(nats_server.url, target)
    # The same as a user types it: system.db first, then the tenant, one command.
    typed = tmp_path / "typed"
    done = _graphstore(
        "restore", "--nats", nats_server.url, "--system", "--tenant", "acme",
        "--data-dir", str(typed),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"restored system.db to offset {system_head}" in done.stdout
    assert "restored tenant acme to offset" in done.stdout
    assert _system_stream(typed) == _system_stream(source)
    assert _cli(typed, "account", "list") == _cli(source, "account", "list")


def _graphstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRAPHSTORE, *args], capture_output=True, text=True, timeout=300, check=False, cwd=ROOT
    )


def test_the_command_restores_from_a_base_backup_to_an_offset_and_refuses_a_gap(
    relayed: Path, tmp_path: Path, nats_server: NatsServer
) -> None:
    base = tmp_path / "backup"
    done = _graphstore("--data-dir", str(relayed), "backup", str(base))
    assert done.returncode == 0, done.stderr
    base_head = _stream(relayed)[-1][0]
    with DataDirectory(relayed) as data:
        write(data, "acme", 120)  # after the backup: only JetStream has these
        with Relay(data, nats_server.url) as relay:
            relay.wait_for("acme", _stream(relayed)[-1][0])
    point = base_head + 60
    target = tmp_path / "restored"
    done = _graphstore(
        "restore", "--nats", nats_server.url, "--tenant", "acme", "--base", str(base),
        "--until-offset", str(point), "--data-dir", str(target),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"restored tenant acme to offset {point}: base head {base_head}" in done.stdout
    assert _stream(target) == _stream(relayed, point)
    assert _index(target) == _index(relayed, point)
    assert _graphstore("--data-dir", str(target), "verify").returncode == 0
    # A message deleted after the base's head: refused in one line, nothing written.
    _delete(nats_server.url, base_head + 10)  # one tenant relayed: sequence = offset
    again = tmp_path / "again"
    done = _graphstore(
        "restore", "--nats", nats_server.url, "--tenant", "acme", "--base", str(base),
        "--data-dir", str(again),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"breaks after offset {base_head + 9}" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not again.exists() or [p.name for p in again.iterdir()] == []


def test_verify_nats_finds_a_stream_that_differs_from_what_was_relayed(
    relayed: Path, nats_server: NatsServer
) -> None:
    assert verify(relayed, tenants=["acme"], nats_url=nats_server.url).ok
    connection = sqlite3.connect(relayed / "tenant-acme.db")
    connection.execute(
        "UPDATE _honker_stream SET payload = replace(payload, 'call protocol history', "
        "'call protocom history') WHERE payload ->> '$.type' = 'Graph.Created'"
    )
    connection.commit()
    connection.close()
    report = verify(relayed, tenants=["acme"], nats_url=nats_server.url)
    found = [p for p in report.problems if p.check == "nats"]
    assert found and "1 payloads differ (offsets [7])" in found[0].what
