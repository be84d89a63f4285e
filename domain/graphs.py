"""Graphs with their nodes and edges: one aggregate per graph.

Boundary: a graph is the unit of consistency. Its invariants (unique node keys and edge
keys, existing endpoints, endpoint types, no self-loops or parallel edges unless the
graph type allows them, cascading deletes) span its nodes and edges, so they live in one
aggregate and one event sequence, checked and appended atomically. Nodes and edges are
not aggregates of their own: checking an edge would then read two or three other
aggregates with no atomic guard between them.

State: :class:`GraphIndex` keeps only what the invariants need, never attributes: node
key -> (type, version of the event holding its attributes), edge id -> (type, endpoints,
key, direction, version), plus derived maps (edge keys, incident edges per node, joined
pairs) that make every check O(1) and a node delete O(degree). Attributes are only read
back when a merge update needs them, from the one event the version points at.

Write rules, checked in this order (the first failing one is raised):

1. the graph is writable: not archived (:class:`GraphArchivedError`) and its graph type
   not deleted (:class:`NotFoundError`);
2. the arguments are well formed (:class:`ValidationError`: keys, update mode), and the
   named types, nodes and edges exist (:class:`NotFoundError`);
3. keys are new (:class:`DuplicateError`);
4. edge structure: direction allowed by the graph type, no self-loop unless allowed,
   endpoint node types allowed by the edge type (:class:`ValidationError`), no parallel
   edge unless ``multi`` (:class:`ParallelEdgeError`);
5. attributes are JSON and match the type's current schema
   (:class:`AttributesInvalidError`).

Parallel edges (when the graph type's ``multi`` is false): a directed edge s->t is
parallel to an existing directed s->t or an undirected {s,t}; an undirected edge {s,t}
is parallel to any existing edge between s and t, either way. Antiparallel directed
edges (s->t and t->s) are not parallel. Edge types do not matter: ``multi`` false means
at most one edge per pair.

Endpoint types of an undirected edge may match the edge type in either orientation.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from itertools import chain, compress, count
from operator import attrgetter, not_
from typing import Any, Final
from uuid import UUID, uuid4

import msgspec
from eventsourcing.domain import Aggregate

from domain.errors import (
    DuplicateError,
    GraphArchivedError,
    NotFoundError,
    ParallelEdgeError,
    StatusTransitionError,
    ValidationError,
)
from domain.graph_types import GraphType
from domain.names import register_module
from domain.schema import check_attributes, check_key
from domain.values import (
    STATUS_TRANSITIONS,
    EdgeTypeDef,
    GraphConfig,
    GraphInfo,
    GraphStatus,
    UpdateMode,
)

__all__ = ["AttributesAt", "EdgeEntry", "Graph", "GraphIndex", "IndexColumns", "NodeEntry"]

AttributesAt = Callable[[int], dict[str, Any]]
"""Reads back the attributes recorded by the graph's event at a given version."""

_MODES: Final = ("merge", "replace")


class NodeEntry(msgspec.Struct, array_like=True, gc=False):
    """What the invariants need of a node: its type and where its attributes are."""

    type: str
    version: int


class EdgeEntry(msgspec.Struct, array_like=True, gc=False):
    """What the invariants need of an edge: type, endpoints, key, direction, attributes."""

    type: str
    source: str
    target: str
    key: str | None
    undirected: bool
    version: int


def _pair(source: str, target: str) -> tuple[str, str]:
    return (source, target) if source <= target else (target, source)


