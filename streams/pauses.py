"""A background job's pauses: the tenant's writers go first, and the WAL is copied meanwhile.

A retention pass, the catch-up of its views and the reclaim of free pages run beside the
tenant's writers, in short write transactions. SQLite's write lock is not fair (its busy
handler retries after 1, 3, 8... ms), so back-to-back transactions would hold every other
writer off until the last one: after each of its transactions a background job pauses for
:data:`PAUSE_SHARE` of the time the transaction took.

The pause is also when the job's writes reach the database file. A PASSIVE checkpoint
copies the WAL into the file without taking the write lock and without waiting for a
reader, so a writer committing meanwhile is not held. Left to SQLite, the copy runs
inside whichever commit takes the WAL past ``wal_autocheckpoint``: often the job's own
next transaction, which it lengthens (and the pause after it), or a writer's. On a large
file the copy is much of a pass's cost: deleting old runs from indexes keyed by random
ids dirties pages spread over the whole file, and each must be written and synced in
place (docs/benchmarks.md, retention). Asked for in each pause and made by a helper
process (:mod:`streams.checkpointer`), that I/O overlaps the job's own work instead.
"""

from __future__ import annotations

import time
from typing import Final

from streams._honker import TenantFile
from streams.checkpointer import Checkpointer

__all__ = ["MIN_PAUSE_S", "PAUSE_SHARE", "Pauses"]

PAUSE_SHARE: Final = 0.5
"""A background job pauses this share of each write transaction's time after it: the
writers' turn (benchmarks/retention.py: ``writer_p99_during_retention_ratio``) against
the job's own speed (``retire_vs_ingest``)."""

MIN_PAUSE_S: Final = 0.002
"""The least pause, so that a writer waiting for the write lock gets it."""


class Pauses:
    """The pauses of one background job on one tenant file (a context manager).

    Each pause asks a :class:`~streams.checkpointer.Checkpointer` (started at the first
    pause, ended with this object) to copy the WAL into the file, unless a copy is being
    made. If the helper cannot run, pauses only pause, and SQLite copies the WAL inside
    whichever commit takes it past ``wal_autocheckpoint``, as it does for every writer.
    """

    def __init__(self, file: TenantFile) -> None:
        self._file = file
        self._checkpointer: Checkpointer | None = None

    def after(self, started: float) -> None:
        """Pause after a write transaction begun at ``started`` (monotonic) for
        :data:`PAUSE_SHARE` of the time it took (at least :data:`MIN_PAUSE_S`), having the
        WAL copied meanwhile. Call it between transactions."""
        until = time.monotonic() + max(MIN_PAUSE_S, (time.monotonic() - started) * PAUSE_SHARE)
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self._file.path, self._file.synchronous)
        self._checkpointer.request()
        left = until - time.monotonic()
        if left > 0:
            time.sleep(left)

    def settle(self) -> None:
        """Wait for the copy being made, if any: before the job's own last checkpoint,
        which would otherwise find the file's checkpoint lock taken and copy nothing."""
        if self._checkpointer is not None:
            self._checkpointer.wait()

    def close(self) -> None:
        """Wait for the copy being made, then end the helper."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def __enter__(self) -> Pauses:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
