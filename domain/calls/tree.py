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
    "added_attributes",
    "apply_change",
    "change_of",
    "default_links",
    "derived_times",
    "entry_type",
    "ref_id",
    "request_of",
    "stored_change",
    "stored_entries",
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


_ENDED: Final = frozenset({"completed", "failed", "aborted"})
_TIMES: Final[tuple[str, ...]] = ("startedAt", "completedAt")


def derived_times(
    changes: Mapping[str, Any] | None,
    appended: Mapping[str, Sequence[Any]] | None,
    *,
    started: bool,
    completed: bool,
) -> dict[str, Any]:
    """The ``startedAt`` and ``completedAt`` a ``CallTree.CallUpdated`` stores none of
    (since 1efdefa: docs/events.md), derived from its ``events`` entry (the last one
    it appends) for a call that had none (``started``, ``completed``: whether it had
    them): ``startedAt`` is the ``at`` of a ``call.responded`` (the first output), and
    ``completedAt`` the ``at`` of the event that gave the call an ended status. What
    the update stores wins; an update that appends no event derives nothing."""
    entries = (appended or {}).get("events")
    if not entries or not isinstance(entries[-1], dict) or "at" not in entries[-1]:
        return {}
    entry, stored = entries[-1], changes or {}
    kind = entry.get("type") or entry_type(changes, appended)
    times: dict[str, Any] = {}
    if not started and "startedAt" not in stored and kind == "call.responded":
        times["startedAt"] = entry["at"]
    if not completed and "completedAt" not in stored and stored.get("status") in _ENDED:
        times["completedAt"] = entry["at"]
    return times


def entry_type(
    changes: Mapping[str, Any] | None, appended: Mapping[str, Sequence[Any]] | None
) -> str:
    """The ``type`` of the ``events`` entry a ``CallTree.CallUpdated`` appends and
    stores without one (since 1efdefa), from what it changed: an ``error`` is a
    ``call.error``, the status ``aborted`` a ``call.aborted``, an ``output`` (set or
    appended) a ``call.responded``, anything else a ``call.completed``."""
    stored, grown = changes or {}, appended or {}
    if "error" in stored:
        return "call.error"
    if stored.get("status") == "aborted":
        return "call.aborted"
    if "output" in stored or "output" in grown:
        return "call.responded"
    return "call.completed"


def _typed_entries(
    changes: Mapping[str, Any] | None, appended: Mapping[str, Sequence[Any]] | None
) -> Mapping[str, Sequence[Any]] | None:
    """``appended`` with the ``type`` of its last ``events`` entry put back if absent."""
    entries = (appended or {}).get("events")
    if not entries or not isinstance(entries[-1], dict) or "type" in entries[-1]:
        return appended
    last = dict(entries[-1])
    typed = {"id": last.pop("id", None), "type": entry_type(changes, appended), **last}
    return {**(appended or {}), "events": [*entries[:-1], typed]}


def apply_change(
    old: Mapping[str, Any],
    changes: Mapping[str, Any] | None,
    appended: Mapping[str, Sequence[Any]] | None,
) -> dict[str, Any]:
    """A call's attributes after a ``CallTree.CallUpdated`` that stored ``changes`` and
    ``appended`` (:func:`change_of`), with the times it leaves out
    (:func:`derived_times`); ``old`` is not modified."""
    appended = _typed_entries(changes, appended)
    times = derived_times(
        changes, appended, started="startedAt" in old, completed="completedAt" in old
    )
    new = {**old, **(changes or {}), **times}
    for name, items in (appended or {}).items():
        new[name] = [*new.get(name, ()), *items]
    return new


def stored_change(
    old: Mapping[str, Any], changes: dict[str, Any], appended: Mapping[str, Sequence[Any]]
) -> dict[str, Any]:
    """``changes`` (:func:`change_of`) without the times :func:`derived_times` gives
    back. Raises ``ValueError`` if it would derive a time the call does not have (the
    rules of docs/calls.md always set them)."""
    rest = {k: v for k, v in changes.items() if k not in _TIMES}
    times = derived_times(
        rest, appended, started="startedAt" in old, completed="completedAt" in old
    )
    for name in times:
        if name not in changes:
            # Keys only: the values may hold a call's input or output (personal data).
            raise ValueError(
                f"a call update would derive {name} it does not set (it sets {sorted(changes)})"
            )
    kept = {k: changes[k] for k in _TIMES if k in changes and times.get(k, _ABSENT) != changes[k]}
    return {**rest, **kept}


