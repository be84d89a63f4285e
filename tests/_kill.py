"""Kill points that cover a unit's whole life: the one helper of every kill -9 test.

A worker process reports the phases of each unit of work through a pipe the test reads,
and waits for the test's go-ahead after each report:

``started U``    unit U begins (nothing of it built yet)
``built U F``    its events (rows) are built; a write transaction on file F begins
``commit U F``   inside that transaction, every row written, just before COMMIT
``committed U F`` COMMIT returned; the worker has not acknowledged U yet
``acked U``      the worker acknowledged U (returned it to its caller)

``started`` and ``acked`` come from the worker (:meth:`Reporter.unit`), or from a
service's own batches through the test-only unit hook of :mod:`graphstore.nats.phases`
(``GRAPHSTORE_TEST_UNIT_HOOK``: the relay, the ingester and the remote projector); the
three in between come from the test-only hook in :mod:`streams.persistence` (enabled by
``GRAPHSTORE_TEST_PHASE_HOOK``), called from every write transaction the worker makes.
:class:`PhasedProcess` sets both. A worker may add phases of its own (tenant creation
reports ``file``/``filed`` around the tenant file, ``open`` before opening it).

The test (:func:`kill_at`) lets the worker run until the chosen phase of a chosen unit,
then either kills it there, held (the worker is blocked in the report: the kill lands
exactly at that phase's start), or lets it go and kills after a random fraction of that
phase's typical duration (the kill lands inside the phase's work, or, if the phase ended
first, at the next report, where the worker is blocked again). Either way the phase the
kill hit is known: the first report the test did not answer, else the phase it let go.
:class:`Coverage` collects the landings of a series and fails if a phase was never hit.
"""

from __future__ import annotations

import os
import random
import select
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, TypeVar

__all__ = [
    "HOOK",
    "PHASES",
    "PIPE_ENV",
    "TRANSACTION_PHASES",
    "UNIT_HOOK",
    "Aim",
    "Coverage",
    "Landing",
    "PhasedProcess",
    "Report",
    "Reporter",
    "aims",
    "batch_span",
    "kill_at",
    "kill_series",
    "persistence_hook",
    "reporter",
    "unit_hook",
]

PHASES: Final = ("started", "built", "commit", "committed", "acked")
"""A unit's life, in order (see the module docstring)."""
PIPE_ENV: Final = "GRAPHSTORE_TEST_KILL_PIPE"
"""``REPORT_FD,GO_FD``: the worker's ends of the two pipes."""
HOOK: Final = "tests._kill:persistence_hook"
"""What :class:`PhasedProcess` puts in ``GRAPHSTORE_TEST_PHASE_HOOK``."""
UNIT_HOOK: Final = "tests._kill:unit_hook"
"""What :class:`PhasedProcess` puts in ``GRAPHSTORE_TEST_UNIT_HOOK``."""
ALL_TRANSACTIONS_ENV: Final = "GRAPHSTORE_TEST_KILL_EVERY_TRANSACTION"
"""Set (to ``1``): every write transaction is a unit (processes that are not our workers,
e.g. a projection runner), reported as ``built``/``commit``/``committed`` of ``tN``."""

_T = TypeVar("_T")


# --- the worker's side ------------------------------------------------------------------


class Reporter:
    """The worker's end: one line per phase, then wait for the test's go-ahead."""

    def __init__(self, report_fd: int, go_fd: int, *, every_transaction: bool) -> None:
        self._report, self._go = report_fd, go_fd
        self._lock = threading.Lock()
        self.current: str | None = None
        self.every_transaction = every_transaction
        self._transactions = 0

    def say(self, phase: str, unit: str, detail: str = "-") -> None:
        """Report ``phase`` of ``unit``; block until the test answers (or kills)."""
        with self._lock:
            os.write(self._report, f"{phase} {unit} {detail}\n".encode())
            if not os.read(self._go, 1):
                os._exit(3)  # the test is gone: stop at once, as a kill would

    def unit(self, unit_id: str, work: Callable[[], _T]) -> _T:
        """``started``, the work (its transactions report through the hook), ``acked``."""
        self.say("started", unit_id)
        self.current = unit_id
        began = time.perf_counter()
        try:
            result = work()
        finally:
            self.current = None
        self.say("acked", unit_id, f"{(time.perf_counter() - began) * 1000:.2f}")
        return result

    def service_unit(self, phase: str, unit_id: str) -> None:
        """A service's batch begins (``started``) or ends (``acked``): the unit hook."""
        if phase == "started":
            self.say("started", unit_id)
            self.current = unit_id
        else:
            self.current = None
            self.say(phase, unit_id)

    def transaction(self, phase: str, path: Path) -> None:
        """The persistence hook's report, for the unit in progress (if any)."""
        unit = self.current
        if unit is None and self.every_transaction:
            if phase == "built":
                self._transactions += 1
            unit = f"t{self._transactions}"
        if unit is not None:
            self.say(phase, unit, path.name)


