"""The call protocol, in one place: from its events to the tenant's call trees.

- :mod:`~domain.calls.protocol`: the five events' payloads, parsing and checking, the
  state machine;
- :mod:`~domain.calls.rules`: how an event folds into calls (docs/calls.md), over any state;
- :mod:`~domain.calls.tree`: where calls are recorded: call trees (one per workflow run),
  a reference per call, the call index;
- :mod:`~domain.calls.ledger`: a batch folded into the trees in one unit of work; reads;
- :mod:`~domain.calls.graph`: the built-in ``call-graph`` graph type;
- :mod:`~domain.calls.jsonl`: JSON Lines files of call events;
- :mod:`~domain.calls.recovery`: ending calls left in flight by a crash.

The common names are re-exported here: ``from domain.calls import ingest``.
"""

from typing import TYPE_CHECKING, Any

from domain.lazy_exports import LazyExports

if TYPE_CHECKING:
    from domain.calls.graph import CALL, CALL_GRAPH, GRAPH_NAME, TRIGGERED, triggered_key
    from domain.calls.jsonl import ingest_jsonl, read_jsonl
    from domain.calls.ledger import (
        CallLedger,
        IngestReport,
        call_ledger,
        find_call_graph,
        get_call,
        ingest,
        tenant_call_graph,
    )
    from domain.calls.protocol import (
        CALL_STATUSES,
        DEFAULT_ABORT_POLICY,
        ERROR_CODES,
        EVENT_TYPES,
        TERMINAL_STATUSES,
        TRANSITIONS,
        AbortPolicy,
        CallAborted,
        CallCompleted,
        CallErrored,
        CallEvent,
        CallPayload,
        CallRequested,
        CallResponded,
        EventType,
        Identity,
        OperationType,
        OperationTypes,
        Output,
        call_event,
        decode_event,
        status_path,
    )
    from domain.calls.recovery import abort_calls, abort_events
    from domain.calls.tree import CallIndex, CallRef, CallTree

# Each name is imported when first used (PEP 562): a command that needs one part of
# the package does not pay for the rest (issue 17, command line start).
_LAZY = LazyExports(
    __name__,
    {
        "domain.calls.graph": (
            "CALL",
            "CALL_GRAPH",
            "GRAPH_NAME",
            "TRIGGERED",
            "triggered_key",
        ),
        "domain.calls.jsonl": (
            "ingest_jsonl",
            "read_jsonl",
        ),
        "domain.calls.ledger": (
            "CallLedger",
            "IngestReport",
            "call_ledger",
            "find_call_graph",
            "get_call",
            "ingest",
            "tenant_call_graph",
        ),
        "domain.calls.protocol": (
            "AbortPolicy",
            "CALL_STATUSES",
            "CallAborted",
            "CallCompleted",
            "CallErrored",
            "CallEvent",
            "CallPayload",
            "CallRequested",
            "CallResponded",
            "DEFAULT_ABORT_POLICY",
            "ERROR_CODES",
            "EVENT_TYPES",
            "EventType",
            "Identity",
            "OperationType",
            "OperationTypes",
            "Output",
            "TERMINAL_STATUSES",
            "TRANSITIONS",
            "call_event",
            "decode_event",
            "status_path",
        ),
        "domain.calls.recovery": (
            "abort_calls",
            "abort_events",
        ),
        "domain.calls.tree": (
            "CallIndex",
            "CallRef",
            "CallTree",
        ),
    },
)


def __getattr__(name: str) -> Any:
    return _LAZY.attribute(name)


def __dir__() -> list[str]:
    return _LAZY.names()


__all__ = [
    "CALL",
    "CALL_GRAPH",
    "CALL_STATUSES",
    "DEFAULT_ABORT_POLICY",
    "ERROR_CODES",
    "EVENT_TYPES",
    "GRAPH_NAME",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "TRIGGERED",
    "AbortPolicy",
    "CallAborted",
    "CallCompleted",
    "CallErrored",
    "CallEvent",
    "CallIndex",
    "CallLedger",
    "CallPayload",
    "CallRef",
    "CallRequested",
    "CallResponded",
    "CallTree",
    "EventType",
    "Identity",
    "IngestReport",
    "OperationType",
    "OperationTypes",
    "Output",
    "abort_calls",
    "abort_events",
    "call_event",
    "call_ledger",
    "decode_event",
    "find_call_graph",
    "get_call",
    "ingest",
    "ingest_jsonl",
    "read_jsonl",
    "status_path",
    "tenant_call_graph",
    "triggered_key",
]
