"""The ``streams`` suite: our Honker persistence module beside its baselines, same events.

"ours" is ``PERSISTENCE_MODULE=streams.persistence``; the baselines are eventsourcing's
built-in SQLite module (``eventsourcing.sqlite``, synchronous FULL, its default), its
in-memory module (``eventsourcing.popo``) and plain stdlib ``sqlite3``. Every case runs
all its sides in the same rounds on the same events (see :mod:`benchmarks._report`), on
real files in a temporary directory. README.md says what each metric means.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment

from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    file_bytes,
    median,
    paired_ratio,
    percentile,
    profile,
    rounds,
    timed,
)
from streams.persistence import HonkerApplicationRecorder, HonkerFactory

__all__ = ["BenchApp", "Ticket", "run"]

APP_NAME = "BenchApp"
NOTES_PER_TICKET = 4  # so a ticket has 5 events: created + 4 notes
EVENTS_PER_TICKET = 1 + NOTES_PER_TICKET
BATCH = 100
PAGE = 500
WAKE_WARMUP = 10  # first samples of each wake run, dropped
WAKE_PACE_S = (0.002, 0.005)  # commits are 2-5 ms apart, at random


class Ticket(Aggregate):
    """A small aggregate: created, then noted a few times; one event per command."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.notes: list[str] = []

    @event("Noted")
    def note(self, text: str) -> None:
        self.notes.append(text)


class BenchApp(Application[UUID]):
    """Saves and loads tickets; the persistence module comes from the env."""


@dataclass(frozen=True)
class Sizes:
    append_1_tickets: int
    append_100_tickets: int
    read_tickets: int
    wake_runs: int
    wake_samples: int


# --quick runs the same workloads (several figures depend on file size, so the two modes
# must agree) in fewer rounds, with fewer wake-up runs.
FULL_SIZES = Sizes(
    append_1_tickets=1000, append_100_tickets=6000, read_tickets=3000, wake_runs=5, wake_samples=300
)
QUICK_SIZES = Sizes(
    append_1_tickets=1000, append_100_tickets=6000, read_tickets=3000, wake_runs=3, wake_samples=200
)
WARMUP_TICKETS = 20  # an untimed first run of every side: imports, caches, first files
TENANT = "acme"


# ------------------------------------------------------------------------- the sides


def ours_env(path: Path, synchronous: str | None = None) -> dict[str, str]:
    env = {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(path),
        "HONKER_TENANT": TENANT,
    }
    if synchronous is not None:
        env["HONKER_SYNCHRONOUS"] = synchronous
    return env


def es_sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


POPO_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class Files:
    """Fresh database paths in one temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def new(self, label: str) -> Path:
        self._count += 1
        return self.root / f"{label}-{self._count}.db"

    @staticmethod
    def remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def ticket_events(tickets: int) -> list[StoredEvent]:
    """The stored events of ``tickets`` tickets (5 each, by ticket), as the app maps them."""
    app = BenchApp(env=POPO_ENV)
    try:
        events: list[StoredEvent] = []
        for i in range(tickets):
            ticket = Ticket(f"ticket {i}")
            for j in range(NOTES_PER_TICKET):
                ticket.note(f"note {j} on ticket {i}")
            events += [app.mapper.to_stored_event(e) for e in ticket.collect_events()]
        return events
    finally:
        app.close()


def batches(events: Sequence[StoredEvent], size: int = BATCH) -> list[Sequence[StoredEvent]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _id_bytes(originator_id: UUID | str) -> bytes:
    return originator_id.bytes if isinstance(originator_id, UUID) else originator_id.encode()


@contextmanager
def ours_recorder(path: Path) -> Iterator[HonkerApplicationRecorder]:
    """Our application recorder on ``path``, closed on exit. A writer, so it builds its
    own ``HonkerFactory`` (the recorder comes from eventsourcing's factory); readers open
    files with ``streams.TenantReader`` instead."""
    factory = HonkerFactory(
        Environment(APP_NAME, {"HONKER_DBNAME": str(path), "HONKER_TENANT": TENANT})
    )
    try:
        recorder = factory.application_recorder()
        if not isinstance(recorder, HonkerApplicationRecorder):
            raise TypeError(f"expected a HonkerApplicationRecorder, got {type(recorder)}")
        yield recorder
    finally:
        factory.close()


@contextmanager
def es_sqlite_recorder(path: Path) -> Iterator[ApplicationRecorder]:
    factory = SQLiteFactory(Environment(APP_NAME, {"SQLITE_DBNAME": str(path)}))
    try:
        yield factory.application_recorder()
    finally:
        factory.close()


RAW_TABLE = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, originator_id BLOB NOT NULL, "
    "originator_version INTEGER NOT NULL, topic TEXT NOT NULL, state BLOB NOT NULL, "
    "UNIQUE (originator_id, originator_version))"
)
RAW_INSERT = (
    "INSERT INTO events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"
)


def raw_sqlite_insert(path: Path, event_batches: Sequence[Sequence[StoredEvent]]) -> float:
    """Seconds for stdlib sqlite3 (WAL, NORMAL) to insert the batches, one tx each."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(RAW_TABLE)

        def insert_all() -> None:
            for batch in event_batches:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    RAW_INSERT,
                    [
                        (_id_bytes(e.originator_id), e.originator_version, e.topic, e.state)
                        for e in batch
                    ],
                )
                connection.execute("COMMIT")

        return timed(insert_all)
    finally:
        connection.close()


