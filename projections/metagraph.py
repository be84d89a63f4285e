"""The relational metagraph: graph types, node and edge types, graphs, nodes and edges.

:class:`MetagraphProjection` (consumer ``metagraph@v1``) follows the ``metagraph``
stream of a tenant file and keeps six tables in that file, with the columns, keys,
foreign keys and indexes of the data model (docs/projections.md lists them and what was
added). After catch-up they say what the aggregates say (tests/projections check this
over random histories).

Events are decoded straight from the envelope's JSON ``data`` with one typed msgspec
decoder per event type (the field names of docs/domain.md, "Events"), not through the
application's mapper: about ten times faster, no application object per tenant, and it
depends only on the documented stream contract. Attributes, schemas and configs are
kept as the JSON text the event carries (never parsed). An event of a version this
projection does not know (``class_version``) is an error, not a guess.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Final, TypeVar
from uuid import UUID

import msgspec

from projections._stream import Record, event_decoder
from projections.errors import EventNotProjectableError, UnknownEventError, ViewDivergedError
from projections.events import (
    GRAPH_TOPIC,
    GRAPH_TYPE_TOPIC,
    RUNS_RETIRED,
    TREE_TOPIC,
    CallAdded,
    CallChanged,
    Created,
    Defined,
    Deleted,
    EdgeAdded,
    EdgeDeleted,
    EdgeTypeAdded,
    EdgeUpdated,
    Event,
    NodeAdded,
    NodeDeleted,
    NodesRetired,
    NodeTypeAdded,
    NodeUpdated,
    RunsRetired,
    SchemaEvolved,
    StatusChanged,
    attributes_after,
)
from projections.projector import Handler, Projection
from streams import Transaction

__all__ = [
    "TABLES",
    "MetagraphProjection",
    "MetagraphSql",
    "call_edge_id",
    "edge_type_id",
    "node_id",
    "node_type_id",
]

TABLES: Final = ("graph_types", "node_types", "edge_types", "graphs", "nodes", "edges")

# Stable event names (docs/events.md): a record's ``type`` is one of these, also for an
# event recorded under its legacy name (``decode_record`` maps it).
_GRAPH_TYPE: Final = GRAPH_TYPE_TOPIC
_GRAPH: Final = GRAPH_TOPIC
_TREE: Final = TREE_TOPIC
_IGNORED_TREE: Final = frozenset({_TREE + "Started", _TREE + "ChildLinked"})
_CALL: Final = "call"
_TRIGGERED: Final = "triggered"
_EMPTY_OBJECT: Final = msgspec.Raw(b"{}")
_UPGRADE_PAGE: Final = 5000
"""Call edges rewritten per transaction by the upgrade to layout 2."""
_UPDATE_ROWS: Final = 500


@functools.lru_cache(maxsize=4096)
def _namespace(uuid: str) -> bytes:
    return UUID(uuid).bytes


def _uuid5(namespace: str, name: str) -> str:
    """``str(uuid.uuid5(UUID(namespace), name))``, without building UUID objects (it runs
    once per node added)."""
    return _uuid_text(hashlib.sha1(_namespace(namespace) + name.encode()).digest(), 5)


def _uuid_text(digest: bytes, version: int) -> str:
    """The UUID text of the first 16 bytes of ``digest``, stamped with ``version`` and
    the RFC 9562 variant (as ``uuid.UUID`` prints it)."""
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | (version << 4)
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def node_type_id(graph_type_id: str, name: str) -> str:
    """The row id of a node type: ``uuid5(graph type id, "node-type:" + name)``."""
    return _uuid5(graph_type_id, "node-type:" + name)


def edge_type_id(graph_type_id: str, name: str) -> str:
    """The row id of an edge type: ``uuid5(graph type id, "edge-type:" + name)``."""
    return _uuid5(graph_type_id, "edge-type:" + name)


def call_edge_id(graph_id: str, parent: str, child: str) -> str:
    """The row id of the ``triggered`` edge from call ``parent`` into call ``child``.

    A UUID (version 8) whose first half is derived from the graph and the parent, its
    second from the graph and the child. A call has one parent, so the child alone
    makes the id unique (its key is ``triggered:<child>``); the parent's half makes a
    call's edges to the calls it started sort together in the ``edges`` primary key,
    so a run's edges share its pages instead of each taking a page at a random place
    (retiring a run rewrites them: docs/projections.md, "Row ids")."""
    namespace = _namespace(graph_id)
    head = hashlib.sha1(namespace + b"edge:triggered-from:" + parent.encode()).digest()
    tail = hashlib.sha1(namespace + b"edge:triggered:" + child.encode()).digest()
    return _uuid_text(head[:8] + tail[:8], 8)


def _layout1_call_edge_id(graph_id: str, child: str) -> str:
    """The id :func:`call_edge_id` was up to layout 1: ``uuid5(graph, "edge:triggered:"
    + child)`` (:meth:`MetagraphProjection.upgrade` rewrites it)."""
    return _uuid5(graph_id, "edge:triggered:" + child)


def node_id(graph_id: str, key: str) -> str:
    """The row id of a node: ``uuid5(graph id, "node:" + key)`` (stable across rebuilds)."""
    return _uuid5(graph_id, "node:" + key)


# --- event payloads (the ``data`` of each envelope) ----------------------------------


_E = TypeVar("_E", bound=Event)


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode("utf-8")


def _seconds(record: Record) -> int:
    return record.time // 1000


def _changed(rows: list[dict[str, Any]], what: str) -> None:
    if not rows:
        raise ViewDivergedError(
            f"{what} is not in the view: an earlier event was parked or the tables were "
            "edited; replay the parked events, or rebuild the projection"
        )


class MetagraphSql:
    """Every statement of the metagraph tables, built once for a table prefix (``create``:
    the tables and their indexes, for a tool that fills the same tables another way)."""

    def __init__(self, prefix: str) -> None:
        gt, nt, et, g, n, e = (f'"{prefix}{table}"' for table in TABLES)
        self.tables = {t: f"{prefix}{t}" for t in TABLES}
        common = (
            "metadata TEXT NOT NULL DEFAULT '{}', "
            "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL"
        )
        ix = prefix
        self.create = [
            f"CREATE TABLE IF NOT EXISTS {gt} ("
            "id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
            "description TEXT NOT NULL DEFAULT '', config TEXT NOT NULL DEFAULT '{}', "
            "version INTEGER NOT NULL DEFAULT 1, scope TEXT NOT NULL DEFAULT 'system' "
            f"CHECK (scope IN ('system', 'tenant', 'user')), {common})",
            f"CREATE TABLE IF NOT EXISTS {nt} ("
            f"id TEXT PRIMARY KEY, graph_type_id TEXT NOT NULL REFERENCES {gt}(id) "
            "ON DELETE CASCADE, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', "
            "schema TEXT NOT NULL DEFAULT '{}', schema_version INTEGER NOT NULL DEFAULT 1, "
            f"{common}, UNIQUE (graph_type_id, name))",
            f"CREATE TABLE IF NOT EXISTS {et} ("
            f"id TEXT PRIMARY KEY, graph_type_id TEXT NOT NULL REFERENCES {gt}(id) "
            "ON DELETE CASCADE, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', "
            "schema TEXT NOT NULL DEFAULT '{}', schema_version INTEGER NOT NULL DEFAULT 1, "
            "allowed_source_types TEXT NOT NULL DEFAULT '[]', "
            "allowed_target_types TEXT NOT NULL DEFAULT '[]', "
            f"{common}, UNIQUE (graph_type_id, name))",
            f"CREATE TABLE IF NOT EXISTS {g} ("
            f"id TEXT PRIMARY KEY, graph_type_id TEXT REFERENCES {gt}(id) ON DELETE SET NULL, "
            "graph_type_name TEXT NOT NULL, name TEXT NOT NULL, "
            "description TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'draft' "
            "CHECK (status IN ('active', 'archived', 'draft')), "
            "owner_id TEXT NOT NULL DEFAULT '', project_id TEXT NOT NULL DEFAULT '', "
            f"{common})",
            f'CREATE INDEX IF NOT EXISTS "{ix}graphs_owner_id" ON {g}(owner_id)',
            f'CREATE INDEX IF NOT EXISTS "{ix}graphs_project_id" ON {g}(project_id)',
            f'CREATE INDEX IF NOT EXISTS "{ix}graphs_owner_project" ON {g}(owner_id, project_id)',
            f'CREATE INDEX IF NOT EXISTS "{ix}graphs_graph_type_id" ON {g}(graph_type_id)',
            # A node's id is uuid5(graph, key) (node_id): unique because (graph_id, key)
            # is, and read by no query, so it has no index of its own. An index on it would
            # hold one entry per node at a random place: a retention pass retiring a run
            # would dirty one of its pages per call (docs/benchmarks.md, retention).
            f"CREATE TABLE IF NOT EXISTS {n} ("
            f"id TEXT NOT NULL, graph_id TEXT NOT NULL REFERENCES {g}(id) "
            "ON DELETE CASCADE, key TEXT NOT NULL, node_type TEXT NOT NULL, "
            "attributes TEXT NOT NULL DEFAULT '{}', "
            "schema_version INTEGER NOT NULL DEFAULT 1, "
            f"{common}, UNIQUE (graph_id, key))",
            f"CREATE TABLE IF NOT EXISTS {e} ("
            f"id TEXT PRIMARY KEY, graph_id TEXT NOT NULL REFERENCES {g}(id) "
            "ON DELETE CASCADE, key TEXT, edge_type TEXT NOT NULL, "
            "source_node_key TEXT NOT NULL, target_node_key TEXT NOT NULL, "
            "attributes TEXT NOT NULL DEFAULT '{}', "
            "undirected INTEGER NOT NULL DEFAULT 0 CHECK (undirected IN (0, 1)), "
            "schema_version INTEGER NOT NULL DEFAULT 1, "
            f"{common}, UNIQUE (graph_id, key), "
            f"FOREIGN KEY (graph_id, source_node_key) REFERENCES {n}(graph_id, key) "
            "ON DELETE CASCADE, "
            f"FOREIGN KEY (graph_id, target_node_key) REFERENCES {n}(graph_id, key) "
            "ON DELETE CASCADE)",
            f'CREATE INDEX IF NOT EXISTS "{ix}edges_source" ON {e}(graph_id, source_node_key)',
            f'CREATE INDEX IF NOT EXISTS "{ix}edges_target" ON {e}(graph_id, target_node_key)',
        ]
        self.insert_graph_type = (
            f"INSERT INTO {gt} (id, name, description, config, version, scope, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
        )
        self.touch_graph_type = f"UPDATE {gt} SET updated_at = ? WHERE id = ? RETURNING 1"
        self.bump_graph_type = (
            f"UPDATE {gt} SET version = version + 1, updated_at = ? WHERE id = ? RETURNING 1"
        )
        self.delete_graph_type = f"DELETE FROM {gt} WHERE id = ? RETURNING 1"
        self.insert_node_type = (
            f"INSERT INTO {nt} (id, graph_type_id, name, description, schema, "
            "schema_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.insert_edge_type = (
            f"INSERT INTO {et} (id, graph_type_id, name, description, schema, "
            "schema_version, allowed_source_types, allowed_target_types, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.evolve = {
            "node": f"UPDATE {nt} SET schema = ?, schema_version = ?, updated_at = ? "
            "WHERE graph_type_id = ? AND name = ? RETURNING 1",
            "edge": f"UPDATE {et} SET schema = ?, schema_version = ?, updated_at = ? "
            "WHERE graph_type_id = ? AND name = ? RETURNING 1",
        }
        # A graph created while its type was being deleted (no atomic guard spans the two
        # aggregates) follows the deletion in the stream: it gets NULL, as "set null" would.
        self.insert_graph = (
            f"INSERT INTO {g} (id, graph_type_id, graph_type_name, name, description, "
            f"status, owner_id, project_id, created_at, updated_at) VALUES (?, "
            f"(SELECT id FROM {gt} WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.set_status = f"UPDATE {g} SET status = ?, updated_at = ? WHERE id = ? RETURNING 1"
        self.insert_node = (
            f"INSERT INTO {n} (id, graph_id, key, node_type, attributes, schema_version, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.update_node = (
            f"UPDATE {n} SET attributes = ?, schema_version = ?, updated_at = ? "
            "WHERE graph_id = ? AND key = ? RETURNING 1"
        )
        self.delete_node = f"DELETE FROM {n} WHERE graph_id = ? AND key = ? RETURNING 1"
        self.node_attributes = f"SELECT attributes FROM {n} WHERE graph_id = ? AND key = ?"
        self.insert_edge = (
            f"INSERT INTO {e} (id, graph_id, key, edge_type, source_node_key, "
            "target_node_key, attributes, undirected, schema_version, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.update_edge = (
            f"UPDATE {e} SET attributes = ?, schema_version = ?, updated_at = ? "
            "WHERE id = ? AND graph_id = ? RETURNING 1"
        )
        self.delete_edge = f"DELETE FROM {e} WHERE id = ? AND graph_id = ? RETURNING 1"
        self.upsert_node = (
            f"{self.insert_node} ON CONFLICT (graph_id, key) DO UPDATE SET "
            "attributes = excluded.attributes, updated_at = excluded.updated_at"
        )
        # The tenant's call graph: the first graph named "calls" of type "call-graph"
        # (the one the domain's call index names: docs/calls.md).
        self.call_graph = (
            f"SELECT {g}.id FROM {g} JOIN {gt} ON {g}.graph_type_id = {gt}.id "
            f"WHERE {g}.name = 'calls' AND {gt}.name = 'call-graph' ORDER BY {g}.rowid LIMIT 1"
        )


class MetagraphProjection(Projection):
    """Graph types, node and edge types, graphs, nodes and edges as relational tables.

    ``table_prefix`` names the tables ``<prefix>graph_types`` ... (default: none, the
    data model's names); a rebuild can fill prefixed tables beside the live ones.
    """

    name: ClassVar[str] = "metagraph"
    version: ClassVar[int] = 1
    upstream: ClassVar[str] = "metagraph"
    layout: ClassVar[int] = 2
    """2: call edges' ids lead with their parent's half (:func:`call_edge_id`)."""

    def __init__(self, *, table_prefix: str = "") -> None:
        self.sql = MetagraphSql(table_prefix)
        self.tables = self.sql.tables
        self._handlers: dict[str, Handler[Any]] = {}
        self._on(_GRAPH_TYPE + "Defined", Defined, self._defined)
        self._on(_GRAPH_TYPE + "NodeTypeAdded", NodeTypeAdded, self._node_type_added)
        self._on(_GRAPH_TYPE + "EdgeTypeAdded", EdgeTypeAdded, self._edge_type_added)
        self._on(_GRAPH_TYPE + "NodeTypeSchemaEvolved", SchemaEvolved, self._node_schema)
        self._on(_GRAPH_TYPE + "EdgeTypeSchemaEvolved", SchemaEvolved, self._edge_schema)
        self._on(_GRAPH_TYPE + "Deleted", Deleted, self._deleted)
        self._on(_GRAPH + "Created", Created, self._created)
        self._on(_GRAPH + "StatusChanged", StatusChanged, self._status_changed)
        self._on(_GRAPH + "NodeAdded", NodeAdded, self._node_added)
        self._on(_GRAPH + "NodeUpdated", NodeUpdated, self._node_updated)
        self._on(_GRAPH + "NodeDeleted", NodeDeleted, self._node_deleted)
        self._on(_GRAPH + "EdgeAdded", EdgeAdded, self._edge_added)
        self._on(_GRAPH + "EdgeUpdated", EdgeUpdated, self._edge_updated)
        self._on(_GRAPH + "EdgeDeleted", EdgeDeleted, self._edge_deleted)
        self._on(_GRAPH + "NodesRetired", NodesRetired, self._nodes_retired)
        self._on(_TREE + "CallAdded", CallAdded, self._call_added)
        self._on(_TREE + "CallUpdated", CallChanged, self._call_updated)
        self._on(_TREE + "CallImported", CallChanged, self._call_imported)
        self._on(RUNS_RETIRED, RunsRetired, self._runs_retired)

    def _on(
        self,
        topic: str,
        cls: type[_E],
        apply: Callable[[Transaction, _E, Record], None],
    ) -> None:
        self._handlers[topic] = Handler(event_decoder(cls, topic), apply)

    def create_tables(self, tx: Transaction) -> None:
        for statement in self.sql.create:
            tx.execute(statement)

    def table_names(self) -> list[str]:
        return list(self.tables.values())

    def upgrade(self, tx: Transaction, layout: int, after: int) -> int | None:
        """Layout 1 -> 2: the call graph's ``triggered`` edges that the call trees made
        take their :func:`call_edge_id` (an edge of a graph's own events keeps its id),
        :data:`_UPGRADE_PAGE` of them per step, in ``rowid`` order after ``after``."""
        if layout >= 2:
            return None
        rows = tx.query(self.sql.call_graph)
        if not rows:
            return None
        graph, e = str(rows[0]["id"]), f'"{self.tables["edges"]}"'
        # Version 5 ids only (substr 15: the version digit): the trees' were uuid5, an
        # edge event's are uuid4 and layout 2's version 8.
        page = tx.query(
            # NOT INDEXED: a walk of the table from ``after``, never a scan of the graph's
            # edges through an index on graph_id, sorted, at every step.
            f"SELECT rowid AS r, id, source_node_key AS s, target_node_key AS t FROM {e} "
            "NOT INDEXED WHERE rowid > ? AND graph_id = ? AND edge_type = 'triggered' "
            f"AND substr(id, 15, 1) = '5' ORDER BY rowid LIMIT {_UPGRADE_PAGE}",
            [after, graph],
        )
        if not page:
            return None
        pairs: list[Any] = []
        for row in page:
            source, target = str(row["s"]), str(row["t"])
            if row["id"] == _layout1_call_edge_id(graph, target):
                pairs += [row["r"], call_edge_id(graph, source, target)]
        for start in range(0, len(pairs), 2 * _UPDATE_ROWS):
            chunk = pairs[start : start + 2 * _UPDATE_ROWS]
            values = ", ".join(["(?, ?)"] * (len(chunk) // 2))
            tx.execute(
                f"WITH m(r, id) AS (VALUES {values}) "
                f"UPDATE {e} SET id = m.id FROM m WHERE {e}.rowid = m.r",
                chunk,
            )
        return int(page[-1]["r"])

    def handler(self, topic: str) -> Handler[Any] | None:
        found = self._handlers.get(topic)
        if (
            found is None
            and topic.startswith((_GRAPH_TYPE, _GRAPH, _TREE))
            and (topic not in _IGNORED_TREE)
        ):
            raise UnknownEventError(
                f"{topic} is an event of an aggregate the metagraph projection follows, "
                "but it does not know it: upgrade the projection (a new version)"
            )
        return found  # None: another aggregate's event (the catalog's, ...), ignored

    # --- graph types ----------------------------------------------------------------

    def _defined(self, tx: Transaction, event: Defined, record: Record) -> None:
        if event.config.type != "metagraph.GraphConfig":
            raise EventNotProjectableError(f"unexpected config value {event.config.type!r}")
        at = _seconds(record)
        tx.execute(
            self.sql.insert_graph_type,
            [
                record.subject,
                event.name,
                event.description,
                _text(event.config.data),
                event.scope,
                at,
                at,
            ],
        )

    def _node_type_added(self, tx: Transaction, event: NodeTypeAdded, record: Record) -> None:
        spec, at = event.node_type.data, _seconds(record)
        tx.execute(
            self.sql.insert_node_type,
            [
                node_type_id(record.subject, spec.name),
                record.subject,
                spec.name,
                spec.description,
                _text(spec.schema),
                spec.schema_version,
                at,
                at,
            ],
        )
        self._touch_type(tx, record)

    def _edge_type_added(self, tx: Transaction, event: EdgeTypeAdded, record: Record) -> None:
        spec, at = event.edge_type.data, _seconds(record)
        tx.execute(
            self.sql.insert_edge_type,
            [
                edge_type_id(record.subject, spec.name),
                record.subject,
                spec.name,
                spec.description,
                _text(spec.schema),
                spec.schema_version,
                _text(spec.allowed_source_types),
                _text(spec.allowed_target_types),
                at,
                at,
            ],
        )
        self._touch_type(tx, record)

    def _node_schema(self, tx: Transaction, event: SchemaEvolved, record: Record) -> None:
        self._evolve(tx, "node", event, record)

    def _edge_schema(self, tx: Transaction, event: SchemaEvolved, record: Record) -> None:
        self._evolve(tx, "edge", event, record)

    def _evolve(self, tx: Transaction, kind: str, event: SchemaEvolved, record: Record) -> None:
        at = _seconds(record)
        rows = tx.query(
            self.sql.evolve[kind],
            [_text(event.schema), event.schema_version, at, record.subject, event.name],
        )
        _changed(rows, f"{kind} type {event.name!r} of graph type {record.subject}")
        _changed(
            tx.query(self.sql.bump_graph_type, [at, record.subject]),
            f"graph type {record.subject}",
        )

    def _touch_type(self, tx: Transaction, record: Record) -> None:
        _changed(
            tx.query(self.sql.touch_graph_type, [_seconds(record), record.subject]),
            f"graph type {record.subject}",
        )

    def _deleted(self, tx: Transaction, event: Deleted, record: Record) -> None:
        # Its node and edge types go with it (cascade); its graphs stay, with graph_type_id
        # NULL (set null): they are read-only in the domain too.
        _changed(
            tx.query(self.sql.delete_graph_type, [record.subject]), f"graph type {record.subject}"
        )

    # --- graphs ---------------------------------------------------------------------

    def _created(self, tx: Transaction, event: Created, record: Record) -> None:
        at = _seconds(record)
        tx.execute(
            self.sql.insert_graph,
            [
                record.subject,
                event.graph_type_id.canonical(),
                event.graph_type_name,
                event.name,
                event.description,
                event.status,
                event.owner_id,
                event.project_id,
                at,
                at,
            ],
        )

    def _status_changed(self, tx: Transaction, event: StatusChanged, record: Record) -> None:
        rows = tx.query(self.sql.set_status, [event.status, _seconds(record), record.subject])
        _changed(rows, f"graph {record.subject}")

    # --- nodes and edges ------------------------------------------------------------

    def _node_added(self, tx: Transaction, event: NodeAdded, record: Record) -> None:
        at = _seconds(record)
        tx.execute(
            self.sql.insert_node,
            [
                node_id(record.subject, event.key),
                record.subject,
                event.key,
                event.node_type,
                _text(event.attributes),
                event.schema_version,
                at,
                at,
            ],
        )

    def _node_updated(self, tx: Transaction, event: NodeUpdated, record: Record) -> None:
        rows = tx.query(
            self.sql.update_node,
            [
                _text(event.attributes),
                event.schema_version,
                _seconds(record),
                record.subject,
                event.key,
            ],
        )
        _changed(rows, f"node {event.key!r} of graph {record.subject}")

    def _node_deleted(self, tx: Transaction, event: NodeDeleted, record: Record) -> None:
        # Its edges were deleted by the EdgeDeleted events before this one (the foreign
        # keys would cascade anyway).
        rows = tx.query(self.sql.delete_node, [record.subject, event.key])
        _changed(rows, f"node {event.key!r} of graph {record.subject}")

    def _edge_added(self, tx: Transaction, event: EdgeAdded, record: Record) -> None:
        at = _seconds(record)
        tx.execute(
            self.sql.insert_edge,
            [
                event.edge_id,
                record.subject,
                event.key,
                event.edge_type,
                event.source,
                event.target,
                _text(event.attributes),
                int(event.undirected),
                event.schema_version,
                at,
                at,
            ],
        )

    def _edge_updated(self, tx: Transaction, event: EdgeUpdated, record: Record) -> None:
        rows = tx.query(
            self.sql.update_edge,
            [
                _text(event.attributes),
                event.schema_version,
                _seconds(record),
                event.edge_id,
                record.subject,
            ],
        )
        _changed(rows, f"edge {event.edge_id} of graph {record.subject}")

    # --- calls (the call trees of the tenant's call graph) ------------------------------

    def _call_graph_id(self, tx: Transaction) -> str:
        # Looked up each time: one projection object serves every tenant of a runner.
        rows = tx.query(self.sql.call_graph)
        if not rows:
            raise ViewDivergedError(
                "a call event precedes the tenant's call graph in the view: an earlier event "
                "was parked or the tables were edited; rebuild the projection"
            )
        return str(rows[0]["id"])

    def _call_added(self, tx: Transaction, event: CallAdded, record: Record) -> None:
        graph, at = self._call_graph_id(tx), _seconds(record)
        attributes = _text(event.attributes)
        tx.execute(
            self.sql.insert_node,
            [node_id(graph, event.key), graph, event.key, _CALL, attributes, 1, at, at],
        )
        for parent, child in event.triggered():
            tx.execute(
                self.sql.insert_edge,
                [
                    call_edge_id(graph, parent, child),
                    graph,
                    f"{_TRIGGERED}:{child}",
                    _TRIGGERED,
                    parent,
                    child,
                    "{}",
                    0,
                    1,
                    at,
                    at,
                ],
            )

    def _call_updated(self, tx: Transaction, event: CallChanged, record: Record) -> None:
        graph = self._call_graph_id(tx)
        attributes = event.attributes
        if event.is_delta:  # what changed (issue 17), applied to the row's attributes
            found = tx.query(self.sql.node_attributes, [graph, event.key])
            _changed(found, f"call {event.key!r} of the call graph {graph}")
            attributes = attributes_after(str(found[0]["attributes"]), event)
        rows = tx.query(
            self.sql.update_node, [_text(attributes), 1, _seconds(record), graph, event.key]
        )
        _changed(rows, f"call {event.key!r} of the call graph {graph}")

    def _call_imported(self, tx: Transaction, event: CallChanged, record: Record) -> None:
        """A call an older version recorded as a node: its row exists (kept), else added."""
        graph, at = self._call_graph_id(tx), _seconds(record)
        attributes = _text(event.attributes)
        tx.execute(
            self.sql.upsert_node,
            [node_id(graph, event.key), graph, event.key, _CALL, attributes, 1, at, at],
        )

    def _runs_retired(self, tx: Transaction, event: RunsRetired, record: Record) -> None:
        """Retired runs leave the call graph's rows: each root's call nodes (found down
        the ``triggered`` edges) and those edges."""
        rows = tx.query(self.sql.call_graph)
        if not rows:
            return  # no call graph in the view: nothing of these runs is in it
        graph = str(rows[0]["id"])
        n, e = (f'"{self.tables[t]}"' for t in ("nodes", "edges"))
        for run_id in event.runs:
            tree = (
                # CROSS JOIN keeps the run as the outer loop: one indexed probe of the
                # edges per call, never a scan of the tenant's edges.
                "WITH RECURSIVE run(key) AS (SELECT ? UNION "
                f"SELECT e.target_node_key FROM run CROSS JOIN {e} e "
                "ON e.graph_id = ? AND e.source_node_key = run.key "
                "WHERE e.edge_type = 'triggered') "
            )
            keys = [str(r["key"]) for r in tx.query(tree + "SELECT key FROM run", [run_id, graph])]
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                tx.execute(
                    f"DELETE FROM {e} WHERE graph_id = ? AND edge_type = 'triggered' "
                    f"AND target_node_key IN ({marks})",
                    [graph, *chunk],
                )
                tx.execute(
                    f"DELETE FROM {n} WHERE graph_id = ? AND node_type = 'call' "
                    f"AND key IN ({marks})",
                    [graph, *chunk],
                )

    def _nodes_retired(self, tx: Transaction, event: NodesRetired, record: Record) -> None:
        """Nodes and edges whose events a retention pass removed: their rows go (a
        rebuild, which never saw those events, has none)."""
        for edge_id in event.edge_ids:
            tx.query(self.sql.delete_edge, [edge_id, record.subject])
        for key in event.keys:
            tx.query(self.sql.delete_node, [record.subject, key])

    def _edge_deleted(self, tx: Transaction, event: EdgeDeleted, record: Record) -> None:
        rows = tx.query(self.sql.delete_edge, [event.edge_id, record.subject])
        _changed(rows, f"edge {event.edge_id} of graph {record.subject}")
