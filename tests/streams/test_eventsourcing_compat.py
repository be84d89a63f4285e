"""What streams' live subscription relies on in eventsourcing's internals.

:class:`streams.persistence.HonkerSubscription` extends eventsourcing's
``ListenNotifySubscription`` the way eventsourcing's own SQLite and PostgreSQL
subscriptions do: it overrides the pull loop (``_loop_on_pull``, adding the fallback
poll) and sets its wake event (``_has_been_notified``) from Honker's commit watcher. If
an eventsourcing upgrade renames any of these, this test fails first.
(The domain's uses are pinned in tests/domain/test_eventsourcing_compat.py.)
"""

from __future__ import annotations

import importlib.metadata
import inspect
import threading
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.persistence import ListenNotifySubscription

from streams.persistence import HonkerSubscription


def test_listen_notify_subscription_has_the_pull_loop_honker_overrides() -> None:
    assert importlib.metadata.version("eventsourcing").startswith("9.5.")
    assert issubclass(HonkerSubscription, ListenNotifySubscription)
    assert "self._loop_on_pull" in inspect.getsource(ListenNotifySubscription.__init__)
    for method in ("_loop_on_pull", "_pull", "stop", "__exit__", "__next__"):
        assert callable(getattr(ListenNotifySubscription, method))
    assert list(inspect.signature(ListenNotifySubscription._pull).parameters) == ["self"]


def test_a_honker_subscription_holds_the_state_its_pull_loop_uses(tenant_file: Path) -> None:
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(tenant_file)}
    app = Application[object](env=env)
    try:
        with app.recorder.subscribe(gt=None) as subscription:  # type: ignore[attr-defined]
            assert isinstance(subscription, HonkerSubscription)
            state = vars(subscription)
            assert isinstance(state["_has_been_notified"], threading.Event)
            assert isinstance(state["_pull_thread"], threading.Thread)
            assert state["_recorder"] is app.recorder
            assert state["_has_been_stopped"] is False
            assert state["_thread_error"] is None
        assert subscription._has_been_stopped is True
    finally:
        app.close()
