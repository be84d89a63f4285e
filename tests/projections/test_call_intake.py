"""The call intake (projections/call_intake.py): call events published to a durable event
target, folded into the call graph exactly once, refused ones dead-lettered.

Real tenant files, real processes: a second process publishes, and a folding consumer is
killed with SIGKILL while it has work in flight, then restarted; the call graph is then
compared, call by call, with the same events ingested in one clean batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain import Metagraph
from domain.calls import get_call, ingest
from domain.errors import ConcurrencyError, InvalidCallEventError
from graphstore.samples.generate import OPERATION_TYPES
from projections import CallIntake, CallIntakeError, call_topic, publish_call
from streams import Batch, EventTarget
from tests.projections._intake_worker import env, workload

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # a liveness bound (a hung consumer fails the test), never a speed check


def request(rid: str, at: int = 1_800_000_000_000, **extra: Any) -> dict[str, Any]:
    payload = {"requestId": rid, "operationId": "billing.charge", "input": {}, **extra}
    return {"type": "call.requested", "at": at, "payload": payload}


def response(rid: str, at: int = 1_800_000_000_100, data: Any = 1) -> dict[str, Any]:
    output = {"data": data, "meta": {"source": "local"}}
    return {"type": "call.responded", "at": at, "payload": {"requestId": rid, "output": output}}


@pytest.fixture
def app(tenant_file: Path) -> Iterator[Metagraph]:
    with Metagraph(env=env(str(tenant_file))) as metagraph:
        yield metagraph


@pytest.fixture
def target(tenant_file: Path, app: Metagraph) -> Iterator[EventTarget]:
    del app  # opened first: the target shares its file
    with EventTarget(tenant_file, mode="durable") as durable:
        yield durable


def request_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["payload"]["requestId"] for e in events if e["type"] == "call.requested"]


def reference_calls(tmp_path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls the same events give when ingested in one clean batch elsewhere."""
    with Metagraph(env=env(str(tmp_path / "tenant-reference.db"))) as reference:
        ingest(reference, events, operation_types=OPERATION_TYPES)
        return {rid: get_call(reference, rid) for rid in request_ids(events)}


def assert_folded_once(app: Metagraph, tmp_path: Path, events: list[dict[str, Any]]) -> None:
    expected = reference_calls(tmp_path, events)
    for rid, call in expected.items():
        got = get_call(app, rid)
        assert got is not None and got == call, rid
        entries = [(e["id"], e.get("cause")) for e in got["events"]]
        assert len(entries) == len(set(entries)), f"{rid}: an event applied twice"


# ------------------------------------------------------------------------------ folding


def test_published_call_events_are_folded_with_the_position(
    app: Metagraph, target: EventTarget, tmp_path: Path
) -> None:
    events = workload(copies=1, runs=6)
    for event in events:
        publish_call(target, event)
    target.publish("not.a.call", {"ignored": True})
    intake = CallIntake(app, target, operation_types=OPERATION_TYPES, batch=25)
    assert intake.catch_up() == len(events) + 1
    assert intake.position() == target.head()
    assert intake.dead_letters() == []
    assert_folded_once(app, tmp_path, events)
    head = app.recorder.max_notification_id()
    assert intake.catch_up() == 0  # nothing more, nothing written
    assert app.recorder.max_notification_id() == head


def test_topics_follow_the_call_protocol(target: EventTarget) -> None:
    publish_call(target, request("r1"))
    publish_call(target, response("r1"))
    publish_call(target, {"type": "call.error", "at": 5, "payload": _error("r1")})
    assert [e.type for e in target.read()] == [
        "call.requested",
        "call.responded:r1",
        "call.error:r1",
    ]
    assert call_topic(_checked(response("r9"))) == "call.responded:r9"


def test_a_running_intake_follows_a_publisher_in_another_process(
    app: Metagraph, target: EventTarget, tenant_file: Path, tmp_path: Path
) -> None:
    with CallIntake(app, target, operation_types=OPERATION_TYPES).start() as intake:
        publisher = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.projections._intake_worker",
                "publish",
                str(tenant_file),
                "1",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        _, count, head = publisher.stdout.split()
        assert intake.wait_for(int(head), WAIT), intake.error
    events = workload(copies=1)
    assert int(count) == len(events)
    assert_folded_once(app, tmp_path, events)


def test_the_position_moves_only_from_where_it_was_read(
    app: Metagraph, target: EventTarget
) -> None:
    """Two copies of one consumer: the one that read a stale position commits nothing."""
    publish_call(target, request("r1"))
    publish_call(target, request("r2"))
    first, second = CallIntake(app, target), CallIntake(app, target)
    batch = Batch(first.name, target.stream, None, 0, target.head(), target.read())
    first.fold(batch)
    head = app.recorder.max_notification_id()
    with pytest.raises(ConcurrencyError):
        second.fold(batch)  # read before the first committed: refused, nothing written
    assert app.recorder.max_notification_id() == head
    assert first.position() == target.head()


