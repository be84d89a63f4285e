"""The call protocol's events: payloads, the event envelope, parsing and checking.

The call protocol (``@alkdev/operations``) reports each call with five events:
``call.requested``, ``call.responded``, ``call.completed``, ``call.aborted`` and
``call.error``. Their payloads are the Structs below, checked strictly (an unknown
field is refused: a misspelt ``parentRequestId`` must not silently drop a link); the
open-ended values (``input``, ``output.data``, ``output.meta`` beyond ``source``,
``metadata``, ``details``) take any JSON. Each event travels in a :class:`CallEvent`:
``{id, type, at, payload}`` with ``at`` in ms since the epoch and ``id`` its identity
(derived from the content when the producer gives none). The state machine
(:data:`TRANSITIONS`) is here too: it is part of the protocol, not of how it is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar, cast

import msgspec

from domain.errors import InvalidCallEventError, ValidationError
from domain.schema import check_attributes

__all__ = [
    "CALL_STATUSES",
    "DEFAULT_ABORT_POLICY",
    "ERROR_CODES",
    "EVENT_TYPES",
    "OPERATION_TYPES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "AbortPolicy",
    "CallAborted",
    "CallCompleted",
    "CallErrored",
    "CallEvent",
    "CallPayload",
    "CallRequested",
    "CallResponded",
    "EventType",
    "Identity",
    "OperationType",
    "OperationTypes",
    "Output",
    "as_event",
    "call_event",
    "decode_event",
    "status_path",
]

CALL_STATUSES: Final = ("pending", "running", "completed", "failed", "aborted")
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "aborted"})
OPERATION_TYPES: Final = ("query", "mutation", "subscription")

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


def as_event(value: CallEvent | Mapping[str, Any]) -> CallEvent:
    """A checked :class:`CallEvent` from a :class:`CallEvent` or a protocol mapping."""
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
