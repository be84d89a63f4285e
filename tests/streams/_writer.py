"""Worker processes for the multi-process tests: ``python -m tests.streams._writer ROLE``.

Every role is a real OS process on a real tenant file (``HONKER_DBNAME`` in its
environment, ``PERSISTENCE_MODULE=streams.persistence``). Processes talk to the test
through lines on stdin/stdout and JSON files, never through shared memory:

``write OUT SAVES SEED``  opens a :class:`Ledger`, prints ``ready``, waits for ``go`` on
                          stdin, saves once, prints ``first`` and waits for ``on`` (so
                          the test can make two writers overlap, without a sleep),
                          then saves at full speed, writes what it committed to OUT.
``subscribe OUT``         subscribes with ``gt=0``, prints ``ready``, records every
                          notification until it receives the :class:`Stop` sentinel.
``hold-lock``             takes the write lock with the stdlib ``sqlite3`` module
                          (``BEGIN IMMEDIATE``), prints ``locked``, releases it when
                          stdin says ``release`` (or closes), prints ``released``.
``crash SAVES``           saves one aggregate per save, printing ``ack ID VERSION
                          NOTIFICATION_ID`` after each save returns (the test kills it).
``probe SAVES``           saves SAVES one-event aggregates, prints ``done`` (for strace).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from streams.persistence import HonkerDatastore

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class Account(Aggregate):
    """A small aggregate: created with an owner, then credited any number of times."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


class Stop(Aggregate):
    """The sentinel the test appends after the writers end: the subscriber stops on it."""

    @event("Created")
    def __init__(self) -> None:
        pass


class Ledger(Application[UUID]):
    """Every process uses this name, so every process writes one stream: ``Ledger``."""

    name = "Ledger"


Committed = list[list[Any]]  # [[notification_id, originator_id, version], ...]


def _recordings(app: Ledger, *objs: Any) -> Committed:
    return [
        [r.notification.id, str(r.notification.originator_id), r.notification.originator_version]
        for r in app.save(*objs)
    ]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write(out: Path, saves: int, seed: int) -> None:
    """Saves ``saves`` times: mostly one event, some several events or aggregates."""
    rng = random.Random(seed)
    app = Ledger()
    mine: list[Account] = []
    committed: list[Committed] = []  # one entry per save, in save order
    _say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go'")
    for i in range(saves):
        roll = rng.random()
        if roll < 0.70 or not mine:  # one new aggregate, one event
            account = Account(owner=f"{seed}-{i}")
            mine.append(account)
            committed.append(_recordings(app, account))
        elif roll < 0.85:  # one more event for an aggregate saved before
            account = rng.choice(mine)
            account.credit(1)
            committed.append(_recordings(app, account))
        elif roll < 0.95:  # several events of one aggregate in one save
            account = rng.choice(mine)
            for _ in range(rng.randint(2, 6)):
                account.credit(2)
            committed.append(_recordings(app, account))
        else:  # several new aggregates with several events each, in one save
            batch = [Account(owner=f"{seed}-{i}-{k}") for k in range(3)]
            for account in batch:
                account.credit(3)
            mine += batch
            committed.append(_recordings(app, *batch))
        if i == 0:
            _say("first")
            if sys.stdin.readline().strip() != "on":
                raise SystemExit("expected 'on'")
    app.close()
    out.write_text(json.dumps({"pid": os.getpid(), "saves": committed}))
    _say("done")


def subscribe(out: Path) -> None:
    """Records (id, originator_id, version, topic) of every notification, in delivery order."""
    app = Ledger()
    received: list[list[Any]] = []
    with app.recorder.subscribe(gt=0) as subscription:
        _say("ready")
        for notification in subscription:
            received.append(
                [
                    notification.id,
                    str(notification.originator_id),
                    notification.originator_version,
                    notification.topic,
                ]
            )
            if notification.topic.endswith("Stop.Created"):
                break
    app.close()
    out.write_text(json.dumps(received))
    _say("done")


