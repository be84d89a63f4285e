"""The call graph module: the built-in graph type ``call-graph`` and a tenant's ``calls``.

One node per call of the call protocol (``@alkdev/operations``), keyed by its
``requestId``; a ``triggered`` edge from a call to each call it started (parent ->
child); ``depends_on`` edges (dependent -> dependency) for workflow engines to record
data dependencies (ingestion never writes them). The graph type is directed, with no
parallel edges and no self-loops, and has system scope (ADR-043): tenants read and
write call graphs but can never change the type.

A tenant has one call graph, the graph named ``calls`` of this type, created
``active`` with the tenant's first call (:mod:`domain.calls.ledger`). Its calls are
recorded in call trees (:mod:`domain.calls.tree`), not in the graph aggregate's own
node index, so that a write costs what its run costs; the projections show them as the
graph's nodes and ``triggered`` edges. ``docs/calls.md`` describes the attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from domain.calls.protocol import (
    CALL_STATUSES,
    EVENT_TYPES,
    OPERATION_TYPES,
    TERMINAL_STATUSES,
)
from domain.install import (
    EdgeTypeSpec,
    GraphTypeSpec,
    NodeTypeSpec,
    ensure_graph_type,
)
from domain.values import GraphConfig

if TYPE_CHECKING:  # a reader of the call graph's names needs no application
    from domain.application import Metagraph

__all__ = [
    "CALL",
    "CALL_GRAPH",
    "CALL_SCHEMA",
    "CALL_STATUSES",
    "DEPENDS_ON",
    "GRAPH_NAME",
    "OPERATION_TYPES",
    "SPEC",
    "TERMINAL_STATUSES",
    "TRIGGERED",
    "install",
    "triggered_key",
]

CALL_GRAPH: Final = "call-graph"
"""The graph type's name."""
GRAPH_NAME: Final = "calls"
"""The name of a tenant's call graph."""
CALL: Final = "call"
TRIGGERED: Final = "triggered"
DEPENDS_ON: Final = "depends_on"


_MS: dict[str, Any] = {"type": "integer", "minimum": 0}
_ID: dict[str, Any] = {"type": "string", "minLength": 1}

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {},
        "meta": {
            "type": "object",
            "properties": {"source": {"enum": ["local", "http", "mcp"]}},
            "required": ["source"],
        },
    },
    "required": ["data", "meta"],
    "additionalProperties": False,
}

CALL_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "requestId": _ID,
        "operationId": _ID,
        "operationType": {"enum": list(OPERATION_TYPES)},
        "status": {"enum": list(CALL_STATUSES)},
        "parentRequestId": _ID,
        "input": {},
        "output": {"anyOf": [_ENVELOPE, {"type": "array", "items": _ENVELOPE}]},
        "error": {
            "type": "object",
            "properties": {"code": _ID, "message": {"type": "string"}, "details": {}},
            "required": ["code", "message"],
            "additionalProperties": False,
        },
        "identity": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "resources": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["id", "scopes"],
            "additionalProperties": False,
        },
        "deadline": _MS,
        "idleTimeout": _MS,
        "metadata": {"type": "object"},
        "requestedAt": _MS,
        "startedAt": _MS,
        "completedAt": _MS,
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": _ID,
                    "type": {"enum": list(EVENT_TYPES)},
                    "at": _MS,
                    "cause": _ID,
                },
                "required": ["id", "type", "at"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["requestId", "operationId", "status", "input"],
    "additionalProperties": False,
}
"""The attributes of a ``call`` node (see ``docs/calls.md`` for each field)."""

_NO_ATTRIBUTES: dict[str, Any] = {"type": "object"}

SPEC: Final = GraphTypeSpec(
    name=CALL_GRAPH,
    config=GraphConfig(graph_type="directed", multi=False, allow_self_loops=False),
    description="Calls of the call protocol: who triggered what, and how each call ended.",
    node_types=(
        NodeTypeSpec(
            name=CALL,
            schema=CALL_SCHEMA,
            description="One call, keyed by its requestId.",
        ),
    ),
    edge_types=(
        EdgeTypeSpec(
            name=TRIGGERED,
            schema=_NO_ATTRIBUTES,
            description="The source call started the target call (parent -> child).",
            sources=(CALL,),
            targets=(CALL,),
        ),
        EdgeTypeSpec(
            name=DEPENDS_ON,
            schema=_NO_ATTRIBUTES,
            description="The source call needs the target call's result (dependent -> dependency).",
            sources=(CALL,),
            targets=(CALL,),
        ),
    ),
)
"""The built-in graph type, as :func:`~domain.install.ensure_graph_type` installs it."""


def install(app: Metagraph) -> UUID:
    """Install (or upgrade) the ``call-graph`` type as a system-scope type; its id.

    Idempotent: when the type is already as described, nothing is written.
    """
    return ensure_graph_type(app, SPEC)


def triggered_key(child: str) -> str:
    """The key of the ``triggered`` edge into ``child`` (a call has at most one parent)."""
    return f"{TRIGGERED}:{child}"
