"""One runner for every tenant of a data directory.

:class:`Runner` keeps every projection of every registered tenant (``system.db``'s
registry, :meth:`domain.Identity.tenants`) in step with the tenant's stream. It can
run in a process of its own or inside the writers' process (it then shares their open
files). Threads: one *sweeper* and ``workers`` worker threads (default 1: SQL holds the
GIL, more threads buy no read parallelism).

Waking, designed for many mostly idle tenants:

* A tenant is **hot** while its stream's newest event is younger than ``idle_after``
  seconds (the envelope's ``time``). A hot tenant's file is open and registered with
  Honker's update watcher, which sees commits from every process (``PRAGMA
  data_version`` polling, ``HONKER_WATCHER_POLL_MS``, 1 ms by default) and wakes the
  runner in about a millisecond. Each such watcher costs about 3% of a core, so only hot
  tenants have one; the sweeper also checks every hot tenant each ``poll_interval``
  seconds, which covers a lost wake (and a tenant going hot is checked again 20 and
  200 ms later: the watcher subscribes a moment after it is registered).
* Every other tenant is **idle**: its file is closed (no connection, no thread) and it
  costs nothing per tick. It is woken by **file events**: with ``file_events`` (default
  on) a watchdog observer (inotify on Linux: one watch on the data directory, no
  polling, no CPU while nothing is written) reports every write to a ``tenant-*.db``
  file or its WAL; a write to a closed tenant whose file signature (inode, size, mtime
  of the file and its WAL) differs from the one taken before its last check schedules
  it at once. A commit from any process writes to the WAL, so it always shows.
* The **sweep** of idle tenants compares every closed tenant's signature with the one
  taken before its last check (about 2.6 ms per 1,000 tenants). With file events it is
  only a fallback (a lost or coalesced event), run every ``fallback_sweep_interval``
  seconds (default 60: 0.04% of a core at 10,000 tenants); without them it runs every
  ``sweep_interval``. File times are coarse (a few ms; a second on some file systems),
  so a commit in the same tick as the signature would not show: when the newest mtime
  is less than a second old, the tenant is checked once more a second after it.
* The **registry** (``system.db``) is read again only when its file signature changes
  (checked each ``sweep_interval``: one ``stat`` pair, whatever the number of tenants),
  and once more when a fresh mtime could hide a commit; ``registry_interval`` (default
  none) adds a periodic read.
* Waking a tenant = scheduling it on the worker queue (once, however many wakes
  arrive). A worker opens its file if closed, runs each projector for at most
  ``max_batches`` batches (then requeues the tenant behind the others), and closes the
  file again if the tenant is idle.

Status (:meth:`Runner.status`) is per (tenant, projector) and costs no I/O: each
projector's last known position, head, lag and state, kept while its tenant is closed.
:attr:`Runner.counters` counts the work done (tenant checks, signatures read, registry
reads), so the cost of idle tenants can be observed.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic, time
from typing import Final, TypeVar

import msgspec
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from domain import Identity
from projections.flowgraph import FlowgraphProjection
from projections.logs import wrap_logger
from projections.metagraph import MetagraphProjection
from projections.projector import (
    DEFAULT_BATCH_SIZE,
    TRANSIENT_ERRORS,
    ErrorPolicy,
    Projection,
    Projector,
    ProjectorStatus,
    ReplayResult,
    checked_policy,
)
from projections.rebuild import following_live
from streams import TenantReader
from streams.directory import Directory

__all__ = ["Runner", "RunnerCounters", "file_signature"]

log = wrap_logger(logging.getLogger("projections"))

UNTRUSTED_MTIME_AGE: Final = 1.0
"""Seconds: a file signature this fresh may hide a commit in the same mtime tick."""
MAX_BACKOFF: Final = 30.0
"""Seconds: the longest wait before retrying a tenant whose file was in trouble."""
SETTLE_CHECKS: Final = (0.02, 0.2)
"""Seconds after a tenant goes hot at which it is checked again (see _process)."""

_T = TypeVar("_T")
Signature = tuple[tuple[int, int, int] | None, ...]


def file_signature(path: Path) -> Signature:
    """(inode, size, mtime ns) of a SQLite file and of its WAL; None where missing."""
    parts: list[tuple[int, int, int] | None] = []
    for name in (str(path), f"{path}-wal"):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            parts.append(None)
        else:
            parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts)


_WRITES: Final = frozenset({"modified", "created", "moved", "closed"})


class _FileWakes(FileSystemEventHandler):
    """Forwards writes in the data directory to :meth:`Runner._file_written`."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def on_any_event(self, event: FileSystemEvent) -> None:
        if (
            event.event_type in ("modified", "created", "moved", "closed")
            and not event.is_directory
        ):
            path = event.dest_path if event.event_type == "moved" else event.src_path
            self._runner._file_written(os.fsdecode(path))


