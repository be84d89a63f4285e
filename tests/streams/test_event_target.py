"""The event target (streams/target.py): three modes, transactions, restarts, other
processes, bad input, and subscribers closed before the file.

Everything is real: Honker files in a temporary directory, the domain's unit of work for
transactions, and spawned OS processes for the cross-process cases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain import Metagraph
from domain.errors import ConcurrencyError, ValidationError
from streams import (
    EventTarget,
    TargetClosedError,
    TargetError,
    TargetEvent,
    _honker,
    read_after,
    saved_position,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # a liveness bound (a hung delivery fails the test), never a speed check


class Collector:
    """A handler that keeps what it receives and lets the test wait for a count."""

    def __init__(self) -> None:
        self.events: list[TargetEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: TargetEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait(self, count: int) -> list[TargetEvent]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, WAIT):
                raise AssertionError(f"received {len(self.events)} of {count}: {self.events}")
            return list(self.events)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]


def env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}


@pytest.fixture
def app(tenant_file: Path) -> Iterator[Metagraph]:
    with Metagraph(env=env(tenant_file)) as metagraph:
        yield metagraph


# --------------------------------------------------------------------------- ephemeral


def test_ephemeral_delivers_by_type_and_pattern_from_subscription_on(tenant_file: Path) -> None:
    with EventTarget(tenant_file, mode="ephemeral") as target:
        target.publish("call.requested", {"before": True})  # before anyone listens
        exact, pattern, every = Collector(), Collector(), Collector()
        target.subscribe("call.requested", exact)
        target.subscribe("call.responded:*", pattern)
        target.subscribe("*", every)
        target.publish("call.responded:r1", {"n": 1})
        target.publish("call.requested", {"n": 2})
        target.publish("call.responded:r2", {"n": 3})
        target.publish("other", None)
        every.wait(4)
        assert exact.wait(1)[0].detail == {"n": 2}
        assert pattern.wait(2) and pattern.types == ["call.responded:r1", "call.responded:r2"]
        assert every.types == ["call.responded:r1", "call.requested", "call.responded:r2", "other"]
        assert all(e.origin == target.origin and e.offset for e in every.events)
        assert len(exact.events) == 1


def test_ephemeral_inside_a_unit_is_delivered_only_if_it_commits(
    tenant_file: Path, app: Metagraph
) -> None:
    with EventTarget(tenant_file, mode="ephemeral") as target:
        got = Collector()
        target.subscribe("*", got)
        with pytest.raises(RuntimeError, match="boom"), app.transaction() as unit:
            target.publish("call.requested", {"rolled": "back"}, within=unit)
            raise RuntimeError("boom")
        with app.transaction() as unit:
            assert target.publish("call.requested", {"kept": True}, within=unit) is None
        target.publish("marker", {})  # after both, in commit order
        events = got.wait(2)
        assert [e.detail for e in events] == [{"kept": True}, {}]


def test_a_plain_unit_notification_is_an_ephemeral_event(tenant_file: Path, app: Metagraph) -> None:
    with EventTarget(tenant_file) as target:
        got = Collector()
        target.subscribe("teams", got)
        with app.transaction() as unit:
            unit.notify("teams", {"created": "t1"})
        event = got.wait(1)[0]
        assert (event.type, event.detail, event.origin) == ("teams", {"created": "t1"}, None)


# ----------------------------------------------------------------------------- durable


def test_durable_named_consumer_resumes_after_a_restart_without_gap_or_duplicate(
    tenant_file: Path,
) -> None:
    first = Collector()
    with EventTarget(tenant_file, mode="durable") as target:
        offsets = [target.publish(f"call.responded:r{i}", {"i": i}) for i in range(5)]
        target.publish("unrelated", {})
        target.subscribe("call.responded:*", first, name="billing")
        first.wait(5)
        head = target.head()
    with EventTarget(tenant_file, mode="durable") as target:
        assert target.position("billing") == head  # moved past the unrelated entry too
        offsets += [target.publish(f"call.responded:r{i}", {"i": i}) for i in range(5, 8)]
        second = Collector()
        target.subscribe("call.responded:*", second, name="billing")
        second.wait(3)
        other = Collector()  # another name: its own position, from the first entry
        target.subscribe("call.responded:*", other, name="audit")
        other.wait(8)
    assert [e.offset for e in first.events + second.events] == offsets
    assert [e.detail["i"] for e in first.events + second.events] == list(range(8))
    assert [e.offset for e in other.events] == offsets


def test_durable_unnamed_follows_from_now(tenant_file: Path) -> None:
    with EventTarget(tenant_file, mode="durable", stream="calls") as target:
        target.publish("call.requested", {"old": True})
        got = Collector()
        target.subscribe("call.*", got)
        target.publish("call.requested", {"new": True})
        assert [e.detail for e in got.wait(1)] == [{"new": True}]


def test_durable_inside_a_unit_commits_with_it(tenant_file: Path, app: Metagraph) -> None:
    with EventTarget(tenant_file, mode="durable") as target:
        with pytest.raises(RuntimeError), app.transaction() as unit:
            target.publish("call.requested", {"n": 1}, within=unit)
            raise RuntimeError("rolled back")
        assert target.read() == []
        with app.transaction() as unit:
            target.publish("call.requested", {"n": 2}, within=unit)
        assert [(e.type, e.detail) for e in target.read()] == [("call.requested", {"n": 2})]


def test_a_handler_that_raises_gets_the_same_event_again(tenant_file: Path) -> None:
    seen: list[int] = []
    done = threading.Event()

    def flaky(event: TargetEvent) -> None:
        seen.append(event.detail["i"])
        if len(seen) == 1:
            raise ValueError("not yet")
        if len(seen) == 3:
            done.set()

    with EventTarget(tenant_file, mode="durable") as target:
        target.publish("t", {"i": 0})
        target.publish("t", {"i": 1})
        subscription = target.subscribe("t", flaky, name="flaky")
        assert done.wait(WAIT)
        assert seen == [0, 0, 1]
        assert subscription.failures == 1


# --------------------------------------------------------------------------- composite


def test_composite_delivers_in_process_once_and_to_other_targets_through_honker(
    tenant_file: Path,
) -> None:
    with (
        EventTarget(tenant_file, mode="composite") as publisher,
        EventTarget(tenant_file, mode="composite") as other,
    ):
        local, remote = Collector(), Collector()
        publisher.subscribe("call.responded:*", local)
        other.subscribe("call.responded:*", remote)
        publisher.publish("call.responded:r1", {"n": 1})
        # in the publisher's thread, before publish returned:
        assert [(e.detail, e.offset) for e in local.events] == [({"n": 1}, None)]
        other.publish("call.responded:r2", {"n": 2})
        # its own in-process at once, the other's through Honker: order across origins
        # is not kept, each arrives once
        assert sorted(e.detail["n"] for e in remote.wait(2)) == [1, 2]
        assert [e.detail for e in local.wait(2)] == [{"n": 1}, {"n": 2}]
        publisher.publish("marker", {})  # its own: skipped when it comes back
        other.publish("call.responded:r3", {"n": 3})
        local.wait(3)
        remote.wait(3)
        assert [e.detail["n"] for e in local.events] == [1, 2, 3]  # none twice
        assert sorted(e.type for e in remote.events) == [
            "call.responded:r1",
            "call.responded:r2",
            "call.responded:r3",
        ]


def test_composite_inside_a_unit_calls_local_subscribers_after_the_commit(
    tenant_file: Path, app: Metagraph
) -> None:
    with EventTarget(tenant_file, mode="composite") as target:
        got = Collector()
        target.subscribe("*", got)
        with pytest.raises(RuntimeError), app.transaction() as unit:
            target.publish("x", {"n": 1}, within=unit)
            raise RuntimeError("rolled back")
        with app.transaction() as unit:
            target.publish("x", {"n": 2}, within=unit)
            assert got.events == []  # not before the commit
        assert [e.detail for e in got.events] == [{"n": 2}]


# ---------------------------------------------------------------------- other processes


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.streams._target_worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["ephemeral", "durable", "composite"])
def test_another_process_receives_every_event_once_in_order(tenant_file: Path, mode: str) -> None:
    listener = _worker("listen", str(tenant_file), mode, "call.responded:*")
    try:
        assert listener.stdout is not None and listener.stdin is not None
        assert listener.stdout.readline().strip() == "ready"
        with EventTarget(tenant_file, mode=mode) as target:  # type: ignore[arg-type]
            local = Collector()
            target.subscribe("call.responded:*", local)
            for i in range(20):
                target.publish(f"call.responded:r{i}", {"i": i})
                target.publish("ignored", {"i": i})
            received = [json.loads(listener.stdout.readline()) for _ in range(20)]
            local.wait(20)
        listener.stdin.close()
        assert listener.stdout.readline().strip() == "closed"
        assert listener.wait(WAIT) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
    assert [r["detail"]["i"] for r in received] == list(range(20))
    assert [e.detail["i"] for e in local.events] == list(range(20))  # once each, locally too


def test_events_published_by_another_process_arrive(tenant_file: Path) -> None:
    with EventTarget(tenant_file, mode="durable") as target:
        got = Collector()
        target.subscribe("call.responded:*", got, name="from-elsewhere")
        publisher = _worker("publish", str(tenant_file), "durable", "30")
        out, _ = publisher.communicate(timeout=WAIT)
        assert out.strip() == "done"
        assert [e.detail["i"] for e in got.wait(30)] == list(range(30))


# ------------------------------------------------------------------------- close order


def test_close_stops_and_joins_subscribers_before_the_file_is_released(tenant_file: Path) -> None:
    target = EventTarget(tenant_file, mode="durable")
    target.subscribe("*", Collector())
    target.subscribe("*", Collector(), name="named")
    threads = list(target.threads())
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    assert _honker._files.get(target.path) is not None
    target.close()
    assert not any(t.is_alive() for t in threads)
    assert list(target.threads()) == []
    assert target.path not in _honker._files  # released only after the threads ended
    target.close()  # idempotent


def test_close_waits_for_a_running_handler_and_nothing_is_delivered_after(
    tenant_file: Path,
) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[Any] = []

    def slow(event: TargetEvent) -> None:
        calls.append(event.detail)
        entered.set()
        release.wait(WAIT)

    target = EventTarget(tenant_file, mode="durable")
    target.subscribe("*", slow, name="slow")
    target.publish("t", 1)
    target.publish("t", 2)
    assert entered.wait(WAIT)
    closer = threading.Thread(target=target.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the handler, not abandoning it
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive() and calls == [1]
    with EventTarget(tenant_file, mode="durable") as again:
        assert again.position("slow") == 1  # the delivered event counts, the next does not


def test_an_application_and_a_target_on_one_file_close_in_any_order(tenant_file: Path) -> None:
    app = Metagraph(env=env(tenant_file))
    target = EventTarget(tenant_file)
    got = Collector()
    target.subscribe("*", got)
    app.close()  # the file stays open for the target
    target.publish("still", {"open": True})
    got.wait(1)
    target.close()
    assert target.path not in _honker._files


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", ["", "a*b", "call.*", "honker:queue", "x" * 129, 7, None])
def test_a_bad_type_is_refused_and_nothing_is_written(tenant_file: Path, bad: Any) -> None:
    with EventTarget(tenant_file, mode="durable") as target:
        with pytest.raises(TargetError, match="invalid event type"):
            target.publish(bad, {})
        assert target.head() == 0


def test_bad_input_says_what_to_fix(tenant_file: Path) -> None:
    with pytest.raises(TargetError, match="use one of ephemeral, durable, composite"):
        EventTarget(tenant_file, mode="bogus")  # type: ignore[arg-type]
    with EventTarget(tenant_file, mode="durable") as target:
        with pytest.raises(TargetError, match="must be JSON"):
            target.publish("t", {"when": object()})
        assert target.head() == 0
        with pytest.raises(TargetError, match="'\\*' may only end a pattern"):
            target.subscribe("a*b", Collector())
        with pytest.raises(TargetError, match="at least one"):
            target.subscribe([], Collector())
        target.subscribe("*", Collector(), name="one")
        with pytest.raises(TargetError, match="already subscribed"):
            target.subscribe("*", Collector(), name="one")
    with (
        EventTarget(tenant_file, mode="composite") as target,
        pytest.raises(TargetError, match="mode='durable'"),
    ):
        target.subscribe("*", Collector(), name="needs-a-position")
    with pytest.raises(TargetClosedError, match="closed"):
        target.publish("t", {})


# ------------------------------------------------------------- the position side write


def test_a_unit_saves_a_position_with_its_writes_only_from_the_position_read(
    tenant_file: Path, app: Metagraph
) -> None:
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with app.transaction() as unit:
        unit.save_position("consumer", "upstream", 5, expected=None)
    assert saved_position(datastore, "consumer", "upstream") == 5
    with pytest.raises(ConcurrencyError), app.transaction() as unit:
        unit.publish("derived", {"stale": True})
        unit.save_position("consumer", "upstream", 9, expected=3)  # it is at 5, not 3
    assert read_after(datastore, "derived", 0) == []  # nothing of the unit was written
    with app.transaction() as unit:
        unit.publish("derived", {"fresh": True})
        unit.save_position("consumer", "upstream", 9, expected=5)
    assert saved_position(datastore, "consumer", "upstream") == 9
    assert len(read_after(datastore, "derived", 0)) == 1
    with pytest.raises(ValidationError, match="moves forward"), app.transaction() as unit:
        unit.save_position("consumer", "upstream", 9, expected=9)
    with pytest.raises(ValidationError, match="at least 1"), app.transaction() as unit:
        unit.save_position("consumer", "upstream", 0, expected=None)
