"""What compacting the stored events would save (issue 17, item 3): the figures behind
the decision in docs/events.md, "Compaction: measured, decided".

    .venv/bin/python -m benchmarks.compaction [--runs N]

Builds a fresh tenant with the ``domain`` suite's call workload (N workflow runs of a
root call and 9 steps, ``call.requested`` + ``call.responded`` each, one ingest per run)
and measures, over every stored envelope, the bytes each variant would store and its
encode + decode time per event:

- ``timestamp_us``: the event's ``timestamp`` inside ``data`` as an integer of
  microseconds since the epoch instead of eventsourcing's
  ``{"_type_":"datetime_iso","_data_":"...+00:00"}``;
- ``timestamp_dropped``: no ``timestamp`` in ``data`` (the envelope's ``time`` would
  carry it, to the millisecond);
- ``short_names``: every top-level key of ``data`` and the envelope's ``tenant`` (a
  constant of the file) cut to 2 characters;
- ``msgpack_b64``: ``data`` as msgpack, base64 in ``data_b64`` (the envelope is JSON);
- ``zlib_over_N`` / ``zstd_over_N``: ``data`` compressed (zlib level 6 / zstd level 3,
  base64 in ``data_b64``) when it is longer than N bytes;
- ``file``: SQLite bytes per event of a table of the payloads (4 KiB pages, after a
  checkpoint), for today's payloads and the best variant.

zstd is measured only if the ``zstandard`` package is installed (it is not a dependency).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import re
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from benchmarks._call_history import workflow_run
from domain import Metagraph
from domain.calls import ingest

__all__ = ["main", "measure", "payloads_of"]

_TAGGED_TS = re.compile(rb'"timestamp":\{"_type_":"datetime_iso","_data_":"([^"]+)"\}')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_json = msgspec.json.Encoder()
_parse = msgspec.json.Decoder()


def payloads_of(runs: int, root: Path) -> list[bytes]:
    """Every stream payload of a fresh tenant after ``runs`` workflow runs."""
    path = root / "tenant-compaction.db"
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    with Metagraph(env=env) as app:
        for n in range(runs):
            ingest(app, workflow_run("compaction", n))
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute('SELECT payload FROM _honker_stream ORDER BY "offset"').fetchall()
    finally:
        db.close()
    return [row[0].encode() for row in rows]


def _timestamp_us(payload: bytes) -> bytes:
    def as_int(match: re.Match[bytes]) -> bytes:
        moment = datetime.fromisoformat(match.group(1).decode())
        micros = (moment - _EPOCH) // timedelta(microseconds=1)
        return b'"timestamp":' + str(micros).encode()

    return _TAGGED_TS.sub(as_int, payload)


def _timestamp_dropped(payload: bytes) -> bytes:
    return re.sub(rb'"timestamp":\{"_type_":"datetime_iso","_data_":"[^"]+"\},?', b"", payload)


def _short_names(payload: bytes) -> bytes:
    envelope = _parse.decode(payload)
    envelope.pop("tenant", None)
    data = envelope.get("data")
    if isinstance(data, dict):
        envelope["data"] = {key[:2]: value for key, value in data.items()}
    return _json.encode(envelope)


def _binary_data(payload: bytes, pack: Callable[[bytes], bytes | None]) -> bytes:
    envelope = _parse.decode(payload)
    data = _json.encode(envelope["data"])
    packed = pack(data)
    if packed is None:
        return payload
    del envelope["data"]
    envelope["data_b64"] = base64.b64encode(packed).decode("ascii")
    return _json.encode(envelope)


def _compressed_over(size: int, compress: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def pack(data: bytes) -> bytes | None:
        return compress(data) if len(data) > size else None

    return lambda payload: _binary_data(payload, pack)


def _msgpack(data: bytes) -> bytes:
    return msgspec.msgpack.encode(_parse.decode(data))


def _variants() -> dict[str, Callable[[bytes], bytes]]:
    variants: dict[str, Callable[[bytes], bytes]] = {
        "today": lambda p: p,
        "timestamp_us": _timestamp_us,
        "timestamp_dropped": _timestamp_dropped,
        "short_names": _short_names,
        "timestamp_dropped+short_names": lambda p: _short_names(_timestamp_dropped(p)),
        "msgpack_b64": lambda p: _binary_data(p, _msgpack),
    }
    for over in (256, 512, 1024):
        variants[f"zlib_over_{over}"] = _compressed_over(over, lambda d: zlib.compress(d, 6))
    try:  # optional, measured only if installed
        zstandard: Any = importlib.import_module("zstandard")
    except ImportError:
        return variants
    compressor = zstandard.ZstdCompressor(level=3)
    for over in (256, 512, 1024):
        variants[f"zstd_over_{over}"] = _compressed_over(over, compressor.compress)
    return variants


def file_bytes_per_event(payloads: list[bytes], root: Path, name: str) -> float:
    """SQLite bytes per event of a stream-like table holding ``payloads``."""
    path = root / f"{name}.db"
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            'CREATE TABLE s ("offset" INTEGER PRIMARY KEY, topic TEXT, key TEXT, payload TEXT)'
        )
        with db:
            db.executemany(
                "INSERT INTO s (topic, key, payload) VALUES ('metagraph', NULL, ?)",
                [(p.decode(),) for p in payloads],
            )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return path.stat().st_size / len(payloads)


def measure(runs: int) -> dict[str, dict[str, float]]:
    """Bytes per event and the variant's time per event, per variant."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        payloads = payloads_of(runs, root)
        out: dict[str, dict[str, float]] = {}
        for name, variant in _variants().items():
            started = time.process_time()
            rewritten = [variant(p) for p in payloads]
            seconds = time.process_time() - started
            out[name] = {
                "bytes_per_event": sum(map(len, rewritten)) / len(rewritten),
                "rewrite_us_per_event": seconds / len(rewritten) * 1e6,
                "file_bytes_per_event": file_bytes_per_event(rewritten, root, name),
            }
        out["today"]["events"] = len(payloads)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    figures = measure(args.runs)
    base = figures["today"]
    print(f"{figures['today']['events']:.0f} events, {args.runs} runs of 10 calls")
    print(f"{'variant':32s} {'B/event':>8s} {'vs today':>8s} {'file B/ev':>9s} {'us/ev':>6s}")
    for name, row in figures.items():
        print(
            f"{name:32s} {row['bytes_per_event']:8.0f} "
            f"{row['bytes_per_event'] / base['bytes_per_event']:8.2f} "
            f"{row['file_bytes_per_event']:9.0f} {row['rewrite_us_per_event']:6.1f}"
        )


if __name__ == "__main__":
    main()