_reporter: Reporter | None = None
_reporter_lock = threading.Lock()


def reporter() -> Reporter:
    """This worker's reporter (from ``GRAPHSTORE_TEST_KILL_PIPE``)."""
    global _reporter  # noqa: PLW0603 - one per process, made on first use
    with _reporter_lock:
        if _reporter is None:
            report_fd, go_fd = (int(fd) for fd in os.environ[PIPE_ENV].split(","))
            every = os.environ.get(ALL_TRANSACTIONS_ENV) == "1"
            _reporter = Reporter(report_fd, go_fd, every_transaction=every)
        return _reporter


def persistence_hook(phase: str, path: Path) -> None:
    """The hook :mod:`streams.persistence` calls in every write transaction."""
    reporter().transaction(phase, path)


def unit_hook(phase: str, unit_id: str) -> None:
    """The hook :mod:`graphstore.nats.phases` calls as a service's batch starts or is
    acknowledged."""
    reporter().service_unit(phase, unit_id)


# --- the test's side --------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One line from the worker."""

    phase: str
    unit: str
    detail: str
    at: float


@dataclass
class Landing:
    """Where a kill landed, and what the worker reported before it."""

    phase: str
    """The phase the kill hit (see the module docstring)."""
    unit: str | None
    """The unit it hit (None: the worker was between units, e.g. done)."""
    held: bool
    """Whether the worker was blocked in that phase's report (the exact start)."""
    reports: list[Report] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    @property
    def in_flight(self) -> str | None:
        """The unit started and not acknowledged (at most one), or None."""
        unacked = [u for u in self.started if u not in set(self.acked)]
        assert len(unacked) <= 1, f"more than one unit unacknowledged: {unacked}"
        return unacked[0] if unacked else None

    def of_unit(self, unit: str | None = None) -> list[Report]:
        """The reports of ``unit`` (default: the unit the kill hit)."""
        wanted = self.unit if unit is None else unit
        return [r for r in self.reports if r.unit == wanted]

    def last_detail(self, phase: str) -> str | None:
        """The file (detail) of the hit unit's last ``phase`` report."""
        found = [r.detail for r in self.of_unit() if r.phase == phase]
        return found[-1] if found else None

    def outcome(self, detail: str | None = None) -> str:
        """What the hit unit's write (on file ``detail``, default any) must be after the
        kill: ``committed`` (its transaction reported ``committed``), ``either`` (killed
        while COMMIT ran: the kill let go of ``commit``), else ``absent``."""

        def on(report: Report) -> bool:
            return detail is None or report.detail == detail

        if self.phase == "acked" or any(r.phase == "committed" and on(r) for r in self.of_unit()):
            return "committed"
        mine = [r for r in self.of_unit() if r.phase in ("built", "commit") and on(r)]
        if self.phase == "commit" and not self.held and mine and mine[-1].phase == "commit":
            return "either"
        return "absent"

    def __str__(self) -> str:
        how = "held" if self.held else "running"
        return f"{self.phase} of {self.unit} ({how})"


