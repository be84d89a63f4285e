"""Why the archive is SQLite: the two formats issue 16 allows, measured side by side.

``python -m benchmarks.archive_format [--runs N]`` archives N runs (the bundled sample's
40 runs, copied under new ids) in batches of 100, as a retention pass would, both ways:

- ``sqlite``: :class:`graphstore.archive.Archive` (a SQLite file per tenant and month,
  one zlib-compressed row per run, a manifest with SHA-256);
- ``jsonl.gz``: a gzip member per batch appended to one ``.jsonl.gz`` per tenant and
  month (the best case for size: one compression stream over similar runs), fsync'd, a
  manifest with SHA-256 replaced atomically (no protection against a torn append: the
  best case for speed too).

It prints runs/s written, bytes per run, the median ms to find one run at random, and
the ms to erase one run (the file rewritten either way). Not a suite: it informs one
decision, recorded in docs/archive.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

import graphstore
from domain.calls import read_jsonl
from graphstore.archive import Archive, ArchivedRun, archived_run, decode_run
from graphstore.operations.ingest import ingest_calls
from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from projections import FlowgraphProjection
from projections.rebuild import open_live_projector

BATCH = 100
_TIME = re.compile(rb"17950\d{8}")  # the sample's times (ms since the epoch, Nov 2026)


def sample_runs(work: Path) -> list[ArchivedRun]:
    """The sample's 40 runs as archived from a real tenant."""
    with graphstore.open(work / "data") as store:
        me = store.principal
        store.identity.create_account("ada@example.com", "Ada", actor=me)
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        events = [event for _, event in read_jsonl(WORKFLOWS)]
        ingest_calls(acme, events, source="sample", operation_types=OPERATION_TYPES)
        with open_live_projector(acme.env, FlowgraphProjection) as projector:
            projector.catch_up()
        ids = [f"run-{n:03d}" for n in range(1, 41)]
        return [archived_run(acme, run_id, org="acme") for run_id in ids]


def copies(runs: list[ArchivedRun], count: int) -> list[ArchivedRun]:
    """``count`` runs: the sample's, each id (and its calls' ids) renamed and each time
    moved by its own random amount (as real runs differ: copies that repeat whole runs
    byte for byte would flatter the stream compression)."""
    rng = random.Random(16)
    made: list[ArchivedRun] = []
    for n in range(count):
        run = runs[n % len(runs)]
        data = msgspec.json.encode(run).replace(run.run_id.encode(), f"x{n:07d}".encode())
        made.append(decode_run(_moved(data, rng.randrange(10**9))))
    return made


def _moved(data: bytes, shift: int) -> bytes:
    def moved(match: re.Match[bytes]) -> bytes:
        return str(int(match.group()) + shift).encode()

    return _TIME.sub(moved, data)


def measure_sqlite(root: Path, runs: list[ArchivedRun], probes: list[str]) -> dict[str, float]:
    archive = Archive(root)
    began = time.perf_counter()
    for start in range(0, len(runs), BATCH):
        archive.write("acme", runs[start : start + BATCH])
    written = time.perf_counter() - began
    size = sum(f.bytes for f in archive.list())
    finds = []
    for run_id in probes:
        began = time.perf_counter()
        assert archive.find("acme", run_id) is not None
        finds.append(time.perf_counter() - began)
    began = time.perf_counter()
    assert archive.forget("acme", probes[0])
    erased = time.perf_counter() - began
    return _figures(len(runs), written, size, finds, erased)


def measure_jsonl(root: Path, runs: list[ArchivedRun], probes: list[str]) -> dict[str, float]:
    root.mkdir(parents=True)
    manifest: dict[str, str] = {}
    began = time.perf_counter()
    for start in range(0, len(runs), BATCH):
        batch = runs[start : start + BATCH]
        lines = b"".join(msgspec.json.encode(run) + b"\n" for run in batch)
        for period in sorted({run.period for run in batch}):
            path = root / f"acme-{period}.jsonl.gz"
            with path.open("ab") as out:
                out.write(gzip.compress(lines, 6))
                out.flush()
                os.fsync(out.fileno())
            manifest[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            temporary = root / "MANIFEST.json.tmp"
            with temporary.open("wb") as out:
                out.write(msgspec.json.encode(manifest))
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(root / "MANIFEST.json")
    written = time.perf_counter() - began
    size = sum(p.stat().st_size for p in root.glob("*.jsonl.gz"))
    finds = []
    for run_id in probes:
        began = time.perf_counter()
        assert _scan(root, run_id) is not None
        finds.append(time.perf_counter() - began)
    began = time.perf_counter()
    for path in root.glob("*.jsonl.gz"):  # erasure: rewrite the file without the run
        kept = [
            line
            for line in gzip.decompress(path.read_bytes()).splitlines(keepends=True)
            if not line.startswith(b'{"run_id":"' + probes[0].encode() + b'"')
        ]
        path.write_bytes(gzip.compress(b"".join(kept), 6))
    erased = time.perf_counter() - began
    return _figures(len(runs), written, size, finds, erased)


def _scan(root: Path, run_id: str) -> ArchivedRun | None:
    wanted = b'{"run_id":"' + run_id.encode() + b'"'
    for path in sorted(root.glob("*.jsonl.gz")):
        with gzip.open(path, "rb") as lines:
            for line in lines:
                if line.startswith(wanted):
                    return decode_run(line)
    return None


def _figures(
    runs: int, written: float, size: int, finds: list[float], erased: float
) -> dict[str, float]:
    return {
        "write_runs_per_s": runs / written,
        "bytes_per_run": size / runs,
        "find_ms_median": statistics.median(finds) * 1000,
        "forget_ms": erased * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--finds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        runs = copies(sample_runs(work), args.runs)
        raw = sum(len(msgspec.json.encode(run)) for run in runs) / len(runs)
        probes = [run.run_id for run in random.Random(4).sample(runs, args.finds)]
        sqlite = measure_sqlite(work / "sqlite", runs, probes)
        jsonl = measure_jsonl(work / "jsonl", runs, probes)
    print(f"{args.runs} runs, {raw:.0f} bytes of JSON each, batches of {BATCH}")
    print(f"{'':18} {'sqlite':>10} {'jsonl.gz':>10} {'sqlite/jsonl':>13}")
    for name, value in sqlite.items():
        print(f"{name:18} {value:10.2f} {jsonl[name]:10.2f} {value / jsonl[name]:13.2f}")


if __name__ == "__main__":
    main()