def stored_entries(
    changes: Mapping[str, Any], appended: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """``appended`` (:func:`change_of`) with its last ``events`` entry stored without
    the ``type`` that :func:`entry_type` gives back."""
    entries = appended.get("events")
    if not entries or not isinstance(entries[-1], dict):
        return appended
    last = entries[-1]
    if last.get("type") != entry_type(changes, appended) or "id" not in last:
        return appended
    untyped = {k: v for k, v in last.items() if k != "type"}
    return {**appended, "events": [*entries[:-1], untyped]}


def default_links(key: str, parent: str | None) -> list[list[str]]:
    """The ``links`` a ``CallTree.CallAdded`` that stores none stands for: the
    ``triggered`` edge from its parent ``parent`` (its ``parentRequestId``) when it has
    one. A call whose links differ (its parent not recorded yet, children waiting for
    it) stores its links; one written before they were left out stores them always."""
    return [] if parent is None else [[parent, key]]


_DERIVED_ON_REQUEST: Final = ("operationType", "status", "requestedAt", "events")


def request_of(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """What ``CallTree.CallAdded`` stores of a new call's ``attributes`` (its
    ``request``): the ``call.requested`` payload as given, with the event's ``id`` and
    ``at``, and ``operationType`` only when it is not ``query``; what the rules add on a
    request (``status`` ``pending``, ``requestedAt``, the first ``events`` entry) is left
    out and derived again by :func:`added_attributes`. ``None`` when the attributes are
    not exactly those (a call recorded aborted under an aborted ancestor): the event
    then stores them whole."""
    events = attributes.get("events")
    if (
        attributes.get("status") != "pending"
        or "at" in attributes
        or "id" in attributes
        or not isinstance(events, list)
        or len(events) != 1
    ):
        return None
    first = events[0]
    if not isinstance(first, dict) or first.get("type") != "call.requested" or len(first) != 3:
        return None
    request = {k: v for k, v in attributes.items() if k not in _DERIVED_ON_REQUEST}
    if attributes.get("operationType") != "query":
        request["operationType"] = attributes.get("operationType")
    request["id"] = first.get("id")
    request["at"] = first.get("at")
    return request if added_attributes(request) == attributes else None


def added_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    """A call's attributes from the ``request`` its ``CallTree.CallAdded`` stores
    (:func:`request_of`), as the rules made them when the call was requested: the one
    derivation the aggregate, the projections, replay and the change subscriptions use.
    Raises ``KeyError`` when ``request`` lacks ``requestId``, ``operationId``, ``id``
    or ``at``."""
    fields = dict(request)
    at, event_id = fields.pop("at"), fields.pop("id")
    return {
        "requestId": fields["requestId"],
        "operationId": fields["operationId"],
        "operationType": fields.pop("operationType", "query"),
        "status": "pending",
        **fields,
        "requestedAt": at,
        "events": [{"id": event_id, "type": "call.requested", "at": at}],
    }


class CallTree(Aggregate):
    """The calls of one workflow run: attributes and children of each."""

    TOPIC = "CallTree"

    class Event(Aggregate.Event):
        TIMESTAMP_FROM_RECORD = True
        """Its ``timestamp`` is not written: read back, it is the envelope's ``time``
        (when it was recorded, to the millisecond; streams.mapper, docs/events.md)."""

    class Started(Event, Aggregate.Created):
        TOPIC = "CallTree.Started"
        graph_id: UUID
        first: str

    Created = Started  # eventsourcing's name for the created event (docs/events.md)

    class CallAdded(Event):
        """A new call: its ``request`` as given (:func:`request_of`; the call's
        attributes are :func:`added_attributes` of it), or, when they are not derivable
        from it, and in events written before (until 1efdefa), its complete
        ``attributes``. ``links`` are the ``triggered`` edges (parent, child) that exist
        from this event on: to its recorded parent, from it to the children that were
        waiting for it; ``None`` (not stored) when they are :func:`default_links` (see
        :meth:`triggered`)."""

        TOPIC = "CallTree.CallAdded"
        OMITTED_IF_NONE = ("attributes", "links", "refs", "request")  # not written while None
        DERIVED_FIELDS = (  # not written: derivable (streams.mapper)
            ("key", "attributes", "requestId"),
            ("key", "request", "requestId"),
        )
        key: str
        attributes: dict[str, Any] | None = None
        links: list[list[str]] | None = None
        refs: list[str] | None = None
        """The calls' references this event files (their ids, :func:`ref_id`, as 32 hex
        digits): the stream indexes the event under each (docs/events.md). ``None``
        before references were index rows, or when a ``CallRef.Filed`` was stored."""
        request: dict[str, Any] | None = None

        def call_attributes(self) -> dict[str, Any]:
            """The call's attributes when it was added."""
            if self.attributes is not None:
                return self.attributes
            return added_attributes(self.request or {})

        def apply(self, aggregate: CallTree) -> None:
            attributes = self.call_attributes()
            aggregate.calls[self.key] = attributes
            parent = attributes.get("parentRequestId")
            if parent is not None:
                aggregate.adopt(parent, self.key)

        def triggered(self) -> list[list[str]]:
            """The ``triggered`` edges (parent, child) that exist from this event on."""
            if self.links is not None:
                return self.links
            parent = (self.attributes or self.request or {}).get("parentRequestId")
            return default_links(self.key, parent)

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
        request = request_of(attributes)
        self.trigger_event(
            self.CallAdded,
            key=key,
            attributes=None if request is not None else attributes,
            links=stored,
            refs=refs or None,
            request=request,
        )

    def update_call(self, key: str, attributes: dict[str, Any]) -> None:
        """Record that call ``key`` now has ``attributes``: only the difference is stored
        (see :func:`change_of`)."""
        old = self.calls[key]
        changes, appended = change_of(old, attributes)
        changes = stored_change(old, changes, appended)
        appended = stored_entries(changes, appended)
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
