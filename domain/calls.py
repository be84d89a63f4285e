"""Call protocol events and how they fold into the tenant's call graph.

The call protocol (``@alkdev/operations``) reports each call with five events:
``call.requested``, ``call.responded``, ``call.completed``, ``call.aborted`` and
``call.error``. Their payloads are the Structs below, checked strictly (an unknown
field is refused: a misspelt ``parentRequestId`` must not silently drop a link); the
open-ended values (``input``, ``output.data``, ``output.meta`` beyond ``source``,
``metadata``, ``details``) take any JSON. Each event travels in a :class:`CallEvent`:
``{id, type, at, payload}`` with ``at`` in ms since the epoch and ``id`` its identity
(derived from the content when the producer gives none).

:func:`ingest` folds events into the tenant's call graph (:mod:`domain.modules.
call_graph`): one ``call`` node per requestId, a ``triggered`` edge from each call to
the calls it started. The rules, decided in ``docs/calls.md`` and summed up here:

- **States.** ``pending -> running -> completed | failed | aborted`` and ``pending ->
  aborted``. ``call.requested`` creates the call ``pending``. ``running`` is reached by
  the first ``call.responded`` (the first sign that a handler runs): a subscription
  stays ``running`` and appends each output until ``call.completed``; a query or
  mutation passes through ``running`` and completes in that same event. An event that
  ends a ``pending`` call (``completed``, ``error``) passes through ``running`` the same
  way; ``aborted`` goes there directly.
- **Idempotence.** Every event applied to a call is listed in the call's ``events``
  (id, type, time). An event whose id is listed, or that would not change the call
  (``completed`` of a completed call, a ``call.requested`` identical to the recorded
  one, the same error twice), changes nothing and writes nothing.
- **Abort race.** Events for an ``aborted`` call, and an abort of a call that already
  completed or failed, are ignored (nothing is written): the handler and the caller
  raced. Any other event that contradicts how a call ended is a
  :class:`~domain.errors.CallConflictError`.
- **Out of order.** An event about a call not requested yet is refused with
  :class:`~domain.errors.UnknownCallError` (retry it after the ``call.requested``). A
  call whose parent is not recorded yet is accepted; its ``triggered`` edge is added
  when the parent's ``call.requested`` arrives. A parent chain leading back to the call
  is a :class:`~domain.errors.CallCycleError`.
- **Abort policy.** ``abort-dependents`` (default): aborting a call aborts all its
  non-terminal descendants, one ``call.aborted`` entry each naming the ``cause``, and a
  call requested under an aborted ancestor is recorded already aborted.
  ``continue-running``: descendants are left alone.
- **Batches.** Every event of a batch is checked against the graph and the batch's
  earlier events before anything is written: a refused event (its ``line`` is set)
  leaves the graph and the stream unchanged.

One process folds a tenant's call graph at a time (the store has one writer per file):
the rules are checked against state this object keeps, which it re-reads when another
writer changed the graph, but two folding processes could interleave between a check
and its write.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    NamedTuple,
    Protocol,
    TypeAlias,
    TypeVar,
    cast,
)
from uuid import UUID

import msgspec
import structlog

from domain.application import Metagraph
from domain.errors import (
    CallConflictError,
    CallCycleError,
    CallEventError,
    DuplicateError,
    GraphArchivedError,
    InvalidCallEventError,
    NotFoundError,
    UnknownCallError,
    ValidationError,
)
from domain.graphs import Graph
from domain.modules.call_graph import (
    CALL,
    TERMINAL_STATUSES,
    TRIGGERED,
    find_call_graph,
    tenant_call_graph,
    triggered_key,
)
from domain.schema import check_attributes

__all__ = [
    "DEFAULT_ABORT_POLICY",
    "ERROR_CODES",
    "EVENT_TYPES",
    "TRANSITIONS",
    "AbortPolicy",
    "CallAborted",
    "CallCompleted",
    "CallErrored",
    "CallEvent",
    "CallLedger",
    "CallPayload",
    "CallRequested",
    "CallResponded",
    "EventType",
    "Identity",
    "IngestReport",
    "OperationType",
    "OperationTypes",
    "Output",
    "call_event",
    "call_ledger",
    "decode_event",
    "ingest",
    "status_path",
]

log = structlog.get_logger("domain.calls")

EventType = Literal[
    "call.requested", "call.responded", "call.completed", "call.aborted", "call.error"
]
OperationType = Literal["query", "mutation", "subscription"]
AbortPolicy = Literal["abort-dependents", "continue-running"]
OperationTypes: TypeAlias = "Mapping[str, OperationType] | Callable[[str], OperationType | None]"
"""How ingestion learns an operation's type (the protocol's events do not carry it): a
mapping or a function from operationId; unknown operations count as queries."""

DEFAULT_ABORT_POLICY: Final[AbortPolicy] = "abort-dependents"
ERROR_CODES: Final = (
    "OPERATION_NOT_FOUND",
    "ACCESS_DENIED",
    "VALIDATION_ERROR",
    "TIMEOUT",
    "ABORTED",
    "EXECUTION_ERROR",
    "UNKNOWN_ERROR",
)
"""The platform's error codes. Operations may declare their own (``errorSchemas``), so
``call.error`` accepts any UPPER_SNAKE_CASE code."""

TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "pending": frozenset({"running", "aborted"}),
    "running": frozenset({"completed", "failed", "aborted"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "aborted": frozenset(),
}
"""The call state machine; an event may take a call along two steps (see
:func:`status_path`)."""

_MAX_ID: Final = 1000
_T = TypeVar("_T")

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID)]
Text = Annotated[str, msgspec.Meta(min_length=1)]
Millis = Annotated[int, msgspec.Meta(ge=0)]
ErrorCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=128)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Payload(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    rename="camel",
    omit_defaults=True,
):
    pass


class Identity(_Payload, frozen=True):
    """Who made a call: ``{id, scopes, resources?}`` (resources: type -> ids)."""

    id: str
    scopes: list[str]
    resources: dict[str, list[str]] | None = None


class Output(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A response envelope ``{data, meta}``; ``meta.source`` is local, http or mcp and
    ``meta`` may carry more (kept as given)."""

    data: Any
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        if self.meta.get("source") not in ("local", "http", "mcp"):
            raise ValueError(
                f"meta.source must be 'local', 'http' or 'mcp', got {self.meta.get('source')!r}"
            )


