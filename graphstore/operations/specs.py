"""Generating the OperationSpecs: the store's own operations and, for every graph type of
a tenant, the operations on its graphs, nodes and edges (docs/operations.md).

Nothing here is written per operation by hand: a graph type's specs come from its
recorded definition (:class:`domain.GraphTypeInfo`: node and edge types with their
attribute schemas and schema versions) and the projection tables' rows
(:mod:`graphstore.operations.wire`); the store's own from the typed values of the call
protocol, the flowgraph views, replay and change subscriptions. ``accessControl``
comes from the permission model's groups (:data:`domain.access.OPERATIONS`) through
:data:`SCOPES`.

Each spec is kept with what the executor needs to run it (:class:`BoundOperation`): the
permission group it is authorized against and the action it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from domain import GraphTypeInfo, Metagraph
from domain.access import OPERATIONS, Operation
from domain.calls.graph import CALL_GRAPH
from domain.calls.graph import SPEC as CALL_GRAPH_SPEC
from domain.calls.protocol import OPERATION_TYPES
from domain.values import EdgeTypeDef, NodeTypeDef
from graphstore.operations.errors import ERRORS
from graphstore.operations.model import (
    AccessControl,
    ErrorSchema,
    OperationKind,
    OperationSpec,
)
from graphstore.operations.schemas import (
    AFTER,
    CALL_EVENT,
    GRAPH_ID,
    KEY,
    LIMIT,
    MAX_BATCH,
    MIN_POSITION,
    OFFSET,
    error_body,
    obj,
    struct_schema,
    typed_attributes,
)
from graphstore.operations.wire import (
    ChangeOut,
    EdgeDeleted,
    EdgeRow,
    EdgesPage,
    ExportOut,
    GraphRow,
    GraphsPage,
    HistoryOut,
    IngestOut,
    NodeDeleted,
    NodeRow,
    NodesPage,
    RunDetailOut,
    RunSnapshotOut,
    RunsPage,
)

__all__ = [
    "CALLS",
    "CHANGES",
    "RUNS",
    "SCOPES",
    "STORE_VERSION",
    "BoundOperation",
    "GraphTypeShape",
    "graph_type_operations",
    "graph_type_shapes",
    "store_operations",
    "tenant_operations",
]

SCOPES: Final[Mapping[Operation, str]] = {
    "read": "tenant:read",
    "write": "tenant:write",
    "define": "tenant:define",
    "operate": "tenant:operate",
}
"""The scope an operation of each permission group requires (``accessControl``): the
store decides who holds it with :func:`domain.access.decide` (docs/identity.md)."""

STORE_VERSION: Final = "1.0.0"
"""The version of the store's own operation contracts (bumped by hand with them)."""

CALLS: Final = "graphstore.calls"
RUNS: Final = "graphstore.runs"
CHANGES: Final = "graphstore.changes"
RETENTION: Final = "graphstore.retention"

_BASE_ERRORS: Final = (
    "OPERATION_NOT_FOUND",
    "VALIDATION_ERROR",
    "ACCESS_DENIED",
    "NOT_FOUND",
    "EXECUTION_ERROR",
    "UNKNOWN_ERROR",
)
_KIND_ERRORS: Final[Mapping[OperationKind, tuple[str, ...]]] = {
    "query": ("TIMEOUT",),
    "mutation": ("CONFLICT",),
    "subscription": (),
}
_GROUP_OF: Final[Mapping[OperationKind, Operation]] = {
    "query": "read",
    "mutation": "write",
    "subscription": "read",
}


@dataclass(frozen=True)
class BoundOperation:
    """A spec and how the executor runs it: ``group`` is the permission group checked
    (``read``, ``write``, ...), ``action`` what runs (``node.create``, ``runs.list``)
    and ``graph_type`` the graph type of a graph type's operation."""

    spec: OperationSpec
    group: Operation
    action: str
    graph_type: str | None = None

    @property
    def operation_id(self) -> str:
        return self.spec.operation_id


