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

from collections.abc import Mapping, Sequence
from typing import Any, Final
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

__all__ = [
    "CALLS_NAMESPACE",
    "CallIndex",
    "CallRef",
    "CallTree",
    "apply_change",
    "change_of",
    "default_links",
    "ref_id",
    "tree_id",
]

CALLS_NAMESPACE: Final = uuid5(NAMESPACE_URL, "https://graphstore.invalid/calls")
"""The namespace of the fixed ids below (changing it would orphan every call)."""


def ref_id(request_id: str) -> UUID:
    """The id of the :class:`CallRef` of ``request_id``."""
    return uuid5(CALLS_NAMESPACE, "call:" + request_id)


def tree_id(first: str) -> UUID:
    """The id of the :class:`CallTree` started by the call ``first``."""
    return uuid5(CALLS_NAMESPACE, "tree:" + first)


INDEX_ID: Final = uuid5(CALLS_NAMESPACE, "index")
_ABSENT: Final = object()


def change_of(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """What ``CallTree.CallUpdated`` stores to take a call from ``old`` to ``new``
    attributes: the fields whose value changed (``status`` always, so that a reader of
    one event knows the call's status), and the list fields that only grew at their end,
    as the items added. The rules of docs/calls.md only add and replace fields, never
    remove one: a field missing from ``new`` is a ``ValueError``."""
    missing = [name for name in old if name not in new]
    if missing:
        raise ValueError(f"a call update cannot remove fields, got {missing}")
    changes: dict[str, Any] = {}
    appended: dict[str, list[Any]] = {}
    for name, value in new.items():
        before = old.get(name, _ABSENT)
        if name == "status":
            changes[name] = value
        elif before is value or before == value:
            continue
        elif (
            isinstance(before, list)
            and isinstance(value, list)
            and len(value) > len(before)
            and value[: len(before)] == before
        ):
            appended[name] = value[len(before) :]
        else:
            changes[name] = value
    return changes, appended


def apply_change(
    old: Mapping[str, Any],
    changes: Mapping[str, Any] | None,
    appended: Mapping[str, Sequence[Any]] | None,
) -> dict[str, Any]:
    """A call's attributes after a ``CallTree.CallUpdated`` that stored ``changes`` and
    ``appended`` (:func:`change_of`); ``old`` is not modified."""
    new = {**old, **(changes or {})}
    for name, items in (appended or {}).items():
        new[name] = [*new.get(name, ()), *items]
    return new


def default_links(key: str, parent: str | None) -> list[list[str]]:
    """The ``links`` a ``CallTree.CallAdded`` that stores none stands for: the
    ``triggered`` edge from its parent ``parent`` (its ``parentRequestId``) when it has
    one. A call whose links differ (its parent not recorded yet, children waiting for
    it) stores its links; one written before they were left out stores them always."""
    return [] if parent is None else [[parent, key]]


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
        from it to the children that were waiting for it; ``None`` (not stored) when
        they are :func:`default_links` (see :meth:`triggered`)."""

        TOPIC = "CallTree.CallAdded"
        OMITTED_IF_NONE = ("links", "refs")  # not written while None (streams.mapper)
        DERIVED_FIELDS = (("key", "attributes", "requestId"),)  # not written: derivable
        key: str
        attributes: dict[str, Any]
        links: list[list[str]] | None = None
        refs: list[str] | None = None
        """The calls' references this event files (their ids, :func:`ref_id`, as 32 hex
        digits): the stream indexes the event under each (docs/events.md). ``None``
        before references were index rows, or when a ``CallRef.Filed`` was stored."""

        def apply(self, aggregate: CallTree) -> None:
            aggregate.calls[self.key] = self.attributes
            parent = self.attributes.get("parentRequestId")
            if parent is not None:
                aggregate.adopt(parent, self.key)

        def triggered(self) -> list[list[str]]:
            """The ``triggered`` edges (parent, child) that exist from this event on."""
            if self.links is not None:
                return self.links
            return default_links(self.key, self.attributes.get("parentRequestId"))

    class CallUpdated(Event):
        """What changed in a call, and only that (issue 17): ``changes``, the fields
        given a new value (the status, always, and the output, error and times that
        changed); ``appended``, the items added at the end of a list field (the entry
        of ``events``, a subscription's next ``output``); see :func:`change_of`. Events
        written before issue 17 carry instead the call's complete ``attributes`` (and
        no changes); both still read."""

        TOPIC = "CallTree.CallUpdated"
        OMITTED_IF_NONE = ("appended", "attributes")  # not written while None
        key: str
        changes: dict[str, Any] | None = None
        appended: dict[str, list[Any]] | None = None
        attributes: dict[str, Any] | None = None

        def apply(self, aggregate: CallTree) -> None:
            if self.attributes is not None:
                aggregate.calls[self.key] = self.attributes
            else:
                old = aggregate.calls[self.key]
                aggregate.calls[self.key] = apply_change(old, self.changes, self.appended)

    class CallImported(Event):
        """A call recorded by an older version in the call graph's own nodes, copied in
        by the upgrade (its node and edges already exist in the stream)."""

        TOPIC = "CallTree.CallImported"
        OMITTED_IF_NONE = ("refs",)  # not written while None
        key: str
        attributes: dict[str, Any]
        refs: list[str] | None = None
        """As :attr:`CallAdded.refs`."""

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

    def add_call(
        self,
        key: str,
        attributes: dict[str, Any],
        links: list[list[str]],
        refs: list[str] | None = None,
    ) -> None:
        stored = None if links == default_links(key, attributes.get("parentRequestId")) else links
        self.trigger_event(
            self.CallAdded, key=key, attributes=attributes, links=stored, refs=refs or None
        )

    def update_call(self, key: str, attributes: dict[str, Any]) -> None:
        """Record that call ``key`` now has ``attributes``: only the difference is stored
        (see :func:`change_of`)."""
        changes, appended = change_of(self.calls[key], attributes)
        if appended:
            self.trigger_event(self.CallUpdated, key=key, changes=changes, appended=appended)
        else:
            self.trigger_event(self.CallUpdated, key=key, changes=changes)

    def import_call(
        self, key: str, attributes: dict[str, Any], refs: list[str] | None = None
    ) -> None:
        if refs:
            self.trigger_event(self.CallImported, key=key, attributes=attributes, refs=refs)
        else:
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
