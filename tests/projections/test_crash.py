"""Crash recovery with real processes (issue 4, item 7).

A writer process ingests call-protocol batches into a tenant file while a runner process
projects them; the test kills the writer, the runner or both with SIGKILL after a random
delay, restarts what it killed, and checks after every kill point:

- the projections (metagraph and flowgraph tables) equal a clean rebuild from offset 0,
  made in a copy of the file into prefixed tables by projectors under other consumer
  names, every row of every table compared;
- each projector's saved offset is the stream's head once caught up (nothing applied
  twice: the incremental counts of ``flow_runs`` would differ from the rebuild);
- every batch the writer acknowledged before its death is in the call graph (each event
  listed by its call), and no call lists an event twice; the batch in flight when the
  writer died is delivered again by the restarted writer (idempotence repairs it).

At the end of each series the writer finishes the workload and the call graph must equal
one made by a single uninterrupted ingestion, call for call.

``CRASH_SEED`` reproduces a run (printed on failure); ``CRASH_SERIES`` and
``CRASH_ROUNDS`` change its size. ``python -m projections.soak --kills N`` runs more.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from domain import Metagraph
from domain.calls import ingest
from graphstore.data import DataDirectory
from graphstore.samples.generate import OPERATION_TYPES
from projections import FlowgraphProjection, Projector
from projections.recovery import abort_in_flight, in_flight_runs
from tests.domain.calls_state import all_calls
from tests.projections._crash_worker import TENANT, workload
from tests.projections.rebuild_check import (
    CONSUMERS,
    catch_up_in_process,
    head_and_offsets,
    opened,
    projections_equal_rebuild,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
SERIES = int(os.environ.get("CRASH_SERIES", "5"))
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "6"))


class Worker:
    """One worker process (``tests.projections._crash_worker``) and its stdout lines."""

    def __init__(self, data: Path, *args: str) -> None:
        self._stderr = (data / f"{args[0]}-{time.monotonic_ns()}.stderr").open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.projections._crash_worker", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "GRAPHSTORE_DATA_DIR": str(data)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.acked: list[tuple[int, int]] = []  # (batch, head) per ack, in order
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip("\n")
            if text.startswith("ack "):
                _, batch, head = text.split()
                self.acked.append((int(batch), int(head)))
            else:
                self.lines.put(text)
        self.lines.put(None)

    def expect(self, *wanted: str, timeout: float = 60.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker silent for {timeout}s: {self.stderr()}") from None
        assert line in wanted, f"worker said {line!r}, not {wanted}: {self.stderr()}"
        return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.close()

    def finish(self, timeout: float = 60.0) -> None:
        """Close stdin (the worker's cue to end) and wait for it to exit."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker did not exit: {self.stderr()}") from None
        self.close()

    def close(self) -> None:
        self._reader.join()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        self._stderr.close()

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]


# --- checks -----------------------------------------------------------------------------