@dataclass(frozen=True)
class GraphTypeShape:
    """What a graph type's specs are generated from: its name, version, node and edge
    types (from :class:`domain.GraphTypeInfo`, or a built-in module not installed yet)."""

    name: str
    version: int
    description: str
    node_types: Mapping[str, NodeTypeDef] = field(default_factory=dict)
    edge_types: Mapping[str, EdgeTypeDef] = field(default_factory=dict)

    @classmethod
    def of(cls, info: GraphTypeInfo) -> GraphTypeShape:
        return cls(
            name=info.name,
            version=info.version,
            description=info.description,
            node_types=dict(info.node_types),
            edge_types=dict(info.edge_types),
        )

    @property
    def spec_version(self) -> str:
        """``<type version>.<number of node and edge types>.0``: a schema evolution (the
        type's version) is a major change; an added node or edge type a minor one."""
        return f"{self.version}.{len(self.node_types) + len(self.edge_types)}.0"


def _call_graph_shape() -> GraphTypeShape:
    """The built-in call graph as installed on a tenant's first call."""
    return GraphTypeShape(
        name=CALL_GRAPH_SPEC.name,
        version=1,
        description=CALL_GRAPH_SPEC.description,
        node_types={
            t.name: NodeTypeDef(name=t.name, description=t.description, schema=t.schema)
            for t in CALL_GRAPH_SPEC.node_types
        },
        edge_types={
            t.name: EdgeTypeDef(
                name=t.name,
                description=t.description,
                schema=t.schema,
                allowed_source_types=t.sources,
                allowed_target_types=t.targets,
            )
            for t in CALL_GRAPH_SPEC.edge_types
        },
    )


def _errors(kind: OperationKind) -> list[ErrorSchema]:
    return [
        ErrorSchema(
            code=code,
            description=ERRORS[code].summary,
            schema=error_body(code),
            http_status=ERRORS[code].http_status,
        )
        for code in (*_BASE_ERRORS, *_KIND_ERRORS[kind])
    ]


def _bound(
    namespace: str,
    name: str,
    kind: OperationKind,
    *,
    title: str,
    description: str,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    resource: str,
    action: str,
    version: str,
    tags: list[str],
    graph_type: str | None = None,
    group: str | None = None,
) -> BoundOperation:
    """One operation's spec bound to its action; ``group`` (a permission group, e.g.
    ``operate``) when it is not the kind's (a query reads, a mutation writes)."""
    group = cast(Operation, group) if group in OPERATIONS else _GROUP_OF[kind]
    spec = OperationSpec(
        name=name,
        namespace=namespace,
        version=version,
        type=kind,
        title=title,
        description=f"{description} Needs {SCOPES[group]}: {OPERATIONS[group]}.",
        tags=tags,
        input_schema=input_schema,
        output_schema=output_schema,
        error_schemas=_errors(kind),
        access_control=AccessControl(
            required_scopes=[SCOPES[group]],
            resource_type=resource,
            resource_action=action.rsplit(".", 1)[-1],
        ),
    )
    return BoundOperation(spec=spec, group=group, action=action, graph_type=graph_type)


# --- a graph type's operations ---------------------------------------------------------