# ------------------------------------------------------------------------- dead letters


def test_refused_call_events_are_dead_lettered_and_the_rest_applied(
    app: Metagraph, target: EventTarget
) -> None:
    publish_call(target, request("r1"))
    target.publish("call.responded:r2", {"at": 2, "payload": response("r2")["payload"]})
    target.publish("call.responded:r1", {"at": 3, "payload": response("r9")["payload"]})
    target.publish("call.bogus", {"at": 4, "payload": {"requestId": "r1"}})
    target.publish("call.requested", "not an object")
    publish_call(target, response("r1"))
    publish_call(target, response("r1", data=2))  # a second, different response
    publish_call(target, request("r3"))
    with CallIntake(app, target, batch=100) as intake:
        intake.catch_up()
        assert intake.position() == target.head()
        letters = intake.dead_letters()
        assert [(d.type, d.error, d.code) for d in letters] == [
            ("call.responded:r2", "UnknownCallError", "NOT_FOUND"),
            ("call.responded:r1", "InvalidCallEventError", "VALIDATION_ERROR"),
            ("call.bogus", "InvalidCallEventError", "VALIDATION_ERROR"),
            ("call.requested", "InvalidCallEventError", "VALIDATION_ERROR"),
            ("call.responded:r1", "CallConflictError", "CONFLICT"),
        ]
        assert "about 'r9'" in letters[1].message
        assert _status(app, "r1") == "completed"
        assert _status(app, "r3") == "pending"
        # Its cause fixed (r2 requested), a dead letter is published again and applies.
        publish_call(target, request("r2"))
        intake.requeue(letters[0])
        intake.catch_up()
        assert _status(app, "r2") == "completed"
        assert len(intake.dead_letters()) == 5  # history stays


def test_a_bad_call_event_is_refused_at_publish_and_nothing_is_written(
    target: EventTarget,
) -> None:
    with pytest.raises(InvalidCallEventError, match="parentRequestID"):
        publish_call(target, request("r1", parentRequestID="typo"))
    assert target.head() == 0


def test_the_intake_needs_a_durable_target_on_the_applications_file(
    app: Metagraph, tenant_file: Path, tmp_path: Path
) -> None:
    with (
        EventTarget(tenant_file, mode="composite") as composite,
        pytest.raises(CallIntakeError, match="mode='durable'"),
    ):
        CallIntake(app, composite)
    with (
        EventTarget(tmp_path / "elsewhere.db", mode="durable") as elsewhere,
        pytest.raises(CallIntakeError, match="on the application's file"),
    ):
        CallIntake(app, elsewhere)


# -------------------------------------------------------------------------------- kill -9


def _intake_worker(path: Path, batch: int) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.projections._intake_worker", "intake", str(path), str(batch)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def test_kill_9_while_folding_loses_nothing_and_applies_nothing_twice(
    tenant_file: Path, tmp_path: Path
) -> None:
    publisher = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.projections._intake_worker",
            "publish",
            str(tenant_file),
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    _, count, head_text = publisher.stdout.split()
    head = int(head_text)
    kills: list[int] = []
    with EventTarget(tenant_file, mode="durable") as watcher:
        last = 0
        for _ in range(3):
            worker = _intake_worker(tenant_file, batch=5)
            deadline = time.monotonic() + WAIT
            while (watcher.position("call-intake@v1") or 0) <= last:  # progress this round
                assert time.monotonic() < deadline, "the intake made no progress"
                time.sleep(0.002)
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(WAIT) == -signal.SIGKILL
            last = watcher.position("call-intake@v1") or 0
            kills.append(last)
        # Every kill landed mid-work: folded some, not all (the rest still to do).
        assert all(0 < position < head for position in kills), (kills, head)
        assert kills == sorted(kills)
        worker = _intake_worker(tenant_file, batch=5)
        assert worker.stdout is not None and worker.stdin is not None
        while True:
            line = worker.stdout.readline().strip()
            assert line, "the restarted intake stopped"
            if line == f"caught-up {head}":
                break
        worker.stdin.close()
        assert worker.stdout.readline().strip() == "closed"
        assert worker.wait(WAIT) == 0
    events = workload(copies=2)
    assert int(count) == len(events)
    with (
        Metagraph(env=env(str(tenant_file))) as app,
        EventTarget(tenant_file, mode="durable") as target,
    ):
        intake = CallIntake(app, target)
        assert intake.position() == head
        assert intake.dead_letters() == []
        assert_folded_once(app, tmp_path, events)


def _status(app: Metagraph, rid: str) -> str | None:
    call = get_call(app, rid)
    return None if call is None else str(call["status"])


def _error(rid: str) -> dict[str, Any]:
    return {"requestId": rid, "code": "TIMEOUT", "message": "late"}


def _checked(event: dict[str, Any]) -> Any:
    from domain.calls.protocol import as_event  # noqa: PLC0415

    return as_event(event)
