"""Worker processes for the event target tests: ``python -m tests.streams._target_worker``.

Real OS processes on a real Honker file, driven through lines on stdin/stdout:

``listen PATH MODE PATTERN...``  subscribes (unnamed) to the patterns, prints ``ready``,
                                 then one JSON line per event received; when stdin
                                 closes it closes the target and prints ``closed``.
``publish PATH MODE COUNT``      publishes ``call.responded:r<i>`` with detail ``{"i": i}``
                                 for i in 0..COUNT-1, printing ``done``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

import structlog

from streams import EventTarget, TargetEvent

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

_print_lock = threading.Lock()


def _say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _listen(path: str, mode: str, patterns: list[str]) -> None:
    target = EventTarget(path, mode=mode)  # type: ignore[arg-type]

    def received(event: TargetEvent) -> None:
        _say(json.dumps({"type": event.type, "detail": event.detail, "offset": event.offset}))

    target.subscribe(patterns, received)
    _say("ready")
    for _ in sys.stdin:
        pass
    target.close()
    _say("closed")


def _publish(path: str, mode: str, count: int) -> None:
    with EventTarget(path, mode=mode) as target:  # type: ignore[arg-type]
        for i in range(count):
            target.publish(f"call.responded:r{i}", {"i": i})
    _say("done")


def main(argv: list[str]) -> None:
    role, path, mode, *rest = argv
    if role == "listen":
        _listen(path, mode, rest)
    elif role == "publish":
        _publish(path, mode, int(rest[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