def _with(schema: dict[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    schema["properties"].update({k: dict(v) for k, v in properties.items()})
    return schema


def _names(types: Iterable[str], what: str) -> dict[str, Any]:
    names = sorted(types)
    return {"enum": names, "description": f"One of the graph type's {what} types."}


def graph_type_operations(shape: GraphTypeShape) -> list[BoundOperation]:
    """The operations on graphs, nodes and edges of graph type ``shape`` (namespace: its
    name): createGraph, getGraph, listGraphs; createNode, getNode, listNodes, updateNode,
    deleteNode; the same five for edges."""
    gt, version = shape.name, shape.spec_version
    node_names, edge_names = _names(shape.node_types, "node"), _names(shape.edge_types, "edge")
    node_clauses = typed_attributes(gt, "node", shape.node_types, type_field="nodeType")
    edge_clauses = typed_attributes(gt, "edge", shape.edge_types, type_field="edgeType")
    attributes = {"type": "object", "description": "The attributes (a JSON object)."}
    update_attributes = {
        "type": "object",
        "description": "merge: the top-level fields to set (others stay); replace: every "
        "field. The result is checked against the type's schema when written.",
    }
    mode = {"enum": ["merge", "replace"], "default": "merge"}

    node_row = struct_schema(NodeRow)
    node_row["properties"]["nodeType"] = node_names
    node_row["allOf"] = typed_attributes(
        gt, "node", shape.node_types, type_field="nodeType", current_version=True
    )
    edge_row = struct_schema(EdgeRow)
    edge_row["properties"]["edgeType"] = edge_names
    edge_row["allOf"] = typed_attributes(
        gt, "edge", shape.edge_types, type_field="edgeType", current_version=True
    )
    nodes_page = struct_schema(NodesPage)
    nodes_page["properties"]["items"]["items"] = node_row
    edges_page = struct_schema(EdgesPage)
    edges_page["properties"]["items"]["items"] = edge_row
    graph_row = struct_schema(GraphRow)
    graphs_page = struct_schema(GraphsPage)
    graphs_page["properties"]["items"]["items"] = graph_row

    common = {"version": version, "graph_type": gt}
    tags = [f"graph-type:{gt}"]
    ops = [
        _bound(
            gt,
            "createGraph",
            "mutation",
            title=f"Create a {gt} graph",
            description=f"Create a graph of type {gt!r} (status draft unless active is "
            "asked); gives the graph with its id.",
            input_schema=obj(
                {
                    "name": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "description": {"type": "string", "default": ""},
                    "ownerId": {"type": "string", "default": ""},
                    "projectId": {"type": "string", "default": ""},
                    "status": {"enum": ["draft", "active"], "default": "draft"},
                },
                ("name",),
            ),
            output_schema=graph_row,
            resource="graph",
            action="graph.create",
            tags=[*tags, "graphs"],
            **common,
        ),
        _bound(
            gt,
            "getGraph",
            "query",
            title=f"Get a {gt} graph",
            description="A graph of this type, as the read model has it.",
            input_schema=obj({"graphId": GRAPH_ID, "minPosition": MIN_POSITION}, ("graphId",)),
            output_schema=graph_row,
            resource="graph",
            action="graph.get",
            tags=[*tags, "graphs"],
            **common,
        ),
        _bound(
            gt,
            "listGraphs",
            "query",
            title=f"List {gt} graphs",
            description="The graphs of this type by id, one page at a time, filtered by "
            "status, owner and project.",
            input_schema=obj(
                {
                    "status": {"enum": ["draft", "active", "archived"]},
                    "ownerId": {"type": "string"},
                    "projectId": {"type": "string"},
                    "after": AFTER,
                    "limit": LIMIT,
                    "minPosition": MIN_POSITION,
                }
            ),
            output_schema=graphs_page,
            resource="graph",
            action="graph.list",
            tags=[*tags, "graphs"],
            **common,
        ),
        _bound(
            gt,
            "createNode",
            "mutation",
            title=f"Add a node to a {gt} graph",
            description="Add a node with a key unique in the graph; its attributes must "
            "match its node type's schema.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "key": KEY,
                    "nodeType": node_names,
                    "attributes": {**attributes, "default": {}},
                },
                ("graphId", "key", "nodeType"),
                allOf=node_clauses,
            ),
            output_schema=node_row,
            resource="node",
            action="node.create",
            tags=[*tags, "nodes"],
            **common,
        ),
        _bound(
            gt,
            "getNode",
            "query",
            title=f"Get a node of a {gt} graph",
            description="A node by key, as the read model has it.",
            input_schema=obj(
                {"graphId": GRAPH_ID, "key": KEY, "minPosition": MIN_POSITION},
                ("graphId", "key"),
            ),
            output_schema=node_row,
            resource="node",
            action="node.get",
            tags=[*tags, "nodes"],
            **common,
        ),
        _bound(
            gt,
            "listNodes",
            "query",
            title=f"List nodes of a {gt} graph",
            description="A graph's nodes by key, one page at a time, of one node type or all.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "nodeType": node_names,
                    "after": AFTER,
                    "limit": LIMIT,
                    "minPosition": MIN_POSITION,
                },
                ("graphId",),
            ),
            output_schema=nodes_page,
            resource="node",
            action="node.list",
            tags=[*tags, "nodes"],
            **common,
        ),
        _bound(
            gt,
            "updateNode",
            "mutation",
            title=f"Change a node of a {gt} graph",
            description="Change a node's attributes (merge or replace); the result must "
            "match its node type's schema.",
            input_schema=obj(
                {"graphId": GRAPH_ID, "key": KEY, "attributes": update_attributes, "mode": mode},
                ("graphId", "key", "attributes"),
            ),
            output_schema=node_row,
            resource="node",
            action="node.update",
            tags=[*tags, "nodes"],
            **common,
        ),
        _bound(
            gt,
            "deleteNode",
            "mutation",
            title=f"Delete a node of a {gt} graph",
            description="Delete a node and every edge touching it.",
            input_schema=obj({"graphId": GRAPH_ID, "key": KEY}, ("graphId", "key")),
            output_schema=struct_schema(NodeDeleted),
            resource="node",
            action="node.delete",
            tags=[*tags, "nodes"],
            **common,
        ),
        _bound(
            gt,
            "createEdge",
            "mutation",
            title=f"Add an edge to a {gt} graph",
            description="Add an edge between two existing nodes (their node types must be "
            "allowed by the edge type); its attributes must match the edge type's schema.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "edgeType": edge_names,
                    "source": KEY,
                    "target": KEY,
                    "attributes": {**attributes, "default": {}},
                    "key": KEY,
                    "undirected": {"type": "boolean"},
                },
                ("graphId", "edgeType", "source", "target"),
                allOf=edge_clauses,
            ),
            output_schema=edge_row,
            resource="edge",
            action="edge.create",
            tags=[*tags, "edges"],
            **common,
        ),
        _bound(
            gt,
            "getEdge",
            "query",
            title=f"Get an edge of a {gt} graph",
            description="An edge by id or by key, as the read model has it.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "id": {"type": "string", "minLength": 1},
                    "key": KEY,
                    "minPosition": MIN_POSITION,
                },
                ("graphId",),
                oneOf=[{"required": ["id"]}, {"required": ["key"]}],
            ),
            output_schema=edge_row,
            resource="edge",
            action="edge.get",
            tags=[*tags, "edges"],
            **common,
        ),
        _bound(
            gt,
            "listEdges",
            "query",
            title=f"List edges of a {gt} graph",
            description="A graph's edges by id, one page at a time, filtered by edge type, "
            "source and target.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "edgeType": edge_names,
                    "source": KEY,
                    "target": KEY,
                    "after": AFTER,
                    "limit": LIMIT,
                    "minPosition": MIN_POSITION,
                },
                ("graphId",),
            ),
            output_schema=edges_page,
            resource="edge",
            action="edge.list",
            tags=[*tags, "edges"],
            **common,
        ),
        _bound(
            gt,
            "updateEdge",
            "mutation",
            title=f"Change an edge of a {gt} graph",
            description="Change an edge's attributes (merge or replace); the result must "
            "match its edge type's schema.",
            input_schema=obj(
                {
                    "graphId": GRAPH_ID,
                    "id": {"type": "string", "minLength": 1},
                    "attributes": update_attributes,
                    "mode": mode,
                },
                ("graphId", "id", "attributes"),
            ),
            output_schema=edge_row,
            resource="edge",
            action="edge.update",
            tags=[*tags, "edges"],
            **common,
        ),
        _bound(
            gt,
            "deleteEdge",
            "mutation",
            title=f"Delete an edge of a {gt} graph",
            description="Delete one edge, by id.",
            input_schema=obj(
                {"graphId": GRAPH_ID, "id": {"type": "string", "minLength": 1}},
                ("graphId", "id"),
            ),
            output_schema=struct_schema(EdgeDeleted),
            resource="edge",
            action="edge.delete",
            tags=[*tags, "edges"],
            **common,
        ),
    ]
    return ops


