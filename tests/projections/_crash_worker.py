"""Worker processes for the crash tests: ``python -m tests.projections._crash_worker ROLE``.

Real OS processes on a real data directory (``GRAPHSTORE_DATA_DIR``); the test kills
them with SIGKILL at chosen phases. Each reports through the pipe of :mod:`tests._kill`
(``ready``, then the phases of its units; ``done`` when nothing is left to do) and waits
for the test's go-ahead after each report.

``writer START STOP``  opens the tenant ``acme``'s metagraph, then ingests the
                       workload's batches START .. STOP-1 (call-protocol events,
                       :func:`domain.calls.ingest`, one batch per call), each a unit:
                       ``started``, its transaction's ``built``/``commit``/
                       ``committed``, ``acked``.
``runner``             runs a :class:`projections.Runner` (metagraph and flowgraph) on
                       the tenant until killed; every write transaction of its
                       projectors is a unit (``built``/``commit``/``committed`` of
                       ``tN``; the test starts it with ``every_transaction``).

The workload is deterministic (:func:`workload`), so the test knows every batch.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

import structlog

from domain import Metagraph
from domain.calls import ingest
from graphstore.data import DataDirectory
from graphstore.samples.generate import OPERATION_TYPES, generate
from projections import Runner
from tests._kill import reporter

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

TENANT: Final = "acme"
BATCH: Final = 4
"""Events per ingested batch."""


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
    side = reporter()
    with Metagraph(env=data.tenant_env(TENANT)) as app:
        side.say("ready", "-")
        for index in range(start, min(stop, len(batches))):
            batch = batches[index]
            side.unit(
                str(index),
                functools.partial(ingest, app, batch, operation_types=OPERATION_TYPES),
            )
        side.say("done", "-")
        time.sleep(120)  # the test kills every worker; this bounds a forgotten one


def _runner(data: DataDirectory) -> None:
    with Runner(data, tenants=lambda: [TENANT], sweep_interval=0.05, poll_interval=0.1):
        reporter().say("ready", "-")
        time.sleep(600)  # until killed


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
