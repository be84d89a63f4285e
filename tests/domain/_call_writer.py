"""A writer process for tests/domain/test_call_writers.py: ingests whole runs into a
tenant file, one run per batch, and prints a JSON report (batches, refusals, retries).

    python -m tests.domain._call_writer FILE FIRST_RUN LAST_RUN [--steps]

``--steps`` sends each run as three batches (requests, responses, the root's response)
so that two writers of the same runs interleave inside a run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from domain import ConcurrencyError, Metagraph
from domain.calls import ingest

T0 = 1_800_000_000_000


def run_events(run: int) -> list[list[dict[str, Any]]]:
    root = f"run-{run}"
    children = [f"{root}-{i}" for i in range(6)]

    def requested(key: str, parent: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"requestId": key, "operationId": "op", "input": {"k": key}}
        if parent is not None:
            payload["parentRequestId"] = parent
        return {"type": "call.requested", "at": T0 + run, "payload": payload}

    def responded(key: str) -> dict[str, Any]:
        output = {"data": {"ok": key}, "meta": {"source": "local"}}
        payload = {"requestId": key, "output": output}
        return {"type": "call.responded", "at": T0 + run + 1, "payload": payload}

    return [
        [requested(root, None), *(requested(c, root) for c in children)],
        [responded(c) for c in children],
        [responded(root)],
    ]


def main() -> None:
    path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    steps = "--steps" in sys.argv
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": path}
    report: dict[str, float] = {"batches": 0, "refused": 0, "retries": 0}
    with Metagraph(env=env) as app:
        go = Path(path + ".go")
        Path(f"{path}.ready-{first}-{last}-{time.monotonic_ns()}").touch()
        while not go.exists():  # every writer starts at once
            time.sleep(0.005)
        report["started"] = time.time()
        for run in range(first, last):
            parts = run_events(run)
            batches = parts if steps else [[e for part in parts for e in part]]
            for batch in batches:
                try:
                    done = ingest(app, batch)
                    report["batches"] += 1
                    report["retries"] += done.attempts - 1
                except ConcurrencyError:
                    report["refused"] += 1
        report["ended"] = time.time()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
