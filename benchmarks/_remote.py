"""The ``relay`` suite's remote cases (issue 11, items 2 and 3): a remote projection fed
through the relay and JetStream, and spokes' call events folded in by the hub.

- **Remote end to end** (``remote_e2e_p50_ms`` / ``remote_e2e_p99_ms``): three processes
  on one machine, as docs/scale.md runs them: this one writes (a ``Metagraph`` command
  per sample: ``add_node``, one commit), ``graphstore relay`` (the real relay,
  :mod:`graphstore.nats.relay`) publishes to JetStream, ``graphstore project-remote``
  applies into its own mirror file (:mod:`graphstore.nats.remote`). A sample is the
  time from the command returning (committed in the tenant file) to this process seeing
  the mirror's positions at that offset (Honker's commit watcher on the mirror file,
  1 ms polling: included, so the figures err on the slow side). Samples 2-5 ms apart
  (random); the first 10 of each round dropped; the median over rounds of each round's
  percentile.
- **Spoke ingestion** (``spoke_ingest_vs_inprocess``): the same call events (workflow
  runs of ``benchmarks._call_history``: 20 events, 10 calls each) published by a
  :class:`graphstore.nats.spoke.Spoke` (this process) and folded by ``graphstore
  ingest-nats`` (another process) into a fresh tenant, timed from the first publish to
  the ingester's saved position reaching the last PubAck's sequence; beside in-process
  ``graphstore.ingest`` of the same events batched the same way: one ingest() per 500
  events (the ingester's batch size, ``DEFAULT_BATCH``: it folds up to that many in one
  transaction), into another fresh tenant of the same data directory. Events/s ÷
  events/s, same rounds. ``spoke_ingest_vs_inprocess_per_run`` compares with one
  ingest() per workflow run (20 events, as the ``domain`` suite feeds it), for context.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

import nats

from benchmarks._call_history import workflow_run
from benchmarks._report import (
    Report,
    RunConfig,
    Side,
    Target,
    median,
    paired_ratio,
    percentile,
    rounds,
)
from domain import Principal
from domain.calls import ingest
from graphstore.nats.ingester import DEFAULT_BATCH, DEFAULT_LINGER, latest_position
from graphstore.nats.spoke import Spoke
from graphstore.nats.subjects import EVENTS_STREAM
from graphstore.store import Store
from projections.mirror import mirror_path
from streams import HonkerDatastore, TenantReader, saved_position

__all__ = ["remote_e2e", "spoke_ingest_vs_inprocess"]

TENANT: Final = "e2e"
DROPPED: Final = 10
BATCH: Final = DEFAULT_BATCH
"""In-process events per ingest(): the ingester's batch size."""
CHUNK: Final = 50


class _Server(Protocol):
    url: str


