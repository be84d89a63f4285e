"""Live subscriptions: woken by commits, covered by a slow poll, stopped cleanly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification, Tracking

from streams.persistence import HonkerApplicationRecorder, HonkerFactory


class Orders(Application[object]):
    pass


def _app(path: Path, **extra: str) -> Orders:
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    return Orders(env={**env, **extra})


def _save(app: Orders, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        ids += [r.notification.id for r in app.save(Aggregate())]
    return ids


def _collect(iterator: object, count: int, into: list[Notification]) -> threading.Thread:
    def run() -> None:
        for notification in iterator:  # type: ignore[attr-defined]
            into.append(notification)
            if len(into) == count:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_subscription_catches_up_then_follows_live_commits(tenant_file: Path) -> None:
    app = _app(tenant_file)
    before = _save(app, 3)
    received: list[Notification] = []
    with app.recorder.subscribe(gt=before[0]) as subscription:
        reader = _collect(subscription, 4, received)
        after = _save(app, 2)
        reader.join(timeout=10)
    app.close()
    assert [n.id for n in received] == before[1:] + after


def test_a_lost_wake_is_covered_by_the_slow_poll(tenant_file: Path) -> None:
    app = _app(tenant_file, HONKER_POLL_INTERVAL="0.1")
    recorder = app.recorder
    assert isinstance(recorder, HonkerApplicationRecorder)
    received: list[Notification] = []
    with recorder.subscribe(gt=0) as subscription:
        # Lose every wake: only the fallback poll can deliver now.
        recorder.datastore.watcher.discard(subscription._woken.set)
        reader = _collect(subscription, 2, received)
        ids = _save(app, 2)
        reader.join(timeout=10)
    app.close()
    assert [n.id for n in received] == ids


def test_close_stops_and_joins_every_thread_it_started(tenant_file: Path) -> None:
    baseline = set(threading.enumerate())
    app = _app(tenant_file)
    _save(app, 1)
    subscription = app.recorder.subscribe(gt=0)
    received: list[Notification] = []
    reader = _collect(subscription, 1000, received)  # blocks waiting for more
    app.close()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the iterator must end when the application closes"
    assert len(received) == 1
    leftover = [t for t in threading.enumerate() if t not in baseline and t is not reader]
    assert leftover == []


def test_stopping_one_subscription_leaves_others_running(tenant_file: Path) -> None:
    app = _app(tenant_file)
    first = app.recorder.subscribe(gt=0)
    second = app.recorder.subscribe(gt=0)
    first.stop()
    received: list[Notification] = []
    reader = _collect(second, 1, received)
    ids = _save(app, 1)
    reader.join(timeout=10)
    assert [n.id for n in received] == ids
    app.close()


TRACKER = textwrap.dedent(
    """
    import sys
    from eventsourcing.persistence import Tracking
    from streams.persistence import HonkerFactory
    factory = HonkerFactory({"HONKER_DBNAME": sys.argv[1]})
    recorder = factory.tracking_recorder()
    recorder.insert_tracking(Tracking("upstream", int(sys.argv[2])))
    factory.close()
    """
)


def test_wait_is_woken_by_a_commit_from_another_process(tenant_file: Path) -> None:
    factory = HonkerFactory({"HONKER_DBNAME": str(tenant_file)})
    recorder = factory.tracking_recorder()
    recorder.insert_tracking(Tracking("upstream", 1))
    writer = subprocess.Popen([sys.executable, "-c", TRACKER, str(tenant_file), "7"])
    try:
        recorder.wait("upstream", 7, timeout=30)
    finally:
        writer.wait(timeout=30)
    assert recorder.max_tracking_id("upstream") == 7
    factory.close()
