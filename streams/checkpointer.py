"""Copying a tenant file's WAL into the file from a helper process, while a job goes on.

A checkpoint is I/O: each page the WAL holds is written in place and the file synced.
A background job on a large file (a retention pass) dirties pages spread over all of it,
and its checkpoints become a large part of its cost. Honker keeps the interpreter lock
while SQLite runs, so a thread would not overlap them with the job; a helper process
does: the job asks for a copy (:meth:`Checkpointer.request`, never waits) and goes on, and
waits only for the last one (:meth:`Checkpointer.wait`) before it checkpoints for the last
time itself. The helper is :mod:`streams._checkpoint_helper`, the standard library's
SQLite in a process of its own (never in this one: streams/_honker.py). A PASSIVE
checkpoint takes no write lock and waits for nobody, so writers and readers of the file
go on as before; one killed half-way is safe (SQLite copies again next time).
"""

from __future__ import annotations

import contextlib
import logging
import select
import subprocess
import sys
from pathlib import Path
from typing import IO, Final

from streams._honker import Synchronous
from streams.logs import wrap_logger

__all__ = ["WAIT_S", "Checkpointer"]

log = wrap_logger(logging.getLogger("streams"))

WAIT_S: Final = 120.0
"""The longest :meth:`Checkpointer.wait` waits for one copy before ending the helper."""

_HELPER: Final = Path(__file__).with_name("_checkpoint_helper.py")


class Checkpointer:
    """A helper process running PASSIVE checkpoints of one file, one at a time, on request.

    Use it as a context manager (or :meth:`close` it): the helper ends with it. When the
    helper cannot start or dies, :attr:`alive` is False and requests do nothing (SQLite
    then copies the WAL inside the commit that takes it past ``wal_autocheckpoint``).
    """

    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        self.path = path
        self._running = False
        self._process: subprocess.Popen[str] | None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_HELPER), str(path), synchronous],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            log.debug("checkpointer not started", path=str(path), error=str(exc))
            self._process = None

    @property
    def pid(self) -> int | None:
        """The helper's process id; None once it ended (or never started)."""
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the helper runs (False once it failed: requests then do nothing)."""
        return self._process is not None and self._process.poll() is None

    def request(self) -> None:
        """Ask for a checkpoint, unless one is being made; never waits for it."""
        if self._process is None:
            return
        if self._running and self._ready(0):
            self._reply()
        if self._running:
            return
        try:
            self._pipe(self._process.stdin).write("checkpoint\n")
            self._running = True
        except OSError:  # the helper is gone: SQLite copies the WAL in a commit again
            self._end()

    def wait(self) -> None:
        """Wait for the checkpoint being made, if any (at most :data:`WAIT_S`)."""
        if self._process is None or not self._running:
            return
        if self._ready(WAIT_S):
            self._reply()
        else:
            log.warning("checkpointer stuck: ended", path=str(self.path), waited_s=WAIT_S)
            self._end(kill=True)

    def close(self) -> None:
        """Wait for the checkpoint being made, then end the helper."""
        self.wait()
        self._end()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ready(self, timeout: float) -> bool:
        assert self._process is not None
        readable, _, _ = select.select([self._pipe(self._process.stdout)], [], [], timeout)
        return bool(readable)

    def _reply(self) -> None:
        assert self._process is not None
        line = self._pipe(self._process.stdout).readline()
        self._running = False
        if not line:  # end of file: the helper died (its checkpoint, if any, is safe)
            self._end()

    def _end(self, *, kill: bool = False) -> None:
        process, self._process, self._running = self._process, None, False
        if process is None:
            return
        if kill:
            process.kill()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a dead helper's pipe
                    pipe.close()
        process.wait()  # it ends at the end of its input (or was killed)

    @staticmethod
    def _pipe(pipe: IO[str] | None) -> IO[str]:
        assert pipe is not None  # both are PIPE
        return pipe
