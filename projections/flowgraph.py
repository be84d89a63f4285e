"""Flowgraph views: workflow runs and their calls, kept from the tenant's call graph.

:class:`FlowgraphProjection` (consumer ``flowgraph@v1``) follows the ``metagraph``
stream of a tenant file and keeps, in that file, one row per call of the tenant's call
graph (``flow_calls``) and one row per workflow run (``flow_runs``): a run is the tree
of calls under one root call and is named by the root's requestId. Only node events of
the tenant's call graph (the first graph named ``calls`` of type ``call-graph``) change
the views; every other event is ignored and still advances the offset.

The rules (docs/flowgraph.md gives the reasons):

- **Tree.** A call's parent is its ``parentRequestId``. A call is linked to its parent
  as soon as both are in the view, whichever arrives first: a child requested before
  its parent is the root of a *detached* run (``root_parent`` names the parent it waits
  for) until the parent arrives; the parent's ``NodeAdded`` then re-roots the child's
  whole subtree into the parent's run (run id and depth of every call in it, its
  counts). The ``triggered`` edges mirror ``parentRequestId`` and are not read.
- **Run status.** ``running`` while any call of the run is pending or running, else the
  root's outcome (``completed``, ``failed`` or ``aborted``).
- **Times.** Call times are the attributes' milliseconds (``requestedAt``, ...);
  ``duration_ms`` is completion minus request. A run starts at the earliest request of
  its calls and ends, once no call is active, at the latest completion.

The fold is written once (:class:`~projections.flowgraph_fold.Fold`, beside the rows it
keeps, in :mod:`projections.flowgraph_fold`) over a small store interface with two
implementations: SQL in the projector's transaction (here) and dictionaries in memory
(:mod:`projections.replay`, which rebuilds a run as of an offset). ``flow_call_events``
indexes each call's node events by stream offset, so a replay reads only one run's
events. :class:`Flowgraph` answers the typed queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final

import msgspec
from eventsourcing.persistence import ProgrammingError
from eventsourcing.utils import Environment

from domain.calls import CALL, CALL_STATUSES
from projections._stream import event_decoder
from projections.errors import (
    UnknownEventError,
    ViewNotBuiltError,
)
from projections.events import (
    CALL_ADDED,
    CALL_IMPORTED,
    CALL_UPDATED,
    CREATED,
    GRAPH_TOPIC,
    NODE_ADDED,
    NODE_DELETED,
    NODE_UPDATED,
    RUNS_RETIRED,
    TREE_TOPIC,
    CallChanged,
    Created,
    NodeAdded,
    NodeDeleted,
    NodeUpdated,
    RunsRetired,
)
from projections.flowgraph_fold import (
    CALL_COLUMNS,
    COUNT_COLUMN,
    RUN_COLUMNS,
    RUN_STATUSES,
    CallRow,
    Fold,
    RunRow,
    RunStatus,
    decode_attributes,
)
from projections.projector import Handler, Projection, Record, Transaction
from projections.rebuild import live_prefix, live_version
from streams import HonkerDatastore, TenantReader

__all__ = [
    "TABLES",
    "FlowCall",
    "FlowRun",
    "Flowgraph",
    "FlowgraphProjection",
    "RunCursor",
    "RunPage",
    "flow_call",
    "flow_run",
    "tree_order",
]

TABLES: Final = ("flow_graph", "flow_calls", "flow_runs", "flow_call_events")

_IGNORED: Final = frozenset(
    GRAPH_TOPIC + name
    for name in ("StatusChanged", "EdgeAdded", "EdgeUpdated", "EdgeDeleted", "NodesRetired")
)
"""Events of the graph aggregate that never change the views (edges mirror
``parentRequestId``; a graph's status does not change its calls; retired calls leave
with their run's retirement record)."""

_IGNORED_TREE: Final = frozenset(TREE_TOPIC + name for name in ("Started", "ChildLinked"))
"""Events of the call trees that never change the views (a tree's start; a link across
trees, which ``parentRequestId`` already states)."""


# --- the SQL store --------------------------------------------------------------------


class _Sql:
    """Every statement, built once for a table prefix."""

    def __init__(self, prefix: str) -> None:
        self.names = {table: f"{prefix}{table}" for table in TABLES}
        fg, fc, fr, fe = (f'"{prefix}{table}"' for table in TABLES)
        common = (
            "metadata TEXT NOT NULL DEFAULT '{}', "
            "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL"
        )
        statuses = ", ".join(f"'{s}'" for s in CALL_STATUSES)
        run_statuses = ", ".join(f"'{s}'" for s in RUN_STATUSES)
        counts = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNT_COLUMN.values())
        ix = prefix
        self.create = [
            f"CREATE TABLE IF NOT EXISTS {fg} (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {fc} ("
            "id TEXT PRIMARY KEY, run_id TEXT NOT NULL, parent TEXT, "
            "depth INTEGER NOT NULL, operation TEXT NOT NULL, operation_type TEXT, "
            f"status TEXT NOT NULL CHECK (status IN ({statuses})), "
            "requested_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER, "
            "duration_ms INTEGER, error_code TEXT, error_message TEXT, "
            f"{common})",
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_calls_run" ON {fc}(run_id, requested_at)',
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_calls_parent" ON {fc}(parent)',
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_calls_status" ON {fc}(status, requested_at)',
            f"CREATE TABLE IF NOT EXISTS {fr} ("
            "id TEXT PRIMARY KEY, root_operation TEXT NOT NULL, root_parent TEXT, "
            f"status TEXT NOT NULL CHECK (status IN ({run_statuses})), "
            "started_at INTEGER NOT NULL, completed_at INTEGER, duration_ms INTEGER, "
            f"calls INTEGER NOT NULL, {counts}, last_completed_at INTEGER, {common})",
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_runs_started" ON {fr}(started_at, id)',
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_runs_status" ON {fr}(status, started_at, id)',
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_runs_root_parent" ON {fr}(root_parent) '
            "WHERE root_parent IS NOT NULL",
            # A retention pass's candidates, oldest completion first, read off in order
            # (no sort of every finished run), and their count (Flowgraph.finished_runs).
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_runs_completed" ON {fr}(completed_at, id) '
            "WHERE root_parent IS NULL AND completed_at IS NOT NULL",
            f'CREATE INDEX IF NOT EXISTS "{ix}flow_runs_top_status" ON {fr}(status) '
            "WHERE root_parent IS NULL",
            f"CREATE TABLE IF NOT EXISTS {fe} ("
            'call_id TEXT NOT NULL, "offset" INTEGER NOT NULL, '
            'PRIMARY KEY (call_id, "offset")) WITHOUT ROWID',
        ]
        call_cols, run_cols = ", ".join(CALL_COLUMNS), ", ".join(RUN_COLUMNS)
        self.call_columns, self.run_columns = call_cols, run_cols
        self.graph = f"SELECT id FROM {fg} ORDER BY created_at, id LIMIT 1"
        self.set_graph = (
            f"INSERT INTO {fg} (id, created_at) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM {fg})"
        )
        self.call = f"SELECT {call_cols} FROM {fc} WHERE id = ?"
        self.insert_call = (
            f"INSERT INTO {fc} ({call_cols}) VALUES ({', '.join('?' * len(CALL_COLUMNS))})"
        )
        self.update_call = (
            f"UPDATE {fc} SET {', '.join(f'{c} = ?' for c in CALL_COLUMNS[1:])} WHERE id = ?"
        )
        self.delete_call = f"DELETE FROM {fc} WHERE id = ?"
        self.run = f"SELECT {run_cols} FROM {fr} WHERE id = ?"
        self.insert_run = (
            f"INSERT INTO {fr} ({run_cols}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
        )
        self.update_run = (
            f"UPDATE {fr} SET {', '.join(f'{c} = ?' for c in RUN_COLUMNS[1:])} WHERE id = ?"
        )
        self.delete_run = f"DELETE FROM {fr} WHERE id = ?"
        self.waiting = f"SELECT id FROM {fc} WHERE parent = ? AND id = run_id ORDER BY id"
        self.attached = f"SELECT id FROM {fc} WHERE parent = ? AND id != run_id ORDER BY id"
        self.subtree = (
            "WITH RECURSIVE sub(id) AS (SELECT ? UNION "
            f"SELECT c.id FROM {fc} c JOIN sub ON c.parent = sub.id WHERE c.id != c.run_id) "
            "SELECT id FROM sub"
        )
        self.move_run = f"UPDATE {fc} SET run_id = ?, depth = depth + ? WHERE run_id = ?"
        self.move_calls = (
            f"UPDATE {fc} SET run_id = ?, depth = depth + ? "
            "WHERE id IN (SELECT value FROM json_each(?))"
        )
        self.calls_of = f"SELECT {call_cols} FROM {fc} WHERE run_id = ?"
        self.note = f'INSERT OR IGNORE INTO {fe} (call_id, "offset") VALUES (?, ?)'