# --- the store's own operations ------------------------------------------------------------


def _run_id(description: str = "The run's id: its root call's requestId.") -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": 1000, "description": description}


def _subscription_options() -> dict[str, Any]:
    return {
        "name": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
            "description": "Keep a durable position under this name: reopened, the "
            "subscription resumes after the last change handled.",
        },
        "fromStart": {
            "type": "boolean",
            "default": False,
            "description": "Start at the beginning of the stream (default: at the changes "
            "committed from now on).",
        },
        "after": {
            "type": "integer",
            "minimum": 0,
            "description": "Give only changes after this position (a change's position: "
            "resume where a consumer left off, e.g. SSE Last-Event-ID).",
        },
    }


def store_operations() -> list[BoundOperation]:
    """The store's own operations: ingest call events; runs list, show, as of an offset,
    history and export; subscriptions to a tenant's, a graph's or a run's changes."""
    common: dict[str, Any] = {"version": STORE_VERSION}
    calls_tags, runs_tags, changes_tags = (
        ["graphstore", "calls"],
        ["graphstore", "runs"],
        [
            "graphstore",
            "changes",
        ],
    )
    runs_input = obj(
        {
            "status": {
                "type": "array",
                "items": {"enum": ["running", "completed", "failed", "aborted"]},
                "minItems": 1,
                "uniqueItems": True,
            },
            "since": {"type": "integer", "description": "Started at or after (ms)."},
            "until": {"type": "integer", "description": "Started before (ms)."},
            "limit": {**LIMIT, "default": 50},
            "after": obj(
                {"startedAt": {"type": "integer"}, "runId": _run_id()},
                ("startedAt", "runId"),
                description="The previous page's next.",
            ),
            "newestFirst": {"type": "boolean", "default": True},
            "detached": {
                "type": "boolean",
                "default": False,
                "description": "Include subtrees still waiting for their parent call.",
            },
            "minPosition": MIN_POSITION,
        }
    )
    change = struct_schema(ChangeOut)
    ops = [
        _bound(
            CALLS,
            "ingest",
            "mutation",
            title="Ingest call events",
            description="Fold call protocol events into the tenant's call graph as ONE "
            "transaction: all or nothing; a repeated event changes nothing.",
            input_schema=obj(
                {
                    "events": {
                        "type": "array",
                        "items": CALL_EVENT,
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                    },
                    "operationTypes": {
                        "type": "object",
                        "additionalProperties": {"enum": list(OPERATION_TYPES)},
                        "description": "operationId -> query, mutation or subscription "
                        "(unknown operations are queries).",
                    },
                    "abortPolicy": {
                        "enum": ["abort-dependents", "continue-running"],
                        "default": "abort-dependents",
                    },
                },
                ("events",),
            ),
            output_schema=struct_schema(IngestOut),
            resource="call",
            action="calls.ingest",
            tags=calls_tags,
            **common,
        ),
        _bound(
            RUNS,
            "list",
            "query",
            title="List workflow runs",
            description="Workflow runs by start time, one page at a time, filtered by "
            "status and start time.",
            input_schema=runs_input,
            output_schema=struct_schema(RunsPage),
            resource="run",
            action="runs.list",
            tags=runs_tags,
            **common,
        ),
        _bound(
            RUNS,
            "show",
            "query",
            title="Show a workflow run",
            description="A run now and its call tree (depth first, siblings by request time).",
            input_schema=obj({"runId": _run_id(), "minPosition": MIN_POSITION}, ("runId",)),
            output_schema=struct_schema(RunDetailOut),
            resource="run",
            action="runs.show",
            tags=runs_tags,
            **common,
        ),
        _bound(
            RUNS,
            "asOf",
            "query",
            title="Show a workflow run as of an offset",
            description="A run and its call tree as they were once the event at offset was "
            "recorded (time travel; folded from the stream).",
            input_schema=obj({"runId": _run_id(), "offset": OFFSET}, ("runId", "offset")),
            output_schema=struct_schema(RunSnapshotOut),
            resource="run",
            action="runs.asOf",
            tags=runs_tags,
            **common,
        ),
        _bound(
            RUNS,
            "history",
            "query",
            title="A workflow run's history",
            description="Every stream event that touched a call of the run, in stream "
            "order, with offsets and the call protocol events each applied.",
            input_schema=obj({"runId": _run_id(), "upto": OFFSET}, ("runId",)),
            output_schema=struct_schema(HistoryOut),
            resource="run",
            action="runs.history",
            tags=runs_tags,
            **common,
        ),
        _bound(
            RUNS,
            "export",
            "query",
            title="Export a workflow run",
            description="A run's call protocol events, in the order they were applied: "
            "graphstore.calls.ingest takes them back (with operationTypes).",
            input_schema=obj({"runId": _run_id()}, ("runId",)),
            output_schema=_with(
                struct_schema(ExportOut), {"events": {"type": "array", "items": CALL_EVENT}}
            ),
            resource="run",
            action="runs.export",
            tags=runs_tags,
            **common,
        ),
        _bound(
            CHANGES,
            "tenant",
            "subscription",
            title="Follow a tenant's changes",
            description="Every committed change of a projection of the tenant, in order, "
            "each with its position (a stream of outputs, until closed).",
            input_schema=obj(
                {
                    "projection": {"enum": ["metagraph", "flowgraph"], "default": "metagraph"},
                    **_subscription_options(),
                }
            ),
            output_schema=change,
            resource="tenant",
            action="changes.tenant",
            tags=changes_tags,
            **common,
        ),
        _bound(
            CHANGES,
            "graph",
            "subscription",
            title="Follow a graph's changes",
            description="Every committed change of one graph (its nodes and edges), in "
            "order, each with its position.",
            input_schema=obj(
                {"graphId": GRAPH_ID, **_subscription_options()},
                ("graphId",),
            ),
            output_schema=change,
            resource="graph",
            action="changes.graph",
            tags=changes_tags,
            **common,
        ),
        _bound(
            CHANGES,
            "run",
            "subscription",
            title="Follow a workflow run's changes",
            description="Every committed change of one run's calls (the flowgraph's), in "
            "order, each with its position and the call's new status.",
            input_schema=obj({"runId": _run_id(), **_subscription_options()}, ("runId",)),
            output_schema=change,
            resource="run",
            action="changes.run",
            tags=changes_tags,
            **common,
        ),
    ]
    return [*ops, *retention_operations()]


