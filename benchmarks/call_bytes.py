"""Where a tenant file's bytes go, per call event (issue 17, docs/events.md).

Writes ``--runs`` 10-step workflow runs into a fresh tenant file exactly as the
``domain`` suite's ``bytes_per_call_event`` does (:func:`benchmarks._call_storage.stored_runs`),
then reads SQLite's ``dbstat`` table after a checkpoint and splits the bytes per call
event: each stored entry's envelope by part (the envelope's own fields, ``data.timestamp``,
each data field by event type), the stream row's other columns and SQLite headers, the
free space left in the stream's pages, our aggregate index and Honker's topic index.

    .venv/bin/python -m benchmarks.call_bytes --runs 20
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import tempfile
from pathlib import Path

from benchmarks._call_storage import stored_runs

__all__ = ["breakdown", "main"]


def _envelope_parts(payload: str) -> dict[str, int]:
    envelope = json.loads(payload)
    data = envelope.get("data", {})
    kind = envelope["type"].rsplit(".", 1)[-1]
    parts = {"envelope fields (v, tenant, type, subject, version, time)": 0}
    parts["envelope fields (v, tenant, type, subject, version, time)"] = len(
        payload.encode()
    ) - len(json.dumps(data, separators=(",", ":")).encode())
    for key, value in data.items():
        name = "data.timestamp" if key == "timestamp" else f"{kind}.{key}"
        parts[name] = len(json.dumps({key: value}, separators=(",", ":")).encode()) - 1
    return parts


def breakdown(path: Path, call_events: int) -> dict[str, float]:
    """Bytes per call event of the file at ``path`` (checkpointed), by part."""
    connection = sqlite3.connect(path)
    try:
        payloads = [row[0] for row in connection.execute("SELECT payload FROM _honker_stream")]
        stats = {
            row[0]: row[1:]
            for row in connection.execute(
                "SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat GROUP BY name"
            )
        }
    finally:
        connection.close()
    parts: collections.Counter[str] = collections.Counter()
    for payload in payloads:
        parts.update(_envelope_parts(payload))
    envelopes = sum(len(p.encode()) for p in payloads)
    pages, payload_bytes, unused = stats["_honker_stream"]
    out = {name: size / call_events for name, size in parts.most_common()}
    out["stream row: topic, created_at, record header"] = (payload_bytes - envelopes) / call_events
    out["stream pages: cell and page headers"] = (pages - payload_bytes - unused) / call_events
    out["stream pages: free space"] = unused / call_events
    for name in ("es_metagraph_index", "_honker_stream_topic"):
        out[f"{name} (pages)"] = stats[name][0] / call_events
    out["whole file (pages)"] = sum(s[0] for s in stats.values()) / call_events
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100, help="10-step runs (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tenant-bytes.db"
        stored = stored_runs(path, args.runs)
        call_events = stored.call_events + stored.call_events // args.runs  # and the warm-up
        print(
            f"{args.runs} runs: bytes_per_call_event "
            f"{stored.file_bytes / stored.event_json_bytes:.2f}, stored entries per call "
            f"event {stored.entries / stored.call_events:.3f}, call event JSON "
            f"{stored.event_json_bytes / stored.call_events:.1f} B"
        )
        print("bytes per call event (whole file, warm-up run included):")
        for name, size in breakdown(path, call_events).items():
            if size >= 0.5:
                print(f"  {name:60s} {size:7.1f}")


if __name__ == "__main__":
    main()
