"""A tenant's projections kept in a file of another machine, fed entries from elsewhere.

A *mirror* is a Honker file in a remote reader's own data directory
(``<dir>/mirror-<tenant>.db``) that holds, for one tenant whose file it never sees:

- the tables of each projection (the metagraph tables, the flowgraph views), created by
  the same :class:`~projections.projector.Projection` classes and changed by the same
  handlers as in the tenant file, so the rows are the same row for row;
- each projection's position, under the same consumer name (``flowgraph@v1``) and
  stream name (``metagraph``) as in the tenant file, and measured in the tenant file's
  offsets (the ``Graphstore-Offset`` the relay carries);
- ``mirror_entries``: every entry applied, offset and envelope, so a change
  subscription can be served here (:meth:`Mirror.subscribe`) as it is on the tenant
  file; and the transport's own cursor (e.g. a JetStream stream sequence), under
  ``mirror-source:<name>``, to resume the feed from where it stopped.

:meth:`Mirror.apply` takes entries in stream order and, in ONE write transaction,
applies each to every projection whose position is below its offset, keeps the entry,
and saves the positions: rows and positions commit together, so a crash replays at most
the uncommitted batch; an entry at or below the saved position (a redelivery) changes
nothing. This module knows no transport: :mod:`graphstore.nats.remote` feeds it from
JetStream.

Why not a copy of the stream in the mirror's own Honker stream, read by the ordinary
projectors: Honker numbers a file's entries itself, so the copy's offsets would not be
the tenant's (the flowgraph's ``flow_call_events`` and every position hold offsets), and
the views would differ from the local ones. Keeping the tenant's offsets everywhere makes
the mirror's rows, positions and change positions equal to the tenant file's.

The error policy is ``stop``: an entry that cannot be decoded or applied rolls the batch
back and raises :class:`MirrorError` naming its offset (the feed stops there, and retries
after a restart, once the projection's code is fixed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, time
from typing import Any, Final

import msgspec

from projections._stream import decode_record
from projections.changes import Subscription
from projections.errors import ProjectionError
from projections.flowgraph import Flowgraph, FlowgraphProjection
from projections.metagraph import MetagraphProjection
from projections.projector import Projection
from streams import (
    Entry,
    HonkerDatastore,
    TenantReader,
    Transaction,
    save_position,
    saved_position,
)
from streams.retirement import RETIREMENT_TYPE, EncryptedRecordError, ranges_of

__all__ = [
    "ENTRIES_TABLE",
    "SOURCE_PREFIX",
    "Mirror",
    "MirrorError",
    "MirrorStatus",
    "MirrorSubscription",
    "mirror_path",
]

ENTRIES_TABLE: Final = "mirror_entries"
SOURCE_PREFIX: Final = "mirror-source:"
"""The transport's cursor is saved as the consumer ``mirror-source:<name>``."""
DEFAULT_STREAM: Final = "metagraph"