@dataclass(slots=True)
class RunnerCounters:
    """What a :class:`Runner` has done since it started (monotonic counts).

    ``ticks``: wakes of the sweeper's periodic tick; ``checks``: tenant checks (a file
    opened or followed, its projectors caught up); ``signatures_read``: file signatures
    of closed tenants read (by sweeps and file events); ``sweeps_of_idle``: sweeps over
    every closed tenant; ``registry_reads``: reads of the tenant registry;
    ``timers_set`` and ``timers_fired``: delayed actions (rechecks of fresh file times,
    retries) scheduled and run; equal when none is pending, which tests wait for.
    """

    ticks: int = 0
    checks: int = 0
    signatures_read: int = 0
    sweeps_of_idle: int = 0
    registry_reads: int = 0
    timers_set: int = 0
    timers_fired: int = 0


@dataclass(frozen=True, slots=True)
class _Seen:
    """A tenant's file signature and when it was taken (wall clock)."""

    signature: Signature
    taken: float

    @classmethod
    def now(cls, path: Path) -> _Seen:
        return cls(file_signature(path), time())

    @property
    def trusted(self) -> bool:
        """Whether no commit can hide in the newest mtime's tick (it was old enough)."""
        return self.settled_in(self.taken) == 0

    def settled_in(self, now: float) -> float:
        """Seconds from ``now`` until the newest mtime is old enough to trust."""
        newest = max((p[2] / 1e9 for p in self.signature if p is not None), default=0.0)
        return max(0.0, UNTRUSTED_MTIME_AGE - (now - newest))


@dataclass(eq=False)
class _Tenant:
    """One tenant file and the runner's bookkeeping for it."""

    org_id: str
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)  # held to use the file
    readers: dict[str, TenantReader] = field(default_factory=dict)  # upstream -> open
    projectors: list[Projector] = field(default_factory=list)
    statuses: dict[str, ProjectorStatus] = field(default_factory=dict)  # kept when closed
    wake: Callable[[], None] = lambda: None
    hot: bool = False
    newest_event: float = 0.0  # wall time (s) of the newest event seen in its streams
    seen: _Seen | None = None  # the files before the last check of a closed tenant
    checked: float = 0.0  # monotonic time of the last check
    retry_at: float | None = None
    backoff: float = 0.0
    error: str | None = None  # the last error of the file itself (busy, full, ...)
    queued: bool = False
    running: bool = False
    again: bool = False

    @property
    def open(self) -> bool:
        return bool(self.readers)