def _counts(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How many times each pair occurs; ``dict.fromkeys`` (half a ``Counter``'s time)
    when, as without parallel edges, every pair occurs once."""
    once = dict.fromkeys(pairs, 1)
    return once if len(once) == len(pairs) else Counter(pairs)


class IndexColumns(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A graph's index column by column: what a snapshot stores (see :mod:`domain.codec`).

    Position ``i`` of every ``node_*`` list describes one node, position ``j`` of every
    ``edge_*`` column one edge. Type names are stored once, in ``types``, and referred to
    by position; edge endpoints refer to positions in ``node_keys``. So a 100k-node,
    200k-edge graph loads with a handful of C-level passes and shares one string per
    node key and per type name between all the entries that mention it.
    """

    types: list[str]
    node_keys: list[str]
    node_types: list[int]
    node_versions: list[int]
    edge_ids: list[str]
    edge_types: list[int]
    edge_sources: list[int]
    edge_targets: list[int]
    edge_keys: list[str | None]
    edge_undirected: bytes  # one byte per edge: 1 undirected, 0 directed
    edge_versions: list[int]


_type_of: Final = attrgetter("type")
_version_of: Final = attrgetter("version")


class GraphIndex:
    """The node and edge sets of one graph, indexed for the write checks.

    ``nodes`` and ``edges`` are the state; ``edge_keys``, incident edges and joined
    pairs are derived from ``edges`` and rebuilt when a snapshot is loaded, the
    incident edges only when first needed (by a node delete): building them is the
    costliest part of a load, and most writes never need them.
    """

    __slots__ = ("_arcs", "_incident", "_links", "edge_keys", "edges", "nodes")

    def __init__(self) -> None:
        self.nodes: dict[str, NodeEntry] = {}
        self.edges: dict[str, EdgeEntry] = {}
        self.edge_keys: dict[str, str] = {}
        # Edge ids per node; None until first needed after a snapshot was loaded.
        self._incident: dict[str, set[str]] | None = {}
        self._arcs: dict[tuple[str, str], int] = {}  # directed edges per (source, target)
        self._links: dict[tuple[str, str], int] = {}  # undirected edges per sorted pair

    def add_node(self, key: str, node_type: str, version: int) -> None:
        self.nodes[key] = NodeEntry(sys.intern(node_type), version)

    def remove_node(self, key: str) -> None:
        del self.nodes[key]
        if self._incident is not None:
            self._incident.pop(key, None)

    def add_edge(self, edge_id: str, entry: EdgeEntry) -> None:
        entry.type = sys.intern(entry.type)
        self.edges[edge_id] = entry
        if entry.key is not None:
            self.edge_keys[entry.key] = edge_id
        incident = self._incident
        if incident is not None:
            incident.setdefault(entry.source, set()).add(edge_id)
            incident.setdefault(entry.target, set()).add(edge_id)
        counts, pair = self._counter(entry)
        counts[pair] = counts.get(pair, 0) + 1

    def remove_edge(self, edge_id: str) -> None:
        entry = self.edges.pop(edge_id)
        if entry.key is not None:
            del self.edge_keys[entry.key]
        if self._incident is not None:
            for end in (entry.source, entry.target):
                incident = self._incident.get(end)
                if incident is not None:
                    incident.discard(edge_id)
                    if not incident:
                        del self._incident[end]
        counts, pair = self._counter(entry)
        if counts[pair] == 1:
            del counts[pair]
        else:
            counts[pair] -= 1

    def _counter(self, entry: EdgeEntry) -> tuple[dict[tuple[str, str], int], tuple[str, str]]:
        if entry.undirected:
            return self._links, _pair(entry.source, entry.target)
        return self._arcs, (entry.source, entry.target)

    def _incidence(self) -> dict[str, set[str]]:
        incident = self._incident
        if incident is None:
            incident = {}
            for edge_id, entry in self.edges.items():
                incident.setdefault(entry.source, set()).add(edge_id)
                incident.setdefault(entry.target, set()).add(edge_id)
            self._incident = incident
        return incident

    def incident(self, key: str) -> list[str]:
        """Ids of the edges touching node ``key``, in a stable order."""
        return sorted(self._incidence().get(key, ()))

    def joined(self, source: str, target: str, *, undirected: bool) -> bool:
        """Whether a new edge source-target would be parallel to an existing one."""
        if (source, target) in self._arcs or _pair(source, target) in self._links:
            return True
        return undirected and (target, source) in self._arcs

    def columns(self) -> IndexColumns:
        """The state as :class:`IndexColumns` (for snapshots), in C-level passes."""
        node_keys = list(self.nodes)
        node_entries = list(self.nodes.values())
        edge_entries = list(self.edges.values())
        node_types = list(map(_type_of, node_entries))
        edge_types = list(map(_type_of, edge_entries))
        types = list(dict.fromkeys(chain(node_types, edge_types)))
        type_at = dict(zip(types, count())).__getitem__
        node_at = dict(zip(node_keys, count())).__getitem__
        return IndexColumns(
            types=types,
            node_keys=node_keys,
            node_types=list(map(type_at, node_types)),
            node_versions=list(map(_version_of, node_entries)),
            edge_ids=list(self.edges),
            edge_types=list(map(type_at, edge_types)),
            edge_sources=list(map(node_at, map(attrgetter("source"), edge_entries))),
            edge_targets=list(map(node_at, map(attrgetter("target"), edge_entries))),
            edge_keys=list(map(attrgetter("key"), edge_entries)),
            edge_undirected=bytes(map(attrgetter("undirected"), edge_entries)),
            edge_versions=list(map(_version_of, edge_entries)),
        )

    @classmethod
    def from_columns(cls, columns: IndexColumns) -> GraphIndex:
        """Rebuild an index from :meth:`columns`; incident edges are built when needed."""
        c = columns
        node_lengths = {len(c.node_keys), len(c.node_types), len(c.node_versions)}
        edge_lengths = {
            len(c.edge_ids),
            len(c.edge_types),
            len(c.edge_sources),
            len(c.edge_targets),
            len(c.edge_keys),
            len(c.edge_undirected),
            len(c.edge_versions),
        }
        if len(node_lengths) != 1 or len(edge_lengths) != 1:
            raise ValueError("a graph index snapshot has columns of different lengths")
        type_at = [sys.intern(name) for name in c.types].__getitem__
        node_at = c.node_keys.__getitem__
        sources = list(map(node_at, c.edge_sources))
        targets = list(map(node_at, c.edge_targets))
        undirected = list(map(bool, c.edge_undirected))
        node_entries = map(NodeEntry, map(type_at, c.node_types), c.node_versions)
        edge_entries = map(
            EdgeEntry,
            map(type_at, c.edge_types),
            sources,
            targets,
            c.edge_keys,
            undirected,
            c.edge_versions,
        )
        index = cls()
        index.nodes = dict(zip(c.node_keys, node_entries, strict=True))
        index.edges = dict(zip(c.edge_ids, edge_entries, strict=True))
        index.edge_keys = {
            key: edge_id
            for key, edge_id in zip(c.edge_keys, c.edge_ids, strict=True)
            if key is not None
        }
        index._incident = None
        if any(undirected):
            directed = list(map(not_, undirected))
            index._arcs = _counts(list(compress(zip(sources, targets, strict=True), directed)))
            index._links = _counts(
                list(map(_pair, compress(sources, undirected), compress(targets, undirected)))
            )
        else:
            index._arcs = _counts(list(zip(sources, targets, strict=True)))
        return index

    def rows(self) -> dict[str, list[Any]]:
        """The state as rows: the snapshot format before :class:`IndexColumns`."""
        return {
            "nodes": [[key, e.type, e.version] for key, e in self.nodes.items()],
            "edges": [
                [i, e.type, e.source, e.target, e.key, e.undirected, e.version]
                for i, e in self.edges.items()
            ],
        }

    @classmethod
    def from_rows(cls, rows: dict[str, list[Any]]) -> GraphIndex:
        """Rebuild an index from :meth:`rows` (snapshots recorded before
        :class:`IndexColumns` are still read)."""
        index = cls()
        for key, node_type, version in rows["nodes"]:
            index.add_node(key, node_type, version)
        for edge_id, *fields in rows["edges"]:
            index.add_edge(edge_id, EdgeEntry(*fields))
        return index


class Graph(Aggregate):
    """One graph: metadata, status and the node and edge index. See the module doc."""

    TOPIC = "Graph"

    class Event(Aggregate.Event):
        def mutate(self, aggregate: Any) -> Any:
            """As eventsourcing's, except that a gap of versions before this event is
            accepted: a retention pass removes the events of retired calls that a
            version before call trees recorded as the call graph's own nodes
            (:class:`NodesRetired`, docs/retention.md), and ``verify`` tells such a
            retired gap of the stream from a hole by the retirement record."""
            if (
                aggregate is not None
                and self.originator_id == aggregate.id
                and self.originator_version > aggregate.version + 1
            ):
                aggregate.version = self.originator_version - 1
            return super().mutate(aggregate)

    class Created(Event, Aggregate.Created):
        TOPIC = "Graph.Created"
        name: str
        description: str
        graph_type_id: UUID
        graph_type_name: str
        owner_id: str
        project_id: str
        status: GraphStatus

    class StatusChanged(Event):
        TOPIC = "Graph.StatusChanged"
        status: GraphStatus

        def apply(self, aggregate: Graph) -> None:
            aggregate.status = self.status

    class NodeAdded(Event):
        TOPIC = "Graph.NodeAdded"
        key: str
        node_type: str
        attributes: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: Graph) -> None:
            aggregate.index.add_node(self.key, self.node_type, self.originator_version)

    class NodeUpdated(Event):
        """``attributes`` is the node's complete attribute object after the update."""

        TOPIC = "Graph.NodeUpdated"

        key: str
        attributes: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: Graph) -> None:
            aggregate.index.nodes[self.key].version = self.originator_version

    class NodeDeleted(Event):
        """Recorded after one :class:`EdgeDeleted` per edge of the node, in one save."""

        TOPIC = "Graph.NodeDeleted"

        key: str

        def apply(self, aggregate: Graph) -> None:
            aggregate.index.remove_node(self.key)

    class EdgeAdded(Event):
        TOPIC = "Graph.EdgeAdded"
        edge_id: str
        key: str | None
        edge_type: str
        source: str
        target: str
        undirected: bool
        attributes: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: Graph) -> None:
            entry = EdgeEntry(
                self.edge_type,
                self.source,
                self.target,
                self.key,
                self.undirected,
                self.originator_version,
            )
            aggregate.index.add_edge(self.edge_id, entry)

    class EdgeUpdated(Event):
        """``attributes`` is the edge's complete attribute object after the update."""

        TOPIC = "Graph.EdgeUpdated"

        edge_id: str
        attributes: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: Graph) -> None:
            aggregate.index.edges[self.edge_id].version = self.originator_version

    class EdgeDeleted(Event):
        TOPIC = "Graph.EdgeDeleted"
        edge_id: str

        def apply(self, aggregate: Graph) -> None:
            aggregate.index.remove_edge(self.edge_id)

    class NodesRetired(Event):
        """Nodes and edges whose own events a retention pass removed from the stream,
        in the pass's transaction (docs/retention.md): the calls of a retired run that a
        version before call trees recorded as the call graph's nodes. It names keys and
        edge ids only, no attributes: a tombstone. Those still in the index leave it
        (a snapshot taken before the pass still held them)."""

        TOPIC = "Graph.NodesRetired"
        keys: list[str]
        edge_ids: list[str]

        def apply(self, aggregate: Graph) -> None:
            index = aggregate.index
            for edge_id in self.edge_ids:
                if edge_id in index.edges:
                    index.remove_edge(edge_id)
            for key in self.keys:
                if key in index.nodes:
                    index.remove_node(key)

    def __init__(
        self,
        *,
        name: str,
        description: str,
        graph_type_id: UUID,
        graph_type_name: str,
        owner_id: str,
        project_id: str,
        status: GraphStatus,
    ) -> None:
        self.name = name
        self.description = description
        self.graph_type_id = graph_type_id
        self.graph_type_name = graph_type_name
        self.owner_id = owner_id
        self.project_id = project_id
        self.status: GraphStatus = status
        self.index = GraphIndex()

    @classmethod
    def create(
        cls,
        graph_type: GraphType,
        name: str,
        *,
        description: str = "",
        owner_id: str = "",
        project_id: str = "",
        status: GraphStatus = "draft",
    ) -> Graph:
        """A new graph of ``graph_type``, in status ``draft`` (or ``active``)."""
        graph_type.check_usable()
        for what, value in (
            ("graph name", name),
            ("description", description),
            ("owner_id", owner_id),
            ("project_id", project_id),
        ):
            if not isinstance(value, str) or (what == "graph name" and not value.strip()):
                raise ValidationError(
                    f"invalid {what} {value!r}: use a string"
                    + (" with some non-blank text" if what == "graph name" else " ('' for none)")
                )
        if status not in ("draft", "active"):
            raise ValidationError(
                f"a graph cannot be created with status {status!r}: use 'draft' (the "
                "default) or 'active'"
            )
        return cls._create(
            cls.Created,
            name=name,
            description=description,
            graph_type_id=graph_type.id,
            graph_type_name=graph_type.name,
            owner_id=owner_id,
            project_id=project_id,
            status=status,
        )

    # --- reads ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many nodes and edges the graph holds (what a snapshot of it stores)."""
        return len(self.index.nodes) + len(self.index.edges)

    def info(self) -> GraphInfo:
        """This graph as a read value."""
        return GraphInfo(
            id=self.id,
            name=self.name,
            description=self.description,
            graph_type_id=self.graph_type_id,
            graph_type_name=self.graph_type_name,
            status=self.status,
            owner_id=self.owner_id,
            project_id=self.project_id,
            node_count=len(self.index.nodes),
            edge_count=len(self.index.edges),
            version=self.version,
        )

    def node(self, key: str) -> NodeEntry:
        """The index entry of node ``key``, or :class:`NotFoundError`."""
        found = self.index.nodes.get(key) if isinstance(key, str) else None
        if found is None:
            raise NotFoundError(
                f"graph {self.name!r} ({self.id}) has no node with key {key!r}; add the "
                "node first, or check the key",
                kind="node",
                name=str(key),
            )
        return found

    def edge(self, edge_id: str) -> EdgeEntry:
        """The index entry of edge ``edge_id``, or :class:`NotFoundError`."""
        found = self.index.edges.get(edge_id) if isinstance(edge_id, str) else None
        if found is None:
            raise NotFoundError(
                f"graph {self.name!r} ({self.id}) has no edge with id {edge_id!r}; use the "
                "id add_edge returned (or find_edge for a keyed edge)",
                kind="edge",
                name=str(edge_id),
            )
        return found

    def edge_id_for_key(self, key: str) -> str:
        """The id of the edge with caller key ``key``, or :class:`NotFoundError`."""
        found = self.index.edge_keys.get(key) if isinstance(key, str) else None
        if found is None:
            raise NotFoundError(
                f"graph {self.name!r} ({self.id}) has no edge with key {key!r}",
                kind="edge",
                name=str(key),
            )
        return found

    # --- commands ------------------------------------------------------------------

    def _check_writable(self, graph_type: GraphType) -> None:
        if graph_type.id != self.graph_type_id:
            raise ValueError(f"graph {self.id} is not of graph type {graph_type.id}")
        if self.status == "archived":
            raise GraphArchivedError(
                f"graph {self.name!r} ({self.id}) is archived, and archived graphs are "
                "read-only for good; write to an active or draft graph instead"
            )
        graph_type.check_usable()

    def set_status(self, status: GraphStatus) -> None:
        """Move to ``status`` along :data:`~domain.values.STATUS_TRANSITIONS`."""
        allowed = STATUS_TRANSITIONS.get(self.status, frozenset())
        if status not in allowed:
            raise StatusTransitionError(
                f"graph {self.name!r} ({self.id}) cannot go from {self.status!r} to "
                f"{status!r}; allowed from {self.status!r}: "
                f"{sorted(allowed) or 'nothing (archived is final)'}"
            )
        self.trigger_event(self.StatusChanged, status=status)

    def add_node(
        self, graph_type: GraphType, key: str, node_type: str, attributes: dict[str, Any]
    ) -> None:
        """Add node ``key`` of ``node_type`` with ``attributes`` (see the write rules)."""
        self._check_writable(graph_type)
        check_key(key, what="node key")
        spec = graph_type.node_type(node_type)
        if key in self.index.nodes:
            raise DuplicateError(
                f"graph {self.name!r} already has a node with key {key!r} (of type "
                f"{self.index.nodes[key].type!r}); use another key, or update_node to "
                "change it"
            )
        what = f"node {key!r} of type {node_type!r}"
        check_attributes(attributes, what=what)
        graph_type.node_schema(spec).validate(attributes, what=what)
        self.trigger_event(
            self.NodeAdded,
            key=key,
            node_type=node_type,
            attributes=attributes,
            schema_version=spec.schema_version,
        )

    def update_node(
        self,
        graph_type: GraphType,
        key: str,
        attributes: dict[str, Any],
        mode: UpdateMode,
        attributes_at: AttributesAt,
    ) -> None:
        """Merge (top-level keys of ``attributes`` win) or replace a node's attributes.

        The result must match the node type's CURRENT schema.
        """
        self._check_writable(graph_type)
        _check_mode(mode)
        entry = self.node(key)
        spec = graph_type.node_type(entry.type)
        what = f"node {key!r} of type {entry.type!r}"
        check_attributes(attributes, what=what)
        if mode == "merge":
            attributes = {**attributes_at(entry.version), **attributes}
        graph_type.node_schema(spec).validate(attributes, what=what)
        self.trigger_event(
            self.NodeUpdated, key=key, attributes=attributes, schema_version=spec.schema_version
        )

    def delete_node(self, key: str, graph_type: GraphType) -> list[str]:
        """Delete node ``key`` and, first, every edge touching it; returns their ids."""
        self._check_writable(graph_type)
        self.node(key)
        edge_ids = self.index.incident(key)
        for edge_id in edge_ids:
            self.trigger_event(self.EdgeDeleted, edge_id=edge_id)
        self.trigger_event(self.NodeDeleted, key=key)
        return edge_ids

    def retire_nodes(self, keys: list[str], edge_ids: list[str]) -> None:
        """Record that the events of nodes ``keys`` and edges ``edge_ids`` were removed
        by a retention pass (:class:`NodesRetired`); no write rule applies: an archived
        graph's retired calls go too. Edges touching ``keys`` go with them."""
        incident = {e for key in keys if key in self.index.nodes for e in self.index.incident(key)}
        edges = sorted(incident | {e for e in edge_ids if e in self.index.edges})
        self.trigger_event(self.NodesRetired, keys=sorted(keys), edge_ids=edges)

    def add_edge(
        self,
        graph_type: GraphType,
        edge_type: str,
        source: str,
        target: str,
        attributes: dict[str, Any],
        *,
        key: str | None = None,
        undirected: bool | None = None,
    ) -> str:
        """Add an edge source->target (see the write rules); returns its new id.

        ``undirected`` defaults to the graph type's kind (``False`` for mixed).
        """
        self._check_writable(graph_type)
        if key is not None:
            check_key(key, what="edge key")
        spec = graph_type.edge_type(edge_type)
        source_type, target_type = self.node(source).type, self.node(target).type
        if key is not None and key in self.index.edge_keys:
            raise DuplicateError(
                f"graph {self.name!r} already has an edge with key {key!r} (id "
                f"{self.index.edge_keys[key]}); use another key, or update_edge"
            )
        undirected = _direction(graph_type.config, undirected)
        if source == target and not graph_type.config.allow_self_loops:
            raise ValidationError(
                f"an edge of type {edge_type!r} from {source!r} to itself is a self-loop, "
                f"and graph type {graph_type.name!r} does not allow self-loops "
                "(allowSelfLoops: false); connect two different nodes"
            )
        _check_endpoint_types(spec, source_type, target_type, undirected=undirected)
        if not graph_type.config.multi and self.index.joined(source, target, undirected=undirected):
            raise ParallelEdgeError(
                f"graph {self.name!r} already has an edge between {source!r} and "
                f"{target!r}, and its graph type {graph_type.name!r} does not allow parallel "
                "edges (multi: false); update the existing edge instead"
            )
        what = f"edge {key or f'{source}->{target}'!r} of type {edge_type!r}"
        check_attributes(attributes, what=what)
        graph_type.edge_schema(spec).validate(attributes, what=what)
        edge_id = str(uuid4())
        self.trigger_event(
            self.EdgeAdded,
            edge_id=edge_id,
            key=key,
            edge_type=edge_type,
            source=source,
            target=target,
            undirected=undirected,
            attributes=attributes,
            schema_version=spec.schema_version,
        )
        return edge_id

    def update_edge(
        self,
        graph_type: GraphType,
        edge_id: str,
        attributes: dict[str, Any],
        mode: UpdateMode,
        attributes_at: AttributesAt,
    ) -> None:
        """Merge or replace an edge's attributes, as :meth:`update_node` does."""
        self._check_writable(graph_type)
        _check_mode(mode)
        entry = self.edge(edge_id)
        spec = graph_type.edge_type(entry.type)
        what = f"edge {entry.key or edge_id!r} of type {entry.type!r}"
        check_attributes(attributes, what=what)
        if mode == "merge":
            attributes = {**attributes_at(entry.version), **attributes}
        graph_type.edge_schema(spec).validate(attributes, what=what)
        self.trigger_event(
            self.EdgeUpdated,
            edge_id=edge_id,
            attributes=attributes,
            schema_version=spec.schema_version,
        )

    def delete_edge(self, edge_id: str, graph_type: GraphType) -> None:
        """Delete one edge."""
        self._check_writable(graph_type)
        self.edge(edge_id)
        self.trigger_event(self.EdgeDeleted, edge_id=edge_id)


