"""Spokes and the hub's ingester: call events published to JetStream, folded into the
tenant's call graph exactly once, through kill -9 of the ingester and of the server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from domain import Principal
from domain.calls import get_call
from domain.errors import InvalidCallEventError, InvalidOrgIdError
from graphstore.nats.ingester import Ingester, fold_messages, latest_position
from graphstore.nats.spoke import Spoke, SpokeClosedError, ensure_calls_stream
from graphstore.nats.subjects import calls_subject
from graphstore.store import Store
from streams import HonkerDatastore
from tests._kill import Coverage, Landing, PhasedProcess, aims, batch_span, kill_series
from tests.nats._remote_data import run_events
from tests.nats.conftest import NatsServer


def _hub(data: Path, org: str = "acme") -> Path:
    with Store(data) as store:
        email = f"ada@{org}.example"
        store.identity.create_account(email, "Ada", actor=Principal.system(), access_level="admin")
        store.create_tenant(org, name=org.title(), owner_email=email)
        return store.data.tenant_path(org)


def _position(tenant_file: Path) -> int:
    db = HonkerDatastore(tenant_file)
    try:
        return latest_position(db)
    finally:
        db.close()


def _event_ids(data: Path, org: str, request_ids: list[str]) -> Counter[str]:
    """How many times each protocol event id is recorded on its call."""
    found: Counter[str] = Counter()
    with Store(data) as store:
        app = store.tenant(org)
        for request_id in request_ids:
            recorded = get_call(app, request_id)
            assert recorded is not None, f"call {request_id} is missing"
            found.update(e["id"] for e in recorded["events"])
    return found


def test_a_spoke_checks_before_publishing(nats_server: NatsServer) -> None:
    with pytest.raises(InvalidOrgIdError):
        Spoke(nats_server.url, "Not A Tenant")

    async def scenario() -> None:
        spoke = Spoke(nats_server.url, "acme")
        with pytest.raises(SpokeClosedError):
            await spoke.publish(run_events("r", 0)[0])
        async with spoke:
            bad = {"type": "call.requested", "at": 1, "payload": {"requestID": "x"}}
            with pytest.raises(InvalidCallEventError):
                await spoke.publish(bad)
            with pytest.raises(InvalidCallEventError):  # one bad event: none published
                await spoke.publish_many([*run_events("r", 0), bad])
            assert spoke._js is not None
            info = await spoke._js.stream_info("GRAPHSTORE_CALLS")
            assert info.state.messages == 0
            first = await spoke.publish(run_events("r", 0)[0])
            again = await spoke.publish(run_events("r", 0)[0])  # a retry: one message
            assert first == again
            info = await spoke._js.stream_info("GRAPHSTORE_CALLS")
            assert info.state.messages == 1

    asyncio.run(scenario())


def test_the_ingester_folds_spoke_events_once_and_dead_letters_refused_ones(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data = tmp_path / "hub"
    _hub(data)

    async def publish() -> int:
        async with Spoke(nats_server.url, "acme") as spoke:
            for number in range(5):
                await spoke.publish_many(run_events("run", number))
            # A raw publisher that skipped the checks, and a response to an unknown call:
            # both are refused by the hub and must not block the events after them.
            assert spoke._nc is not None
            js = spoke._nc.jetstream()
            await ensure_calls_stream(js)
            await js.publish(calls_subject("acme"), b'{"type": "call.nonsense"}')
            await spoke.publish(
                {
                    "type": "call.completed",
                    "at": 5,
                    "payload": {"requestId": "nobody"},
                }
            )
            sequences = await spoke.publish_many(run_events("run", 5))
            return max(sequences)

    last = asyncio.run(publish())
    with Store(data) as store, Ingester(nats_server.url, store, tenants=["acme"]) as ingester:
        deadline = time.monotonic() + 30
        while _position(store.data.tenant_path("acme")) < last:
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.02)
        letters = ingester.dead_letters("acme")
        assert sorted((letter.error, letter.code) for letter in letters) == [
            ("InvalidCallEventError", "VALIDATION_ERROR"),
            ("UnknownCallError", "NOT_FOUND"),
        ]
        while ingester.status()[0].refused != 2:  # counted once the fold returns
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.01)
    calls = [f"run-{n}{suffix}" for n in range(6) for suffix in ("", ".0", ".1", ".2")]
    counts = _event_ids(data, "acme", calls)
    assert set(counts.values()) == {1}
    assert len(counts) == 6 * 8


def test_folding_the_same_messages_again_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    _hub(data)
    pairs = [(i + 1, msgspec.json.encode(e)) for i, e in enumerate(run_events("r", 0))]
    with Store(data) as store:
        app = store.tenant("acme")
        assert fold_messages(app, pairs) == (len(pairs), len(pairs), 0)
        head = app.recorder.max_notification_id()
        assert fold_messages(app, pairs) == (len(pairs), 0, 0)
        assert fold_messages(app, pairs[:3]) == (len(pairs), 0, 0)
        assert app.recorder.max_notification_id() == head


class _Publisher(threading.Thread):
    """A spoke publishing workflow runs until stopped; remembers every event whose
    PubAck it received (a run's events are published, then acknowledged, together)."""

    def __init__(self, url: str, runs: int) -> None:
        super().__init__(daemon=True)
        self.url, self.runs = url, runs
        self.acked: list[dict[str, Any]] = []
        self.last_sequence = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        async def go() -> None:
            async with Spoke(self.url, "acme", timeout=10) as spoke:
                for number in range(self.runs):
                    if self.stopping.is_set():
                        return
                    events = run_events("spoke", number)
                    sequences = await spoke.publish_many(events)
                    self.acked += events
                    self.last_sequence = max(self.last_sequence, *sequences)
                    await asyncio.sleep(0.01)

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported by the test
            self.error = exc


ROOT = Path(__file__).resolve().parents[2]


def _ingester_command(url: str, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "graphstore",
        "--data-dir",
        str(data),
        "ingest-nats",
        "--nats",
        url,
        "--tenant",
        "acme",
        "--status-every",
        "0",
    ]


def _ingester_process(url: str, data: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            _ingester_command(url, data), stdout=out, stderr=out, start_new_session=True
        )


def test_every_acknowledged_spoke_event_is_folded_once_through_kill_9_of_the_ingester(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """kill -9 the ingester at every phase of a fetched batch (``tests/_kill.py``):
    fetched and nothing folded (started), as its fold transaction begins (built), inside
    the commit, committed but not yet acknowledged to JetStream (the messages come again:
    the position's compare-and-set makes them change nothing), and acknowledged. Each
    kill's phase is checked against the saved position."""
    data = tmp_path / "hub"
    tenant_file = _hub(data)
    log = tmp_path / "ingester.log"
    publisher = _Publisher(nats_server.url, runs=20_000)
    publisher.start()
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    coverage = Coverage()
    seen = [0]

    def start() -> PhasedProcess:
        assert publisher.is_alive(), "the spoke stopped publishing before the kills ended"
        return PhasedProcess(
            _ingester_command(nats_server.url, data),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=log,
        )

    def check(landing: Landing) -> None:
        position = _position(tenant_file)
        assert position >= seen[0], f"killed at {landing}, the position went back"
        assert landing.unit is not None
        _, first, last = batch_span(landing.unit)
        outcome = landing.outcome(tenant_file.name)
        if outcome == "committed":  # the batch's fold committed: the position is past it
            assert position >= last, f"killed at {landing}, position {position} < {last}"
        elif outcome == "absent":  # nothing of the batch was folded
            assert position < first, f"killed at {landing}, position {position} >= {first}"
        seen[0] = position

    try:
        planned = aims(rng, coverage.phases, 10, after=3, where=tenant_file.name)
        kill_series(start, check, planned, rng, coverage)
    finally:
        publisher.stopping.set()
        publisher.join(timeout=60)
    assert publisher.error is None, publisher.error
    process = _ingester_process(nats_server.url, data, log)
    try:
        deadline = time.monotonic() + 120
        while _position(tenant_file) < publisher.last_sequence:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    requests = sorted({e["payload"]["requestId"] for e in publisher.acked})
    counts = _event_ids(data, "acme", requests)
    acked = {e["id"] for e in publisher.acked}
    assert acked <= set(counts), f"missing: {sorted(acked - set(counts))[:5]}"
    duplicated = {event_id: n for event_id, n in counts.items() if n != 1}
    assert not duplicated, duplicated
    _every_stream_entry_is_indexed(data)


def _every_stream_entry_is_indexed(data: Path) -> None:
    """The tenant's stream and its event index agree, entry for entry: no event was
    committed without its index row (invisible to the call graph, seen by projections)."""
    with Store(data) as store:
        recorder: Any = store.tenant("acme").recorder
        rows = recorder.datastore.query(
            'SELECT "offset" FROM _honker_stream WHERE topic = ?', [recorder.stream]
        )
        index = recorder.datastore.query(f'SELECT "offset" FROM "{recorder.index_table_name}"')
    stream = sorted(row["offset"] for row in rows)
    indexed = sorted({row["offset"] for row in index})  # a call's reference shares its entry
    assert stream == indexed, f"{len(stream)} stream entries, {len(indexed)} indexed"


def test_the_ingester_backs_off_while_the_server_is_down_and_catches_up(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data = tmp_path / "hub"
    tenant_file = _hub(data)

    async def publish(first: int, count: int) -> int:
        async with Spoke(nats_server.url, "acme") as spoke:
            sequences: list[int] = []
            for number in range(first, first + count):
                sequences += await spoke.publish_many(run_events("down", number))
            return max(sequences)

    last = asyncio.run(publish(0, 3))
    with Store(data) as store, Ingester(nats_server.url, store, tenants=["acme"]) as ingester:
        deadline = time.monotonic() + 30
        while _position(tenant_file) < last:
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.02)
        nats_server.stop(signal.SIGKILL)
        while not any(s.state == "backing-off" and s.error for s in ingester.status()):
            assert time.monotonic() < deadline + 30, ingester.status()
            time.sleep(0.05)
        nats_server.start()
        last = asyncio.run(publish(3, 3))
        deadline = time.monotonic() + 60
        while _position(tenant_file) < last:
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.05)
    requests = [f"down-{n}{s}" for n in range(6) for s in ("", ".0", ".1", ".2")]
    assert set(_event_ids(data, "acme", requests).values()) == {1}


def test_a_calls_stream_created_again_is_folded_from_its_start(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data = tmp_path / "hub"
    tenant_file = _hub(data)

    async def publish(prefix: str, runs: int) -> int:
        async with Spoke(nats_server.url, "acme") as spoke:
            sequences: list[int] = []
            for number in range(runs):
                sequences += await spoke.publish_many(run_events(prefix, number))
            return max(sequences)

    last = asyncio.run(publish("before", 3))
    with Store(data) as store, Ingester(nats_server.url, store, tenants=["acme"]) as ingester:
        deadline = time.monotonic() + 30
        while _position(tenant_file) < last:
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.02)

    async def recreate() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_stream("GRAPHSTORE_CALLS")
        finally:
            await nc.close()

    asyncio.run(recreate())
    after = asyncio.run(publish("after", 1))  # sequences start again at 1
    assert after < last
    with Store(data) as store, Ingester(nats_server.url, store, tenants=["acme"]) as ingester:
        deadline = time.monotonic() + 30
        while not ingester.status() or ingester.status()[0].position < after:
            assert time.monotonic() < deadline, ingester.status()
            time.sleep(0.02)
    requests = [
        f"{p}-{n}{s}"
        for p, runs in (("before", 3), ("after", 1))
        for n in range(runs)
        for s in ("", ".0", ".1", ".2")
    ]
    assert set(_event_ids(data, "acme", requests).values()) == {1}