class CallRequested(_Payload, frozen=True):
    request_id: RequestId
    operation_id: Text
    input: Any
    parent_request_id: RequestId | None = None
    deadline: Millis | None = None
    idle_timeout: Millis | None = None
    identity: Identity | None = None
    metadata: dict[str, Any] | None = None


class CallResponded(_Payload, frozen=True):
    request_id: RequestId
    output: Output


class CallCompleted(_Payload, frozen=True):
    request_id: RequestId


class CallAborted(_Payload, frozen=True):
    request_id: RequestId


class CallErrored(_Payload, frozen=True):
    """The payload of ``call.error``; ``details: null`` is the same as no details."""

    request_id: RequestId
    code: ErrorCode
    message: str
    details: Any = None


CallPayload = CallRequested | CallResponded | CallCompleted | CallAborted | CallErrored

EVENT_TYPES: Final[Mapping[str, type[CallPayload]]] = {
    "call.requested": CallRequested,
    "call.responded": CallResponded,
    "call.completed": CallCompleted,
    "call.aborted": CallAborted,
    "call.error": CallErrored,
}


class CallEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One call protocol event: its identity, type, time (ms epoch) and payload.

    Build it with :func:`call_event` or :func:`decode_event`, which check it.
    """

    id: str
    type: EventType
    at: int
    payload: CallPayload


class _LineFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: str
    at: Millis
    payload: msgspec.Raw
    id: EventId | None = None


class _MappingFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: str
    at: Millis
    payload: dict[str, Any]
    id: EventId | None = None


def _invalid(reason: str, *, request_id: str | None = None) -> InvalidCallEventError:
    return InvalidCallEventError(
        f"invalid call event: {reason}; fix the event (see docs/calls.md for the format)",
        reason=reason,
        request_id=request_id,
    )


def _payload_class(event_type: str) -> type[CallPayload]:
    found = EVENT_TYPES.get(event_type)
    if found is None:
        raise _invalid(f"unknown type {event_type!r}, expected one of {sorted(EVENT_TYPES)}")
    return found


def _where(error: msgspec.ValidationError) -> str:
    """msgspec's message, its path made relative to the event (``$.payload...``)."""
    return str(error).replace("`$", "`$.payload")