def _check_mode(mode: object) -> None:
    if mode not in _MODES:
        raise ValidationError(f"invalid update mode {mode!r}: use 'merge' or 'replace'")


def _direction(config: GraphConfig, undirected: bool | None) -> bool:
    if undirected is None:
        return config.graph_type == "undirected"
    if not isinstance(undirected, bool):
        raise ValidationError(f"invalid undirected flag {undirected!r}: use True, False or None")
    if config.graph_type == "directed" and undirected:
        raise ValidationError(
            "an undirected edge cannot be added to a graph whose type is directed; omit "
            "undirected (or pass False), or use a mixed or undirected graph type"
        )
    if config.graph_type == "undirected" and not undirected:
        raise ValidationError(
            "a directed edge cannot be added to a graph whose type is undirected; omit "
            "undirected (or pass True), or use a mixed or directed graph type"
        )
    return undirected


def _allows(allowed: tuple[str, ...], node_type: str) -> bool:
    return not allowed or node_type in allowed


def _check_endpoint_types(
    spec: EdgeTypeDef, source_type: str, target_type: str, *, undirected: bool
) -> None:
    src, tgt = spec.allowed_source_types, spec.allowed_target_types
    if _allows(src, source_type) and _allows(tgt, target_type):
        return
    if undirected and _allows(src, target_type) and _allows(tgt, source_type):
        return
    raise ValidationError(
        f"edge type {spec.name!r} does not allow an edge from a {source_type!r} node to a "
        f"{target_type!r} node: sources may be {list(src) or 'any type'}, targets "
        f"{list(tgt) or 'any type'}; connect nodes of those types or use another edge type"
    )


register_module(__name__, globals())  # its legacy event names (domain/names.py)