def _graphstore(data: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


@contextmanager
def _processes(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _hub(data: Path, tenants: list[str]) -> None:
    with Store(data) as store:
        email = "ops@bench.example"
        store.identity.create_account(email, "Ops", actor=Principal.system(), access_level="admin")
        for org in tenants:
            store.create_tenant(org, name=org, owner_email=email)


def _wait(
    db: HonkerDatastore, reached: Any, offset: int, timeout: float, what: str, log: Path
) -> None:
    watcher = db.watcher
    deadline = time.monotonic() + timeout
    while True:
        generation = watcher.generation
        if reached(db) >= offset:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not reach {offset}; see {log}")
        watcher.wait_for_change(generation, 0.05)


# ---------------------------------------------------------------------- remote e2e


def _mirror_position(db: HonkerDatastore) -> int:
    found = [saved_position(db, c, "metagraph") or 0 for c in ("metagraph@v1", "flowgraph@v1")]
    return min(found)


async def _fresh_events_stream(url: str) -> None:
    """Delete ``GRAPHSTORE_EVENTS`` (an earlier case's subjects would be followed too,
    and the relay would resume after their offsets); the relay creates it again."""
    nc = await nats.connect(url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(EVENTS_STREAM)
    finally:
        await nc.close()


def remote_e2e(report: Report, root: Path, server: _Server, config: RunConfig) -> None:
    hub, remote = root / "e2e-hub", root / "e2e-remote"
    asyncio.run(_fresh_events_stream(server.url))
    log = root / "e2e.log"
    _hub(hub, [TENANT])
    samples = 100 if config.quick else 200
    rng = random.Random(7)
    relay = _graphstore(hub, "relay", "--nats", server.url, "--status-every", "0", log=log)
    follower = _graphstore(
        remote,
        "project-remote",
        "--nats",
        server.url,
        "--tenant",
        TENANT,
        "--status-every",
        "0",
        log=log,
    )
    with _processes(relay, follower), Store(hub) as store:
        app = store.tenant(TENANT)
        graph_type = app.define_graph_type("bench", config={"graphType": "directed"})
        app.add_node_type(graph_type, "item")
        graph = app.create_graph("bench", "e2e", status="active")
        head = app.recorder.max_notification_id() or 0
        deadline = time.monotonic() + 60
        while not mirror_path(remote, TENANT).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no mirror was created; see {log}")
            time.sleep(0.01)
        mirror_file = TenantReader({"HONKER_DBNAME": str(mirror_path(remote, TENANT))})
        mirror = mirror_file.datastore
        try:
            _wait(mirror, _mirror_position, head, 60, "the remote projection", log)
            counter = iter(range(10**9))

            def one_round(round_no: int) -> list[float]:
                latencies = []
                for _ in range(samples):
                    time.sleep(rng.uniform(0.002, 0.005))
                    app.add_node(graph, f"n{next(counter)}", "item", {"round": round_no})
                    committed = time.monotonic_ns()
                    offset = app.recorder.max_notification_id() or 0
                    _wait(mirror, _mirror_position, offset, 30, "the remote projection", log)
                    latencies.append((time.monotonic_ns() - committed) / 1e6)
                return latencies[DROPPED:]

            one_round(-1)  # warm-up
            figures = rounds(config.repeats, {"e2e": one_round})["e2e"]
        finally:
            mirror_file.close()
    p50 = [percentile(latencies, 50) for latencies in figures]
    p99 = [percentile(latencies, 99) for latencies in figures]
    report.add("remote_e2e_p50_ms", median(p50), Target("<=", 10))
    report.add("remote_e2e_p99_ms", median(p99), Target("<=", 50))
    report.add("remote_e2e_max_ms", max(max(latencies) for latencies in figures))
    report.raw["remote_e2e"] = {"p50_ms": p50, "p99_ms": p99, "samples_per_round": samples}
    report.notes.append(
        "remote_e2e: writer (this process), `graphstore relay` and `graphstore "
        "project-remote` as three processes on loopback; from add_node() returning to "
        "the mirror's positions seen by a 1 ms commit watcher"
    )


# ------------------------------------------------------------------ spoke ingestion


def _ingested(db: HonkerDatastore) -> int:
    return latest_position(db)


async def _publish(url: str, tenant: str, runs: list[list[dict[str, Any]]]) -> int:
    """Publish the runs in order, :data:`CHUNK` runs per ``publish_many`` (published
    without waiting, then every PubAck awaited), as a busy spoke does; the last stream
    sequence."""
    last = 0
    async with Spoke(url, tenant, timeout=30) as spoke:
        for first in range(0, len(runs), CHUNK):
            chunk = [event for run in runs[first : first + CHUNK] for event in run]
            last = max(last, *await spoke.publish_many(chunk))
    return last


def spoke_ingest_vs_inprocess(
    report: Report, root: Path, server: _Server, config: RunConfig
) -> None:
    count = 200 if config.quick else 500
    hub = root / "spoke-hub"
    log = root / "spoke.log"
    round_numbers = range(-1, config.repeats)
    spokes = [f"spoke-{n + 1}" for n in round_numbers]
    per_run = [f"local-{n + 1}" for n in round_numbers]
    batched = [f"batched-{n + 1}" for n in round_numbers]
    _hub(hub, spokes + per_run + batched)
    args = ["ingest-nats", "--nats", server.url, "--status-every", "0"]
    ingester = _graphstore(hub, *args, *(f"--tenant={s}" for s in spokes), log=log)
    events = count * len(workflow_run("x", 0))
    published: list[float] = []  # seconds until the last PubAck, per round

    def runs_of(prefix: str) -> list[list[dict[str, Any]]]:
        return [workflow_run(prefix, number) for number in range(count)]

    with _processes(ingester), Store(hub) as store:

        def spoke(round_no: int) -> float:
            tenant = spokes[round_no + 1]
            runs = runs_of(f"s{round_no + 1}")
            path = store.data.tenant_path(tenant)
            warm = asyncio.run(_publish(server.url, tenant, [workflow_run("warm", 0)]))
            tenant_file = TenantReader({"HONKER_DBNAME": str(path)})
            db = tenant_file.datastore
            try:
                _wait(db, _ingested, warm, 60, "the ingester", log)
                start = time.perf_counter()
                last = asyncio.run(_publish(server.url, tenant, runs))
                published.append(time.perf_counter() - start)
                _wait(db, _ingested, last, 600, "the ingester", log)
                return time.perf_counter() - start
            finally:
                tenant_file.close()

        def in_process(round_no: int) -> float:
            app = store.tenant(per_run[round_no + 1])
            runs = runs_of(f"l{round_no + 1}")
            ingest(app, workflow_run("warm", 0))
            start = time.perf_counter()
            for run in runs:
                ingest(app, run)
            return time.perf_counter() - start

        def in_process_batched(round_no: int) -> float:
            app = store.tenant(batched[round_no + 1])
            flat = [event for run in runs_of(f"b{round_no + 1}") for event in run]
            ingest(app, workflow_run("warm", 0))
            start = time.perf_counter()
            for first in range(0, len(flat), BATCH):
                ingest(app, flat[first : first + BATCH])
            return time.perf_counter() - start

        sides = {"spoke": spoke, "in_process": in_process, "in_process_batched": in_process_batched}
        for side in sides.values():
            side(-1)  # warm-up
        figures = rounds(config.repeats, sides)
    rates = {side: [events / s for s in seconds] for side, seconds in figures.items()}
    report.add(
        "spoke_ingest_vs_inprocess",
        paired_ratio(rates["spoke"], rates["in_process_batched"]),
        Target(">=", 0.5),
    )
    report.compare(
        "spoke_ingest_vs_inprocess",
        ours=Side(
            what="first publish -> the ingester's saved position at the last PubAck "
            f"({CHUNK} runs per publish_many, PubAcks awaited per chunk)",
            durability="JetStream file storage (acknowledged once stored); the tenant "
            "file at synchronous=NORMAL",
            batch=f"up to {DEFAULT_BATCH} events per fold transaction ({DEFAULT_LINGER}s "
            "linger), the consumer's position in the same transaction",
            indexes="the call graph's (event store index, call trees, call index)",
        ),
        theirs=Side(
            what="the first ingest() -> the last one returned, in this process",
            durability="synchronous=NORMAL",
            batch=f"{BATCH} events per ingest() (one transaction each)",
            indexes="the same call graph",
        ),
    )
    report.add(
        "spoke_ingest_vs_inprocess_per_run",
        paired_ratio(rates["spoke"], rates["in_process"]),
    )
    report.add("spoke_ingest_events_per_s", median(rates["spoke"]))
    report.add("inprocess_ingest_events_per_s", median(rates["in_process"]))
    report.add("inprocess_batched_ingest_events_per_s", median(rates["in_process_batched"]))
    report.add("spoke_publish_events_per_s", median([events / s for s in published[1:]]))
    report.raw["spoke_ingest_vs_inprocess"] = {
        "events": events,
        "seconds": figures,
        "spoke_published_s": published[1:],
    }
    report.notes.append(
        f"spoke_ingest_vs_inprocess: {count} workflow runs ({events} events) per round, "
        f"the spoke publishing {CHUNK} runs per publish_many (PubAcks awaited per chunk), "
        f"in-process ingest() in batches of {BATCH} events (as the ingester folds); the "
        "spoke in this process, `graphstore ingest-nats` in another (batches of up to "
        f"{DEFAULT_BATCH}, {DEFAULT_LINGER}s linger), timed from the first publish to the "
        "ingester's position at the last PubAck. _per_run: one in-process ingest() per "
        "run (20 events)"
    )