class MirrorError(ProjectionError):
    """An entry the mirror cannot apply (nothing of its batch was committed)."""

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class MirrorStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where a mirror stands: ``position`` (the lowest projection position, a tenant
    offset), ``source`` (the transport's saved cursor), ``applied`` (entries applied by
    this process), ``updated_at`` (last commit, s since the epoch) and ``event_time``
    (envelope time of the last entry applied, ms)."""

    tenant: str
    path: str
    position: int
    positions: dict[str, int]
    source: int | None
    applied: int
    updated_at: float | None
    event_time: int | None


def mirror_path(directory: str | Path, tenant: str) -> Path:
    """``<directory>/mirror-<tenant>.db``."""
    return Path(directory) / f"mirror-{tenant}.db"


@dataclass(frozen=True, slots=True)
class _Applied:
    offset: int
    time: int


class Mirror:
    """One tenant's projections in a file of this machine. See the module docstring.

    ``projections`` default to the metagraph tables and the flowgraph views; ``stream``
    is the tenant's stream name (``metagraph``), under which positions are kept;
    ``plain_state`` undoes a cipher/compressor the writers configured (as the local
    projectors' ``plain_state``). One thread applies at a time; reads may come from any.
    """

    def __init__(
        self,
        datastore: HonkerDatastore,
        projections: Sequence[Projection] | None = None,
        *,
        stream: str = DEFAULT_STREAM,
        plain_state: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.datastore = datastore
        self.tenant = datastore.tenant
        self.projections = list(projections or [MetagraphProjection(), FlowgraphProjection()])
        consumers = [p.consumer for p in self.projections]
        if len(set(consumers)) != len(consumers):
            raise ValueError(f"two projections share a consumer name: {consumers}")
        self.stream = stream
        self._plain_state = plain_state
        self._owned: TenantReader | None = None
        self._lock = threading.Lock()
        with datastore.transaction() as tx:
            for projection in self.projections:
                projection.create_tables(tx)
            tx.execute(
                f'CREATE TABLE IF NOT EXISTS {ENTRIES_TABLE} ("offset" INTEGER PRIMARY KEY, '
                "payload TEXT NOT NULL)"
            )
        self._positions = {c: saved_position(datastore, c, stream) or 0 for c in consumers}
        self._applied = 0
        self._updated_at: float | None = None
        self._event_time: int | None = None

    @classmethod
    def open(
        cls, directory: str | Path, tenant: str, *, synchronous: str = "NORMAL", **options: Any
    ) -> Mirror:
        """The mirror of ``tenant`` in ``directory`` (created if missing);
        :meth:`close` closes its file."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        env = {
            "HONKER_DBNAME": str(mirror_path(directory, tenant)),
            "HONKER_TENANT": tenant,
            "HONKER_SYNCHRONOUS": "FULL" if synchronous == "FULL" else "NORMAL",
        }
        return TenantReader(env, DEFAULT_STREAM).adopt(
            lambda reader: cls.on(reader, owns=True, **options)
        )

    @classmethod
    def on(cls, reader: TenantReader, *, owns: bool = False, **options: Any) -> Mirror:
        """The mirror in the file ``reader`` opened; with ``owns``, :meth:`close`
        closes the reader."""
        mirror = cls(reader.datastore, **options)
        mirror._owned = reader if owns else None
        return mirror

    def close(self) -> None:
        """Close the file if :meth:`open` opened it."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- positions ----------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The tenant offset every projection of the mirror has applied up to."""
        with self._lock:
            return min(self._positions.values())

    def source_position(self, name: str) -> int | None:
        """The transport cursor saved under ``name`` with the last batch (None: never)."""
        return saved_position(self.datastore, SOURCE_PREFIX + name, self.stream)

    def status(self) -> MirrorStatus:
        """A snapshot of where this mirror stands (one indexed read for the source)."""
        with self._lock:
            positions = dict(self._positions)
            applied, updated, event_time = self._applied, self._updated_at, self._event_time
        return MirrorStatus(
            tenant=self.tenant,
            path=str(self.datastore.path),
            position=min(positions.values()),
            positions=positions,
            source=None,
            applied=applied,
            updated_at=updated,
            event_time=event_time,
        )

    def wait_for(self, offset: int, *, timeout: float = 10.0) -> bool:
        """Wait until every projection is at ``offset`` (committed by any process);
        False if ``timeout`` passed first."""
        watcher = self.datastore.watcher
        deadline = monotonic() + timeout
        while True:
            generation = watcher.generation
            if self._committed_position() >= offset:
                return True
            left = deadline - monotonic()
            if left <= 0:
                return False
            watcher.wait_for_change(generation, min(left, 0.1))

    def _committed_position(self) -> int:
        return min(
            saved_position(self.datastore, p.consumer, self.stream) or 0 for p in self.projections
        )

    # --- applying -----------------------------------------------------------------------

    def apply(self, entries: Sequence[Entry], *, source: tuple[str, int] | None = None) -> int:
        """Apply ``entries`` (stream order) in one transaction; the number applied.

        Entries at or below a projection's position are passed over for it (redelivered);
        ``source`` = ``(name, cursor)`` saves the transport's cursor in the same
        transaction when it advances. Raises :class:`MirrorError` (nothing committed)
        for an entry that cannot be applied, and database errors as they come.
        """
        ordered = sorted(entries, key=lambda e: e.offset)
        with self._lock:
            known = dict(self._positions)
        fresh = [e for e in ordered if e.offset > min(known.values())]
        if not fresh and source is None:
            return 0
        last: _Applied | None = None
        applied = 0
        with self.datastore.transaction() as tx:
            saved = {c: saved_position(tx, c, self.stream) or 0 for c in known}
            floor = min(saved.values())
            moved = dict(saved)
            for entry in fresh:
                if entry.offset > floor:
                    last = self._apply_one(tx, entry, saved, moved)
                    applied += 1
            for consumer, position in moved.items():
                if position > saved[consumer]:
                    save_position(tx, consumer, self.stream, position)
            if source is not None:
                self._save_source(tx, *source)
        with self._lock:
            self._positions = moved
            if last is not None:
                self._applied += applied
                self._updated_at = time()
                self._event_time = last.time
        return applied

    def _apply_one(
        self, tx: Transaction, entry: Entry, saved: dict[str, int], moved: dict[str, int]
    ) -> _Applied:
        try:
            record = decode_record(entry)
        except ProjectionError as exc:
            raise MirrorError(f"entry {entry.offset}: {exc}", offset=entry.offset) from exc
        for projection in self.projections:
            consumer = projection.consumer
            if entry.offset <= saved[consumer]:
                continue
            try:
                handler = projection.handler(record.type)
                if handler is not None:
                    state = record.state
                    if record.encoded:
                        if self._plain_state is None:
                            raise ProjectionError(
                                "the state is encrypted or compressed (data_b64): give the "
                                "mirror the writers' CIPHER_KEY / COMPRESSOR_TOPIC settings"
                            )
                        state = self._plain_state(state)
                    handler.apply(tx, handler.decode(state), record)
            except Exception as exc:
                raise MirrorError(
                    f"{consumer} cannot apply entry {entry.offset} ({record.type}): "
                    f"{type(exc).__name__}: {exc}",
                    offset=entry.offset,
                ) from exc
            moved[consumer] = entry.offset
        tx.execute(
            f'INSERT OR IGNORE INTO {ENTRIES_TABLE} ("offset", payload) VALUES (?, ?)',
            [entry.offset, entry.payload],
        )
        if record.type == RETIREMENT_TYPE:
            self._drop_retired(tx, entry)
        return _Applied(entry.offset, record.time)

    def _drop_retired(self, tx: Transaction, entry: Entry) -> None:
        """A retirement record: the kept copies of the entries it removed go too (the
        projections' handlers dropped the runs' rows), so the mirror holds none of it."""
        try:
            ranges = ranges_of(entry.envelope(), self._plain_state, offset=entry.offset) or ()
        except EncryptedRecordError as exc:
            raise MirrorError(str(exc), offset=entry.offset) from None
        except msgspec.DecodeError as exc:
            raise MirrorError(
                f"entry {entry.offset}: malformed retirement record: {exc}", offset=entry.offset
            ) from exc
        for first, last in ranges:
            tx.execute(f'DELETE FROM {ENTRIES_TABLE} WHERE "offset" BETWEEN ? AND ?', [first, last])

    def _save_source(self, tx: Transaction, name: str, cursor: int) -> None:
        consumer = SOURCE_PREFIX + name
        if cursor > (saved_position(tx, consumer, self.stream) or 0):
            save_position(tx, consumer, self.stream, cursor)

    # --- reading ------------------------------------------------------------------------

    def views(self) -> Flowgraph:
        """The flowgraph views of this mirror (runs, calls, trees), as on the tenant file."""
        return Flowgraph(self.datastore)

    def entries(self, after: int = 0, *, limit: int | None = None) -> list[Entry]:
        """The entries kept, offset above ``after``, in offset order."""
        sql = f'SELECT "offset", payload FROM {ENTRIES_TABLE} WHERE "offset" > ? ORDER BY "offset"'
        params: list[Any] = [after]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Entry(int(r["offset"]), r["payload"]) for r in self.datastore.query(sql, params)]

    def subscribe(self, projection: Projection | None = None, **options: Any) -> Subscription:
        """The changes of one of the mirror's projections (default: the flowgraph), as
        :class:`projections.Subscription` gives them on the tenant file (``name``,
        ``run``, ``graph``, ``from_start``, ``after``, ...): same positions, same order."""
        chosen = projection or next(
            (p for p in self.projections if isinstance(p, FlowgraphProjection)),
            self.projections[0],
        )
        if chosen.consumer not in {p.consumer for p in self.projections}:
            raise ValueError(f"this mirror does not keep {chosen.consumer}")
        options.setdefault("plain_state", self._plain_state)
        return MirrorSubscription(self.datastore, chosen, stream=self.stream, **options)


