"""Refusals, coalesced: one audit record per refused principal, operation, tenant and
minute, with a count, so a flood of refused attempts costs a few records, not one each.

Pure bookkeeping (no clock, no I/O): :class:`~domain.identity.Identity` asks
:meth:`RefusalTally.note` on each refusal whether to write a new record (the first of
its minute) or which record to count it against, and writes what
:meth:`RefusalTally.due` says is due. What is on disk, and so what a crash can lose:

- the first refusal of a (principal, operation, tenant, minute) is written at once: a
  refusal is in the audit log when it is refused;
- the refusals after it are counted in memory and written as a ``Repeated`` count on
  that record whenever the unwritten count reaches the written one (so the written count
  goes 1, 2, 4, 8, ...: about log2(N) small writes for N refusals), when a later minute
  begins, when the audit log is read, and when the application closes;
- a crash (kill -9, power loss) loses at most the counted-but-unwritten refusals: fewer
  than half of that record's true count, never the record itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

__all__ = ["RefusalKey", "RefusalTally"]


class RefusalKey(NamedTuple):
    """What refusals are coalesced by (with the minute they happen in)."""

    actor_id: str
    credential_id: UUID | None
    org_id: str | None
    operation: str
    what: str
    missing: str


@dataclass
class _Open:
    record_id: UUID
    minute: int
    written: int = 1  # the refusals the record holds on disk (itself and its counts)
    pending: int = 0  # counted since, not written yet


class RefusalTally:
    """The open records of this process, one per key, for the current minute of each."""

    def __init__(self) -> None:
        self._open: dict[RefusalKey, _Open] = {}
        self._lock = threading.Lock()

    def note(self, key: RefusalKey, minute: int) -> UUID | None:
        """Count a refusal of ``key`` in ``minute`` (minutes since the epoch): the id of
        the record it is counted against, or None when it must be written as a new
        record (then :meth:`opened` with its id)."""
        with self._lock:
            found = self._open.get(key)
            if found is None or found.minute != minute:
                return None
            found.pending += 1
            return found.record_id

    def opened(self, key: RefusalKey, minute: int, record_id: UUID) -> None:
        """The new record of ``key`` in ``minute`` was written (its first refusal)."""
        with self._lock:
            self._open[key] = _Open(record_id, minute)

    def due(self, minute: int | None = None) -> list[tuple[UUID, int]]:
        """The counts to write now, as (record id, refusals to add): every count of a
        minute before ``minute``, and those whose unwritten part reached the written one;
        with ``minute=None`` every unwritten count (a flush). They are taken as written:
        the caller writes them (or loses them, as a crash would)."""
        owed: list[tuple[UUID, int]] = []
        with self._lock:
            for key, found in list(self._open.items()):
                closed = minute is not None and found.minute < minute
                if found.pending and (minute is None or closed or found.pending >= found.written):
                    owed.append((found.record_id, found.pending))
                    found.written += found.pending
                    found.pending = 0
                if closed:
                    del self._open[key]
        return owed