class Runner:
    """Runs projections for every tenant of a data directory. See the module docstring.

    ``projections`` default to ``[MetagraphProjection(), FlowgraphProjection()]``;
    ``policy`` is one error policy for all, or a mapping from consumer name
    (``metagraph@v1``) to policy. Each tenant runs the live version of each projection
    (a rebuild's swap is followed when the tenant is next checked; the new version keeps
    the policy given for the projection).
    ``sweep_interval`` is the sweeper's tick (hot tenants' polls, timers, the registry's
    signature; closed tenants' signatures too when ``file_events`` is off);
    ``fallback_sweep_interval`` is how often closed tenants' signatures are compared
    when file events wake them.
    ``tenants`` replaces the registry as the source of org ids (a callable, called each
    sweep). ``settings`` are extra persistence settings for the tenant files, on top of
    the data directory's (they must match the writers' durability and busy timeout).
    """

    def __init__(
        self,
        data: Directory | str | os.PathLike[str],
        projections: Sequence[Projection] | None = None,
        *,
        policy: ErrorPolicy | Mapping[str, ErrorPolicy] = "stop",
        tenants: Callable[[], Iterable[str]] | None = None,
        settings: Mapping[str, str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batches: int = 8,
        workers: int = 1,
        sweep_interval: float = 0.5,
        poll_interval: float = 1.0,
        idle_after: float = 30.0,
        registry_interval: float | None = None,
        file_events: bool = True,
        fallback_sweep_interval: float = 60.0,
    ) -> None:
        self.data = data if isinstance(data, Directory) else Directory(data)
        self._registry: Identity | None = None  # system.db's, opened when first read
        self.projections = list(projections or [MetagraphProjection(), FlowgraphProjection()])
        consumers = [p.consumer for p in self.projections]
        if len(set(consumers)) != len(consumers):
            raise ValueError(f"two projections share a consumer name: {consumers}")
        if isinstance(policy, str):
            self._policies = {c: checked_policy(policy) for c in consumers}
        else:
            unknown = set(policy) - set(consumers)
            if unknown:
                raise ValueError(f"policies for unknown projectors {sorted(unknown)}: {consumers}")
            self._policies = {c: checked_policy(policy.get(c, "stop")) for c in consumers}
        self._tenant_source = tenants
        self._settings = dict(settings or {})
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.sweep_interval = sweep_interval
        self.poll_interval = poll_interval
        self.idle_after = idle_after
        self.registry_interval = registry_interval
        self.file_events = file_events
        self.fallback_sweep_interval = fallback_sweep_interval
        self.counters = RunnerCounters()
        self._hot: set[_Tenant] = set()
        self._observer: BaseObserver | None = None
        self._worker_count = workers
        self._tenants: dict[str, _Tenant] = {}
        self._ready: deque[_Tenant] = deque()
        self._cv = threading.Condition()  # guards the queue; workers wait on it
        self._timer_cv = threading.Condition()  # guards the timers; the sweeper waits on it
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._progress = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._started = self._stopping = False
        self._registry_read = -float("inf")
        self._system_seen: _Seen | None = None

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> Runner:
        """Read the tenants, check each once, then follow them until :meth:`stop`."""
        if self._started:
            raise RuntimeError("this runner was already started; create a new one")
        self._started = True
        self._refresh_tenants(force=True)
        self._threads = [
            threading.Thread(target=self._sweep_loop, name="projections-sweeper", daemon=True),
            *(
                threading.Thread(target=self._work_loop, name=f"projections-{n}", daemon=True)
                for n in range(self._worker_count)
            ),
        ]
        for thread in self._threads:
            thread.start()
        if self.file_events:
            self._observer = Observer()
            self._observer.schedule(_FileWakes(self), str(self.data.path), recursive=False)
            self._observer.start()
        log.info("runner started", data=str(self.data.path), tenants=len(self._tenants))
        return self

    def stop(self) -> None:
        """Stop the threads, close every tenant file; statuses say ``stopped``."""
        with self._cv:
            if self._stopping:
                return
            self._stopping = True
            self._cv.notify_all()  # the workers
        with self._timer_cv:
            self._timer_cv.notify_all()  # the sweeper
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        for thread in self._threads:
            thread.join()
        for tenant in list(self._tenants.values()):
            with tenant.lock:
                self._close(tenant, None)
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.close()
        with self._progress:
            self._progress.notify_all()
        log.info("runner stopped", data=str(self.data.path))

    def __enter__(self) -> Runner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- reports --------------------------------------------------------------------

    def status(self) -> list[ProjectorStatus]:
        """Every (tenant, projector) the runner knows, sorted; no I/O."""
        result: list[ProjectorStatus] = []
        for tenant in list(self._tenants.values()):
            projectors = list(tenant.projectors)
            known = [p.status() for p in projectors] if projectors else []
            known = known or list(tenant.statuses.values())
            if self._stopping:
                known = [msgspec.structs.replace(s, state="stopped") for s in known]
            elif tenant.error is not None:  # the file's trouble, retried: say so
                known = [
                    s if s.state == "failed" else msgspec.structs.replace(s, error=tenant.error)
                    for s in known
                ]
            result += known
        return sorted(result, key=lambda s: (s.tenant, s.projector))

    def open_tenants(self) -> list[str]:
        """The tenants whose file is open now (hot, or being checked)."""
        return sorted(t.org_id for t in list(self._tenants.values()) if t.open)

    @property
    def registry_settled(self) -> bool:
        """Whether the last ``system.db`` signature seen is old enough to trust, so no
        re-read of the registry is pending (until the file changes); True without one."""
        seen = self._system_seen
        return seen is None or seen.trusted

    def hot_tenants(self) -> list[str]:
        """The tenants followed through Honker's update watcher now."""
        return sorted(t.org_id for t in list(self._tenants.values()) if t.hot)

    def wait_for(self, org_id: str, offset: int, *, timeout: float = 10.0) -> list[ProjectorStatus]:
        """Block until every running projector of the tenant is at ``offset`` or beyond.

        Returns their statuses; raises TimeoutError, or RuntimeError if one failed or
        was stopped before reaching it.
        """
        deadline = monotonic() + timeout
        with self._progress:
            while True:
                statuses = [s for s in self.status() if s.tenant == org_id]
                if len(statuses) == len(self.projections):
                    stuck = [s for s in statuses if s.state in ("failed", "stopped")]
                    if stuck and any(s.position < offset for s in stuck):
                        raise RuntimeError(f"projector cannot reach {offset}: {stuck}")
                    if all(s.position >= offset for s in statuses):
                        return statuses
                remaining = deadline - monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"tenant {org_id!r} did not reach offset {offset} in {timeout}s: {statuses}"
                    )
                self._progress.wait(min(remaining, 0.1))

    # --- operations -----------------------------------------------------------------

    def replay_parked(self, org_id: str, consumer: str) -> ReplayResult:
        """Apply the parked events of one projector of one tenant again (see Projector)."""
        return self._with_projector(org_id, consumer, lambda p: p.replay_parked())

    def resume(self, org_id: str, consumer: str) -> None:
        """Let a failed or stopped projector try again."""
        self._with_projector(org_id, consumer, lambda p: p.resume())

    def stop_projector(self, org_id: str, consumer: str) -> None:
        """Stop one projector of one tenant (state ``stopped``) until :meth:`resume`."""
        self._with_projector(org_id, consumer, lambda p: p.stop())

    def _with_projector(self, org_id: str, consumer: str, action: Callable[[Projector], _T]) -> _T:
        if not self._started or self._stopping:
            raise RuntimeError("the runner is not running: start it first")
        tenant = self._tenants.get(org_id)
        if tenant is None:
            raise KeyError(f"unknown tenant {org_id!r}; known: {sorted(self._tenants)}")
        with tenant.lock:
            if not tenant.open:
                self._open(tenant)
            else:
                self._follow_swaps(tenant)
            found = [p for p in tenant.projectors if p.consumer == consumer]
            if not found:
                known = [p.consumer for p in tenant.projectors]
                raise KeyError(f"unknown projector {consumer!r}; known: {known}")
            result = action(found[0])
            self._keep_statuses(tenant)
        self._schedule(tenant)  # it closes again if idle
        return result

    # --- scheduling -----------------------------------------------------------------

    def _schedule(self, tenant: _Tenant) -> None:
        with self._cv:
            if self._stopping:
                return
            if tenant.running:
                tenant.again = True
            elif not tenant.queued:
                tenant.queued = True
                self._ready.append(tenant)
                self._cv.notify()

    def _work_loop(self) -> None:
        while True:
            with self._cv:
                while not self._ready and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                tenant = self._ready.popleft()
                tenant.queued, tenant.running = False, True
            more = False
            try:
                more = self._process(tenant)
            except Exception:  # a bug: keep the worker alive, report it, retry later
                log.exception("tenant check failed", tenant=tenant.org_id)
                self._back_off(tenant, "unexpected error; see the log")
            with self._cv:
                tenant.running = False
                again, tenant.again = tenant.again or more, False
            if again:
                self._schedule(tenant)
            with self._progress:
                self._progress.notify_all()

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        """Call ``action`` (quick: it schedules) after ``delay`` s, from the sweeper."""
        with self._timer_cv:
            heapq.heappush(self._timers, (monotonic() + delay, next(self._timer_ids), action))
            self.counters.timers_set += 1
            self._timer_cv.notify()

    def _sweep_loop(self) -> None:
        next_sweep = monotonic() + self.sweep_interval
        next_idle_sweep = monotonic() + self._idle_sweep_interval
        while True:
            with self._timer_cv:
                if self._stopping:
                    return
                now = monotonic()
                due = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                if not due and now < next_sweep:
                    wake_at = min(next_sweep, self._timers[0][0] if self._timers else next_sweep)
                    self._timer_cv.wait(wake_at - now)
                    continue
            for action in due:
                action()
                self.counters.timers_fired += 1
            if monotonic() >= next_sweep:
                idle = monotonic() >= next_idle_sweep
                try:
                    self._sweep(idle=idle)
                except Exception:
                    log.exception("sweep failed")
                next_sweep = monotonic() + self.sweep_interval
                if idle:
                    next_idle_sweep = monotonic() + self._idle_sweep_interval

    @property
    def _idle_sweep_interval(self) -> float:
        """Seconds between two sweeps of the closed tenants (see the module docstring)."""
        return self.fallback_sweep_interval if self.file_events else self.sweep_interval

    def _sweep(self, *, idle: bool) -> None:
        """One tick: the registry, the hot tenants' polls and, if ``idle``, every closed
        tenant's signature. Without ``idle`` the work does not grow with idle tenants."""
        self.counters.ticks += 1
        self._refresh_tenants()
        now = monotonic()
        for tenant in list(self._hot):
            busy = tenant.retry_at is not None or tenant.queued or tenant.running
            if not busy and tenant.hot and now - tenant.checked >= self.poll_interval:
                self._schedule(tenant)
        if not idle:
            return
        self.counters.sweeps_of_idle += 1
        for tenant in list(self._tenants.values()):
            if tenant.retry_at is not None or tenant.queued or tenant.running or tenant.open:
                continue  # a timer wakes it, it is being checked, or it is hot (above)
            if tenant.seen is None or self._changed(tenant):
                self._schedule(tenant)

    def _changed(self, tenant: _Tenant) -> bool:
        """Whether a closed tenant's files differ from before its last check."""
        self.counters.signatures_read += 1
        return tenant.seen is None or file_signature(tenant.path) != tenant.seen.signature

    def _file_written(self, path: str) -> None:
        """A file event (observer thread): wake the closed tenant whose file changed."""
        org_id = self.data.tenant_name(os.path.basename(path).removesuffix("-wal"))
        tenant = None if org_id is None else self._tenants.get(org_id)
        if tenant is None or tenant.open or tenant.queued or tenant.running:
            return  # unknown, or its own watcher and checks follow it
        if tenant.retry_at is not None:
            return  # backing off after trouble: its timer wakes it
        if self._changed(tenant):
            self._schedule(tenant)

    def _registered(self) -> list[str]:
        """The tenants of ``system.db``'s registry (the domain's identity application)."""
        if self._registry is None:
            self._registry = Identity(self.data.system_env())
        self.counters.registry_reads += 1
        return self._registry.tenants()

    def _refresh_tenants(self, *, force: bool = False) -> None:
        if self._tenant_source is None:
            last = self._system_seen
            seen = _Seen.now(self.data.system_path)
            due = (
                self.registry_interval is not None
                and monotonic() - self._registry_read >= self.registry_interval
            )
            changed = last is None or seen.signature != last.signature
            # A signature taken in the newest mtime's tick could hide a later commit of
            # that tick: read once more when that tick is surely over.
            unsettled = last is not None and not last.trusted and seen.trusted
            if not (force or due or changed or unsettled):
                return
            self._system_seen = seen
            source: Callable[[], Iterable[str]] = self._registered
        else:
            source = self._tenant_source
        self._registry_read = monotonic()
        try:
            org_ids = set(source())
        except TRANSIENT_ERRORS as exc:
            log.warning("could not read the tenants", error=str(exc))
            return
        for org_id in org_ids - set(self._tenants):
            tenant = _Tenant(org_id, self.data.tenant_path(org_id))
            tenant.wake = functools.partial(self._schedule, tenant)
            self._tenants[org_id] = tenant
            self._schedule(tenant)
        for org_id in set(self._tenants) - org_ids:
            tenant = self._tenants.pop(org_id)
            with tenant.lock:
                self._close(tenant, None)
            self._hot.discard(tenant)

    # --- one tenant -----------------------------------------------------------------

    def _process(self, tenant: _Tenant) -> bool:
        """Check one tenant: catch up, go hot or close. True if it has more to do."""
        seen = _Seen.now(tenant.path)  # before reading: no commit falls between
        self.counters.checks += 1
        with tenant.lock:
            if self._stopping or self._tenants.get(tenant.org_id) is not tenant:
                return False
            more = False
            try:
                if not tenant.open:
                    self._open(tenant)
                else:
                    self._follow_swaps(tenant)
                for projector in tenant.projectors:
                    projector.catch_up(max_batches=self.max_batches)
                    more = more or (projector.active and projector.has_more)
            except TRANSIENT_ERRORS as exc:
                self._keep_statuses(tenant)
                self._back_off(tenant, f"{type(exc).__name__}: {exc}")
                return False
            tenant.checked = monotonic()
            tenant.retry_at, tenant.backoff, tenant.error = None, 0.0, None
            self._keep_statuses(tenant)
            if more:
                return True
            if time() - tenant.newest_event < self.idle_after:
                if not tenant.hot:
                    self._make_hot(tenant)
                    # A commit between the check and the watcher's first poll would wake
                    # nobody: check again now, and shortly after (the poll covers the rest).
                    for delay in SETTLE_CHECKS:
                        self._later(delay, tenant.wake)
                    return True
            else:
                self._close(tenant, seen)
            return False

    def _open(self, tenant: _Tenant) -> None:
        env = {**self.data.tenant_env(tenant.org_id), **self._settings}
        try:
            for projection in self.projections:
                reader = tenant.readers.get(projection.upstream)
                if reader is None:
                    reader = TenantReader(env, projection.upstream)
                    tenant.readers[projection.upstream] = reader
                tenant.projectors.append(self._projector(tenant, projection, reader))
        except BaseException:
            self._close(tenant, None)
            raise

    def _projector(
        self, tenant: _Tenant, projection: Projection, reader: TenantReader
    ) -> Projector:
        """A projector of the live version of ``projection`` in the tenant's file (a
        rebuild may have swapped in a newer one: the runner follows it)."""
        live = following_live(reader.datastore, projection)
        return Projector.on(
            reader,
            live,
            policy=self._policies[projection.consumer],
            batch_size=self.batch_size,
            tenant=tenant.org_id,
            previous=tenant.statuses.get(live.consumer),
        )

    def _follow_swaps(self, tenant: _Tenant) -> None:
        """Replace the projectors of an open tenant whose projection a rebuild swapped."""
        for index, projection in enumerate(self.projections):
            projector = tenant.projectors[index]
            reader = tenant.readers[projection.upstream]
            live = following_live(reader.datastore, projection)
            if live.consumer != projector.consumer:
                tenant.projectors[index] = self._projector(tenant, projection, reader)
                log.info(
                    "projector follows a swap",
                    tenant=tenant.org_id,
                    old=projector.consumer,
                    new=live.consumer,
                )

    def _make_hot(self, tenant: _Tenant) -> None:
        next(iter(tenant.readers.values())).watcher.add(tenant.wake)
        tenant.hot = True
        self._hot.add(tenant)
        log.debug("tenant hot", tenant=tenant.org_id)

    def _close(self, tenant: _Tenant, seen: _Seen | None) -> None:
        """Close the tenant's file (keeping its statuses); ``seen`` is what the files
        looked like before the check that found it idle."""
        if not tenant.open:
            return
        self._keep_statuses(tenant)
        if tenant.hot:
            next(iter(tenant.readers.values())).watcher.discard(tenant.wake)
            tenant.hot = False
            self._hot.discard(tenant)
        tenant.projectors = []
        for reader in tenant.readers.values():
            reader.close()  # stops and joins the watcher thread if this was its last user
        tenant.readers = {}
        tenant.seen = seen
        if seen is not None and not seen.trusted:
            # A commit in the same mtime tick as the signature would not change it: look
            # once more when that tick is surely over.
            self._later(seen.settled_in(time()) + 0.05, functools.partial(self._recheck, tenant))
        log.debug("tenant closed", tenant=tenant.org_id)

    def _recheck(self, tenant: _Tenant) -> None:
        """Check a closed tenant whose last signature could hide a commit (see _close)."""
        seen = tenant.seen
        if tenant.open or seen is None or seen.trusted:
            return  # checked since, with a signature that can be trusted
        wait = seen.settled_in(time())
        if wait > 0:  # a later check's signature has a newer mtime: wait for that one
            self._later(wait + 0.05, functools.partial(self._recheck, tenant))
        else:
            self._schedule(tenant)

    def _keep_statuses(self, tenant: _Tenant) -> None:
        if tenant.projectors:  # a version swapped out is no longer reported
            tenant.statuses = {}
        for projector in tenant.projectors:
            status = projector.status()
            tenant.statuses[status.projector] = status
            if projector.head_time is not None:
                tenant.newest_event = max(tenant.newest_event, projector.head_time / 1000)

    def _back_off(self, tenant: _Tenant, error: str) -> None:
        tenant.backoff = min(max(tenant.backoff * 2, 0.05), MAX_BACKOFF)
        tenant.retry_at = monotonic() + tenant.backoff
        self._later(tenant.backoff, tenant.wake)
        tenant.error = error
        log.warning("tenant check failed, retrying", tenant=tenant.org_id, error=error)
