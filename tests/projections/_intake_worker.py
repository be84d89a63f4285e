"""Worker processes for the call intake tests: ``python -m tests.projections._intake_worker``.

Real OS processes on a real tenant file, driven through stdin/stdout lines:

``intake PATH BATCH``  runs a :class:`projections.CallIntake` (batches of BATCH entries)
                       on the file's durable event target, prints ``ready``, then
                       ``caught-up POSITION`` each time it reaches the stream's head;
                       when stdin closes it closes the intake, the target and the
                       application (in that order) and prints ``closed``.
``publish PATH COPIES`` publishes the workload (:func:`workload`) with
                       :func:`projections.publish_call`, printing ``done COUNT HEAD``.

The workload is deterministic, so the test knows every event.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import structlog

from domain import Metagraph
from graphstore.samples.generate import OPERATION_TYPES, generate
from projections import CallIntake, publish_call
from streams import EventTarget

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def workload(copies: int = 2, runs: int = 40) -> list[dict[str, Any]]:
    """The bundled sample's generator, ``copies`` times with distinct ids."""
    events = []
    for copy in range(copies):
        prefix = f"k{copy}-"
        for event in generate(runs, seed=7 + copy):
            payload = dict(event["payload"])
            payload["requestId"] = prefix + payload["requestId"]
            if payload.get("parentRequestId") is not None:
                payload["parentRequestId"] = prefix + payload["parentRequestId"]
            events.append({**event, "id": prefix + event["id"], "payload": payload})
    return events


def env(path: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": path}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _intake(path: str, batch: int) -> None:
    app = Metagraph(env=env(path))
    target = EventTarget(path, mode="durable")
    intake = CallIntake(app, target, operation_types=OPERATION_TYPES, batch=batch).start()
    stop = threading.Event()

    def listen() -> None:
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=listen, daemon=True).start()
    _say("ready")
    reported = -1
    while not stop.is_set():
        head = target.head()
        if head and head != reported and intake.wait_for(head, timeout=0.2):
            reported = head
            _say(f"caught-up {intake.position()}")
        stop.wait(0.01)
    intake.close()
    target.close()
    app.close()
    _say("closed")


def _publish(path: str, copies: int) -> None:
    events = workload(copies)
    with EventTarget(path, mode="durable") as target:
        for event in events:
            publish_call(target, event)
        _say(f"done {len(events)} {target.head()}")


def main(argv: list[str]) -> None:
    role, path, number = argv
    if role == "intake":
        _intake(path, int(number))
    elif role == "publish":
        _publish(path, int(number))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
