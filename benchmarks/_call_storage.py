"""What call history costs on disk (issue 17, items 1 and 6), in the ``domain`` suite.

- ``bytes_per_call_event``: 10-step workflow runs (a root call and 9 children, 20 call
  events: :func:`benchmarks._call_history.workflow_run`), one ``ingest()`` per run,
  into a fresh tenant file; the file's growth over the measured runs after a
  checkpoint (:func:`benchmarks._report.file_bytes`: file and WAL, WAL folded in),
  divided by the call events' own compact JSON (``msgspec.json.encode`` of each event
  as given to ``ingest``). The tenant's fixed part (its tables, the call graph's type)
  is written by a warm-up run before the first measure. No projection runs: the file
  holds the stream, its aggregate index and snapshots.
- ``stored_events_per_call_event``: the stream entries those runs wrote, per call event.
- ``subscription_bytes_growth``: one subscription call given its outputs one per
  ``ingest()``; the stream bytes (envelopes, UTF-8) per output over the last outputs at
  1,000 outputs, divided by the same at 10 (``--quick``: 100 vs 10). 1.0 means an
  output costs the same however many came before it; before issue 17 each stored
  update carried every earlier output again (O(n²)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks._call_history import EVENTS_PER_RUN, tenant_env, workflow_run
from benchmarks._report import Report, RunConfig, Target, file_bytes
from benchmarks.streams import Files
from domain import Metagraph
from streams import envelope
from streams.persistence import HonkerApplicationRecorder

__all__ = ["StoredRuns", "measure_call_storage", "stored_runs", "subscription_bytes"]

RUNS_FULL: Final = 500
RUNS_QUICK: Final = 100
OUTPUTS_FULL: Final = 1000
OUTPUTS_QUICK: Final = 100
OUTPUTS_FEW: Final = 10
SUBSCRIPTION: Final = "feeds.watch"
T0: Final = 1_795_000_000_000


@dataclass(frozen=True)
class StoredRuns:
    """What ``runs`` workflow runs wrote: file growth, stream entries, the events' JSON."""

    runs: int
    call_events: int
    file_bytes: int
    entries: int
    entry_bytes: int
    event_json_bytes: int
    seconds: float


def _recorder(app: Metagraph) -> HonkerApplicationRecorder:
    recorder = app.recorder
    if not isinstance(recorder, HonkerApplicationRecorder):
        raise TypeError(f"expected a HonkerApplicationRecorder, got {type(recorder)}")
    return recorder


def _entries_after(app: Metagraph, start: int) -> list[int]:
    """The envelope length (UTF-8 bytes) of each stream entry from ``start`` on, as the
    recorder encodes it (``streams.envelope.encode``)."""
    recorder = _recorder(app)
    tenant, now = recorder.datastore.tenant, time.time_ns() // 1_000_000
    return [
        len(
            envelope.encode(
                tenant=tenant,
                topic=n.topic,
                originator_id=n.originator_id,
                originator_version=n.originator_version,
                time_ms=now,
                state=n.state,
            ).encode()
        )
        for n in recorder.select_notifications(start, limit=10_000_000)
    ]


def _ingest(app: Metagraph, events: list[dict[str, Any]]) -> None:
    from domain.calls import ingest  # noqa: PLC0415 - the suite imports lazily

    report = ingest(app, events, operation_types={SUBSCRIPTION: "subscription"})
    if report.applied != len(events):
        raise AssertionError(f"expected every event applied, got {report}")


def stored_runs(path: Path, runs: int) -> StoredRuns:
    """Ingest ``runs`` 10-step runs (one ``ingest()`` each) after a warm-up run."""
    with Metagraph(env=tenant_env(path)) as app:
        _ingest(app, workflow_run("warm", 0))
        start = (_recorder(app).max_notification_id() or 0) + 1
        before = file_bytes(path)
        json_bytes = 0
        started = time.perf_counter()
        for n in range(runs):
            events = workflow_run("stored", n)
            json_bytes += sum(len(msgspec.json.encode(e)) for e in events)
            _ingest(app, events)
        seconds = time.perf_counter() - started
        lengths = _entries_after(app, start)
    return StoredRuns(
        runs=runs,
        call_events=runs * EVENTS_PER_RUN,
        file_bytes=file_bytes(path) - before,
        entries=len(lengths),
        entry_bytes=sum(lengths),
        event_json_bytes=json_bytes,
        seconds=seconds,
    )


def _output(n: int) -> dict[str, Any]:
    output = {"data": {"tick": n, "items": [n, n + 1]}, "meta": {"source": "local"}}
    payload = {"requestId": "sub", "output": output}
    return {"type": "call.responded", "at": T0 + 1 + n, "payload": payload}


def subscription_bytes(path: Path, outputs: int, last: int = OUTPUTS_FEW) -> float:
    """Stream bytes per output over the ``last`` outputs of a subscription given
    ``outputs`` outputs, one per ``ingest()``."""
    requested = {
        "type": "call.requested",
        "at": T0,
        "payload": {"requestId": "sub", "operationId": SUBSCRIPTION, "input": {}},
    }
    with Metagraph(env=tenant_env(path)) as app:
        _ingest(app, [requested])
        for n in range(outputs - last):
            _ingest(app, [_output(n)])
        start = (_recorder(app).max_notification_id() or 0) + 1
        for n in range(outputs - last, outputs):
            _ingest(app, [_output(n)])
        return sum(_entries_after(app, start)) / last


def measure_call_storage(report: Report, files: Files, config: RunConfig) -> None:
    runs = RUNS_QUICK if config.quick else RUNS_FULL
    many = OUTPUTS_QUICK if config.quick else OUTPUTS_FULL
    path = files.new("call-storage")
    try:
        stored = stored_runs(path, runs)
    finally:
        Files.remove(path)
    sizes: dict[int, float] = {}
    for outputs in (OUTPUTS_FEW, many):
        path = files.new(f"subscription-{outputs}")
        try:
            sizes[outputs] = subscription_bytes(path, outputs)
        finally:
            Files.remove(path)
    report.add(
        "bytes_per_call_event",
        stored.file_bytes / stored.event_json_bytes,
        Target("<=", 2.5),
    )
    report.add(
        "stored_events_per_call_event", stored.entries / stored.call_events, Target("<=", 1.1)
    )
    report.add("subscription_bytes_growth", sizes[many] / sizes[OUTPUTS_FEW], Target("<=", 1.2))
    report.add("stream_bytes_per_call_event", stored.entry_bytes / stored.call_events)
    report.add("call_event_json_bytes", stored.event_json_bytes / stored.call_events)
    if config.quick:
        report.notes.append(
            f"--quick: subscription_bytes_growth compares {OUTPUTS_QUICK} outputs with "
            f"{OUTPUTS_FEW} (the full run: {OUTPUTS_FULL})"
        )
    report.raw["call_storage"] = {
        "what": __doc__,
        "runs": stored.__dict__,
        "subscription_bytes_per_output": {str(k): v for k, v in sizes.items()},
    }