def retention_operations() -> list[BoundOperation]:
    """A tenant's retention (docs/retention.md): set and show the policy, run a pass,
    forget a run. Each needs ``operate``; the writes are audited."""
    from graphstore.retention import PassReport, RetentionStatus  # noqa: PLC0415

    common: dict[str, Any] = {"version": STORE_VERSION, "group": "operate"}
    tags = ["graphstore", "retention"]
    duration = {"type": "integer", "minimum": 1, "maximum": 100 * 365 * 86_400}
    policy = obj(
        {
            "finishedOlderThanS": {
                **duration,
                "description": "Completed runs go this many seconds after they finished.",
            },
            "failedOlderThanS": {
                **duration,
                "description": "The period for failed or aborted runs.",
            },
            "keepAtMost": {
                "type": "integer",
                "minimum": 0,
                "description": "Finished runs kept at most.",
            },
            "archive": {"type": "string", "minLength": 1, "description": "Archive directory."},
            "clear": {"type": "boolean", "default": False, "description": "Remove the policy."},
        }
    )
    return [
        _bound(
            RETENTION,
            "setPolicy",
            "mutation",
            title="Set the retention policy",
            description="Record the tenant's retention policy (an event, audited).",
            input_schema=policy,
            output_schema=struct_schema(RetentionStatus),
            resource="retention",
            action="retention.setPolicy",
            tags=tags,
            **common,
        ),
        _bound(
            RETENTION,
            "show",
            "query",
            title="Show the retention policy",
            description="The policy, the runs retired so far, those due and those waiting "
            "for a consumer (named).",
            input_schema=obj({}),
            output_schema=struct_schema(RetentionStatus),
            resource="retention",
            action="retention.show",
            tags=tags,
            **common,
        ),
        _bound(
            RETENTION,
            "run",
            "mutation",
            title="Run a retention pass",
            description="Retire the finished runs the policy lets go (dryRun: only list them).",
            input_schema=obj({"dryRun": {"type": "boolean", "default": False}}),
            output_schema=struct_schema(PassReport),
            resource="retention",
            action="retention.run",
            tags=tags,
            **common,
        ),
        _bound(
            RUNS,
            "forget",
            "mutation",
            title="Forget a run",
            description="Erase one run now, whatever the policy: only a tombstone without "
            "payload stays (abort: abort its calls in flight first).",
            input_schema=obj(
                {"runId": _run_id(), "abort": {"type": "boolean", "default": False}}, ("runId",)
            ),
            output_schema=struct_schema(PassReport),
            resource="run",
            action="runs.forget",
            tags=["graphstore", "runs"],
            **common,
        ),
    ]


# --- a tenant's operations ---------------------------------------------------------------


def graph_type_shapes(metagraph: Metagraph) -> list[GraphTypeShape]:
    """Every graph type of the tenant, by name, plus the built-in call graph as it will be
    installed if the tenant has had no call yet (authorized as a read)."""
    shapes = {
        name: GraphTypeShape.of(metagraph.get_graph_type(name)) for name in metagraph.graph_types()
    }
    shapes.setdefault(CALL_GRAPH, _call_graph_shape())
    return [shapes[name] for name in sorted(shapes)]


def tenant_operations(metagraph: Metagraph | None) -> list[BoundOperation]:
    """The store's operations, then every graph type's of the tenant (``None``: the
    store's only)."""
    ops = store_operations()
    if metagraph is not None:
        for shape in graph_type_shapes(metagraph):
            ops += graph_type_operations(shape)
    return ops
