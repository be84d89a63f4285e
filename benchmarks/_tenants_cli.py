"""The real ``graphstore projector run`` process on a data directory of many tenants.

Issue 17 item 5: the process the operator runs, started on N registered tenants (copies
of one template tenant file), measured from outside through ``/proc/<pid>``:

- **catch-up**: seconds from spawning the process until it goes quiet (no 0.25 s step uses
  more than 10% of a core for ``QUIET_S``), the end of its last busy interval;
  every tenant's projectors are then checked to be at their head;
- **RSS** after catch-up (and the peak);
- **idle CPU**: the process's own CPU time (``utime + stime``, every thread), over a
  window, as a percentage of one core: other processes on the machine do not count;
- **wake**: a writer process commits one node in one idle tenant among them; a watcher
  in this process (Honker's update watcher on that tenant's file) notes when the
  projectors' saved offset reaches the commit. Each sample wakes another idle tenant.

Building the directory: one template tenant file (a graph of 20 nodes, not projected),
then N organizations registered through :class:`domain.Identity` whose
``create_tenant_file`` hook copies the template. Without snapshots each registration
replays the registry (quadratic), so the build takes one every 100 registrations.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from domain import Identity, Metagraph, Principal
from domain._identity_aggregates import REGISTRY_ID
from graphstore.data import DataDirectory
from projections import FlowgraphProjection, MetagraphProjection
from projections.rebuild import open_live_projector
from streams import HonkerTrackingRecorder, TenantReader

__all__ = ["CliRunnerFigures", "OffsetWatcher", "build_tenants", "measure_cli_runner"]

IDLE_AFTER_S: Final = 30.0
"""The runner's default ``idle_after``: the template's events must be older than this."""
QUIET_S: Final = 3.0
"""Seconds without a busy step after which catch-up is over."""
BUSY_SHARE: Final = 0.1
"""A step using more than this share of a core is busy (CPU time comes in 10 ms ticks)."""
TICK: Final = os.sysconf("SC_CLK_TCK")
TEMPLATE: Final = "template"


@dataclass
class CliRunnerFigures:
    tenants: int
    catch_up_s: float
    rss_mb: float
    peak_rss_mb: float
    idle_cpu_pct: float
    idle_window_s: float
    wake_ms: list[float] = field(default_factory=list)
    caught_up: int = 0
    threads: int = 0


def build_tenants(path: Path, count: int) -> tuple[list[str], UUID, float]:
    """A data directory of ``count`` registered tenants; (org ids, the graph's id, the
    wall time of the template's newest event). Whatever was at ``path`` is removed."""
    shutil.rmtree(path, ignore_errors=True)
    data = DataDirectory(path)
    with Metagraph(env=data.tenant_env(TEMPLATE)) as app:
        type_id = app.define_graph_type("bench")
        app.add_node_type(type_id, "item")
        graph = app.create_graph(type_id, "g", status="active")
        for i in range(20):
            app.add_node(graph, f"n{i}", "item", {"i": i})
    newest = time.time()
    template = data.tenant_path(TEMPLATE)
    with sqlite3.connect(template) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    image = template.read_bytes()

    def copy_template(org_id: str) -> Path:
        target = data.tenant_path(org_id)
        if not target.exists():
            target.write_bytes(image)
        return target

    system = Principal.system()
    identity = Identity(
        {**data.system_env(), "IS_SNAPSHOTTING_ENABLED": "y"}, create_tenant_file=copy_template
    )
    try:
        owner = identity.create_account(
            "ops@example.com", "Ops", actor=system, access_level="admin"
        )
        org_ids = [f"t{n:05d}" for n in range(count)]
        for n, org in enumerate(org_ids):
            identity.create_organization(org.upper(), org, owner_id=owner.id, actor=system)
            if n % 100 == 99:
                identity.take_snapshot(REGISTRY_ID)
    finally:
        identity.close()
        data.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{template}{suffix}").unlink(missing_ok=True)
    return org_ids, graph, newest


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def _wait_quiet(process: subprocess.Popen[bytes], start: float, timeout: float) -> float:
    """Seconds from ``start`` to the end of the process's last busy step (a step of
    0.25 s with more than ``BUSY_SHARE`` of a core), once it has been quiet for
    ``QUIET_S``."""
    step = 0.25
    last_busy, cpu = time.monotonic(), _cpu_s(process.pid)
    while time.monotonic() - last_busy < QUIET_S:
        time.sleep(step)
        if process.poll() is not None:
            raise RuntimeError(f"the runner exited with {process.returncode}")
        now, used = time.monotonic(), _cpu_s(process.pid)
        if used - cpu > BUSY_SHARE * step:
            last_busy = now
        cpu = used
        if now - start > timeout:
            raise TimeoutError(f"the runner was still busy after {timeout} s")
    return last_busy - start


def _writer(
    data_dir: str, org_ids: list[str], graph: UUID, inbox: Queue[Any], out: Queue[Any]
) -> None:
    """Opens the tenants' metagraphs, then adds one node to the one each message names."""
    data = DataDirectory(data_dir)
    apps = {org: Metagraph(env=data.tenant_env(org)) for org in org_ids}
    out.put("ready")
    while (org := inbox.get()) is not None:
        app = apps[org]
        app.add_node(graph, f"wake-{time.time_ns()}", "item", {})
        committed = time.monotonic_ns()
        out.put((app.recorder.max_notification_id() or 0, committed))
    for app in apps.values():
        app.close()
    data.close()


class OffsetWatcher:
    """A subscriber in this process: on every wake of Honker's update watcher it reads
    the projector's saved offset and notes when each new value was first seen."""

    def __init__(self, path: Path, consumer: str, stream: str) -> None:
        self.reader = TenantReader({"HONKER_DBNAME": str(path)}, stream)
        self.datastore = self.reader.datastore
        self.tracking = HonkerTrackingRecorder(self.datastore, consumer=consumer)
        self.stream = stream
        self.seen: list[tuple[int, int]] = []
        self._wake = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.datastore.watcher.add(self._wake.set)
        self._thread.start()

    def _loop(self) -> None:
        last = -1
        while not self._done:
            self._wake.wait(0.05)
            self._wake.clear()
            offset = self.tracking.max_tracking_id(self.stream) or 0
            if offset > last:
                self.seen.append((offset, time.monotonic_ns()))
                last = offset

    def wait_for(self, offset: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for o, t in list(self.seen) if o >= offset]
            if found:
                return found[0]
            time.sleep(0.005)
        raise TimeoutError(f"offset {offset} not projected in {timeout} s")

    def close(self) -> None:
        self._done = True
        self._wake.set()
        self._thread.join()
        self.datastore.watcher.discard(self._wake.set)
        self.reader.close()

    def latencies_ms(self, stamps: list[tuple[int, int]]) -> list[float]:
        result = []
        for offset, committed in stamps:
            seen = next(t for o, t in self.seen if o >= offset)
            result.append((seen - committed) / 1e6)
        return result


def _at_head(data: DataDirectory, org_ids: list[str]) -> int:
    """How many tenants have every projector at its stream's head (read from the files)."""
    done = 0
    for org in org_ids:
        statuses = []
        for projection in (MetagraphProjection, FlowgraphProjection):
            projector = open_live_projector(data.tenant_env(org), projection)
            try:
                statuses.append(projector.status())
            finally:
                projector.close()
        done += all(s.position >= s.head for s in statuses)
    return done


def measure_cli_runner(
    path: Path,
    org_ids: list[str],
    graph: UUID,
    newest_event: float,
    *,
    command: list[str],
    env: dict[str, str],
    idle_window_s: float,
    wake_samples: int,
    extra_args: list[str] | None = None,
) -> CliRunnerFigures:
    """Start ``command --data-dir path projector run`` and measure it (module docstring)."""
    rng = random.Random(17)
    woken = rng.sample(org_ids, wake_samples)
    context = multiprocessing.get_context("spawn")
    inbox: Queue[Any] = context.Queue()
    out: Queue[Any] = context.Queue()
    writer = context.Process(target=_writer, args=(str(path), woken, graph, inbox, out))
    writer.start()
    if out.get(timeout=300) != "ready":
        raise RuntimeError("the writer did not start")
    # The runner's default idle_after: older events, or every tenant starts hot.
    time.sleep(max(0.0, newest_event + IDLE_AFTER_S + 1 - time.time()))
    argv = [*command, "--data-dir", str(path), "projector", "run", *(extra_args or [])]
    start = time.monotonic()
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        catch_up = _wait_quiet(process, start, timeout=3600)
        time.sleep(2.0)  # the rechecks of fresh file times
        rss = _status(process.pid, "VmRSS") / 1024
        cpu, wall = _cpu_s(process.pid), time.monotonic()
        time.sleep(idle_window_s)
        idle_pct = 100 * (_cpu_s(process.pid) - cpu) / (time.monotonic() - wall)
        threads = _status(process.pid, "Threads")
        wakes: list[float] = []
        for org in woken:
            applied = OffsetWatcher(
                DataDirectory(path, create=False).tenant_path(org),
                FlowgraphProjection().consumer,  # the last projector to run
                "metagraph",
            )
            try:
                time.sleep(rng.uniform(1.5, 2.0))  # the watcher's own open has settled
                inbox.put(org)
                offset, committed = out.get(timeout=60)
                wakes.append((applied.wait_for(offset, timeout=60) - committed) / 1e6)
            finally:
                applied.close()
        peak = _status(process.pid, "VmHWM") / 1024
    finally:
        inbox.put(None)
        process.terminate()
        _, err = process.communicate(timeout=120)
        writer.join(60)
    data = DataDirectory(path, create=False)
    try:
        caught_up = _at_head(data, org_ids)
    finally:
        data.close()
    if process.returncode not in (0, -15):
        raise RuntimeError(f"the runner exited with {process.returncode}: {err.decode()[-2000:]}")
    return CliRunnerFigures(
        tenants=len(org_ids),
        catch_up_s=catch_up,
        rss_mb=rss,
        peak_rss_mb=peak,
        idle_cpu_pct=idle_pct,
        idle_window_s=idle_window_s,
        wake_ms=wakes,
        caught_up=caught_up,
        threads=threads,
    )


if __name__ == "__main__":  # python -m benchmarks._tenants_cli DIR TENANTS WINDOW_S SAMPLES [ARGS]
    from benchmarks.cli import child_env, graphstore_command

    root, count = Path(sys.argv[1]), int(sys.argv[2])
    built = build_tenants(root, count)
    figures = measure_cli_runner(
        root,
        *built,
        command=graphstore_command(),
        env=child_env(),
        idle_window_s=float(sys.argv[3]),
        wake_samples=int(sys.argv[4]),
        extra_args=sys.argv[5:],
    )
    print(figures)
