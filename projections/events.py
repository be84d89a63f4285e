"""The domain events the projections read, declared once: their stable names and shapes.

Each class is the typed shape of one event's ``data`` in the stream envelope (the field
names of docs/domain.md and docs/events.md), decoded straight from JSON with msgspec:
unknown fields are skipped, attributes, schemas and configs stay the JSON text the
event carries (``msgspec.Raw``). The metagraph projection, the flowgraph projection,
replay and change subscriptions all decode with these, so a change to an event's shape
is made here, once. :class:`AnyGraphEvent` and :class:`AnyEvent` are the lenient
shapes of readers that look at several event types with one decoder.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final
from uuid import UUID

import msgspec

from projections._stream import VersionedEvent
from projections.errors import EventNotProjectableError
from streams.retirement import RETIREMENT_TYPE

__all__ = [
    "CALL_ADDED",
    "CALL_EVENTS",
    "CALL_IMPORTED",
    "CALL_UPDATED",
    "CREATED",
    "GRAPH_TOPIC",
    "GRAPH_TYPE_TOPIC",
    "NODE_ADDED",
    "NODE_DELETED",
    "NODE_UPDATED",
    "RUNS_RETIRED",
    "TREE_TOPIC",
    "AnyEvent",
    "AnyGraphEvent",
    "CallAdded",
    "CallChanged",
    "Created",
    "Defined",
    "Deleted",
    "EdgeAdded",
    "EdgeDeleted",
    "EdgeTypeAdded",
    "EdgeUpdated",
    "Event",
    "FoldedEvent",
    "NodeAdded",
    "NodeDeleted",
    "NodeTypeAdded",
    "NodeUpdated",
    "NodesRetired",
    "RunsRetired",
    "SchemaEvolved",
    "StatusChanged",
    "Tagged",
    "UuidHex",
    "added_raw",
    "attributes_after",
    "call_key",
]

GRAPH_TYPE_TOPIC: Final = "GraphType."
GRAPH_TOPIC: Final = "Graph."
TREE_TOPIC: Final = "CallTree."
CREATED: Final = GRAPH_TOPIC + "Created"
RUNS_RETIRED: Final = RETIREMENT_TYPE
"""The retirement record (:mod:`streams.retirement`): its runs' rows go."""
NODE_ADDED: Final = GRAPH_TOPIC + "NodeAdded"
NODE_UPDATED: Final = GRAPH_TOPIC + "NodeUpdated"
NODE_DELETED: Final = GRAPH_TOPIC + "NodeDeleted"
CALL_ADDED: Final = TREE_TOPIC + "CallAdded"
CALL_UPDATED: Final = TREE_TOPIC + "CallUpdated"
CALL_IMPORTED: Final = TREE_TOPIC + "CallImported"
CALL_EVENTS: Final = frozenset({CALL_ADDED, CALL_UPDATED, CALL_IMPORTED})
"""Events of the call trees (docs/calls.md) that change a call; each carries the call's
key and its complete attributes, except ``CallUpdated`` since issue 17: what changed
(``changes``, ``appended``; see :func:`attributes_after`)."""

_EMPTY_OBJECT: Final = msgspec.Raw(b"{}")
_NO_REQUEST: Final = msgspec.Raw(b"null")
"""The ``request`` of an event that stores none (any but a ``CallAdded`` written since
1efdefa): compared by identity."""


class Event(VersionedEvent, kw_only=True):
    """The base of every event shape (eventsourcing's ``class_version``)."""


class UuidHex(msgspec.Struct):
    """A UUID as eventsourcing's JSON transcoder writes it."""

    type: str = msgspec.field(name="_type_")
    hex: str = msgspec.field(name="_data_")

    def canonical(self) -> str:
        if self.type != "uuid_hex":
            raise EventNotProjectableError(f"expected a uuid_hex value, got {self.type!r}")
        return str(UUID(self.hex))


class Tagged(msgspec.Struct):
    """A transcoded value: ``{"_type_": name, "_data_": value}``, value kept as JSON."""

    type: str = msgspec.field(name="_type_")
    data: msgspec.Raw = msgspec.field(name="_data_")


class NodeTypeDef(msgspec.Struct):
    name: str
    description: str = ""
    schema: msgspec.Raw = _EMPTY_OBJECT
    schema_version: int = 1


class EdgeTypeDef(NodeTypeDef):
    allowed_source_types: msgspec.Raw = msgspec.Raw(b"[]")
    allowed_target_types: msgspec.Raw = msgspec.Raw(b"[]")


class NodeTypeTag(msgspec.Struct):
    type: str = msgspec.field(name="_type_")
    data: NodeTypeDef = msgspec.field(name="_data_")