class MirrorSubscription(Subscription):
    """A :class:`projections.Subscription` that reads the entries a mirror keeps
    (``mirror_entries``) instead of the tenant's stream; everything else (positions,
    filters, waiting on commits, durable names) is the subscription's own."""

    def _read(self, after: int, upto: int) -> list[Entry]:
        if self.run is None or self._flow is None:
            rows = self.datastore.query(
                f'SELECT "offset", payload FROM {ENTRIES_TABLE} WHERE "offset" > ? '
                'AND "offset" <= ? ORDER BY "offset" LIMIT ?',
                [after, upto, self.batch_size],
            )
        else:
            names = self._flow.tables
            rows = self.datastore.query(
                f'SELECT m."offset" AS "offset", m.payload AS payload FROM {ENTRIES_TABLE} m '
                f'WHERE m."offset" IN (SELECT DISTINCT e."offset" FROM "{names["flow_calls"]}" c '
                f'JOIN "{names["flow_call_events"]}" e ON e.call_id = c.id '
                'WHERE c.run_id = ? AND e."offset" > ? AND e."offset" <= ? '
                'ORDER BY e."offset" LIMIT ?) ORDER BY m."offset"',
                [self.run, after, upto, self.batch_size],
            )
        return [Entry(int(r["offset"]), r["payload"]) for r in rows]