class _SqlStore:
    """The fold's store on the projection's tables, inside the projector's transaction."""

    def __init__(self, tx: Transaction, sql: _Sql) -> None:
        self.tx = tx
        self.sql = sql

    def graph(self) -> str | None:
        rows = self.tx.query(self.sql.graph)
        return str(rows[0]["id"]) if rows else None

    def set_graph(self, graph_id: str, seconds: int) -> None:
        self.tx.execute(self.sql.set_graph, [graph_id, seconds])

    def call(self, key: str) -> CallRow | None:
        rows = self.tx.query(self.sql.call, [key])
        return CallRow(**rows[0]) if rows else None

    def insert_call(self, row: CallRow) -> None:
        self.tx.execute(self.sql.insert_call, list(msgspec.structs.astuple(row)))

    def update_call(self, row: CallRow) -> None:
        values = msgspec.structs.astuple(row)
        self.tx.execute(self.sql.update_call, [*values[1:], values[0]])

    def delete_call(self, key: str) -> None:
        self.tx.execute(self.sql.delete_call, [key])

    def run(self, run_id: str) -> RunRow | None:
        rows = self.tx.query(self.sql.run, [run_id])
        return RunRow(**rows[0]) if rows else None

    def insert_run(self, row: RunRow) -> None:
        self.tx.execute(self.sql.insert_run, list(msgspec.structs.astuple(row)))

    def update_run(self, row: RunRow) -> None:
        values = msgspec.structs.astuple(row)
        self.tx.execute(self.sql.update_run, [*values[1:], values[0]])

    def delete_run(self, run_id: str) -> None:
        self.tx.execute(self.sql.delete_run, [run_id])

    def waiting_children(self, key: str) -> list[str]:
        return [row["id"] for row in self.tx.query(self.sql.waiting, [key])]

    def attached_children(self, key: str) -> list[str]:
        return [row["id"] for row in self.tx.query(self.sql.attached, [key])]

    def subtree(self, key: str) -> list[str]:
        return [row["id"] for row in self.tx.query(self.sql.subtree, [key])]

    def move_run(self, source: str, target: str, depth_shift: int) -> None:
        self.tx.execute(self.sql.move_run, [target, depth_shift, source])

    def move_calls(self, keys: Sequence[str], target: str, depth_shift: int) -> None:
        self.tx.execute(self.sql.move_calls, [target, depth_shift, json.dumps(list(keys))])

    def calls_of(self, run_id: str) -> list[CallRow]:
        return [CallRow(**row) for row in self.tx.query(self.sql.calls_of, [run_id])]

    def note(self, key: str, offset: int) -> None:
        self.tx.execute(self.sql.note, [key, offset])