class EdgeTypeTag(msgspec.Struct):
    type: str = msgspec.field(name="_type_")
    data: EdgeTypeDef = msgspec.field(name="_data_")


# --- GraphType.* -----------------------------------------------------------------------


class Defined(Event):
    name: str
    config: Tagged
    scope: str
    description: str = ""


class NodeTypeAdded(Event):
    node_type: NodeTypeTag


class EdgeTypeAdded(Event):
    edge_type: EdgeTypeTag


class SchemaEvolved(Event):
    """``NodeTypeSchemaEvolved`` and ``EdgeTypeSchemaEvolved``."""

    name: str
    schema: msgspec.Raw
    schema_version: int


class Deleted(Event):
    pass


# --- Graph.* ---------------------------------------------------------------------------


class Created(Event):
    name: str
    graph_type_id: UuidHex
    graph_type_name: str
    status: str
    description: str = ""
    owner_id: str = ""
    project_id: str = ""


class StatusChanged(Event):
    status: str


class NodeAdded(Event):
    key: str
    node_type: str
    attributes: msgspec.Raw
    schema_version: int = 1


class NodeUpdated(Event):
    key: str
    attributes: msgspec.Raw
    schema_version: int = 1


class NodeDeleted(Event):
    key: str


class EdgeAdded(Event):
    edge_id: str
    key: str | None
    edge_type: str
    source: str
    target: str
    undirected: bool
    attributes: msgspec.Raw
    schema_version: int


class EdgeUpdated(Event):
    edge_id: str
    attributes: msgspec.Raw
    schema_version: int


class EdgeDeleted(Event):
    edge_id: str


# --- CallTree.* ------------------------------------------------------------------------


class RunsRetired(Event):
    """``Retention.RunsRetired`` (:mod:`streams.retirement`): runs (root call ids) whose
    events left the file; a projection drops their rows."""

    runs: list[str]


class NodesRetired(Event):
    """``Graph.NodesRetired``: nodes and edges whose own events a retention pass removed
    (calls of a retired run recorded as call graph nodes before call trees)."""

    keys: list[str]
    edge_ids: list[str]


class _CallIds(msgspec.Struct):
    requestId: str | None = None  # noqa: N815 - the call protocol's names
    parentRequestId: str | None = None  # noqa: N815


_call_ids_decoder = msgspec.json.Decoder(_CallIds)


def _call_ids(attributes: msgspec.Raw | bytes) -> _CallIds:
    try:
        return _call_ids_decoder.decode(attributes)
    except msgspec.MsgspecError as exc:
        raise EventNotProjectableError(f"a call event has malformed attributes: {exc}") from exc


def call_key(key: str | None, attributes: msgspec.Raw | bytes) -> str:
    """The key of the call a call tree event is about: its ``key``, or, for a
    ``CallAdded`` that stores none (its key is its ``requestId``, docs/events.md), the
    ``requestId`` of its attributes."""
    if key:
        return key
    found = _call_ids(attributes).requestId
    if not found:
        raise EventNotProjectableError("a call event has neither a key nor a requestId")
    return found


def added_raw(request: msgspec.Raw | bytes) -> msgspec.Raw:
    """A call's attributes (JSON) from the ``request`` a ``CallAdded`` stores
    (``domain.calls.tree.added_attributes``, the one derivation)."""
    from domain.calls.tree import added_attributes  # noqa: PLC0415 - domain.calls is lazy

    try:
        fields = msgspec.json.decode(request)
        if not isinstance(fields, dict):
            raise TypeError(f"request is a {type(fields).__name__}, not an object")
        return msgspec.Raw(msgspec.json.encode(added_attributes(fields)))
    except (msgspec.MsgspecError, KeyError, TypeError) as exc:
        raise EventNotProjectableError(f"a CallAdded has a malformed request: {exc}") from exc


def _decoded_attributes(request: msgspec.Raw, attributes: msgspec.Raw) -> msgspec.Raw:
    """A decoded shape's attributes: derived from ``request`` when the event stores the
    request as given (a ``CallAdded`` since issue 17), else ``attributes`` as stored.
    Raised as ``ValueError`` inside ``__post_init__``, which msgspec reports as a
    ``ValidationError``."""
    if request is _NO_REQUEST:
        return attributes
    try:
        return added_raw(request)
    except EventNotProjectableError as exc:
        raise ValueError(str(exc)) from None


