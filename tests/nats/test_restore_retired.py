"""A tenant whose file holds other Honker streams (a unit's ``publish`` stream, a durable
event target) and whose runs are retired, relayed to a real nats-server: the relay
deletes the retired entries' messages from JetStream, exactly once even when it is
killed between the record and the deletions; a point-in-time restore equals the source
and ``verify`` passes on it (every hole explained, and why)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from graphstore.data import DataDirectory
from graphstore.nats.relay import DEFAULT_CONSUMER, Relay
from graphstore.nats.restore import SubjectGapError, restore_from_nats
from graphstore.verify import verify
from streams import TenantReader, saved_position
from streams.replication import ExplainedHole, explained_holes
from streams.retirement import RETIREMENT_TYPE
from tests.nats._relay_worker import register, subject_messages, write
from tests.nats._retired import (
    SECRET,
    entries,
    new_graph,
    retire_graph,
    write_mixed,
)
from tests.nats.conftest import NatsServer

ROOT = Path(__file__).resolve().parents[2]


def _metagraph(data: Path) -> list[tuple[int, bytes]]:
    return [(o, p.encode()) for o, _, p in entries(data / "tenant-acme.db", "metagraph")]


def _relay(data: Path, url: str) -> None:
    with DataDirectory(data) as store, Relay(store, url) as relay:
        relay.wait_for("acme", _metagraph(data)[-1][0])


def _target(tmp_path: Path, source: Path, name: str = "restored") -> Path:
    target = tmp_path / name
    target.mkdir()
    shutil.copyfile(source / "system.db", target / "system.db")
    return target


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, UUID]:
    """A tenant with three interleaved streams and a graph (returned) to retire."""
    source = tmp_path / "source"
    with DataDirectory(source) as data:
        register(data, "acme")
        write(data, "acme", 40)
        doomed = new_graph(data, "acme", "doomed")
        write_mixed(data, "acme", doomed, 12, SECRET)
        kept = new_graph(data, "acme", "kept")
        write_mixed(data, "acme", kept, 12, "kept")
    return source, doomed


def test_other_streams_leave_holes_the_restore_explains_and_verify_accepts(
    mixed: tuple[Path, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    source, _ = mixed
    streams = {t for _, t, _ in entries(source / "tenant-acme.db")}
    assert {"metagraph", "audit-feed", "platform-events"} <= streams  # interleaved
    _relay(source, nats_server.url)
    target = _target(tmp_path, source)
    report = restore_from_nats(nats_server.url, "acme", target)
    assert _metagraph(target) == _metagraph(source)  # the relayed stream, byte for byte
    holes = _holes(target)
    head = _metagraph(source)[-1][0]
    others = {o for o, t, _ in entries(source / "tenant-acme.db") if t != "metagraph"}
    others = {o for o in others if o < head}  # after the head: not a hole of the copy
    covered = {o for h in holes for o in range(h.first, h.last + 1)}
    assert others <= covered  # every other-stream offset, and nothing of the stream:
    assert not covered & {o for o, _ in _metagraph(source)}
    assert all("other streams" in h.reason for h in holes)
    checked = verify(target)
    assert checked.ok, checked.problems
    assert report.restored_to == _metagraph(source)[-1][0]
    # Without the record of the holes, verify would report them: they are real holes.
    connection = _sqlite(target)
    connection.execute("DROP TABLE graphstore_explained_holes")
    connection.commit()
    connection.close()
    assert [p.check for p in verify(target).problems] == ["gap"] * len(holes)


def _holes(data: Path) -> list[ExplainedHole]:
    env = {"HONKER_DBNAME": str(data / "tenant-acme.db"), "HONKER_TENANT": "acme"}
    with TenantReader(env) as reader:
        return explained_holes(reader.datastore)


def _sqlite(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "tenant-acme.db")


def test_the_relay_deletes_retired_entries_from_jetstream_and_a_restore_equals_the_source(
    mixed: tuple[Path, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    source, doomed = mixed
    _relay(source, nats_server.url)
    assert any(SECRET.encode() in p for _, p in subject_messages(nats_server.url, "acme"))
    before = _metagraph(source)
    record, ranges = retire_graph(DataDirectory(source, create=False), "acme", doomed)
    retired = {o for a, b in ranges for o in range(a, b + 1)}
    assert retired and max(retired) < record
    _relay(source, nats_server.url)
    relayed = subject_messages(nats_server.url, "acme")
    assert relayed == _metagraph(source)  # the retired copies are gone, the rest stays
    assert not any(SECRET.encode() in p for _, p in relayed)
    assert not retired & {o for o, _ in relayed}
    # To the head: the source as it is now, byte for byte, and it verifies.
    target = _target(tmp_path, source)
    report = restore_from_nats(nats_server.url, "acme", target)
    assert report.restored_to == _metagraph(source)[-1][0]
    assert _metagraph(target) == _metagraph(source)
    checked = verify(target)
    assert checked.ok, checked.problems
    # To a point before the record: what JetStream still holds up to it; the holes the
    # record explains (found after the point) are recorded, and it verifies.
    point = max(retired) + 1
    while point not in {o for o, _ in before}:
        point += 1
    early = _target(tmp_path, source, "early")
    report = restore_from_nats(nats_server.url, "acme", early, until_offset=point)
    assert _metagraph(early) == [(o, p) for o, p in before if o <= point and o not in retired]
    assert verify(early).ok, verify(early).problems
    assert any("retirement record" in h.reason for h in _holes(early))


def test_a_restore_from_a_subject_that_still_holds_the_retired_entries_removes_them(
    mixed: tuple[Path, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    """The record relayed, its deletions not done yet (a relay killed between): the
    restore applies the record itself, and the result equals the source."""
    source, doomed = mixed
    _relay(source, nats_server.url)
    record, _ = retire_graph(DataDirectory(source, create=False), "acme", doomed)
    _relay_killed_before_deleting(source, nats_server.url, record)
    assert any(SECRET.encode() in p for _, p in subject_messages(nats_server.url, "acme"))
    target = _target(tmp_path, source)
    report = restore_from_nats(nats_server.url, "acme", target)
    assert _metagraph(target) == _metagraph(source)
    assert any("removed as the relayed retirement records say" in n for n in report.notes)
    assert verify(target).ok, verify(target).problems


_KILLED_RELAY = """
import os, sys
from pathlib import Path
from graphstore.data import DataDirectory
from graphstore.nats._relay_jetstream import Publisher
from graphstore.nats.relay import Relay