# ----------------------------------------------------------------------- the workloads


def save_tickets(app: Application[UUID], tickets: int) -> None:
    """Create ``tickets`` tickets and note each 4 times, saving after every command."""
    for i in range(tickets):
        ticket = Ticket(f"ticket {i}")
        app.save(ticket)
        for j in range(NOTES_PER_TICKET):
            ticket.note(f"note {j} on ticket {i}")
            app.save(ticket)


def read_notifications(recorder: ApplicationRecorder) -> int:
    """Page through every notification, ``PAGE`` at a time; returns how many."""
    count, start = 0, None
    while True:
        page = recorder.select_notifications(start, PAGE, inclusive_of_start=False)
        count += len(page)
        if len(page) < PAGE:
            return count
        start = page[-1].id


def load_aggregates(app: Application[UUID], ids: Sequence[UUID]) -> None:
    for originator_id in ids:
        ticket: Aggregate = app.repository.get(originator_id)
        if ticket.version != EVENTS_PER_TICKET:
            raise AssertionError(f"ticket {originator_id} loaded at version {ticket.version}")


def insert_all(
    recorder: ApplicationRecorder, event_batches: Sequence[Sequence[StoredEvent]]
) -> None:
    for batch in event_batches:
        recorder.insert_events(batch)


# ------------------------------------------------------------------------------ cases


def profile_saves(label: str, env: dict[str, str], tickets: int) -> None:
    app = BenchApp(env=env)
    try:
        profile(label, lambda: save_tickets(app, tickets))
    finally:
        app.close()