class CallChanged(Event):
    """``CallTree.CallAdded``, ``CallUpdated`` and ``CallImported``: a call's key and
    complete attributes; ``links`` (``CallAdded`` only) the ``triggered`` edges (parent,
    child) that exist from this event on. A ``CallUpdated`` written since issue 17 has
    no attributes (``null``) but ``changes`` and ``appended`` (:attr:`is_delta`). A
    ``CallAdded`` that stores no ``key`` is keyed by its ``requestId`` (:func:`call_key`,
    applied when decoded)."""

    key: str = ""
    attributes: msgspec.Raw = msgspec.Raw(b"null")
    links: list[tuple[str, str]] = msgspec.field(default_factory=list)
    changes: dict[str, Any] | None = None
    appended: dict[str, list[Any]] | None = None
    request: msgspec.Raw = _NO_REQUEST

    def __post_init__(self) -> None:
        self.attributes = _decoded_attributes(self.request, self.attributes)
        if not self.key:
            try:
                self.key = call_key(self.key, self.attributes)
            except EventNotProjectableError as exc:
                raise ValueError(str(exc)) from None  # msgspec: a ValidationError

    @property
    def is_delta(self) -> bool:
        """Whether this event carries what changed, not the call's attributes."""
        return self.changes is not None


class CallAdded(CallChanged, kw_only=True):
    """``CallTree.CallAdded`` (``attributes``, or the ``request`` they derive from).
    ``links`` is absent when it is the default (``domain.calls.tree.default_links``):
    read :meth:`triggered`."""

    links: list[tuple[str, str]] | None = None  # type: ignore[assignment]

    def triggered(self) -> list[tuple[str, str]]:
        """The ``triggered`` edges (parent, child) that exist from this event on: the
        stored ``links``, or the edge from the call's parent when none are stored."""
        if self.links is not None:
            return self.links
        parent = _call_ids(self.attributes).parentRequestId
        return [] if parent is None else [(parent, self.key)]


def attributes_after(previous: bytes | str, event: CallChanged | FoldedEvent) -> msgspec.Raw:
    """The complete attributes (JSON) of a call after ``event``, a ``CallUpdated`` that
    carries what changed, applied to the call's ``previous`` attributes (JSON)."""
    from domain.calls.tree import apply_change  # noqa: PLC0415 - domain.calls is lazy

    try:
        old = msgspec.json.decode(previous)
    except msgspec.MsgspecError as exc:
        raise EventNotProjectableError(
            f"call {event.key!r} has malformed attributes: {exc}"
        ) from exc
    if not isinstance(old, dict):
        raise EventNotProjectableError(f"call {event.key!r} has no attributes to change")
    return msgspec.Raw(msgspec.json.encode(apply_change(old, event.changes, event.appended)))


# --- lenient shapes ----------------------------------------------------------------------


class AnyGraphEvent(Event):
    """Any ``Graph.*`` event, every field optional (a graph folded as of an offset)."""

    name: str = ""
    graph_type_name: str = ""
    status: str = ""
    key: str | None = None
    node_type: str = ""
    attributes: msgspec.Raw = _EMPTY_OBJECT
    schema_version: int = 1
    edge_id: str = ""
    edge_type: str = ""
    source: str = ""
    target: str = ""
    undirected: bool = False
    keys: list[str] = msgspec.field(default_factory=list)
    edge_ids: list[str] = msgspec.field(default_factory=list)


class FoldedEvent(Event):
    """The fields of the events the flowgraph's fold reads (``Graph.Created``, node
    events, call tree events), every one optional: replay decodes them with one
    decoder, inside the envelope."""

    key: str = ""
    node_type: str = ""
    attributes: msgspec.Raw = _EMPTY_OBJECT
    name: str = ""
    graph_type_name: str = ""
    changes: dict[str, Any] | None = None
    appended: dict[str, list[Any]] | None = None
    request: msgspec.Raw = _NO_REQUEST

    def __post_init__(self) -> None:
        self.attributes = _decoded_attributes(self.request, self.attributes)
        # A CallAdded that stores no key is keyed by its requestId (every node event
        # stores its key; Graph.Created has a name and no key).
        if not self.key and not self.name and self.attributes is not _EMPTY_OBJECT:
            with contextlib.suppress(EventNotProjectableError):
                self.key = call_key(self.key, self.attributes)

    @property
    def is_delta(self) -> bool:
        """Whether this is a ``CallUpdated`` that carries what changed (issue 17)."""
        return self.changes is not None


class AnyEvent(msgspec.Struct):
    """What a change subscription reads of any event; other fields are ignored."""

    key: str | None = None
    edge_id: str | None = None
    node_type: str | None = None
    attributes: msgspec.Raw = msgspec.Raw(b"null")
    changes: dict[str, Any] | None = None
    request: msgspec.Raw = _NO_REQUEST

    def __post_init__(self) -> None:
        self.attributes = _decoded_attributes(self.request, self.attributes)