async def crash(self, tenant, ranges):
    print("deleting", flush=True)
    os._exit(9)  # a crash after the record's acknowledgement, before any deletion

Publisher.delete_offsets = crash
with DataDirectory(Path(sys.argv[1])) as data, Relay(data, sys.argv[2]) as relay:
    relay.wait_for("acme", int(sys.argv[3]), timeout=60)
"""


def _relay_killed_before_deleting(source: Path, url: str, record: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_RELAY, str(source), url, str(record)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 9 and "deleting" in done.stdout, done.stdout + done.stderr
    assert record in {o for o, _ in subject_messages(url, "acme")}  # the record is relayed
    with TenantReader({"HONKER_DBNAME": str(source / "tenant-acme.db")}) as reader:
        saved = saved_position(reader.datastore, DEFAULT_CONSUMER, "metagraph")
    assert saved is not None and saved < record  # the position waits for the deletions


def test_a_relay_killed_between_the_record_and_its_deletions_deletes_them_once_restarted(
    mixed: tuple[Path, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    source, doomed = mixed
    _relay(source, nats_server.url)
    record, _ = retire_graph(DataDirectory(source, create=False), "acme", doomed)
    _relay_killed_before_deleting(source, nats_server.url, record)
    _relay(source, nats_server.url)  # restarted: finds the record after its position
    relayed = subject_messages(nats_server.url, "acme")
    assert relayed == _metagraph(source)
    assert not any(SECRET.encode() in p for _, p in relayed)
    with TenantReader({"HONKER_DBNAME": str(source / "tenant-acme.db")}) as reader:
        saved = saved_position(reader.datastore, DEFAULT_CONSUMER, "metagraph")
    assert saved == _metagraph(source)[-1][0]
    # Again: nothing more is deleted, nothing republished.
    _relay(source, nats_server.url)
    assert subject_messages(nats_server.url, "acme") == relayed
    target = _target(tmp_path, source)
    restore_from_nats(nats_server.url, "acme", target)
    assert _metagraph(target) == _metagraph(source)
    assert any(RETIREMENT_TYPE.encode() in p for _, p in _metagraph(target))


def test_a_hole_no_retirement_record_explains_is_still_refused(
    mixed: tuple[Path, UUID], tmp_path: Path, nats_server: NatsServer
) -> None:
    import asyncio  # noqa: PLC0415

    import nats  # noqa: PLC0415

    from graphstore.nats.subjects import EVENTS_STREAM  # noqa: PLC0415

    source, doomed = mixed
    _relay(source, nats_server.url)
    retire_graph(DataDirectory(source, create=False), "acme", doomed)
    _relay(source, nats_server.url)

    async def delete(seq: int) -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_msg(EVENTS_STREAM, seq)
        finally:
            await nc.close()

    asyncio.run(delete(5))  # an entry of the kept history
    with pytest.raises(SubjectGapError, match="no relayed retirement record removed them"):
        restore_from_nats(nats_server.url, "acme", _target(tmp_path, source))
