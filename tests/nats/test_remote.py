"""Projections on another machine: a tenant followed from JetStream into a mirror that
equals the local projections row for row, served (runs, subscriptions) from there,
surviving kill -9 of the remote process and of the NATS server. The tenant's stream
reaches JetStream through the real relay (graphstore.nats.relay) in every test."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats

from domain import Principal
from graphstore.nats.relay import Relay
from graphstore.nats.remote import RemoteProjector
from graphstore.store import Store
from projections import FlowgraphProjection, Subscription
from projections.mirror import Mirror, mirror_path
from streams import HonkerDatastore, read_after
from streams.directory import Directory
from tests._kill import Coverage, Landing, PhasedProcess, aims, batch_span, kill_series
from tests.nats._remote_data import assert_equal_views, positions, write_history
from tests.nats.conftest import NatsServer
from tests.projections.rebuild_check import catch_up_in_process, file_env


def _tenant(data: Path, org: str, runs: int, *, nodes: int = 5) -> tuple[Path, int]:
    """A registered tenant with a history; its file and its stream's head."""
    with Store(data) as store:
        email = f"ada@{org}.example"
        store.identity.create_account(email, "Ada", actor=Principal.system(), access_level="admin")
        store.create_tenant(org, name=org.title(), owner_email=email)
        app = store.tenant(org)
        write_history(app, org, runs, graph_nodes=nodes)
        head = app.recorder.max_notification_id() or 0
        path = store.data.tenant_path(org)
    catch_up_in_process(path)
    return path, head


def _publish(url: str, path: Path, org: str) -> int:
    """Relay the tenant's stream to JetStream with the real relay
    (:class:`graphstore.nats.relay.Relay`, resuming from what the subject holds) until
    its head is acknowledged; the head."""
    db = HonkerDatastore(path)
    try:
        head = max((e.offset for e in read_after(db, "metagraph", 0)), default=0)
    finally:
        db.close()
    with Relay(Directory(path.parent), url, tenants=lambda: [org]) as relay:
        relay.wait_for(org, head, timeout=60)
    return head


def test_a_mirror_equals_the_local_projections_and_serves_runs_and_changes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    path, head = _tenant(tmp_path / "hub", "acme", runs=12)
    assert _publish(nats_server.url, path, "acme") == head
    remote_dir = tmp_path / "remote"
    with RemoteProjector(nats_server.url, remote_dir, discover_interval=0.1) as remote:
        deadline = time.monotonic() + 30
        while "acme" not in {s.tenant for s in remote.status()}:
            assert time.monotonic() < deadline, "the tenant was not discovered"
            time.sleep(0.02)
        mirror = remote.mirror("acme")
        assert mirror.wait_for(head, timeout=30)
        compared = assert_equal_views(path, mirror_path(remote_dir, "acme"))
        assert compared > 12 * 4

        # Runs queries, from the mirror: the same answers as from the tenant file.
        with (
            mirror.views() as views,
            Store(tmp_path / "hub") as store,
            store.views("acme") as local,
        ):
            assert views.runs(limit=100) == local.runs(limit=100)
            assert views.call_tree("acme-3") == local.call_tree("acme-3")

        # A change subscription from the mirror: every change of the file's, same
        # positions; a live one sees a change the relay carries later.
        env = file_env(path)
        with Subscription.open(env, FlowgraphProjection(), from_start=True) as local_sub:
            expected = local_sub.poll()
        with mirror.subscribe(from_start=True) as remote_sub:
            assert remote_sub.poll() == expected
        with mirror.subscribe(run="acme-5", from_start=True) as run_sub:
            run_changes = run_sub.poll()
        assert {c.call_id for c in run_changes} == {"acme-5", *(f"acme-5.{i}" for i in range(3))}

        live = mirror.subscribe()
        with Store(tmp_path / "hub") as store:
            app = store.tenant("acme")
            write_history(app, "late", 1, graph_nodes=1)
            new_head = app.recorder.max_notification_id() or 0
        catch_up_in_process(path)
        _publish(nats_server.url, path, "acme")
        change = live.next(timeout=30)
        live.close()
        assert change is not None and head < change.position <= new_head
        assert mirror.wait_for(new_head, timeout=30)
    assert_equal_views(path, mirror_path(remote_dir, "acme"))


def test_redelivered_entries_change_nothing(tmp_path: Path) -> None:
    path, head = _tenant(tmp_path / "hub", "acme", runs=3)
    db = HonkerDatastore(path)
    entries = read_after(db, "metagraph", 0)
    db.close()
    with Mirror.open(tmp_path / "remote", "acme") as mirror:
        half = len(entries) // 2
        assert mirror.apply(entries[:half]) == half
        assert mirror.apply(entries) == len(entries) - half  # overlapping redelivery
        assert mirror.apply(entries[:half]) == 0
        assert mirror.position == head
    assert_equal_views(path, mirror_path(tmp_path / "remote", "acme"))


ROOT = Path(__file__).resolve().parents[2]


def _remote_command(url: str, remote_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "graphstore",
        "project-remote",
        "--data-dir",  # the reader's own directory, as README.md runs it
        str(remote_dir),
        "--nats",
        url,
        "--tenant",
        "acme",
        "--status-every",
        "0",
        "--batch-size",
        "40",
    ]


def _remote_process(url: str, remote_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            _remote_command(url, remote_dir), stdout=out, stderr=out, start_new_session=True
        )


def _phased_remote(url: str, remote_dir: Path, log: Path) -> PhasedProcess:
    """The remote process, each fetched batch reporting its phases."""
    return PhasedProcess(
        _remote_command(url, remote_dir),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=log,
    )


def _mirror_position(remote_dir: Path) -> int:
    mirror = mirror_path(remote_dir, "acme")
    if not mirror.exists():
        return 0
    return min(positions(mirror).values(), default=0)