class PhasedProcess:
    """A worker process with the two pipes of the phase protocol (its own process group).

    ``argv`` runs with ``GRAPHSTORE_TEST_PHASE_HOOK`` and ``GRAPHSTORE_TEST_KILL_PIPE``
    set; any program that imports :mod:`streams.persistence` reports its transactions,
    and a worker that calls :meth:`Reporter.unit` reports its units too.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stderr: Path,
        every_transaction: bool = False,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> None:
        # Imported here, on the test's side only: in a worker, these modules import this
        # one (to resolve the hooks), and must not be imported from it half-initialized.
        from graphstore.nats.phases import UNIT_HOOK_ENV  # noqa: PLC0415
        from streams.persistence import PHASE_HOOK_ENV  # noqa: PLC0415

        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        full = {
            **env,
            PHASE_HOOK_ENV: HOOK,
            UNIT_HOOK_ENV: UNIT_HOOK,
            PIPE_ENV: f"{report_w},{go_r}",
        }
        if every_transaction:
            full[ALL_TRANSACTIONS_ENV] = "1"
        self._stderr_path = stderr
        with stderr.open("ab") as err:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=err,
                pass_fds=(report_w, go_r),
                start_new_session=True,
            )
        os.close(report_w)
        os.close(go_r)
        self._report, self._go = report_r, go_w
        self._buffer = b""
        self.reports: list[Report] = []
        self.durations: defaultdict[str, list[float]] = defaultdict(list)
        self._released: tuple[str, float] | None = None
        self._closed = False
        self._answering = threading.Event()
        self._answerer: threading.Thread | None = None
        self._unread: Report | None = None

    def next_report(self, timeout: float = 60.0) -> Report | None:
        """The worker's next report (None once it exited), without answering it."""
        if self._unread is not None:  # read by the answering thread, left unanswered
            report, self._unread = self._unread, None
            return report
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"worker silent for {timeout}s: {self.stderr()}")
            ready, _, _ = select.select([self._report], [], [], remaining)
            if ready:
                chunk = os.read(self._report, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        phase, unit, detail = line.decode().split(" ", 2)
        report = Report(phase, unit, detail, time.monotonic())
        if self._released is not None:  # the released phase ran until this report
            released, since = self._released
            self.durations[released].append(report.at - since)
            self._released = None
        self.reports.append(report)
        return report

    def answer_all(self, gate: Callable[[Report], bool] | None = None) -> None:
        """Answer every report from now on in a thread of its own, until :meth:`hold`.

        ``gate``: a report is answered only once ``gate(report)`` is true (polled); a
        report still waiting when :meth:`hold` is called is the next one
        :meth:`next_report` returns."""
        self._answering = threading.Event()
        self._answering.set()

        def answer() -> None:
            while self._answering.is_set():
                ready, _, _ = select.select([self._report], [], [], 0.05)
                if not ready and b"\n" not in self._buffer:
                    continue
                report = self.next_report()
                if report is None:
                    return
                while gate is not None and not gate(report):
                    if not self._answering.is_set():
                        self._unread = report
                        return
                    time.sleep(0.01)
                self.go(report)

        self._answerer = threading.Thread(target=answer, daemon=True)
        self._answerer.start()

    def hold(self) -> None:
        """Stop answering (the worker blocks at its next report) and wait for the thread."""
        if self._answerer is not None:
            self._answering.clear()
            self._answerer.join()
            self._answerer = None

    def saw(self, phase: str) -> bool:
        """Whether the worker reported ``phase`` (e.g. ``done``)."""
        return any(r.phase == phase for r in list(self.reports))

    def go(self, report: Report) -> None:
        """Let the worker run on from ``report``."""
        self._released = (report.phase, time.monotonic())
        os.write(self._go, b"g")

    def typical(self, phase: str) -> float:
        """The median seconds the worker spent in ``phase`` so far (1 ms if unknown)."""
        seen = self.durations.get(phase)
        return statistics.median(seen) if seen else 0.001

    def kill(self) -> list[Report]:
        """SIGKILL the process group; the reports it made that were not read yet."""
        self.hold()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        if self._closed:
            return []
        before = len(self.reports)
        while self.next_report(timeout=5.0) is not None:
            pass
        self.close()
        return self.reports[before:]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._report)
            os.close(self._go)

    def stderr(self) -> str:
        return self._stderr_path.read_bytes().decode(errors="replace")[-3000:]


@dataclass(frozen=True)
class Aim:
    """Kill at ``phase`` once ``after`` units were acknowledged (or transactions done)."""

    phase: str
    after: int = 0
    held: bool = True
    where: str | None = None
    """Only a report whose detail (the file name) is this one."""


TRANSACTION_PHASES: Final = ("built", "commit", "committed")
"""The phases the persistence hook reports (a write transaction's)."""


def aims(
    rng: random.Random,
    phases: Sequence[str],
    kills: int,
    *,
    after: int = 3,
    where: str | None = None,
) -> list[Aim]:
    """``kills`` aims (at least one per phase), shuffled: each held or running at random,
    after 0..``after`` units. ``where``: the file the transaction phases must be on."""
    chosen = list(phases) + [rng.choice(phases) for _ in range(max(0, kills - len(phases)))]
    rng.shuffle(chosen)
    return [
        Aim(
            p,
            rng.randint(0, after),
            held=rng.random() < 0.5,
            where=where if p in TRANSACTION_PHASES else None,
        )
        for p in chosen
    ]