# --- the projection -------------------------------------------------------------------


class FlowgraphProjection(Projection):
    """Workflow runs and their calls (``flow_runs``, ``flow_calls``) from the call graph.

    ``table_prefix`` names the tables ``<prefix>flow_calls`` ... (default: none); a
    rebuild can fill prefixed tables beside the live ones.
    """

    name: ClassVar[str] = "flowgraph"
    version: ClassVar[int] = 1
    upstream: ClassVar[str] = "metagraph"

    def __init__(self, *, table_prefix: str = "") -> None:
        self.table_prefix = table_prefix
        self.sql = _Sql(table_prefix)
        self.tables = self.sql.names
        self._handlers: dict[str, Handler[Any]] = {
            CREATED: Handler(event_decoder(Created, CREATED), self._created),
            NODE_ADDED: Handler(event_decoder(NodeAdded, NODE_ADDED), self._node_added),
            NODE_UPDATED: Handler(event_decoder(NodeUpdated, NODE_UPDATED), self._node_updated),
            NODE_DELETED: Handler(event_decoder(NodeDeleted, NODE_DELETED), self._node_deleted),
            CALL_ADDED: Handler(event_decoder(CallChanged, CALL_ADDED), self._call_added),
            CALL_UPDATED: Handler(event_decoder(CallChanged, CALL_UPDATED), self._call_updated),
            CALL_IMPORTED: Handler(event_decoder(CallChanged, CALL_IMPORTED), self._call_imported),
            RUNS_RETIRED: Handler(event_decoder(RunsRetired, RUNS_RETIRED), self._runs_retired),
        }

    def create_tables(self, tx: Transaction) -> None:
        for statement in self.sql.create:
            tx.execute(statement)

    def handler(self, topic: str) -> Handler[Any] | None:
        found = self._handlers.get(topic)
        if found is None and (
            (topic.startswith(GRAPH_TOPIC) and topic not in _IGNORED)
            or (topic.startswith(TREE_TOPIC) and topic not in _IGNORED_TREE)
        ):
            raise UnknownEventError(
                f"{topic} is an event of an aggregate the flowgraph projection follows, "
                "but it does not know it: upgrade the projection (a new version)"
            )
        return found  # None: ignored (edges, other aggregates), still advances the offset

    def _runs_retired(self, tx: Transaction, event: RunsRetired, record: Record) -> None:
        """Retired runs leave the views: their runs, calls and event index rows."""
        fc, fr, fe = (
            f'"{self.tables[t]}"' for t in ("flow_calls", "flow_runs", "flow_call_events")
        )
        for run_id in event.runs:
            tx.execute(
                f"DELETE FROM {fe} WHERE call_id IN (SELECT id FROM {fc} WHERE run_id = ?)",
                [run_id],
            )
            tx.execute(f"DELETE FROM {fc} WHERE run_id = ?", [run_id])
            tx.execute(f"DELETE FROM {fr} WHERE id = ?", [run_id])

    def _fold(self, tx: Transaction, record: Record) -> Fold | None:
        """A fold on the tables if ``record`` is an event of the tenant's call graph."""
        store = _SqlStore(tx, self.sql)
        return Fold(store) if store.graph() == record.subject else None

    def _created(self, tx: Transaction, event: Created, record: Record) -> None:
        Fold(_SqlStore(tx, self.sql)).created(
            record.subject, event.name, event.graph_type_name, record.time
        )

    def _node_added(self, tx: Transaction, event: NodeAdded, record: Record) -> None:
        if event.node_type != CALL:
            return  # the call graph's type has no other node type; nothing to show
        fold = self._fold(tx, record)
        if fold is not None:
            attributes = decode_attributes(event.attributes, event.key)
            fold.added(event.key, attributes, record.offset, record.time)

    def _node_updated(self, tx: Transaction, event: NodeUpdated, record: Record) -> None:
        fold = self._fold(tx, record)
        if fold is not None:
            attributes = decode_attributes(event.attributes, event.key)
            fold.updated(event.key, attributes, record.offset, record.time)

    def _call_added(self, tx: Transaction, event: CallChanged, record: Record) -> None:
        attributes = decode_attributes(event.attributes, event.key)
        Fold(_SqlStore(tx, self.sql)).added(event.key, attributes, record.offset, record.time)

    def _call_updated(self, tx: Transaction, event: CallChanged, record: Record) -> None:
        fold = Fold(_SqlStore(tx, self.sql))
        if event.changes is not None:  # what changed (issue 17)
            fold.changed(event.key, event.changes, record.offset, record.time, event.appended)
            return
        attributes = decode_attributes(event.attributes, event.key)
        fold.updated(event.key, attributes, record.offset, record.time)

    def _call_imported(self, tx: Transaction, event: CallChanged, record: Record) -> None:
        """A call an older version recorded as a graph node, copied into a call tree: in
        the view already (from its ``NodeAdded``), else added."""
        store = _SqlStore(tx, self.sql)
        attributes = decode_attributes(event.attributes, event.key)
        if store.call(event.key) is None:
            Fold(store).added(event.key, attributes, record.offset, record.time)
        else:
            Fold(store).updated(event.key, attributes, record.offset, record.time)

    def _node_deleted(self, tx: Transaction, event: NodeDeleted, record: Record) -> None:
        fold = self._fold(tx, record)
        if fold is not None:
            fold.deleted(event.key, record.offset, record.time)


