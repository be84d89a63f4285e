"""The call graph's own events of a tenant written before call trees, per call.

An older version recorded each call as a node of the tenant's call graph
(``Graph.NodeAdded`` with the call's input, ``NodeUpdated``, ``triggered`` edges). The
first call write copies those calls into call trees (docs/calls.md, "Upgrading"), but
the graph's events stay, holding the inputs. A retention pass or an erasure of such a
run removes them too (:mod:`graphstore.retention`): :class:`LegacyGraph` says which of
the graph's events belong to which calls, read once per pass (its cost is the legacy
graph's size, once; a tenant without imported calls pays one read).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import msgspec

from domain import Metagraph, UnitOfWork
from domain.calls.tree import INDEX_ID, CallIndex
from domain.graphs import Graph
from streams import HonkerDatastore
from streams.index import id_key, index_table

__all__ = ["LegacyCalls", "LegacyGraph"]


class LegacyCalls(msgspec.Struct, frozen=True, kw_only=True):
    """What of some calls the legacy call graph ``graph_id`` holds: their node ``keys``,
    the ``edge_ids`` touching them, and the stream ``offsets`` of all their events."""

    graph_id: UUID
    keys: list[str]
    edge_ids: list[str]
    offsets: list[int]


class LegacyGraph:
    """The legacy call graph's events by call key and by edge, with their offsets."""

    def __init__(
        self,
        graph_id: UUID,
        nodes: dict[str, list[int]],
        edges: dict[str, tuple[str, str, list[int]]],
    ) -> None:
        self.graph_id = graph_id
        self.nodes = nodes
        self.edges = edges
        self._touching: dict[str, list[str]] = {}
        for edge_id, (source, target, _) in edges.items():
            for end in {source, target}:
                self._touching.setdefault(end, []).append(edge_id)

    @classmethod
    def read(
        cls, metagraph: Metagraph, unit: UnitOfWork, datastore: HonkerDatastore, stream: str
    ) -> LegacyGraph | None:
        """The tenant's legacy call graph, or None when its calls were never recorded
        as graph nodes (no call index, or one that imported no calls)."""
        index = unit.load(INDEX_ID, CallIndex)
        if index is None or not index.imported:
            return None
        rows = datastore.query(
            f'SELECT originator_version AS v, "offset" FROM "{index_table(stream)}" '
            "WHERE originator_id = ?",
            [id_key(index.graph_id)],
        )
        offset_of = {int(row["v"]): int(row["offset"]) for row in rows}
        nodes: dict[str, list[int]] = {}
        edges: dict[str, tuple[str, str, list[int]]] = {}
        for event in metagraph.repository.event_store.get(index.graph_id):
            offset = offset_of.get(int(event.originator_version))
            if offset is None:
                continue
            if isinstance(event, Graph.NodeAdded | Graph.NodeUpdated | Graph.NodeDeleted):
                nodes.setdefault(event.key, []).append(offset)
            elif isinstance(event, Graph.EdgeAdded):
                edges[event.edge_id] = (event.source, event.target, [offset])
            elif isinstance(event, Graph.EdgeUpdated | Graph.EdgeDeleted):
                found = edges.get(event.edge_id)
                if found is not None:
                    found[2].append(offset)
        return cls(index.graph_id, nodes, edges)

    def of(self, calls: Iterable[str]) -> LegacyCalls | None:
        """The legacy events of ``calls`` (and of every edge touching them), or None."""
        keys = sorted({key for key in calls if key in self.nodes})
        if not keys:
            return None
        edge_ids = sorted({e for key in keys for e in self._touching.get(key, ())})
        offsets = [o for key in keys for o in self.nodes[key]]
        offsets += [o for edge_id in edge_ids for o in self.edges[edge_id][2]]
        return LegacyCalls(
            graph_id=self.graph_id, keys=keys, edge_ids=edge_ids, offsets=sorted(set(offsets))
        )

    def forget(self, removed: LegacyCalls) -> None:
        """These calls' events are removed (committed): they are no one's any more."""
        for key in removed.keys:
            self.nodes.pop(key, None)
        for edge_id in removed.edge_ids:
            self.edges.pop(edge_id, None)
        for edge_ids in self._touching.values():
            edge_ids[:] = [e for e in edge_ids if e not in removed.edge_ids]