def batch_span(unit: str) -> tuple[str, int, int]:
    """A service's batch (``tenant:first-last``, see :mod:`graphstore.nats.phases`) as
    ``(tenant, first, last)``."""
    tenant, _, offsets = unit.rpartition(":")
    first, _, last = offsets.partition("-")
    return tenant, int(first), int(last)


def kill_at(
    worker: PhasedProcess,
    aim: Aim,
    rng: random.Random,
    *,
    timeout: float = 120.0,
    counted: str = "acked",
) -> Landing:
    """Run ``worker`` to ``aim`` and SIGKILL it there (see the module docstring).

    ``counted``: the phase whose reports count units for ``aim.after`` (``committed``
    for a process whose every transaction is a unit)."""
    units = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            report = worker.next_report(timeout=max(0.1, deadline - time.monotonic()))
            if report is None:
                raise AssertionError(f"the worker exited before {aim}: {worker.stderr()}")
            if report.phase == "done":
                raise AssertionError(f"the worker finished before {aim}: {worker.stderr()}")
            hit = (
                report.phase == aim.phase
                and units >= aim.after
                and (aim.where is None or report.detail == aim.where)
            )
            if hit and aim.held:
                drained = worker.kill()
                return _landing(worker, report.phase, report.unit, True, drained)
            if report.phase == counted:
                units += 1
            if not hit:
                worker.go(report)
                continue
            wait = rng.uniform(0.0, worker.typical(aim.phase))
            worker.go(report)
            time.sleep(wait)
            drained = worker.kill()
            if drained:  # the phase ended first: blocked at the next report
                return _landing(worker, drained[0].phase, drained[0].unit, True, drained)
            return _landing(worker, report.phase, report.unit, False, drained)
    except BaseException:
        if worker.process.poll() is None:  # no worker outlives a failed test
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
        worker.close()
        raise


def _landing(
    worker: PhasedProcess, phase: str, unit: str, held: bool, drained: list[Report]
) -> Landing:
    del drained  # already in worker.reports
    started = [r.unit for r in worker.reports if r.phase == "started"]
    acked = [r.unit for r in worker.reports if r.phase == "acked"]
    return Landing(phase, unit, held, list(worker.reports), started, acked)


class Coverage:
    """The landings of a series: which phase each kill hit; every phase must be hit."""

    def __init__(self, phases: Iterable[str] = PHASES) -> None:
        self.phases = tuple(phases)
        self.hits: Counter[str] = Counter()
        self.landings: list[Landing] = []

    def record(self, landing: Landing) -> None:
        assert landing.phase in self.phases, f"a kill landed at an unknown phase: {landing}"
        self.hits[landing.phase] += 1
        self.landings.append(landing)

    def missing(self) -> list[str]:
        return [p for p in self.phases if not self.hits[p]]

    def assert_covered(self) -> None:
        """Fail if a phase was never hit; print what was."""
        print(f"  kills by phase: {dict(self.hits)}")
        missing = self.missing()
        assert not missing, f"no kill hit {missing} (hits: {dict(self.hits)})"


def kill_series(
    start: Callable[[], PhasedProcess],
    check: Callable[[Landing], None],
    planned: Sequence[Aim],
    rng: random.Random,
    coverage: Coverage,
    *,
    counted: str = "acked",
    units: int = 3,
) -> None:
    """Each aim: start a worker, kill it there, check the files. Then one held kill at
    every phase no kill hit yet (a running kill may land at the next phase), so the
    series covers them all, in one of the worker's first ``units`` units; finally
    :meth:`Coverage.assert_covered`."""

    def one(aim: Aim) -> None:
        began = time.monotonic()
        landing = kill_at(start(), aim, rng, counted=counted)
        killed = time.monotonic()
        coverage.record(landing)
        check(landing)
        print(
            f"  aimed at {aim.phase} ({'held' if aim.held else 'running'}), hit {landing}; "
            f"worker {killed - began:.2f}s, checks {time.monotonic() - killed:.2f}s"
        )

    for aim in planned:
        one(aim)
    where = {aim.phase: aim.where for aim in planned}
    for phase in coverage.missing():
        one(Aim(phase, rng.randint(0, units - 1), held=True, where=where.get(phase)))
    coverage.assert_covered()