def _checked_event(
    event_type: str, at: int, payload: CallPayload, event_id: str | None
) -> CallEvent:
    _check_json_values(payload)
    if event_id is None:
        event_id = _derived_id(event_type, at, payload)
    return CallEvent(id=event_id, type=cast("EventType", event_type), at=at, payload=payload)


def _check_json_values(payload: CallPayload) -> None:
    open_values: dict[str, Any] = {}
    if isinstance(payload, CallRequested):
        open_values = {"input": payload.input, "metadata": payload.metadata}
    elif isinstance(payload, CallResponded):
        open_values = {"output": msgspec.to_builtins(payload.output)}
    elif isinstance(payload, CallErrored):
        open_values = {"details": payload.details}
    try:
        check_attributes(open_values, what=f"payload of {payload.request_id!r}")
    except ValidationError as exc:
        raise _invalid(str(exc), request_id=payload.request_id) from None


def _derived_id(event_type: str, at: int, payload: CallPayload) -> str:
    canonical = msgspec.json.encode([event_type, at, payload], order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:32]


def call_event(
    event_type: EventType | str,
    payload: CallPayload | Mapping[str, Any],
    *,
    at: int,
    id: str | None = None,
) -> CallEvent:
    """A checked :class:`CallEvent`; ``payload`` as a Struct or a protocol mapping.

    Without ``id`` the event's identity is derived from its type, time and payload, so
    the same event sent twice is recognised. Raises
    :class:`~domain.errors.InvalidCallEventError`.
    """
    data = msgspec.to_builtins(payload) if isinstance(payload, msgspec.Struct) else payload
    return _event_from_mapping({"type": event_type, "at": at, "payload": data, "id": id})


def _event_from_mapping(value: Mapping[str, Any]) -> CallEvent:
    try:
        fields = msgspec.convert(value, _MappingFields)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    cls = _payload_class(fields.type)
    try:
        payload = msgspec.convert(fields.payload, cls)
    except msgspec.ValidationError as exc:
        raise _invalid(f"{fields.type} payload: {_where(exc)}") from None
    return _checked_event(fields.type, fields.at, payload, fields.id)


def decode_event(line: bytes | str) -> CallEvent:
    """A checked :class:`CallEvent` from one JSON text ``{id?, type, at, payload}``."""
    fields = _decoded(line, _LineFields, "")
    payload = _decoded(fields.payload, _payload_class(fields.type), f"{fields.type} payload: ")
    return _checked_event(fields.type, fields.at, payload, fields.id)


