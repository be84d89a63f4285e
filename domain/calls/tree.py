"""Where calls are recorded: call trees, one small reference per call, the call index.

The tenant's call graph is partitioned so that writing a call costs what its workflow
run costs, never what the tenant's history costs:

- :class:`CallTree` holds the calls of one workflow run (the tree under one root call):
  each call's attributes and each call's children. It is the consistency boundary of
  the call rules (cycles, the abort cascade, children waiting for their parent), so
  writers of one run conflict and retry, and writers of different runs never meet.
- :class:`CallRef` (one per requestId, a fixed id derived from it) says which tree holds
  the call: one indexed read finds a call without loading anything else. Its creation
  is also what makes a requestId unique: two writers filing the same call conflict on
  its first version.
- :class:`CallIndex` (one per tenant, a fixed id) names the tenant's call graph, so no
  process scans the stream to find it.

A tree is started by the first call of a run that arrives. A call whose parent has not
arrived yet files a reference for the parent, pointing at the child's tree (a
*placeholder*): the parent joins that tree when it comes. Only when two parts of a run
were started apart (siblings' subtrees both arriving before their common parent) does
a run span two trees; the parent's tree then records the other part's head as a child
(:class:`CallTree.ChildLinked`), and the rules follow the link like any other.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

__all__ = ["CALLS_NAMESPACE", "CallIndex", "CallRef", "CallTree", "ref_id", "tree_id"]

CALLS_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://graphstore.invalid/calls")
"""The namespace of the fixed ids below (changing it would orphan every call)."""


def ref_id(request_id: str) -> UUID:
    """The id of the :class:`CallRef` of ``request_id``."""
    return uuid5(CALLS_NAMESPACE, "call:" + request_id)


def tree_id(first: str) -> UUID:
    """The id of the :class:`CallTree` started by the call ``first``."""
    return uuid5(CALLS_NAMESPACE, "tree:" + first)


INDEX_ID: Final = uuid5(CALLS_NAMESPACE, "index")


class CallTree(Aggregate):
    """The calls of one workflow run: attributes and children of each."""

    TOPIC = "CallTree"

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "CallTree.Started"
        graph_id: UUID
        first: str

    Created = Started  # eventsourcing's name for the created event (docs/events.md)

    class CallAdded(Event):
        """A new call, with its complete attributes. ``links`` are the ``triggered``
        edges (parent, child) that exist from this event on: to its recorded parent,
        from it to the children that were waiting for it."""

        TOPIC = "CallTree.CallAdded"
        key: str
        attributes: dict[str, Any]
        links: list[list[str]]

        def apply(self, aggregate: CallTree) -> None:
            aggregate.calls[self.key] = self.attributes
            parent = self.attributes.get("parentRequestId")
            if parent is not None:
                aggregate.adopt(parent, self.key)

    class CallUpdated(Event):
        """A call's complete attributes after a change."""

        TOPIC = "CallTree.CallUpdated"
        key: str
        attributes: dict[str, Any]

        def apply(self, aggregate: CallTree) -> None:
            aggregate.calls[self.key] = self.attributes

    class CallImported(Event):
        """A call recorded by an older version in the call graph's own nodes, copied in
        by the upgrade (its node and edges already exist in the stream)."""

        TOPIC = "CallTree.CallImported"
        key: str
        attributes: dict[str, Any]

        def apply(self, aggregate: CallTree) -> None:
            aggregate.calls[self.key] = self.attributes
            parent = self.attributes.get("parentRequestId")
            if parent is not None:
                aggregate.adopt(parent, self.key)

    class ChildLinked(Event):
        """``child``, recorded in another tree, is a child of ``parent`` (here)."""

        TOPIC = "CallTree.ChildLinked"
        parent: str
        child: str

        def apply(self, aggregate: CallTree) -> None:
            aggregate.adopt(self.parent, self.child)

    def __init__(self, *, graph_id: UUID, first: str) -> None:
        self.graph_id = graph_id
        self.first = first
        self.calls: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[str]] = {}

    @classmethod
    def start(cls, graph_id: UUID, first: str) -> CallTree:
        """A new tree for the run that ``first`` is the first call of to arrive."""
        return cls._create(cls.Started, id=tree_id(first), graph_id=graph_id, first=first)

    def adopt(self, parent: str, child: str) -> None:
        kids = self.children.setdefault(parent, [])
        if child not in kids:
            kids.append(child)

    def add_call(self, key: str, attributes: dict[str, Any], links: list[list[str]]) -> None:
        self.trigger_event(self.CallAdded, key=key, attributes=attributes, links=links)

    def update_call(self, key: str, attributes: dict[str, Any]) -> None:
        self.trigger_event(self.CallUpdated, key=key, attributes=attributes)

    def import_call(self, key: str, attributes: dict[str, Any]) -> None:
        self.trigger_event(self.CallImported, key=key, attributes=attributes)

    def link_child(self, parent: str, child: str) -> None:
        if child not in self.children.get(parent, ()):
            self.trigger_event(self.ChildLinked, parent=parent, child=child)


class CallRef(Aggregate):
    """Which tree holds a call (or will hold it: a parent that children wait for)."""

    TOPIC = "CallRef"

    class Event(Aggregate.Event):
        pass

    class Filed(Event, Aggregate.Created):
        TOPIC = "CallRef.Filed"
        tree_id: UUID

    Created = Filed

    def __init__(self, *, tree_id: UUID) -> None:
        self.tree_id = tree_id

    @classmethod
    def file(cls, request_id: str, tree: UUID) -> CallRef:
        return cls._create(cls.Filed, id=ref_id(request_id), tree_id=tree)


class CallIndex(Aggregate):
    """The tenant's call graph (its id), recorded once."""

    TOPIC = "CallIndex"

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        """``imported``: calls an older version had recorded, copied into trees."""

        TOPIC = "CallIndex.Started"
        graph_id: UUID
        imported: int

    Created = Started

    def __init__(self, *, graph_id: UUID, imported: int) -> None:
        self.graph_id = graph_id
        self.imported = imported

    @classmethod
    def start(cls, graph_id: UUID, imported: int) -> CallIndex:
        return cls._create(cls.Started, id=INDEX_ID, graph_id=graph_id, imported=imported)