def test_a_remote_process_killed_mid_work_resumes_with_no_gap_and_no_duplicate(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The remote projector is a process of its own, with its own data directory (it
    never sees the tenant file); kill -9 it at every phase of a fetched batch
    (``tests/_kill.py``: fetched, its mirror transaction begun, inside the commit,
    committed and not acknowledged to JetStream, acknowledged), again and again; each
    kill's phase is checked against the mirror's position."""
    path, head = _tenant(tmp_path / "hub", "acme", runs=150, nodes=3)
    _publish(nats_server.url, path, "acme")
    remote_dir = tmp_path / "remote"
    log = tmp_path / "remote.log"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
    coverage = Coverage()
    seen = [0]

    def start() -> PhasedProcess:
        assert _mirror_position(remote_dir) < head, "caught up before the kills ended"
        return _phased_remote(nats_server.url, remote_dir, log)

    def check(landing: Landing) -> None:
        position = _mirror_position(remote_dir)
        assert position < head, f"killed at {landing}, yet the mirror is complete"
        assert position >= seen[0], f"killed at {landing}, the mirror went back to {position}"
        assert landing.unit is not None
        _, first, last = batch_span(landing.unit)
        outcome = landing.outcome(mirror_file)
        if outcome == "committed":
            assert position >= last, f"killed at {landing}, mirror at {position} < {last}"
        elif outcome == "absent":
            assert position < first, f"killed at {landing}, mirror at {position} >= {first}"
        seen[0] = position
        print(f"  mirror at {position} of {head}")

    mirror_file = mirror_path(remote_dir, "acme").name
    planned = aims(rng, coverage.phases, 6, after=2, where=mirror_file)
    kill_series(start, check, planned, rng, coverage)
    process = _remote_process(nats_server.url, remote_dir, log)
    try:
        deadline = time.monotonic() + 60
        while _mirror_position(remote_dir) < head:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert_equal_views(path, mirror_path(remote_dir, "acme"))
    with Mirror.open(remote_dir, "acme") as mirror:  # each entry kept once, all of them
        kept = [e.offset for e in mirror.entries()]
    db = HonkerDatastore(path)
    assert kept == [e.offset for e in read_after(db, "metagraph", 0)]
    db.close()


def test_the_remote_backs_off_while_the_server_is_down_and_catches_up(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    path, head = _tenant(tmp_path / "hub", "acme", runs=4)
    _publish(nats_server.url, path, "acme")
    remote_dir = tmp_path / "remote"
    with RemoteProjector(nats_server.url, remote_dir, tenants=["acme"]) as remote:
        assert remote.mirror("acme").wait_for(head, timeout=30)
        nats_server.stop(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not any(s.state == "backing-off" and s.error for s in remote.status()):
            assert time.monotonic() < deadline, remote.status()
            time.sleep(0.05)
        with Store(tmp_path / "hub") as store:  # the tenant goes on while NATS is away
            app = store.tenant("acme")
            write_history(app, "away", 3, graph_nodes=1)
            new_head = app.recorder.max_notification_id() or 0
        catch_up_in_process(path)
        nats_server.start()
        _publish(nats_server.url, path, "acme")
        assert remote.mirror("acme").wait_for(new_head, timeout=60), remote.status()
        deadline = time.monotonic() + 30
        while remote.status()[0].state != "following":
            assert time.monotonic() < deadline, remote.status()
            time.sleep(0.05)
    assert_equal_views(path, mirror_path(remote_dir, "acme"))


def test_remote_views_follow_the_real_relay(nats_server: NatsServer, tmp_path: Path) -> None:
    """Three processes' roles: the writer and the relay (graphstore.nats.relay) here,
    the remote projector a process of its own; writes while all run."""
    path, head = _tenant(tmp_path / "hub", "acme", runs=5)
    remote_dir = tmp_path / "remote"
    log = tmp_path / "remote.log"
    relay = Relay(Directory(tmp_path / "hub"), nats_server.url, tenants=lambda: ["acme"])
    process = _remote_process(nats_server.url, remote_dir, log)
    try:
        with relay:
            relay.wait_for("acme", head, timeout=60)
            with Store(tmp_path / "hub") as store:
                app = store.tenant("acme")
                write_history(app, "live", 5, graph_nodes=2)
                new_head = app.recorder.max_notification_id() or 0
            relay.wait_for("acme", new_head, timeout=60)
            deadline = time.monotonic() + 60
            while _mirror_position(remote_dir) < new_head:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    catch_up_in_process(path)
    assert_equal_views(path, mirror_path(remote_dir, "acme"))


def test_an_events_stream_created_again_is_read_from_its_start(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    path, head = _tenant(tmp_path / "hub", "acme", runs=3)
    _publish(nats_server.url, path, "acme")
    remote_dir = tmp_path / "remote"
    with RemoteProjector(nats_server.url, remote_dir, tenants=["acme"]) as remote:
        assert remote.mirror("acme").wait_for(head, timeout=30)

    async def recreate() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_stream("GRAPHSTORE_EVENTS")
        finally:
            await nc.close()

    asyncio.run(recreate())
    with Store(tmp_path / "hub") as store:
        app = store.tenant("acme")
        write_history(app, "again", 1, graph_nodes=1)
        new_head = app.recorder.max_notification_id() or 0
    catch_up_in_process(path)
    _publish(nats_server.url, path, "acme")  # all again: the subject is empty
    with RemoteProjector(nats_server.url, remote_dir, tenants=["acme"]) as remote:
        assert remote.mirror("acme").wait_for(new_head, timeout=30), remote.status()
    assert_equal_views(path, mirror_path(remote_dir, "acme"))
