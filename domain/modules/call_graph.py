"""The call graph module: the built-in graph type ``call-graph`` and a tenant's ``calls``.

One node per call of the call protocol (``@alkdev/operations``), keyed by its
``requestId``; a ``triggered`` edge from a call to each call it started (parent ->
child); ``depends_on`` edges (dependent -> dependency) for workflow engines to record
data dependencies (ingestion never writes them). The graph type is directed, with no
parallel edges and no self-loops, and has system scope (ADR-043): tenants read and
write call graphs but can never change the type.

A tenant has one call graph, the graph named ``calls`` of this type, created
``active`` on first use (:func:`tenant_call_graph`). Its nodes are written by
:mod:`domain.calls`, which folds call protocol events into them; ``docs/calls.md``
describes the node attributes and the rules.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from domain.application import Metagraph
from domain.graphs import Graph
from domain.modules._install import (
    EdgeTypeSpec,
    GraphTypeSpec,
    NodeTypeSpec,
    ensure_graph_type,
)
from domain.values import GraphConfig

__all__ = [
    "CALL",
    "CALL_GRAPH",
    "CALL_SCHEMA",
    "CALL_STATUSES",
    "DEPENDS_ON",
    "EVENT_TYPES",
    "GRAPH_NAME",
    "OPERATION_TYPES",
    "SPEC",
    "TERMINAL_STATUSES",
    "TRIGGERED",
    "find_call_graph",
    "install",
    "tenant_call_graph",
    "triggered_key",
]

CALL_GRAPH: Final = "call-graph"
"""The graph type's name."""
GRAPH_NAME: Final = "calls"
"""The name of a tenant's call graph."""
CALL: Final = "call"
TRIGGERED: Final = "triggered"
DEPENDS_ON: Final = "depends_on"

CALL_STATUSES: Final = ("pending", "running", "completed", "failed", "aborted")
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "aborted"})
OPERATION_TYPES: Final = ("query", "mutation", "subscription")
EVENT_TYPES: Final = (
    "call.requested",
    "call.responded",
    "call.completed",
    "call.aborted",
    "call.error",
)

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
"""The built-in graph type, as :func:`~domain.modules._install.ensure_graph_type` installs it."""

_CREATED_TOPIC: Final = f"{Graph.Created.__module__}:{Graph.Created.__qualname__}"
_PAGE: Final = 1000


def install(app: Metagraph) -> UUID:
    """Install (or upgrade) the ``call-graph`` type as a system-scope type; its id.

    Idempotent: when the type is already as described, nothing is written.
    """
    return ensure_graph_type(app, SPEC)


def triggered_key(child: str) -> str:
    """The key of the ``triggered`` edge into ``child`` (a call has at most one parent)."""
    return f"{TRIGGERED}:{child}"


def tenant_call_graph(app: Metagraph) -> UUID:
    """The id of the tenant's call graph (named ``calls``), created on first use.

    Installs (or upgrades) the module first. If several graphs named ``calls`` of the
    current ``call-graph`` type exist (two processes created one at once), the first
    created is the tenant's call graph.
    """
    type_id = install(app)
    found = _find_graph(app, type_id, GRAPH_NAME)
    if found is not None:
        return found
    return app.create_graph(
        type_id,
        GRAPH_NAME,
        description="The tenant's calls (call protocol history).",
        status="active",
    )


def find_call_graph(app: Metagraph) -> UUID | None:
    """The id of the tenant's call graph, or ``None`` if it has none yet. Writes nothing.

    The metagraph has no lookup of graphs by name, so this (like
    :func:`tenant_call_graph`) reads the ``Graph.Created`` events of the tenant's
    stream: call it once per process and keep the id.
    """
    type_id = app.graph_types().get(CALL_GRAPH)
    return None if type_id is None else _find_graph(app, type_id, GRAPH_NAME)


def _find_graph(app: Metagraph, type_id: UUID, name: str) -> UUID | None:
    start: int | None = None
    while True:
        page = app.recorder.select_notifications(
            start, _PAGE, topics=[_CREATED_TOPIC], inclusive_of_start=False
        )
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if (
                isinstance(event, Graph.Created)
                and event.name == name
                and event.graph_type_id == type_id
            ):
                return event.originator_id
        if len(page) < _PAGE:
            return None
        start = page[-1].id