def wait_caught_up(path: Path, runner: Worker, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        head, saved = head_and_offsets(path)
        if all(saved.get(c) == head for c in CONSUMERS):
            return head
        assert runner.alive(), f"runner died: {runner.stderr()}"
        assert time.monotonic() < deadline, f"not caught up: head {head}, saved {saved}"
        time.sleep(0.02)


def call_events(app: Metagraph) -> dict[str, list[str]]:
    """Each call's listed event ids, from the call trees."""
    return {key: [e["id"] for e in a.get("events", [])] for key, a in all_calls(app).items()}


def calls_of(app: Metagraph) -> dict[str, dict[str, Any]]:
    return all_calls(app)


# --- the reference: one uninterrupted ingestion of the whole workload -------------------


BATCHES = workload()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    data = DataDirectory(tmp_path_factory.mktemp("reference"))
    with Metagraph(env=data.tenant_env(TENANT)) as app:
        for batch in BATCHES:
            ingest(app, batch, operation_types=OPERATION_TYPES)
        return calls_of(app)


def check_acked(path: Path, acked: set[int], reference: dict[str, dict[str, Any]]) -> None:
    """Every acknowledged event is listed by its call (when a clean ingestion lists it),
    no call lists an event twice, and every listed event is one the reference lists."""
    listed_in_reference = {
        (key, entry["id"]) for key, call in reference.items() for entry in call["events"]
    }
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    with Metagraph(env=env) as app:
        listed = call_events(app)
    pairs = {(key, event_id) for key, ids in listed.items() for event_id in ids}
    for key, ids in listed.items():
        assert len(ids) == len(set(ids)), f"call {key} lists an event twice: {ids}"
    assert pairs <= listed_in_reference, sorted(pairs - listed_in_reference)[:5]
    for index in acked:
        for event in BATCHES[index]:
            pair = (event["payload"]["requestId"], event["id"])
            if pair in listed_in_reference:
                assert pair in pairs, f"acknowledged event {pair} (batch {index}) is missing"


# --- the crash test ---------------------------------------------------------------------


def _series(tmp: Path, rng: random.Random, rounds: int, reference: dict[str, Any]) -> int:
    data = tmp / "data"
    DataDirectory(data).create_tenant_file(TENANT)
    path = DataDirectory(data).tenant_path(TENANT)
    acked: set[int] = set()
    kills = 0
    for _ in range(rounds):
        start = max(acked, default=-1) + 1  # the batch in flight is delivered again
        writer = Worker(data, "writer", str(start), str(len(BATCHES)))
        runner = Worker(data, "runner")
        writer.expect("ready")
        runner.expect("ready")
        time.sleep(rng.uniform(0.0, 0.5))
        target = rng.choice(("writer", "runner", "both"))
        if target in ("writer", "both"):
            writer.kill()
        if target in ("runner", "both"):
            runner.kill()
        kills += 1
        if writer.alive():  # stop it between batches: the file must hold still to compare
            writer.send("stop")
            writer.expect("stopped", "done")
            writer.finish()
        acked.update(batch for batch, _ in writer.acked)
        if not runner.alive():
            runner = Worker(data, "runner")
            runner.expect("ready")
        began = time.monotonic()
        head = wait_caught_up(path, runner)
        print(f"{target}: caught up to {head} in {time.monotonic() - began:.2f}s")
        assert all(h <= head for _, h in writer.acked)
        runner.kill()  # caught up: nothing of it is in flight
        projections_equal_rebuild(path, tmp)
        check_acked(path, acked, reference)
    # The end: the writer delivers the rest (the interrupted batch again first).
    writer = Worker(data, "writer", str(max(acked, default=-1) + 1), str(len(BATCHES)))
    runner = Worker(data, "runner")
    writer.expect("ready")
    began = time.monotonic()
    writer.expect("done", timeout=120)
    writer.finish()
    print(f"the rest delivered in {time.monotonic() - began:.2f}s")
    runner.expect("ready")
    wait_caught_up(path, runner)
    runner.finish()
    projections_equal_rebuild(path, tmp)
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    with Metagraph(env=env) as app:
        assert calls_of(app) == reference
    return kills


@pytest.mark.parametrize("series", range(SERIES))
def test_kill_writer_and_runner_at_random_points(
    tmp_path: Path, series: int, reference: dict[str, dict[str, Any]]
) -> None:
    seed = SEED + series
    print(f"crash series {series}: CRASH_SEED={SEED} (series seed {seed})")
    try:
        kills = _series(tmp_path, random.Random(seed), ROUNDS, reference)
    except BaseException as exc:
        raise AssertionError(f"failed with CRASH_SEED={SEED} (series {series}): {exc}") from exc
    assert kills == ROUNDS


# --- in-flight runs after a crash -------------------------------------------------------


def flow_active(path: Path) -> tuple[set[str], dict[str, set[str]]]:
    """From the projection: running runs (detached ones too), active calls per run."""
    with opened(path) as db:
        runs = {r["id"] for r in db.query("SELECT id FROM flow_runs WHERE status = 'running'")}
        calls: dict[str, set[str]] = {}
        for row in db.query(
            "SELECT id, run_id FROM flow_calls WHERE status IN ('pending', 'running')"
        ):
            calls.setdefault(row["run_id"], set()).add(row["id"])
    return runs, calls


@pytest.mark.parametrize("attempt", range(3))
def test_in_flight_runs_after_a_crash_are_listed_and_aborted(tmp_path: Path, attempt: int) -> None:
    rng = random.Random(SEED + 1000 + attempt)
    data = tmp_path / "data"
    DataDirectory(data).create_tenant_file(TENANT)
    path = DataDirectory(data).tenant_path(TENANT)
    writer = Worker(data, "writer", "0", str(len(BATCHES)))
    writer.expect("ready")
    target = rng.randrange(20, 300)
    while not writer.acked or writer.acked[-1][0] < target:
        assert writer.alive(), writer.stderr()
        time.sleep(0.001)
    writer.kill()
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    with Metagraph(env=env) as app:
        # The kill may fall between two runs: then the restarted producer delivers more
        # batches (the interrupted one first) until one is cut short again. Each time
        # the two readings agree: the call graph (recovery) and the flowgraph views.
        next_batch = writer.acked[-1][0] + 1
        while True:
            catch_up_in_process(path)
            found = in_flight_runs(app)
            running, active = flow_active(path)
            assert {r.run_id for r in found} == running
            assert {r.run_id: set(r.active) for r in found} == active
            if found:
                break
            assert next_batch < len(BATCHES), f"nothing in flight (CRASH_SEED={SEED})"
            ingest(app, BATCHES[next_batch], operation_types=OPERATION_TYPES)
            next_batch += 1
        before = calls_of(app)
        for run in found:
            assert run.heads and set(run.heads) <= set(run.active)
            assert (run.root_status in ("pending", "running")) == (run.heads == [run.run_id])

        done = abort_in_flight(app, at=1_900_000_000_000)
        assert done.runs == [r.run_id for r in found]
        assert done.report is not None and done.report.applied == len(done.events)
        assert in_flight_runs(app) == []
        after = calls_of(app)
        was_active = {k for r in found for k in r.active}
        for key, call in after.items():
            if key in was_active:  # aborted by the normal path: an event per call
                assert call["status"] == "aborted"
                assert call["events"][-1]["type"] == "call.aborted"
                assert call["completedAt"] == 1_900_000_000_000
            else:
                assert call == before[key]
        again = abort_in_flight(app)
        assert (again.runs, again.report) == ([], None)
    catch_up_in_process(path)
    running, active = flow_active(path)
    assert (running, active) == (set(), {})
    with opened(path) as db:
        statuses = {
            r["id"]: r["status"]
            for r in db.query(
                f"SELECT id, status FROM flow_runs WHERE id IN ({','.join('?' * len(found))})",
                [r.run_id for r in found],
            )
        }
    for run in found:
        expected = "aborted" if run.root_status in ("pending", "running") else run.root_status
        assert statuses[run.run_id] == expected
    projections_equal_rebuild(path, tmp_path)


def test_the_checks_catch_a_batch_applied_twice(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """The checks can fail: a projector whose saved offset is moved back applies events
    a second time, and the comparison with a clean rebuild (or the offsets) says so."""
    data = DataDirectory(tmp_path / "data")
    path = data.tenant_path(TENANT)
    with Metagraph(env=data.tenant_env(TENANT)) as app:
        for batch in BATCHES[:60]:
            ingest(app, batch, operation_types=OPERATION_TYPES)
    catch_up_in_process(path)
    projections_equal_rebuild(path, tmp_path)  # sound so far
    check_acked(path, set(range(60)), reference)
    with pytest.raises(AssertionError, match="missing"):
        check_acked(path, set(range(61)), reference)  # a batch acknowledged, not there
    head, _ = head_and_offsets(path)
    with opened(path) as db, db.transaction() as tx:
        tx.execute(
            'UPDATE _honker_stream_consumers SET "offset" = ? WHERE name = ?',
            [head // 2, "flowgraph@v1"],
        )
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}
    with Projector.open(env, FlowgraphProjection()) as projector:  # the runner's "stop"
        projector.catch_up()
        assert projector.status().state == "failed"
    with pytest.raises(AssertionError, match="saved"):
        projections_equal_rebuild(path, tmp_path)  # it stopped behind the head
    # Parking the events it cannot apply again moves it to the head: the dead letters say.
    with Projector.open(env, FlowgraphProjection(), policy="skip-and-park") as projector:
        projector.resume()
        projector.catch_up()
    with pytest.raises(AssertionError, match="parked"):
        projections_equal_rebuild(path, tmp_path)