def append_1(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    """One-event saves through an Application, ours (FULL, NORMAL) vs es sqlite and popo."""
    tickets = sizes.append_1_tickets
    events = tickets * EVENTS_PER_TICKET

    def side(env_of: Callable[[Path], dict[str, str]], label: str) -> Callable[[int], float]:
        def measure(round_no: int) -> float:
            count = tickets if round_no >= 0 else WARMUP_TICKETS
            path = files.new(f"append1-{label}")
            app = BenchApp(env=env_of(path))
            try:
                seconds = timed(lambda: save_tickets(app, count))
            finally:
                app.close()
                Files.remove(path)
            return count * EVENTS_PER_TICKET / seconds

        return measure

    sides = {
        "ours_full": side(lambda p: ours_env(p, "FULL"), "ours-full"),
        "ours_normal": side(ours_env, "ours-normal"),
        "es_sqlite_full": side(es_sqlite_env, "es-sqlite"),
        "popo": side(lambda _p: POPO_ENV, "popo"),
    }
    for measure in sides.values():
        measure(-1)  # warm-up
    figures = rounds(config.repeats, sides)
    full_ratio = paired_ratio(figures["ours_full"], figures["es_sqlite_full"])
    default_ratio = paired_ratio(figures["ours_normal"], figures["es_sqlite_full"])
    popo_ratio = paired_ratio(figures["ours_normal"], figures["popo"])
    report.add("append_1_full_vs_es_sqlite", full_ratio, Target(">=", 1.0))
    report.add("append_1_default_vs_es_sqlite", default_ratio)
    report.add("append_1_vs_popo", popo_ratio, Target(">=", 0.5))
    for name, values in figures.items():
        report.add(f"append_1_{name}_events_per_s", median(values))
    report.raw["append_1"] = {
        "events_per_round": events,
        "events_per_s": figures,
        "workload": f"{tickets} tickets x (create + {NOTES_PER_TICKET} notes), save per command",
    }
    if config.profile:
        for label, env_of in (
            ("FULL", lambda p: ours_env(p, "FULL")),
            ("NORMAL", ours_env),
            ("es_sqlite", es_sqlite_env),
            ("popo", lambda _p: POPO_ENV),
        ):
            profile_saves(f"append_1 {label}", env_of(files.new("profile")), tickets)


def append_100(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    """100-event batches: our recorder vs stdlib sqlite3 into one indexed table (NORMAL)."""
    events = ticket_events(sizes.append_100_tickets)
    event_batches = batches(events)

    def ours(_round: int) -> float:
        path = files.new("append100-ours")
        try:
            with ours_recorder(path) as recorder:
                return len(events) / timed(lambda: insert_all(recorder, event_batches))
        finally:
            Files.remove(path)

    def es_sqlite(_round: int) -> float:
        path = files.new("append100-es-sqlite")
        try:
            with es_sqlite_recorder(path) as recorder:
                return len(events) / timed(lambda: insert_all(recorder, event_batches))
        finally:
            Files.remove(path)

    def raw(_round: int) -> float:
        path = files.new("append100-raw")
        try:
            return len(events) / raw_sqlite_insert(path, event_batches)
        finally:
            Files.remove(path)

    sides = {"ours": ours, "raw_sqlite": raw, "es_sqlite_full": es_sqlite}
    for measure in sides.values():
        measure(-1)
    figures = rounds(config.repeats, sides)
    report.add(
        "append_100_vs_raw_sqlite",
        paired_ratio(figures["ours"], figures["raw_sqlite"]),
        Target(">=", 0.6),
    )
    for name, values in figures.items():
        report.add(f"append_100_{name}_events_per_s", median(values))
    report.raw["append_100"] = {"events_per_round": len(events), "events_per_s": figures}
    if config.profile:
        path = files.new("profile")
        with ours_recorder(path) as recorder:
            profile("append_100 ours", lambda: insert_all(recorder, event_batches))


def _table_bytes(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return {}
    finally:
        connection.close()
    return {str(name): int(size) for name, size in rows}


class ReadSeconds(NamedTuple):
    notifications: float  # select_notifications, PAGE at a time, over every event
    aggregates: float  # repository.get of every aggregate
    select_events: float  # recorder.select_events of every aggregate (no mapper, no replay)


def read_and_bytes(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    """Read every notification and load every aggregate; then file bytes per event."""
    events = ticket_events(sizes.read_tickets)
    ids = list(dict.fromkeys(e.originator_id for e in events))
    uuids = [i if isinstance(i, UUID) else UUID(i) for i in ids]
    event_batches = batches(events)
    ours_path, es_path = files.new("read-ours"), files.new("read-es-sqlite")
    with ours_recorder(ours_path) as ours:
        insert_all(ours, event_batches)
    with es_sqlite_recorder(es_path) as theirs:
        insert_all(theirs, event_batches)

    def side(env: dict[str, str]) -> Callable[[int], ReadSeconds]:
        def measure(_round: int) -> ReadSeconds:
            app = BenchApp(env=env)
            try:
                if env is POPO_ENV:  # in memory: filled afresh, untimed
                    insert_all(app.recorder, event_batches)
                counted: list[int] = []
                notifications = timed(lambda: counted.append(read_notifications(app.recorder)))
                if counted != [len(events)]:
                    raise AssertionError(f"read {counted} notifications of {len(events)}")
                aggregates = timed(lambda: load_aggregates(app, uuids))
                select_events = timed(lambda: [app.recorder.select_events(i) for i in uuids])
            finally:
                app.close()
            return ReadSeconds(notifications, aggregates, select_events)

        return measure

    sides = {
        "ours": side(ours_env(ours_path)),
        "es_sqlite": side(es_sqlite_env(es_path)),
        "popo": side(POPO_ENV),
    }
    for measure in sides.values():
        measure(-1)  # warm-up
    figures = rounds(config.repeats, sides)
    total = {name: [r.notifications + r.aggregates for r in runs] for name, runs in figures.items()}
    notif = {name: [r.notifications for r in runs] for name, runs in figures.items()}
    aggs = {name: [r.aggregates for r in runs] for name, runs in figures.items()}
    selects = {name: [r.select_events for r in runs] for name, runs in figures.items()}
    # Ratios of speed: their seconds over ours.
    report.add(
        "read_vs_es_sqlite", paired_ratio(total["es_sqlite"], total["ours"]), Target(">=", 1.5)
    )
    report.add("read_notifications_vs_es_sqlite", paired_ratio(notif["es_sqlite"], notif["ours"]))
    report.add("read_aggregates_vs_es_sqlite", paired_ratio(aggs["es_sqlite"], aggs["ours"]))
    report.add(
        "read_select_events_vs_es_sqlite", paired_ratio(selects["es_sqlite"], selects["ours"])
    )
    # What read_vs_es_sqlite would be if our storage cost nothing: eventsourcing's own
    # work (mapper, aggregate replay) on in-memory events bounds it.
    report.add("read_vs_es_sqlite_ceiling", paired_ratio(total["es_sqlite"], total["popo"]))
    for name in sides:
        report.add(f"read_{name}_ms", median(total[name]) * 1000)
        report.add(f"read_notifications_{name}_events_per_s", len(events) / median(notif[name]))
        report.add(f"read_aggregates_{name}_per_s", len(uuids) / median(aggs[name]))
        report.add(f"read_select_events_{name}_per_s", len(uuids) / median(selects[name]))
    report.raw["read"] = {
        "events": len(events),
        "aggregates": len(uuids),
        "page": PAGE,
        "seconds": {
            name: {
                "notifications": notif[name],
                "aggregates": aggs[name],
                "select_events": selects[name],
            }
            for name in sides
        },
    }
    if config.profile:
        app = BenchApp(env=ours_env(ours_path))
        try:
            profile("read notifications ours", lambda: read_notifications(app.recorder))
            profile("read aggregates ours", lambda: load_aggregates(app, uuids))
        finally:
            app.close()

    tables = {"ours": _table_bytes(ours_path), "es_sqlite": _table_bytes(es_path)}
    per_event = {
        "ours": file_bytes(ours_path) / len(events),
        "es_sqlite": file_bytes(es_path) / len(events),
    }
    report.add(
        "bytes_per_event_vs_es_sqlite",
        per_event["ours"] / per_event["es_sqlite"],
        Target("<=", 1.5),
    )
    report.add("bytes_per_event_ours", per_event["ours"])
    report.add("bytes_per_event_es_sqlite", per_event["es_sqlite"])
    report.raw["bytes"] = {
        "events": len(events),
        "per_event": per_event,
        "by_table": tables,
        "state_bytes_per_event": sum(len(e.state) for e in events) / len(events),
    }


# ------------------------------------------------------------------------ wake-up time


def wake_subscriber(path: str, gt: int | None, count: int, ready: Event, out: Queue[Any]) -> None:
    """In a spawned process: subscribe, stamp each notification's arrival, send them back."""
    import logging  # noqa: PLC0415 - a fresh process: configure before anything logs

    import structlog  # noqa: PLC0415

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    received: list[tuple[int, int]] = []
    try:
        with ours_recorder(Path(path)) as recorder, recorder.subscribe(gt=gt) as subscription:
            ready.set()
            for notification in subscription:
                received.append((notification.id, time.monotonic_ns()))
                if len(received) >= count:
                    break
    finally:
        out.put(received)


def wake_run(path: Path, samples: int, rng: random.Random) -> dict[str, list[float]]:
    """One subscriber process, ``samples`` paced commits; latencies in ms."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    out: Queue[Any] = context.Queue()
    count = WAKE_WARMUP + samples
    with ours_recorder(path) as recorder:
        gt = recorder.max_notification_id()
        process = context.Process(
            target=wake_subscriber, args=(str(path), gt, count, ready, out), daemon=True
        )
        process.start()
        try:
            deadline = time.monotonic() + 60
            while not ready.wait(0.1):
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the subscriber process failed to subscribe (see above)")
            time.sleep(0.2)  # let its watcher settle
            committed: dict[int, tuple[int, int]] = {}
            for i in range(count):
                time.sleep(rng.uniform(*WAKE_PACE_S))
                before = time.monotonic_ns()
                ids = recorder.insert_events(
                    [StoredEvent(uuid4(), 1, "benchmarks:Ping", json.dumps({"i": i}).encode())]
                )
                after = time.monotonic_ns()
                if not ids:
                    raise AssertionError("insert_events returned no notification id")
                committed[ids[0]] = (before, after)
            received: list[tuple[int, int]] = out.get(timeout=60)
        finally:
            process.join(30)
            if process.is_alive():
                process.terminate()
    if len(received) != count:
        raise AssertionError(f"subscriber received {len(received)} of {count} notifications")
    kept = received[WAKE_WARMUP:]
    return {
        "after_commit_ms": [(t - committed[i][1]) / 1e6 for i, t in kept],
        "from_insert_ms": [(t - committed[i][0]) / 1e6 for i, t in kept],
    }


def wake(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    """Commit in this process -> our subscriber in another process receives it."""
    del config
    rng = random.Random(20261121)
    runs = [wake_run(files.new("wake"), sizes.wake_samples, rng) for _ in range(sizes.wake_runs)]
    after = [run["after_commit_ms"] for run in runs]
    before = [run["from_insert_ms"] for run in runs]
    pooled = [x for run in after for x in run]
    report.add("wake_cross_p50_ms", median([percentile(r, 50) for r in after]), Target("<=", 2))
    report.add("wake_cross_p99_ms", median([percentile(r, 99) for r in after]), Target("<=", 5))
    report.add("wake_cross_from_insert_p50_ms", median([percentile(r, 50) for r in before]))
    report.add("wake_cross_max_ms", max(pooled))
    report.raw["wake"] = {
        "runs": sizes.wake_runs,
        "samples_per_run": sizes.wake_samples,
        "pace_ms": [x * 1000 for x in WAKE_PACE_S],
        "p50_ms_per_run": [percentile(r, 50) for r in after],
        "p99_ms_per_run": [percentile(r, 99) for r in after],
        "pooled_ms": {p: percentile(pooled, p) for p in (0, 10, 50, 90, 99, 100)},
    }


# -------------------------------------------------------------------------- transcoder


def transcoder(report: Report, files: Files, sizes: Sizes, config: RunConfig) -> None:
    """Mapper round trips (to stored event and back) with our msgspec transcoder vs JSON."""
    del files
    apps = {
        "msgspec": BenchApp(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.popo",
                "TRANSCODER_TOPIC": "streams.transcoder:MsgspecTranscoder",
            }
        ),
        "json": BenchApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}),
    }
    domain_events: list[Any] = []
    for n in range(sizes.append_1_tickets):
        ticket = Ticket(f"ticket {n}")
        ticket.note("first note, with some text in it")
        domain_events += ticket.collect_events()

    def side(name: str) -> Callable[[int], float]:
        mapper = apps[name].mapper

        def round_trips(_round: int) -> float:
            def run() -> None:
                for domain_event in domain_events:
                    mapper.to_domain_event(mapper.to_stored_event(domain_event))

            return len(domain_events) / timed(run)

        return round_trips

    sides = {name: side(name) for name in apps}
    for measure in sides.values():
        measure(-1)
    figures = rounds(config.repeats, sides)
    report.add(
        "transcoder_msgspec_vs_json",
        paired_ratio(figures["msgspec"], figures["json"]),
        Target(">=", 1.0),
    )
    for name, values in figures.items():
        report.add(f"transcoder_{name}_round_trips_per_s", median(values))
    for app in apps.values():
        app.close()


# --------------------------------------------------------------------------------- run


CASES: tuple[Callable[[Report, Files, Sizes, RunConfig], None], ...] = (
    append_1,
    append_100,
    read_and_bytes,
    wake,
    transcoder,
)


def run(config: RunConfig) -> Report:
    """Every case of the suite, in a fresh temporary directory removed afterwards."""
    report = Report("streams", config)
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    report.raw["sizes"] = sizes.__dict__
    report.notes.append(
        "ours = streams.persistence (HONKER_SYNCHRONOUS default NORMAL); es_sqlite = "
        "eventsourcing.sqlite (synchronous FULL, its default); ratios are ours / theirs "
        "in speed (for bytes: ours / theirs in size)"
    )
    root = Path(tempfile.mkdtemp(prefix="bench-streams-", dir=config.tmp_dir))
    try:
        files = Files(root)
        with ours_recorder(files.new("version")) as recorder:
            versions = recorder.datastore.query("SELECT sqlite_version() AS v")
            report.raw["honker_sqlite_version"] = versions[0]["v"]
        for case in CASES:
            started = time.perf_counter()
            print(f"{case.__name__} ...", flush=True)
            case(report, files, sizes, config)
            report.raw.setdefault("case_seconds", {})[case.__name__] = round(
                time.perf_counter() - started, 1
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report
