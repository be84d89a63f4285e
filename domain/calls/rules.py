"""How call events fold into calls: the rules of ``docs/calls.md``, over any state.

:class:`Rules` applies one event at a time to a :class:`CallState` (what is recorded of
the calls it reads: their attributes, parents and children). It knows nothing of how the
state is stored: :mod:`domain.calls.ledger` gives it the tenant's call trees inside a
unit of work, so everything a batch changes commits in one transaction or not at all.

- **States.** ``pending -> running -> completed | failed | aborted`` and ``pending ->
  aborted``. ``running`` is reached by the first ``call.responded``; an event that ends
  a ``pending`` call (``completed``, ``error``) passes through ``running`` in the same
  event; ``aborted`` goes there directly.
- **Idempotence.** Every event applied to a call is listed in its ``events``; an event
  whose id is listed, or that would not change the call, changes nothing.
- **Abort race.** Events for an ``aborted`` call, and an abort of a call that already
  ended, are ignored. Any other event contradicting how a call ended is a
  :class:`~domain.errors.CallConflictError`.
- **Out of order.** An event about a call not requested yet is an
  :class:`~domain.errors.UnknownCallError`. A call whose parent is not recorded yet is
  accepted and linked when the parent arrives. A parent chain leading back to the call
  is a :class:`~domain.errors.CallCycleError`.
- **Abort policy.** ``abort-dependents`` (default): aborting a call aborts its
  non-terminal descendants (each entry names the ``cause``), and a call requested under
  an aborted ancestor is recorded aborted. ``continue-running``: descendants are left
  alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple, Protocol

import msgspec

from domain.calls.protocol import (
    TERMINAL_STATUSES,
    AbortPolicy,
    CallAborted,
    CallCompleted,
    CallErrored,
    CallEvent,
    CallRequested,
    CallResponded,
    OperationType,
    OperationTypes,
    status_path,
)
from domain.errors import CallConflictError, CallCycleError, UnknownCallError

__all__ = ["CallState", "Rules"]


class CallState(Protocol):
    """What the rules read and change. ``add`` records a new call (and links it to its
    recorded parent and its waiting children); ``update`` replaces a call's attributes."""

    def attributes(self, key: str) -> dict[str, Any] | None: ...
    def requested(self, key: str) -> dict[str, Any] | None:
        """``attributes(key)``, asked by a ``call.requested`` of ``key`` (a state may
        guess that a call it has never seen is new, if it checks the guess later)."""
        ...

    def status(self, key: str) -> str | None: ...
    def parent(self, key: str) -> str | None: ...
    def children(self, key: str) -> Iterable[str]: ...
    def add(self, key: str, attributes: dict[str, Any]) -> None: ...
    def update(self, key: str, attributes: dict[str, Any]) -> None: ...


class Rules:
    """Applies call events to a :class:`CallState`, one at a time, by the rules above.

    Each method returns how many calls it added or changed (0: the event changed
    nothing). A refused event raises before it changes the state.
    """

    def __init__(self, state: CallState, policy: AbortPolicy, types: OperationTypes | None) -> None:
        self.state = state
        self.policy = policy
        self.types = types

    def apply(self, event: CallEvent) -> int:
        """Apply one event; the number of calls it added or changed."""
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
            return 0  # this very event was applied before
        if current["status"] == "aborted":
            return 0  # the handler raced the abort: ignored
        if isinstance(payload, CallResponded):
            return self._responded(event, payload, current)
        if isinstance(payload, CallCompleted):
            return self._completed(event, current)
        return self._errored(event, payload, current)

    # call.requested ------------------------------------------------------------------

    def _requested(self, event: CallEvent, payload: CallRequested) -> int:
        key = payload.request_id
        current = self.state.requested(key)
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
        self.state.add(key, attributes)
        if attributes["status"] == "aborted":
            return 1 + self._cascade(key, _abort_cause(key, attributes))
        return 1

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

    def _repairs(self, key: str, current: dict[str, Any]) -> int:
        """A repeated ``call.requested``: the abort-dependents invariant is re-checked
        (a call may have been recorded under a policy that left it running)."""
        if self.policy != "abort-dependents":
            return 0
        if current["status"] == "aborted":
            return self._cascade(key, _abort_cause(key, current))
        if current["status"] in TERMINAL_STATUSES:
            return 0
        cause = self._aborted_ancestor(current.get("parentRequestId"))
        if cause is None:
            return 0
        self.state.update(key, _aborted_by(current, cause))
        return 1 + self._cascade(key, cause)

    # outcomes ------------------------------------------------------------------------

    def _responded(self, event: CallEvent, payload: CallResponded, current: dict[str, Any]) -> int:
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
                return 0  # the same response again
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

    def _completed(self, event: CallEvent, current: dict[str, Any]) -> int:
        key, status = event.payload.request_id, current["status"]
        if status == "completed":
            return 0
        if status == "failed":
            raise _conflict(
                key,
                f"call.completed for call {key!r}, which failed",
                "a call ends once",
            )
        changes = {"status": self._step(key, status, "completed")}
        return self._update(key, current, event, changes, ended=True)

    def _errored(self, event: CallEvent, payload: CallErrored, current: dict[str, Any]) -> int:
        key, status = payload.request_id, current["status"]
        error = _error_of(payload)
        if status == "failed" and current.get("error") == error:
            return 0
        if status in TERMINAL_STATUSES:
            raise _conflict(
                key,
                f"call.error {payload.code} for call {key!r}, which already "
                f"{'failed with ' + str(current.get('error')) if status == 'failed' else status}",
                "a call ends once",
            )
        changes = {"status": self._step(key, status, "failed"), "error": error}
        return self._update(key, current, event, changes, ended=True)

    def _aborted(self, event: CallEvent, current: dict[str, Any]) -> int:
        key, status = event.payload.request_id, current["status"]
        if status == "aborted":
            if self.policy == "abort-dependents":
                return self._cascade(key, _abort_cause(key, current))
            return 0
        if status in TERMINAL_STATUSES:
            return 0  # the abort came after the end: ignored
        changes = {"status": self._step(key, status, "aborted")}
        writes = self._update(key, current, event, changes, ended=True)
        if self.policy == "abort-dependents":
            writes += self._cascade(key, _Cause(event.id, event.at, key))
        return writes

    def _cascade(self, root: str, cause: _Cause) -> int:
        """Abort every non-terminal descendant of ``root`` (breadth first)."""
        writes = 0
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
                    self.state.update(key, aborted)
                    writes += 1
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
    ) -> int:
        attributes = {**current, **changes, "events": [*current.get("events", ()), _entry(event)]}
        if started and "startedAt" not in current:
            attributes["startedAt"] = event.at
        if ended and "completedAt" not in current:
            attributes["completedAt"] = event.at
        self.state.update(key, attributes)
        return 1


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