# --- queries --------------------------------------------------------------------------


class FlowCall(msgspec.Struct, frozen=True, kw_only=True):
    """One call of a run. Times in ms since the epoch; ``created_at``/``updated_at`` in
    seconds (when the view row was recorded). ``parent`` is the ``parentRequestId``."""

    request_id: str
    run_id: str
    parent: str | None
    depth: int
    operation: str
    operation_type: str | None
    status: str
    requested_at: int
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    metadata: dict[str, Any]
    created_at: int
    updated_at: int


class FlowRun(msgspec.Struct, frozen=True, kw_only=True):
    """One workflow run: the tree of calls under ``run_id`` (its root's requestId).

    ``root_parent`` is None for a workflow run; it names the parent a *detached* run's
    root waits for (a child requested before its parent). ``last_completed_at`` is the
    latest completion among its calls so far; ``completed_at`` the same once no call is
    pending or running.
    """

    run_id: str
    root_operation: str
    root_parent: str | None
    status: RunStatus
    started_at: int
    completed_at: int | None
    duration_ms: int | None
    calls: int
    pending_calls: int
    running_calls: int
    completed_calls: int
    failed_calls: int
    aborted_calls: int
    last_completed_at: int | None
    created_at: int
    updated_at: int


class RunCursor(msgspec.Struct, frozen=True, kw_only=True):
    """Where the next page of :meth:`Flowgraph.runs` starts (after this run)."""

    started_at: int
    run_id: str


class RunPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of runs; ``next`` is None on the last page."""

    runs: list[FlowRun]
    next: RunCursor | None


def flow_call(row: CallRow | Mapping[str, Any]) -> FlowCall:
    """The public view of a ``flow_calls`` row."""
    r = row if isinstance(row, CallRow) else CallRow(**row)
    return FlowCall(
        request_id=r.id,
        run_id=r.run_id,
        parent=r.parent,
        depth=r.depth,
        operation=r.operation,
        operation_type=r.operation_type,
        status=r.status,
        requested_at=r.requested_at,
        started_at=r.started_at,
        completed_at=r.completed_at,
        duration_ms=r.duration_ms,
        error_code=r.error_code,
        error_message=r.error_message,
        metadata=json.loads(r.metadata),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def flow_run(row: RunRow | Mapping[str, Any]) -> FlowRun:
    """The public view of a ``flow_runs`` row."""
    r = row if isinstance(row, RunRow) else RunRow(**row)
    fields = msgspec.structs.asdict(r)
    del fields["metadata"]
    fields["run_id"] = fields.pop("id")
    return msgspec.convert(fields, FlowRun)


def tree_order(calls: Iterable[CallRow], root: str) -> list[CallRow]:
    """The calls of a run in depth-first order from ``root``, siblings by request time
    (then requestId): the order a call tree is read in."""
    children: dict[str | None, list[CallRow]] = {}
    top: CallRow | None = None
    for call in calls:
        if call.id == root:
            top = call
        else:
            children.setdefault(call.parent, []).append(call)
    if top is None:
        return []
    for siblings in children.values():
        siblings.sort(key=lambda c: (c.requested_at, c.id), reverse=True)
    ordered: list[CallRow] = []
    stack = [top]
    while stack:
        call = stack.pop()
        ordered.append(call)
        stack.extend(children.get(call.id, ()))
    return ordered


class Flowgraph:
    """Typed queries on the flowgraph views of one tenant file (reads through the reader
    pool; never inside a write transaction).

    Before a projector has built the views in the file, every query raises
    :class:`~projections.errors.ViewNotBuiltError`, which says what to run
    (:class:`~projections.replay.Replay` folds the stream and needs no views).
    """

    def __init__(self, datastore: HonkerDatastore, *, table_prefix: str = "") -> None:
        self.datastore = datastore
        self.table_prefix = table_prefix
        self._sql = _Sql(table_prefix)
        self._calls = f'"{self._sql.names["flow_calls"]}"'
        self._runs = f'"{self._sql.names["flow_runs"]}"'
        self._owned: TenantReader | None = None

    @classmethod
    def open(cls, env: Mapping[str, str] | Environment, **options: Any) -> Flowgraph:
        """The views of the tenant file ``env`` selects (as the writers' env), on the
        live version's tables (after a rebuild's swap) unless ``table_prefix`` is given."""
        return TenantReader(env).adopt(lambda reader: cls.on(reader, owns=True, **options))

    @classmethod
    def on(cls, reader: TenantReader, *, owns: bool = False, **options: Any) -> Flowgraph:
        """The views read through ``reader``, on the live version's tables unless
        ``table_prefix`` is given; with ``owns``, :meth:`close` closes the reader."""
        if "table_prefix" not in options:
            options["table_prefix"] = live_prefix(reader.datastore, FlowgraphProjection.name)
        views = cls(reader.datastore, **options)
        views._owned = reader if owns else None
        return views

    def close(self) -> None:
        """Close the file if :meth:`open` opened it."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> Flowgraph:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of one read; :class:`ViewNotBuiltError` if the views are not built."""
        try:
            return self.datastore.query(sql, params)
        except ProgrammingError as exc:  # e.g. "no such table: flow_runs"
            not_built = self._not_built()
            if not_built is None:
                raise
            raise not_built from exc

    def _not_built(self) -> ViewNotBuiltError | None:
        """The error to raise if tables of the live views are missing from the file, else
        None (another failure, or tables the caller chose with ``table_prefix``)."""
        live = live_version(self.datastore, FlowgraphProjection.name)
        if live.table_prefix != self.table_prefix:
            return None  # not the live version: building the views would not help
        names = list(self._sql.names.values())
        found = self.datastore.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
            f"({', '.join('?' * len(names))})",
            names,
        )
        present = {row["name"] for row in found}
        missing = [name for name in names if name not in present]
        if not missing:
            return None
        return ViewNotBuiltError(
            FlowgraphProjection.name,
            consumer=f"{FlowgraphProjection.name}@v{live.version or FlowgraphProjection.version}",
            projection=FlowgraphProjection.__name__,
            tenant=self.datastore.tenant,
            path=self.datastore.path,
            tables=missing,
        )

    def _calls_where(self, where: str, params: Sequence[Any], order: str = "") -> list[CallRow]:
        sql = f"SELECT {self._sql.call_columns} FROM {self._calls} WHERE {where} {order}"
        return [CallRow(**row) for row in self._query(sql, params)]

    def run(self, run_id: str) -> FlowRun | None:
        """The run whose root is ``run_id``, or None."""
        rows = self._query(self._sql.run, [run_id])
        return flow_run(rows[0]) if rows else None

    def call(self, request_id: str) -> FlowCall | None:
        """One call, or None."""
        rows = self._calls_where("id = ?", [request_id])
        return flow_call(rows[0]) if rows else None

    def call_tree(self, run_id: str) -> list[FlowCall]:
        """The run's calls, depth first from its root (siblings by request time), each
        with its depth; empty if ``run_id`` is not a run."""
        rows = self._calls_where("run_id = ?", [run_id])
        return [flow_call(r) for r in tree_order(rows, run_id)]

    def finished_runs(
        self,
        statuses: Sequence[RunStatus],
        *,
        completed_before: int | None = None,
        limit: int = 1000,
    ) -> list[FlowRun]:
        """Workflow runs (not detached) of these finished ``statuses`` that completed
        before ``completed_before`` (ms), oldest completion first, at most ``limit``: the
        candidates of a retention pass (docs/retention.md)."""
        marks = ", ".join("?" * len(statuses))
        sql = (
            # `+status`: not the status index, so the planner walks flow_runs_completed
            # in order and stops at the limit instead of sorting every finished run.
            f"SELECT {self._sql.run_columns} FROM {self._runs} WHERE +status IN ({marks}) "
            "AND root_parent IS NULL AND completed_at IS NOT NULL"
            + (" AND completed_at < ?" if completed_before is not None else "")
            + " ORDER BY completed_at, id LIMIT ?"
        )
        params: list[Any] = [*statuses]
        if completed_before is not None:
            params.append(completed_before)
        return [flow_run(row) for row in self._query(sql, [*params, limit])]

    def count_runs(self, statuses: Sequence[RunStatus]) -> int:
        """How many workflow runs (not detached) have one of these ``statuses``."""
        marks = ", ".join("?" * len(statuses))
        rows = self._query(
            f"SELECT count(*) AS n FROM {self._runs} "
            f"WHERE status IN ({marks}) AND root_parent IS NULL",
            list(statuses),
        )
        return int(rows[0]["n"])

    def children(self, request_id: str) -> list[FlowCall]:
        """The calls linked below ``request_id``, by request time."""
        rows = self._calls_where(
            "parent = ? AND id != run_id", [request_id], "ORDER BY requested_at, id"
        )
        return [flow_call(r) for r in rows]

    def ancestors(self, request_id: str) -> list[FlowCall]:
        """The parent of ``request_id``, its parent, ... up to the run's root (nearest
        first); empty for a root or an unknown call."""
        sql = (
            "WITH RECURSIVE up(id, parent, root, n) AS ("
            f"SELECT id, parent, id = run_id, 0 FROM {self._calls} WHERE id = ? "
            f"UNION ALL SELECT c.id, c.parent, c.id = c.run_id, up.n + 1 FROM {self._calls} c "
            "JOIN up ON c.id = up.parent WHERE NOT up.root) "
            f"SELECT {', '.join('c.' + col for col in CALL_COLUMNS)} "
            f"FROM up JOIN {self._calls} c ON c.id = up.id WHERE up.n > 0 ORDER BY up.n"
        )
        return [flow_call(row) for row in self._query(sql, [request_id])]

    def runs(
        self,
        *,
        status: RunStatus | Sequence[RunStatus] | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        after: RunCursor | None = None,
        newest_first: bool = True,
        detached: bool = False,
    ) -> RunPage:
        """Runs that started in ``[since, until)`` (ms; open ends when None), of the given
        status(es), one page of at most ``limit``, ordered by start time (then run id).

        Pass the page's ``next`` as ``after`` for the following page. Detached runs
        (subtrees waiting for their parent) are left out unless ``detached``.
        """
        if limit < 1:
            raise ValueError(f"limit={limit} must be at least 1")
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            unknown = [s for s in wanted if s not in RUN_STATUSES]
            if unknown:
                raise ValueError(f"unknown run status {unknown}: use {RUN_STATUSES}")
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if since is not None:
            where.append("started_at >= ?")
            params.append(since)
        if until is not None:
            where.append("started_at < ?")
            params.append(until)
        if not detached:
            where.append("root_parent IS NULL")
        if after is not None:
            where.append(f"(started_at, id) {'<' if newest_first else '>'} (?, ?)")
            params += [after.started_at, after.run_id]
        direction = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {self._sql.run_columns} FROM {self._runs} "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY started_at {direction}, id {direction} LIMIT ?"
        )
        rows = self._query(sql, [*params, limit + 1])
        runs = [flow_run(row) for row in rows[:limit]]
        more = len(rows) > limit
        cursor = RunCursor(started_at=runs[-1].started_at, run_id=runs[-1].run_id) if more else None
        return RunPage(runs=runs, next=cursor)