def _decoded(data: bytes | str | msgspec.Raw, cls: type[_T], what: str) -> _T:
    try:
        return msgspec.json.decode(data, type=cls)
    except msgspec.ValidationError as exc:
        raise _invalid(f"{what}{_where(exc)}" if what else str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _invalid(f"{what}not valid UTF-8 JSON ({exc})") from None


def _as_event(value: CallEvent | Mapping[str, Any]) -> CallEvent:
    if isinstance(value, CallEvent):
        return call_event(value.type, value.payload, at=value.at, id=value.id)
    if isinstance(value, Mapping):
        return _event_from_mapping(value)
    raise _invalid(f"expected a CallEvent or a mapping, got {type(value).__name__}")


def status_path(current: str, target: str) -> tuple[str, ...]:
    """The statuses a call goes through from ``current`` to ``target`` (in one event).

    One step if :data:`TRANSITIONS` allows it, else two through ``running`` (a pending
    call that completes or fails passes through running). ``()`` if neither is allowed.
    """
    if target in TRANSITIONS.get(current, frozenset()):
        return (target,)
    if current == "pending" and target in TRANSITIONS["running"]:
        return ("running", target)
    return ()


# --- the state the rules read ---------------------------------------------------------


class _State(Protocol):
    def attributes(self, key: str) -> dict[str, Any] | None: ...
    def status(self, key: str) -> str | None: ...
    def parent(self, key: str) -> str | None: ...
    def children(self, key: str) -> Iterable[str]: ...
    def record(self, key: str, attributes: dict[str, Any]) -> None: ...


class _Table:
    """Every call's parent and status, children by parent name (parents not yet
    recorded included), and the attributes of active and recently used calls (others
    are read back from the graph on demand)."""

    RECENT: Final = 4096

    def __init__(self, load: Callable[[str], dict[str, Any] | None]) -> None:
        self._load = load
        self.parents: dict[str, str | None] = {}
        self.statuses: dict[str, str] = {}
        self.kids: dict[str, set[str]] = {}
        self._active: dict[str, dict[str, Any]] = {}
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def attributes(self, key: str) -> dict[str, Any] | None:
        found = self._active.get(key)
        if found is None:
            found = self._recent.get(key)
        if found is None and key in self.statuses:
            found = self._load(key)
            if found is not None:
                self._remember(key, found)
        return found

    def status(self, key: str) -> str | None:
        return self.statuses.get(key)

    def parent(self, key: str) -> str | None:
        return self.parents.get(key)

    def children(self, key: str) -> Iterable[str]:
        return self.kids.get(key, ())

    def record(self, key: str, attributes: dict[str, Any]) -> None:
        if key not in self.statuses:
            parent = attributes.get("parentRequestId")
            self.parents[key] = parent
            if parent is not None:
                self.kids.setdefault(parent, set()).add(key)
        self.statuses[key] = sys.intern(str(attributes.get("status")))
        self._remember(key, attributes)

    def forget(self, key: str) -> None:
        if key not in self.statuses:
            return
        del self.statuses[key]
        parent = self.parents.pop(key)
        if parent is not None:
            self.kids[parent].discard(key)
        self._active.pop(key, None)
        self._recent.pop(key, None)

    def _remember(self, key: str, attributes: dict[str, Any]) -> None:
        if attributes.get("status") in TERMINAL_STATUSES:
            self._active.pop(key, None)
            self._recent[key] = attributes
            self._recent.move_to_end(key)
            if len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        else:
            self._recent.pop(key, None)
            self._active[key] = attributes


class _Draft:
    """The table plus the changes of events planned but not written yet."""

    def __init__(self, base: _Table) -> None:
        self._base = base
        self._changed: dict[str, dict[str, Any]] = {}
        self._new_children: dict[str, set[str]] = {}

    def attributes(self, key: str) -> dict[str, Any] | None:
        if key in self._changed:
            return self._changed[key]
        return self._base.attributes(key)

    def status(self, key: str) -> str | None:
        if key in self._changed:
            return str(self._changed[key]["status"])
        return self._base.status(key)

    def parent(self, key: str) -> str | None:
        if key in self._changed:
            return self._changed[key].get("parentRequestId")
        return self._base.parent(key)

    def children(self, key: str) -> Iterable[str]:
        return [*self._base.children(key), *self._new_children.get(key, ())]

    def record(self, key: str, attributes: dict[str, Any]) -> None:
        if self.status(key) is None:
            parent = attributes.get("parentRequestId")
            if parent is not None:
                self._new_children.setdefault(parent, set()).add(key)
        self._changed[key] = attributes


# --- the rules: an event and the state -> the writes ------------------------------------


class _AddCall(NamedTuple):
    key: str
    attributes: dict[str, Any]


class _UpdateCall(NamedTuple):
    key: str
    attributes: dict[str, Any]


class _Link(NamedTuple):
    parent: str
    child: str


_Write = _AddCall | _UpdateCall | _Link


class _Rules:
    """Plans the writes of one event against a state, recording them in that state."""

    def __init__(self, state: _State, policy: AbortPolicy, types: OperationTypes | None) -> None:
        self.state = state
        self.policy = policy
        self.types = types

    def plan(self, event: CallEvent) -> list[_Write]:
        payload = event.payload
        if isinstance(payload, CallRequested):
            return self._requested(event, payload)
        current = self.state.attributes(payload.request_id)
        if current is None:
            raise UnknownCallError(
                f"{event.type} for call {payload.request_id!r}, which has not been "
                "requested (no call.requested ingested); ingest its call.requested first, "
                "then retry this event",
                request_id=payload.request_id,
            )
        if isinstance(payload, CallAborted):  # a repeated abort re-checks the cascade
            return self._aborted(event, current)
        if any(entry.get("id") == event.id for entry in current.get("events", ())):
            return []  # this very event was applied before
        if current["status"] == "aborted":
            return []  # the handler raced the abort: ignored
        if isinstance(payload, CallResponded):
            return self._responded(event, payload, current)
        if isinstance(payload, CallCompleted):
            return self._completed(event, current)
        return self._errored(event, payload, current)

    # call.requested ------------------------------------------------------------------

    def _requested(self, event: CallEvent, payload: CallRequested) -> list[_Write]:
        key = payload.request_id
        current = self.state.attributes(key)
        if current is not None:
            if _request_of(current) != _request_of(_requested_fields(payload)):
                raise CallConflictError(
                    f"call {key!r} was already requested with other values "
                    f"({_difference(current, _requested_fields(payload))}); a requestId "
                    "names one call: use a new requestId for a new call",
                    request_id=key,
                )
            return self._repairs(key, current)
        self._check_no_cycle(key, payload.parent_request_id)
        attributes: dict[str, Any] = {
            "requestId": key,
            "operationId": payload.operation_id,
            "operationType": self._operation_type(payload.operation_id),
            "status": "pending",
            **_requested_fields(payload),
            "requestedAt": event.at,
            "events": [_entry(event)],
        }
        cause = self._aborted_ancestor(payload.parent_request_id)
        if cause is not None:
            attributes = _aborted_by(attributes, cause)
        self.state.record(key, attributes)
        writes: list[_Write] = [_AddCall(key, attributes)]
        parent = payload.parent_request_id
        if parent is not None and self.state.status(parent) is not None:
            writes.append(_Link(parent, key))
        writes.extend(_Link(key, child) for child in sorted(self.state.children(key)))
        if attributes["status"] == "aborted":
            writes.extend(self._cascade(key, _abort_cause(key, attributes)))
        return writes

    def _operation_type(self, operation_id: str) -> OperationType:
        found: OperationType | None = None
        if callable(self.types):
            found = self.types(operation_id)
        elif self.types is not None:
            found = self.types.get(operation_id)
        return found if found in ("query", "mutation", "subscription") else "query"

    def _check_no_cycle(self, key: str, parent: str | None) -> None:
        chain, seen = [key], set()
        node = parent
        while node is not None and node not in seen:
            chain.append(node)
            if node == key:
                raise CallCycleError(
                    f"call {key!r} cannot have parent {parent!r}: its chain of parents "
                    f"{' -> '.join(repr(c) for c in chain)} leads back to it, and a call "
                    "cannot (indirectly) trigger itself; fix parentRequestId",
                    request_id=key,
                )
            seen.add(node)
            node = self.state.parent(node) if self.state.status(node) is not None else None

    def _aborted_ancestor(self, parent: str | None) -> _Cause | None:
        if self.policy != "abort-dependents":
            return None
        node, seen = parent, set[str]()
        while node is not None and node not in seen and self.state.status(node) is not None:
            seen.add(node)
            if self.state.status(node) == "aborted":
                attributes = self.state.attributes(node)
                return _abort_cause(node, attributes or {})
            node = self.state.parent(node)
        return None

    def _repairs(self, key: str, current: dict[str, Any]) -> list[_Write]:
        """A repeated ``call.requested``: re-add what a crash may have left out."""
        writes: list[_Write] = []
        parent = current.get("parentRequestId")
        if parent is not None and self.state.status(parent) is not None:
            writes.append(_Link(parent, key))
        writes.extend(_Link(key, child) for child in sorted(self.state.children(key)))
        if self.policy == "abort-dependents":
            if current["status"] == "aborted":
                writes.extend(self._cascade(key, _abort_cause(key, current)))
            elif current["status"] not in TERMINAL_STATUSES:
                cause = self._aborted_ancestor(parent)
                if cause is not None:
                    aborted = _aborted_by(current, cause)
                    self.state.record(key, aborted)
                    writes.append(_UpdateCall(key, aborted))
                    writes.extend(self._cascade(key, cause))
        return writes

    # outcomes ------------------------------------------------------------------------

    def _responded(
        self, event: CallEvent, payload: CallResponded, current: dict[str, Any]
    ) -> list[_Write]:
        key, status = payload.request_id, current["status"]
        output = msgspec.to_builtins(payload.output)
        if current.get("operationType") == "subscription":
            if status in TERMINAL_STATUSES:
                raise _conflict(
                    key,
                    f"call.responded for subscription {key!r}, whose stream already "
                    f"ended ({status})",
                    "outputs after call.completed or call.error are refused",
                )
            changes: dict[str, Any] = {
                "status": "running" if status == "running" else self._step(key, status, "running"),
                "output": [*current.get("output", ()), output],
            }
            return self._update(key, current, event, changes, started=True)
        if status in TERMINAL_STATUSES:
            if current.get("output") == output:
                return []  # the same response again
            if status == "completed" and "output" not in current:
                return self._update(key, current, event, {"output": output}, started=True)
            raise _conflict(
                key,
                f"a second, different call.responded for {current.get('operationType')} "
                f"{key!r} ({status})",
                "a query or mutation responds once; if operation "
                f"{current.get('operationId')!r} is a subscription, pass operation_types "
                "when ingesting its call.requested",
            )
        changes = {"status": self._step(key, status, "completed"), "output": output}
        return self._update(key, current, event, changes, started=True, ended=True)

    def _completed(self, event: CallEvent, current: dict[str, Any]) -> list[_Write]:
        key, status = event.payload.request_id, current["status"]
        if status == "completed":
            return []
        if status == "failed":
            raise _conflict(
                key,
                f"call.completed for call {key!r}, which failed",
                "a call ends once",
            )
        changes = {"status": self._step(key, status, "completed")}
        return self._update(key, current, event, changes, ended=True)

    def _errored(
        self, event: CallEvent, payload: CallErrored, current: dict[str, Any]
    ) -> list[_Write]:
        key, status = payload.request_id, current["status"]
        error = _error_of(payload)
        if status == "failed" and current.get("error") == error:
            return []
        if status in TERMINAL_STATUSES:
            raise _conflict(
                key,
                f"call.error {payload.code} for call {key!r}, which already "
                f"{'failed with ' + str(current.get('error')) if status == 'failed' else status}",
                "a call ends once",
            )
        changes = {"status": self._step(key, status, "failed"), "error": error}
        return self._update(key, current, event, changes, ended=True)

    def _aborted(self, event: CallEvent, current: dict[str, Any]) -> list[_Write]:
        key, status = event.payload.request_id, current["status"]
        if status == "aborted":
            if self.policy == "abort-dependents":
                return self._cascade(key, _abort_cause(key, current))
            return []
        if status in TERMINAL_STATUSES:
            return []  # the abort came after the end: ignored
        changes = {"status": self._step(key, status, "aborted")}
        writes = self._update(key, current, event, changes, ended=True)
        if self.policy == "abort-dependents":
            writes.extend(self._cascade(key, _Cause(event.id, event.at, key)))
        return writes

    def _cascade(self, root: str, cause: _Cause) -> list[_Write]:
        """Abort every non-terminal descendant of ``root`` (breadth first)."""
        writes: list[_Write] = []
        queue, seen = deque(sorted(self.state.children(root))), {root}
        while queue:
            key = queue.popleft()
            if key in seen or self.state.status(key) is None:
                continue
            seen.add(key)
            if self.state.status(key) not in TERMINAL_STATUSES:
                current = self.state.attributes(key)
                if current is not None:
                    aborted = _aborted_by(current, cause)
                    self.state.record(key, aborted)
                    writes.append(_UpdateCall(key, aborted))
            queue.extend(sorted(self.state.children(key)))
        return writes

    def _step(self, key: str, status: str, target: str) -> str:
        if not status_path(status, target):  # pragma: no cover - callers check first
            raise _conflict(key, f"call {key!r} cannot go from {status} to {target}", "")
        return target

    def _update(
        self,
        key: str,
        current: dict[str, Any],
        event: CallEvent,
        changes: dict[str, Any],
        *,
        started: bool = False,
        ended: bool = False,
    ) -> list[_Write]:
        attributes = {**current, **changes, "events": [*current.get("events", ()), _entry(event)]}
        if started and "startedAt" not in current:
            attributes["startedAt"] = event.at
        if ended and "completedAt" not in current:
            attributes["completedAt"] = event.at
        self.state.record(key, attributes)
        return [_UpdateCall(key, attributes)]


class _Cause(NamedTuple):
    """The abort that a cascade passes on: its event id and time, and the call it hit."""

    id: str
    at: int
    call: str


def _abort_cause(key: str, attributes: dict[str, Any]) -> _Cause:
    for entry in reversed(attributes.get("events", ())):
        if entry.get("type") == "call.aborted":
            return _Cause(entry["id"], entry["at"], entry.get("cause", key))
    at = attributes.get("completedAt", attributes.get("requestedAt", 0))
    return _Cause(f"{key}:aborted", at, key)  # a call written by hand, without events


def _aborted_by(current: dict[str, Any], cause: _Cause) -> dict[str, Any]:
    entry = {"id": cause.id, "type": "call.aborted", "at": cause.at, "cause": cause.call}
    return {
        **current,
        "status": "aborted",
        "completedAt": max(cause.at, current.get("requestedAt", 0)),
        "events": [*current.get("events", ()), entry],
    }


def _entry(event: CallEvent) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "at": event.at}


