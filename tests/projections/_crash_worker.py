"""Worker processes for the crash tests: ``python -m tests.projections._crash_worker ROLE``.

Real OS processes on a real data directory (``GRAPHSTORE_DATA_DIR``), driven through
stdin/stdout lines; the test kills them with SIGKILL at random moments.

``writer START STOP``  opens the tenant ``acme``'s metagraph, prints ``ready``, then
                       ingests the workload's batches START .. STOP-1 (call-protocol
                       events, :func:`domain.calls.ingest`, one batch per call), printing
                       ``ack I HEAD`` after batch I returned (HEAD: the stream's last
                       offset then); ``done`` after the last. A ``stop`` line on stdin
                       makes it stop after the current batch and print ``stopped``.
``runner``             runs a :class:`projections.Runner` (metagraph and flowgraph) on
                       the tenant, prints ``ready``, runs until stdin closes.

The workload is deterministic (:func:`workload`), so the test knows every batch.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

import structlog

from domain import Metagraph
from domain.calls import ingest
from graphstore.data import DataDirectory
from graphstore.samples.generate import OPERATION_TYPES, generate
from projections import Runner

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

TENANT: Final = "acme"
BATCH: Final = 4
"""Events per ingested batch."""
PAUSE: Final = 0.002
"""Seconds between batches: keeps the file small enough for many rounds."""


def _prefixed(event: dict[str, Any], prefix: str) -> dict[str, Any]:
    payload = dict(event["payload"])
    payload["requestId"] = prefix + payload["requestId"]
    if payload.get("parentRequestId") is not None:
        payload["parentRequestId"] = prefix + payload["parentRequestId"]
    return {**event, "id": prefix + event["id"], "payload": payload}


def workload(copies: int = 3) -> list[list[dict[str, Any]]]:
    """The bundled sample's generator, ``copies`` times with distinct ids, in batches."""
    events = [_prefixed(e, f"w{c}-") for c in range(copies) for e in generate(40, seed=4 + c)]
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def _writer(data: DataDirectory, start: int, stop: int) -> None:
    batches = workload()
    halt = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                halt.set()
        halt.set()

    with Metagraph(env=data.tenant_env(TENANT)) as app:
        threading.Thread(target=listen, daemon=True).start()
        print("ready", flush=True)
        for index in range(start, min(stop, len(batches))):
            if halt.is_set():
                print("stopped", flush=True)
                return
            ingest(app, batches[index], operation_types=OPERATION_TYPES)
            print(f"ack {index} {app.recorder.max_notification_id() or 0}", flush=True)
            time.sleep(PAUSE)
        print("done", flush=True)
        halt.wait()


def _runner(data: DataDirectory) -> None:
    with Runner(data, tenants=lambda: [TENANT], sweep_interval=0.05, poll_interval=0.1):
        print("ready", flush=True)
        for _ in sys.stdin:
            pass


def main() -> None:
    data = DataDirectory(Path(os.environ["GRAPHSTORE_DATA_DIR"]))
    role, *args = sys.argv[1:]
    if role == "writer":
        _writer(data, int(args[0]), int(args[1]))
    elif role == "runner":
        _runner(data)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
