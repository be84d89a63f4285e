"""The main job at this stage: events saved, read back from the Honker stream, and followed live.

Run it with ``./dev demo [--data-dir DIR]``. It creates ``DIR/tenant-demo.db`` (default
``./data``), starts a live subscriber, saves a few aggregates' events through an
eventsourcing application on the ``streams`` persistence module, then prints the tenant's
stream as stored (the JSON envelopes any Honker client can read) and what the subscriber
received, and checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path
from uuid import UUID

import honker
import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Notification

__all__ = ["main"]


class Run(Aggregate):
    """A workflow run, just enough to produce a few events."""

    @event("Started")
    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.steps: list[str] = []
        self.status = "running"

    @event("StepCompleted")
    def complete_step(self, step: str) -> None:
        self.steps.append(step)

    @event("Finished")
    def finish(self, status: str) -> None:
        self.status = status


class Workflows(Application[UUID]):
    """The demo's application; its stream in the tenant file is named ``Workflows``."""


def _follow(app: Workflows, count: int, into: list[Notification], ready: threading.Event) -> None:
    with app.recorder.subscribe(gt=app.recorder.max_notification_id()) as subscription:
        ready.set()
        for notification in subscription:
            into.append(notification)
            if len(into) == count:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphstore.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    path = args.data_dir / "tenant-demo.db"
    app = Workflows(env={"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)})
    start = app.recorder.max_notification_id() or 0

    runs = [Run("billing.invoice"), Run("mail.send"), Run("billing.refund")]
    runs[0].complete_step("render")
    runs[0].complete_step("store")
    runs[0].finish("completed")
    runs[1].finish("failed")
    runs[2].complete_step("authorize")
    expected = sum(len(run.pending_events) for run in runs)

    received: list[Notification] = []
    ready = threading.Event()
    follower = threading.Thread(target=_follow, args=(app, expected, received, ready))
    follower.start()
    ready.wait()
    for run in runs:
        app.save(run)
    follower.join(timeout=30)

    # Read the stream as any Honker client would: no eventsourcing, no streams package.
    db = honker.open(str(path))
    rows = db.query(
        'SELECT "offset", payload FROM _honker_stream WHERE topic = ? AND "offset" > ? '
        'ORDER BY "offset"',
        ["Workflows", start],
    )
    db.close()

    print(f"tenant file: {path}  (stream 'Workflows', {len(rows)} new events)\n")
    print("As stored in the Honker stream:")
    print(f"  {'offset':>6}  {'event':<26} {'aggregate':<10} {'v':>2}  data")
    for row in rows:
        body = json.loads(row["payload"])
        data = {k: v for k, v in body["data"].items() if k not in ("timestamp", "originator_topic")}
        kind = body["type"].rpartition(":")[2]
        print(
            f"  {row['offset']:>6}  {kind:<26} {body['subject'][:8]:<10} "
            f"{body['version']:>2}  {json.dumps(data)}"
        )
    print("\nAs received by the live subscriber:")
    print("  " + " ".join(str(n.id) for n in received))
    same = [n.id for n in received] == [row["offset"] for row in rows]
    print(f"\nsubscriber saw every stored event, in order: {'yes' if same else 'NO'}")
    reloaded: Run = app.repository.get(runs[0].id)
    print(
        f"run {str(reloaded.id)[:8]} reloaded from its events: {reloaded.operation} "
        f"steps={reloaded.steps} status={reloaded.status}"
    )
    app.close()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