def hold_lock() -> None:
    """Holds the file's write lock through a connection Honker knows nothing about."""
    connection = sqlite3.connect(os.environ["HONKER_DBNAME"], isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("SELECT count(*) FROM _honker_stream").fetchone()
    _say("locked")
    sys.stdin.readline()  # "release", or EOF if the test died
    connection.execute("ROLLBACK")
    connection.close()
    _say("released")


def crash(saves: int) -> None:
    """Acknowledges each save on stdout only after ``save`` has returned."""
    app = Ledger()
    _say("ready")
    for i in range(saves):
        account = Account(owner=f"crash-{i}")
        if i % 5 == 4:  # every fifth save carries several events
            account.credit(1)
            account.credit(2)
        for notification_id, originator_id, version in _recordings(app, account):
            _say(f"ack {originator_id} {version} {notification_id}")
    _say("finished")
    app.close()


def probe(saves: int) -> None:
    app = Ledger()
    for i in range(saves):
        app.save(Account(owner=f"probe-{i}"))
    app.close()
    _say("done")


# ------------------------------------------------------------------ the test side

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One worker process: lines from its stdout arrive through a queue, with timeouts."""

    def __init__(self, role: str, *args: object, dbname: Path, env: dict[str, str] | None = None):
        self.stderr_path = dbname.parent / f"{role}-{id(self)}.stderr"
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PERSISTENCE_MODULE": "streams.persistence",
            "HONKER_DBNAME": str(dbname),
            **(env or {}),
        }
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.streams._writer", role, *map(str, args)],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Never leave a worker behind, whatever the test did."""
        self.kill()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output: the process closed stdout or died

    def next_line(self, timeout: float = 30.0) -> str:
        """The next line the worker printed; fails if it exits or stays silent."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(
                f"worker silent for {timeout}s; stderr:\n{self.stderr()}"
            ) from None
        if line is None:
            self.process.wait()
            raise AssertionError(
                f"worker exited ({self.process.returncode}); stderr:\n{self.stderr()}"
            )
        return line

    def expect(self, word: str, timeout: float = 30.0) -> None:
        line = self.next_line(timeout)
        assert line == word, f"expected {word!r}, got {line!r}; stderr:\n{self.stderr()}"

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60.0) -> None:
        """Wait for a clean exit (status 0), then release the pipes."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker still running after {timeout}s") from None
        self.close()
        assert code == 0, f"worker exited with {code}; stderr:\n{self.stderr()}"

    def kill(self) -> None:
        """SIGKILL (if still running): no cleanup, no atexit, no flush, like a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.close()

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self._reader.join()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def ledger(path: Path, **env: str) -> Ledger:
    """A :class:`Ledger` on ``path`` in the test process (settings passed, not inherited)."""
    return Ledger(
        env={"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path), **env}
    )


def index_matches_stream(source: Path | HonkerDatastore, stream: str, index_table: str) -> int:
    """Check every stream row has one index row pointing at it and back; return the count.

    ``source`` is the datastore of an application this process has open on the file, or
    a path (opened here). Never the stdlib ``sqlite3`` module here: it is a second SQLite
    library, and closing its connection would drop the POSIX locks Honker's SQLite holds
    on the same file.
    """
    datastore = source if isinstance(source, HonkerDatastore) else HonkerDatastore(source)
    try:
        rows = [
            (r["offset"], r["subject"], r["version"])
            for r in datastore.query(
                "SELECT \"offset\", payload ->> '$.subject' AS subject, "
                "payload ->> '$.version' AS version FROM _honker_stream WHERE topic = ?",
                [stream],
            )
        ]
        index = [
            (r["originator_id"], r["originator_version"], r["offset"])
            for r in datastore.query(
                f'SELECT originator_id, originator_version, "offset" FROM "{index_table}"'
            )
        ]
    finally:
        if datastore is not source:
            datastore.close()
    assert len(rows) == len(index)
    by_offset = {offset: (UUID(o).bytes, v) for offset, o, v in rows}
    assert len(by_offset) == len(rows)
    for originator_id, version, offset in index:
        assert by_offset.pop(offset) == (originator_id, version)
    assert not by_offset
    return len(rows)


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "write":
        write(Path(args[0]), int(args[1]), int(args[2]))
    elif role == "subscribe":
        subscribe(Path(args[0]))
    elif role == "hold-lock":
        hold_lock()
    elif role == "crash":
        crash(int(args[0]))
    elif role == "probe":
        probe(int(args[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    # Import this module by its name so that event topics name tests.streams._writer,
    # not __main__: the test process resolves the same topics.
    from tests.streams._writer import main as _main

    _main(sys.argv[1:])