def _error_of(payload: CallErrored) -> dict[str, Any]:
    error: dict[str, Any] = {"code": payload.code, "message": payload.message}
    if payload.details is not None:
        error["details"] = payload.details
    return error


_REQUEST_FIELDS: Final = (
    "operationId",
    "input",
    "parentRequestId",
    "deadline",
    "idleTimeout",
    "identity",
    "metadata",
)


def _requested_fields(payload: CallRequested) -> dict[str, Any]:
    fields: dict[str, Any] = msgspec.to_builtins(payload)
    del fields["requestId"]
    return fields


def _request_of(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: attributes.get(name) for name in _REQUEST_FIELDS}


def _difference(current: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    names = [n for n in _REQUEST_FIELDS if current.get(n) != new.get(n)]
    return "differs in " + ", ".join(names)


def _conflict(key: str, what: str, rule: str) -> CallConflictError:
    return CallConflictError(
        f"{what}: it contradicts the recorded call; {rule}. Nothing was written",
        request_id=key,
    )


# --- the ledger: state + writes through the Metagraph ----------------------------------


class IngestReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a batch did: ``events`` given, ``applied`` (changed the graph),
    ``unchanged`` (duplicates and ignored events) and ``writes`` (store commands)."""

    events: int
    applied: int
    unchanged: int
    writes: int


class CallLedger:
    """The tenant's call graph as the call protocol sees it; folds events into it.

    Keeps what the rules need in memory (every call's parent and status, the attributes
    of active calls); built from the graph on first use (one read per call) and kept in
    step with other writers by reading the graph's new events before each batch. Use
    :func:`call_ledger` to share one per application.
    """

    def __init__(self, app: Metagraph) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._graph_id: UUID | None = None
        self._table = _Table(self._load)
        self._version = 0

    @property
    def graph_id(self) -> UUID:
        """The id of the tenant's call graph (created and loaded on first use)."""
        with self._lock:
            graph_id = self._open(create=True)
            assert graph_id is not None
            return graph_id

    def ingest(
        self,
        events: Iterable[CallEvent | Mapping[str, Any]],
        *,
        abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
        operation_types: OperationTypes | None = None,
        lines: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Fold a batch of events (all or nothing); see :func:`ingest`.

        ``progress(done, total)`` is called after each event is written (not while the
        batch is being checked), e.g. to drive a progress bar.
        """
        if abort_policy not in ("abort-dependents", "continue-running"):
            raise ValidationError(
                f"invalid abort policy {abort_policy!r}: use 'abort-dependents' or "
                "'continue-running'"
            )
        checked = [_labelled(_as_event, e, i, lines) for i, e in enumerate(events)]
        with self._lock:
            graph_id = self._open(create=False)
            if graph_id is not None:
                self._catch_up(graph_id)
            rules = _Rules(_Draft(self._table), abort_policy, operation_types)
            plans = [_labelled(rules.plan, e, i, lines) for i, e in enumerate(checked)]
            writes = applied = 0
            if any(plans):
                if graph_id is None:  # the tenant's first call: create the graph now
                    graph_id = self._open(create=True)
                    assert graph_id is not None
                for done, plan in enumerate(plans, start=1):
                    written = self._write(graph_id, plan)
                    writes += written
                    applied += written > 0
                    if progress is not None:
                        progress(done, len(plans))
        return IngestReport(
            events=len(checked), applied=applied, unchanged=len(checked) - applied, writes=writes
        )

    # --- internals --------------------------------------------------------------------

    def _open(self, *, create: bool) -> UUID | None:
        """The call graph's id, its state loaded; without ``create``, ``None`` (and
        nothing written) if the tenant has no call graph yet."""
        if self._graph_id is None:
            graph_id = tenant_call_graph(self.app) if create else find_call_graph(self.app)
            if graph_id is None:
                return None
            self._version = self.app.get_graph(graph_id).version
            for key, node_type in self.app.nodes(graph_id).items():
                if node_type == CALL:
                    self._table.record(key, self.app.get_node(graph_id, key).attributes)
            self._graph_id = graph_id
        return self._graph_id

    def _load(self, key: str) -> dict[str, Any] | None:
        assert self._graph_id is not None
        try:
            attributes: dict[str, Any] = self.app.get_node(self._graph_id, key).attributes
        except NotFoundError:
            return None
        return attributes

    def _catch_up(self, graph_id: UUID) -> None:
        """Fold in what other writers recorded in the graph since this ledger's last look."""
        info = self.app.get_graph(graph_id)
        if info.status == "archived":
            raise GraphArchivedError(
                f"the tenant's call graph ({graph_id}) is archived, so calls can no longer "
                "be recorded in it; nothing was written"
            )
        if info.version == self._version:
            return
        log.info("call graph changed by another writer", since=self._version, now=info.version)
        for event in self.app.events.get(graph_id, gt=self._version):
            if isinstance(event, Graph.NodeAdded):
                if event.node_type == CALL:
                    self._table.record(event.key, event.attributes)
            elif isinstance(event, Graph.NodeUpdated):
                if self._table.status(event.key) is not None:
                    self._table.record(event.key, event.attributes)
            elif isinstance(event, Graph.NodeDeleted):
                self._table.forget(event.key)
        self._version = info.version

    def _write(self, graph_id: UUID, plan: list[_Write]) -> int:
        writes = 0
        for write in plan:
            if isinstance(write, _Link):
                try:
                    self.app.add_edge(
                        graph_id,
                        TRIGGERED,
                        write.parent,
                        write.child,
                        key=triggered_key(write.child),
                    )
                except DuplicateError:
                    continue  # linked already
            elif isinstance(write, _AddCall):
                self.app.add_node(graph_id, write.key, CALL, write.attributes)
                self._table.record(write.key, write.attributes)
            else:
                self.app.update_node(graph_id, write.key, write.attributes, mode="replace")
                self._table.record(write.key, write.attributes)
            self._version += 1
            writes += 1
        return writes


def _labelled(
    step: Callable[[Any], Any], value: Any, index: int, lines: Sequence[int] | None
) -> Any:
    try:
        return step(value)
    except CallEventError as exc:
        exc.line = lines[index] if lines is not None else index + 1
        where = f"line {exc.line}" if lines is not None else f"event {exc.line}"
        exc.args = (f"{where}: {exc.args[0]}", *exc.args[1:])
        raise


_ledgers: weakref.WeakKeyDictionary[Metagraph, CallLedger] = weakref.WeakKeyDictionary()
_ledgers_lock = threading.Lock()


def call_ledger(app: Metagraph) -> CallLedger:
    """The :class:`CallLedger` of ``app`` (one per application object)."""
    with _ledgers_lock:
        found = _ledgers.get(app)
        if found is None:
            found = _ledgers[app] = CallLedger(app)
        return found


def ingest(
    app: Metagraph,
    events: Iterable[CallEvent | Mapping[str, Any]],
    *,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
    operation_types: OperationTypes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Fold call protocol events into the tenant's call graph, as one batch.

    ``events`` are :class:`CallEvent` values or mappings ``{id?, type, at, payload}``.
    Every event is checked (format, then the rules against the graph and the batch's
    earlier events) before anything is written; the first refused one raises a
    :class:`~domain.errors.CallEventError` whose ``line`` is its 1-based position, and
    nothing is written. Each write is then one store transaction (a node, an update or
    an edge). ``abort_policy`` is how an abort treats descendants; ``operation_types``
    tells subscriptions from queries and mutations (unknown operations are queries).
    ``progress(done, total)`` is called after each event is written.
    """
    return call_ledger(app).ingest(
        events, abort_policy=abort_policy, operation_types=operation_types, progress=progress
    )
