"""Running an operation by its id: find its spec, check the input, authorize, run, check
the output (docs/operations.md, "The executor").

    from graphstore.operations import Executor

    with graphstore.open("data", api_key=key) as store, Executor(store) as ops:
        graph = ops.invoke("social.createGraph", {"name": "friends"}, tenant="acme")
        ops.invoke("social.createNode", {"graphId": graph["id"], "key": "ada",
                                         "nodeType": "person", "attributes": {...}},
                   tenant="acme")

:meth:`Executor.invoke` acts as the store's principal (``graphstore.open(path,
principal=...)`` or ``api_key=...``). Every refusal and failure is an
:class:`~graphstore.operations.errors.OperationError` with the platform's code; a
refusal writes nothing to the tenant. A query or mutation gives its output as JSON
values (camelCase); a subscription gives an :class:`OperationSubscription`, an iterator
of outputs to close when done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
from eventsourcing.persistence import PersistenceError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaViolation
from jsonschema.exceptions import best_match

from domain.errors import (
    AccessDeniedError,
    AttributesInvalidError,
    CallEventError,
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from graphstore.operations.errors import (
    ExecutionError,
    InputValidationError,
    OperationAccessDeniedError,
    OperationError,
    OperationNotFoundError,
    OperationTimeoutError,
    OutputValidationError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from graphstore.operations.model import OperationSpec
from graphstore.operations.specs import (
    BoundOperation,
    GraphTypeShape,
    graph_type_operations,
    graph_type_shapes,
    store_operations,
)
from graphstore.operations.tables import ReadModel, WaitTimeoutError
from graphstore.operations.wire import (
    CallOut,
    ChangeOut,
    EdgeDeleted,
    EdgeRow,
    EdgesPage,
    ExportOut,
    GraphRow,
    GraphsPage,
    HistoryEntryOut,
    HistoryOut,
    IngestOut,
    NodeDeleted,
    NodeRow,
    NodesPage,
    RunCursorOut,
    RunDetailOut,
    RunOut,
    RunSnapshotOut,
    RunsPage,
)

if TYPE_CHECKING:
    from types import TracebackType

    from domain import Metagraph
    from domain.calls import AbortPolicy, CallEvent, OperationTypes
    from graphstore.store import Store
    from projections import Change, Subscription

__all__ = ["DEFAULT_WAIT", "Executor", "OperationSubscription", "invoke"]

DEFAULT_WAIT: Final = 5.0
"""Seconds a query waits for the read model to reach its ``minPosition``."""

_VALIDATORS: Final = 512
_W = TypeVar("_W", bound=msgspec.Struct)
_GRAPH_ACTIONS: Final = frozenset(
    op.spec.name
    for op in graph_type_operations(GraphTypeShape(name="x", version=1, description=""))
)


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _struct(value: Any, cls: type[_W], **more: Any) -> _W:
    """The wire value ``cls`` of a read value with the same (snake_case) field names,
    nested values included; ``more`` adds fields."""
    converted = msgspec.convert(value, cls, from_attributes=True) if not more else None
    if converted is not None:
        return converted
    fields = {f: getattr(value, f) for f in value.__struct_fields__}
    return msgspec.convert({**fields, **more}, cls, from_attributes=True)


class OperationSubscription:
    """The outputs of a subscription operation, in order, until closed: each a change
    (``graphstore.changes.*``'s outputSchema) as JSON values with its ``position``.

    Iterate it (blocks for the next change; ends when closed), or call :meth:`next`
    with a timeout, or :meth:`poll` for what is there now. A named subscription keeps a
    durable position (saved as changes are handed out and on :meth:`close`); ``after``
    leaves out changes at or before a position (resume after a consumer's last one).
    Consume it from one thread (or task); :meth:`close` from any.
    """

    def __init__(
        self,
        subscription: Subscription,
        *,
        operation_id: str,
        validate: Callable[[Any], None],
        after: int | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._subscription = subscription
        self._on_close = on_close
        self.operation_id = operation_id
        self._validate = validate
        self._after = after

    @property
    def position(self) -> int:
        """The position of the last change handled (acknowledged)."""
        return self._subscription.position

    def _out(self, change: Change) -> dict[str, Any] | None:
        if self._after is not None and change.position <= self._after:
            return None
        value: dict[str, Any] = msgspec.to_builtins(_struct(change, ChangeOut))
        self._validate(value)
        return value

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next change, waiting up to ``timeout`` seconds (None: until one comes or
        the subscription is closed); None if none came."""
        while True:
            change = self._subscription.next(timeout)
            if change is None:
                return None
            out = self._out(change)
            if out is not None:
                return out

    def poll(self) -> list[dict[str, Any]]:
        """Every change visible now after those already handed out, without waiting."""
        found = (self._out(change) for change in self._subscription.poll())
        return [out for out in found if out is not None]

    def commit(self, position: int | None = None) -> None:
        """Save ``position`` (default: the last handled) as a named subscription's
        durable position."""
        self._subscription.commit(position)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            out = self.next()
            if out is None:
                return
            yield out

    def close(self) -> None:
        """Stop; a named subscription saves its position; the file is released."""
        try:
            self._subscription.close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()

    def __enter__(self) -> OperationSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Executor:
    """Runs operations on a :class:`graphstore.Store`, as its principal.

    ``wait`` is how long a query with ``minPosition`` waits for the read model. Tenant
    files are opened for reading on first use and kept until :meth:`close` (the store
    stays the caller's to close).
    """

    def __init__(self, store: Store, *, wait: float = DEFAULT_WAIT) -> None:
        self.store = store
        self.wait = wait
        self._own = {op.operation_id: op for op in store_operations()}
        self._reads: dict[str, ReadModel] = {}
        self._validators: OrderedDict[bytes, Draft202012Validator] = OrderedDict()
        self._lock = threading.Lock()

    # --- specs --------------------------------------------------------------------------

    def specs(self, tenant: str | None = None) -> list[OperationSpec]:
        """Every operation's spec: the store's own, then each graph type's of ``tenant``
        (by graph type name); without a tenant, the store's own only. Reading a tenant's
        graph types needs ``read`` on it."""
        found = [op.spec for op in self._own.values()]
        if tenant is not None:
            metagraph = self._guard("", lambda: self.store.tenant(tenant))
            for shape in self._guard("", lambda: graph_type_shapes(metagraph)):
                found += [op.spec for op in graph_type_operations(shape)]
        return found

    def find(self, operation_id: str, *, tenant: str) -> BoundOperation:
        """The operation ``operation_id`` of ``tenant``, or :class:`OperationNotFoundError`.

        A graph type's operation is looked up in the tenant's graph types, which needs
        ``read`` on the tenant: a principal that may not read it gets
        ``ACCESS_DENIED`` rather than learning which graph types exist.
        """
        own = self._own.get(operation_id)
        if own is not None:
            return own
        namespace, _, name = operation_id.rpartition(".")
        if not namespace or name not in _GRAPH_ACTIONS:
            raise self._not_found(operation_id)
        metagraph = self._guard(operation_id, lambda: self.store.tenant(tenant))
        shapes = self._guard(operation_id, lambda: graph_type_shapes(metagraph))
        for shape in shapes:
            if shape.name == namespace:
                for op in graph_type_operations(shape):
                    if op.spec.name == name:
                        return op
        raise self._not_found(operation_id, tenant)

    def _not_found(self, operation_id: str, tenant: str | None = None) -> OperationError:
        where = f" in tenant {tenant!r}" if tenant else ""
        return OperationNotFoundError(
            f"no operation {operation_id!r}{where}: `graphstore ops export --tenant <org>` "
            "lists every operation (a graph type's are named <graph type>.<operation>, e.g. "
            "social.createNode)",
            operation_id=operation_id,
            details={"operationId": operation_id},
        )

    # --- invoke ---------------------------------------------------------------------------

    def invoke(self, operation_id: str, input: Any, *, tenant: str) -> Any:
        """Run ``operation_id`` on ``tenant`` with ``input`` (JSON values) as the store's
        principal: its output (JSON values), or an :class:`OperationSubscription` for a
        subscription. Raises an :class:`OperationError` (module docstring)."""
        op = self.find(operation_id, tenant=tenant)
        # Authorization first: a principal that may not make the operation learns
        # nothing from its input (an outsider gets ACCESS_DENIED whatever it sends).
        self._guard(
            operation_id,
            lambda: self.store.authorize(tenant, op.group, f"invoke {operation_id}"),
        )
        self._check(op.spec.input_schema, input, operation_id, output=False)
        result = self._guard(
            operation_id, lambda: self._run(op, cast("dict[str, Any]", input), tenant)
        )
        if isinstance(result, OperationSubscription):
            return result
        output = msgspec.to_builtins(result)
        self._check(op.spec.output_schema, output, operation_id, output=True)
        return output

    def ingest_calls(
        self,
        events: Sequence[CallEvent | Mapping[str, Any]],
        *,
        tenant: str,
        source: str,
        operation_types: OperationTypes | None = None,
        abort_policy: AbortPolicy = "abort-dependents",
        lines: Sequence[int] | None = None,
    ) -> Any:
        """The ``graphstore.calls.ingest`` operation for events read from a file or a
        body (JSON Lines, a JSON array: checked by the call protocol, not the input
        schema): the same authorization, audit record, errors and output as
        :meth:`invoke`, with ``lines`` numbering the events in refusals and ``source``
        saying in the audit record where they came from."""
        from graphstore.operations.ingest import (  # noqa: PLC0415 - kept with its use
            INGEST_OPERATION,
            ingest_calls,
        )

        op = self.find(INGEST_OPERATION, tenant=tenant)
        self._guard(
            INGEST_OPERATION,
            lambda: self.store.authorize(tenant, op.group, f"invoke {INGEST_OPERATION}"),
        )
        report, position = self._guard(
            INGEST_OPERATION,
            lambda: ingest_calls(
                self.store.tenant(tenant),
                events,
                source=source,
                operation_types=operation_types,
                abort_policy=abort_policy,
                lines=lines,
            ),
        )
        output = msgspec.to_builtins(_struct(report, IngestOut, position=position))
        self._check(op.spec.output_schema, output, INGEST_OPERATION, output=True)
        return output

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = msgspec.json.encode(schema)
        with self._lock:
            found = self._validators.get(key)
            if found is not None:
                self._validators.move_to_end(key)
                return found
        validator = Draft202012Validator(schema)
        with self._lock:
            self._validators[key] = validator
            while len(self._validators) > _VALIDATORS:
                self._validators.popitem(last=False)
        return validator

    def _check(
        self, schema: dict[str, Any], value: Any, operation_id: str, *, output: bool
    ) -> None:
        error = best_match(self._validator(schema).iter_errors(value))
        if error is None:
            return
        path = _pointer(error.absolute_path)
        if output:
            raise OutputValidationError(
                f"{operation_id} gave an output its outputSchema refuses at "
                f"{path or '(root)'}: {error.message}. This is a defect of the store: report it",
                operation_id=operation_id,
                details={"path": path, "reason": error.message},
            )
        raise InputValidationError(
            f"invalid input for {operation_id} at {path or '(root)'}: {_reason(error)}. Fix "
            "the input: the operation's inputSchema (`graphstore ops export`) says what each "
            "field takes. Nothing was written",
            operation_id=operation_id,
            details={"path": path, "reason": error.message},
        )

    def _guard(self, operation_id: str, work: Callable[[], Any]) -> Any:
        """Run ``work``, turning the store's errors into operation errors."""
        try:
            return work()
        except OperationError:
            raise
        except AccessDeniedError as exc:
            raise OperationAccessDeniedError(
                str(exc),
                operation_id=operation_id,
                details={"operation": exc.operation, "tenant": exc.org_id, "missing": exc.missing},
            ) from exc
        except ForbiddenError as exc:
            raise OperationAccessDeniedError(str(exc), operation_id=operation_id) from exc
        except NotFoundError as exc:
            raise ResourceNotFoundError(
                str(exc), operation_id=operation_id, details={"kind": exc.kind, "name": exc.name}
            ) from exc
        except ValidationError as exc:
            details: dict[str, Any] = {}
            if isinstance(exc, AttributesInvalidError):
                details = {"path": exc.path, "reason": exc.reason}
            if isinstance(exc, CallEventError):
                details = {"requestId": exc.request_id, "line": exc.line}
            raise InputValidationError(
                str(exc), operation_id=operation_id, details=details
            ) from exc
        except ConflictError as exc:
            raise ResourceConflictError(str(exc), operation_id=operation_id) from exc
        except DomainError as exc:
            raise ExecutionError(str(exc), operation_id=operation_id) from exc
        except WaitTimeoutError as exc:
            raise OperationTimeoutError(
                str(exc), operation_id=operation_id, details={"reached": exc.reached}
            ) from exc
        except PersistenceError as exc:
            raise ExecutionError(
                f"the store failed running {operation_id}: {exc}", operation_id=operation_id
            ) from exc
        except Exception as exc:
            raise OperationError(
                f"{operation_id} failed unexpectedly: {type(exc).__name__}: {exc}",
                operation_id=operation_id,
            ) from exc

    # --- running --------------------------------------------------------------------------

    def _read(self, tenant: str) -> ReadModel:
        with self._lock:
            found = self._reads.get(tenant)
        if found is not None:
            return found
        opened = ReadModel(self.store.data.tenant_env(tenant))
        with self._lock:
            found = self._reads.setdefault(tenant, opened)
        if found is not opened:
            opened.close()
        return found

    def _waited(self, tenant: str, base: Any, data: Mapping[str, Any]) -> ReadModel:
        read = self._read(tenant)
        if "minPosition" in data:
            wanted, head = int(data["minPosition"]), _head(self.store.tenant(tenant))
            if wanted > head:  # no write has that position: waiting would only time out
                raise ValidationError(
                    f"minPosition {wanted} is past the tenant stream's head ({head}): pass "
                    "the position a write returned"
                )
            read.wait_for(base, wanted, self.wait)
        return read

    def _run(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        if op.graph_type is not None:
            return self._graph_type_action(op, data, tenant)
        handler = {
            "calls.ingest": self._ingest,
            "runs.list": self._runs_list,
            "runs.show": self._runs_show,
            "runs.asOf": self._runs_as_of,
            "runs.history": self._runs_history,
            "runs.export": self._runs_export,
            "changes.tenant": self._changes,
            "changes.graph": self._changes,
            "changes.run": self._changes,
            "retention.setPolicy": self._retention,
            "retention.show": self._retention,
            "retention.run": self._retention,
            "runs.forget": self._retention,
        }[op.action]
        return handler(op, data, tenant)

    # --- a graph type's operations -------------------------------------------------------

    def _graph_type_action(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from projections import MetagraphProjection  # noqa: PLC0415 - kept with its use
        from projections.metagraph import node_id  # noqa: PLC0415

        gt = cast("str", op.graph_type)
        metagraph = self.store.tenant(tenant)
        kind, action = op.action.split(".")
        if op.spec.type == "query":
            read = self._waited(tenant, MetagraphProjection, data)
            return self._query(read, gt, kind, action, data)
        if kind == "graph":
            graph_id = metagraph.create_graph(
                gt,
                data["name"],
                description=data.get("description", ""),
                owner_id=data.get("ownerId", ""),
                project_id=data.get("projectId", ""),
                status=data.get("status", "draft"),
            )
            info = metagraph.get_graph(graph_id)
            return GraphRow(
                id=str(info.id),
                graph_type_id=str(info.graph_type_id),
                graph_type_name=info.graph_type_name,
                name=info.name,
                description=info.description,
                status=info.status,
                owner_id=info.owner_id,
                project_id=info.project_id,
                position=_head(metagraph),
            )
        graph_id = data["graphId"]
        self._check_graph_type(metagraph, graph_id, gt)
        mode = data.get("mode", "merge")
        if kind == "node":
            key = data["key"]
            if action == "delete":
                edges = metagraph.delete_node(graph_id, key)
                return NodeDeleted(
                    graph_id=graph_id, key=key, deleted_edge_ids=edges, position=_head(metagraph)
                )
            if action == "create":
                metagraph.add_node(graph_id, key, data["nodeType"], data.get("attributes", {}))
            else:
                metagraph.update_node(graph_id, key, data["attributes"], mode=mode)
            node = metagraph.get_node(graph_id, key)
            return NodeRow(
                id=node_id(graph_id, key),
                graph_id=graph_id,
                key=key,
                node_type=node.node_type,
                attributes=node.attributes,
                schema_version=node.schema_version,
                position=_head(metagraph),
            )
        if action == "delete":
            metagraph.delete_edge(graph_id, data["id"])
            return EdgeDeleted(graph_id=graph_id, id=data["id"], position=_head(metagraph))
        if action == "create":
            edge_id = metagraph.add_edge(
                graph_id,
                data["edgeType"],
                data["source"],
                data["target"],
                data.get("attributes", {}),
                key=data.get("key"),
                undirected=data.get("undirected"),
            )
        else:
            edge_id = data["id"]
            metagraph.update_edge(graph_id, edge_id, data["attributes"], mode=mode)
        edge = metagraph.get_edge(graph_id, edge_id)
        return EdgeRow(
            id=edge.id,
            graph_id=graph_id,
            key=edge.key,
            edge_type=edge.edge_type,
            source_node_key=edge.source,
            target_node_key=edge.target,
            attributes=edge.attributes,
            undirected=edge.undirected,
            schema_version=edge.schema_version,
            position=_head(metagraph),
        )

    def _check_graph_type(self, metagraph: Metagraph, graph_id: str, gt: str) -> None:
        found = metagraph.get_graph(graph_id).graph_type_name
        if found != gt:
            raise NotFoundError(
                f"graph {graph_id} is a {found!r} graph, not a {gt!r} one: use the "
                f"{found} operations ({found}.<operation>)",
                kind="graph",
                name=graph_id,
            )

    def _query(
        self, read: ReadModel, gt: str, kind: str, action: str, data: Mapping[str, Any]
    ) -> Any:
        limit = int(data.get("limit", 100))
        after = data.get("after")
        if kind == "graph":
            if action == "get":
                return GraphRow(**_ms(_graph_row(read, data["graphId"], gt)))
            filters = {
                column: data[field]
                for field, column in (
                    ("status", "status"),
                    ("ownerId", "owner_id"),
                    ("projectId", "project_id"),
                )
                if field in data
            }
            rows = read.graphs(gt, filters=filters, after=after, limit=limit + 1)
            graphs = [GraphRow(**_ms(row)) for row in rows[:limit]]
            return GraphsPage(items=graphs, next=graphs[-1].id if len(rows) > limit else None)
        graph_id = data["graphId"]
        _graph_row(read, graph_id, gt)
        if kind == "node":
            if action == "get":
                row = read.node(graph_id, data["key"])
                if row is None:
                    raise NotFoundError(
                        f"no node {data['key']!r} in graph {graph_id} (in the read model: a "
                        "node just written shows once the runner applied it; pass the write's "
                        "position as minPosition)",
                        kind="node",
                        name=data["key"],
                    )
                return NodeRow(**_ms(row))
            rows = read.nodes(
                graph_id, node_type=data.get("nodeType"), after=after, limit=limit + 1
            )
            nodes = [NodeRow(**_ms(row)) for row in rows[:limit]]
            return NodesPage(items=nodes, next=nodes[-1].key if len(rows) > limit else None)
        if action == "get":
            row = read.edge(graph_id, edge_id=data.get("id"), key=data.get("key"))
            if row is None:
                name = data.get("id", data.get("key", ""))
                raise NotFoundError(
                    f"no edge {name!r} in graph {graph_id} (in the read model; pass a write's "
                    "position as minPosition to read it)",
                    kind="edge",
                    name=str(name),
                )
            return EdgeRow(**_ms({**row, "undirected": bool(row["undirected"])}))
        filters = {
            column: data[field]
            for field, column in (
                ("edgeType", "edge_type"),
                ("source", "source_node_key"),
                ("target", "target_node_key"),
            )
            if field in data
        }
        rows = read.edges(graph_id, filters=filters, after=after, limit=limit + 1)
        edges = [
            EdgeRow(**_ms({**row, "undirected": bool(row["undirected"])})) for row in rows[:limit]
        ]
        return EdgesPage(items=edges, next=edges[-1].id if len(rows) > limit else None)

    # --- the store's own operations --------------------------------------------------------

    def _ingest(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from graphstore.operations.ingest import ingest_calls  # noqa: PLC0415 - kept with its use

        report, position = ingest_calls(
            self.store.tenant(tenant),
            data["events"],
            source="operation",
            abort_policy=data.get("abortPolicy", "abort-dependents"),
            operation_types=data.get("operationTypes"),
        )
        return _struct(report, IngestOut, position=position)

    def _retention(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from graphstore import retention  # noqa: PLC0415 - kept with its use

        metagraph = self.store.tenant(tenant)
        if op.action == "runs.forget":
            return retention.forget_run(
                metagraph, tenant, data["runId"], abort=bool(data.get("abort"))
            )
        if op.action == "retention.setPolicy":
            retention.set_policy(metagraph, retention.policy_from_wire(data))
        with self.store.views(tenant) as views:
            if op.action == "retention.run":
                return retention.run_pass(
                    metagraph, views, tenant, dry_run=bool(data.get("dryRun"))
                )
            return retention.retention_status(metagraph, views, tenant)

    def _runs_list(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from projections import FlowgraphProjection  # noqa: PLC0415
        from projections.flowgraph import RunCursor  # noqa: PLC0415

        views = self._waited(tenant, FlowgraphProjection, data).flowgraph()
        after = data.get("after")
        page = views.runs(
            status=data.get("status"),
            since=data.get("since"),
            until=data.get("until"),
            limit=int(data.get("limit", 50)),
            after=None
            if after is None
            else RunCursor(started_at=after["startedAt"], run_id=after["runId"]),
            newest_first=data.get("newestFirst", True),
            detached=data.get("detached", False),
        )
        cursor = None if page.next is None else _struct(page.next, RunCursorOut)
        return RunsPage(runs=[_in_ms(_struct(run, RunOut)) for run in page.runs], next=cursor)

    def _runs_show(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from projections import FlowgraphProjection  # noqa: PLC0415

        views = self._waited(tenant, FlowgraphProjection, data).flowgraph()
        run = views.run(data["runId"])
        if run is None:
            raise _no_run(data["runId"], tenant)
        calls = views.call_tree(run.run_id)
        return RunDetailOut(
            run=_in_ms(_struct(run, RunOut)),
            calls=[_in_ms(_struct(call, CallOut)) for call in calls],
        )

    def _runs_as_of(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        snapshot = self._read(tenant).replay().run_as_of(data["runId"], data["offset"])
        if snapshot is None:
            raise _no_run(data["runId"], tenant, f" at offset {data['offset']}")
        return RunSnapshotOut(
            offset=snapshot.offset,
            run=_in_ms(_struct(snapshot.run, RunOut)),
            calls=[_in_ms(_struct(call, CallOut)) for call in snapshot.calls],
        )

    def _runs_history(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        entries = self._read(tenant).replay().history(data["runId"], upto=data.get("upto"))
        if not entries:
            raise _no_run(data["runId"], tenant)
        return HistoryOut(
            run_id=data["runId"],
            entries=[_struct(entry, HistoryEntryOut) for entry in entries],
        )

    def _runs_export(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        export = self._read(tenant).replay().export_run(data["runId"])
        if not export.events:
            raise _no_run(data["runId"], tenant)
        return ExportOut(
            run_id=export.run_id,
            events=[msgspec.to_builtins(event) for event in export.events],
            operation_types=dict(export.operation_types),
        )

    def _changes(self, op: BoundOperation, data: dict[str, Any], tenant: str) -> Any:
        from projections import FlowgraphProjection, MetagraphProjection  # noqa: PLC0415

        flow = op.action == "changes.run" or data.get("projection") == "flowgraph"
        projection = FlowgraphProjection if flow else MetagraphProjection  # the live version
        after, name = data.get("after"), data.get("name")
        seek = after is not None and name is None and not data.get("fromStart", False)
        subscription = self.store.subscribe(
            tenant,
            projection,
            name=name,
            graph=data.get("graphId"),
            run=data.get("runId"),
            # An unnamed subscription starts right after ``after``; a named one resumes
            # from its saved position, and ``after`` only filters what it hands out.
            from_start=bool(data.get("fromStart", False) or (after is not None and not seek)),
            **({"after": after} if seek else {}),
        )
        schema = op.spec.output_schema
        operation_id = op.operation_id
        return OperationSubscription(
            subscription,
            operation_id=operation_id,
            validate=lambda value: self._check(schema, value, operation_id, output=True),
            after=after,
        )

    # --- life ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the tenant files opened for reading (not the store)."""
        with self._lock:
            reads, self._reads = list(self._reads.values()), {}
        for read in reads:
            read.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_STAMPED = TypeVar("_STAMPED", RunOut, CallOut)


def _ms(row: dict[str, Any]) -> dict[str, Any]:
    """A read-model row with ``created_at``/``updated_at`` in ms since the epoch: the
    projections keep seconds (their stored format), the wire has one unit, ms."""
    return {
        **row,
        **{k: row[k] * 1000 for k in ("created_at", "updated_at") if row.get(k) is not None},
    }


def _in_ms(value: _STAMPED) -> _STAMPED:
    """A run or call with ``createdAt``/``updatedAt`` in ms, as every time of the wire."""
    return msgspec.structs.replace(
        value, created_at=value.created_at * 1000, updated_at=value.updated_at * 1000
    )


def _reason(error: SchemaViolation) -> str:
    return error.message if len(error.message) <= 300 else error.message[:297] + "..."


def _head(metagraph: Metagraph) -> int:
    """The tenant stream's head now: at or after the write just made."""
    return int(metagraph.recorder.max_notification_id() or 0)


def _graph_row(read: ReadModel, graph_id: str, gt: str) -> dict[str, Any]:
    row = read.graph(graph_id)
    if row is None or row["graph_type_name"] != gt:
        what = "" if row is None else f" (it is a {row['graph_type_name']!r} graph)"
        raise NotFoundError(
            f"no {gt!r} graph {graph_id} in the read model{what}: check the id, or pass the "
            "position createGraph gave as minPosition",
            kind="graph",
            name=graph_id,
        )
    return row


def _no_run(run_id: str, tenant: str, when: str = "") -> NotFoundError:
    return NotFoundError(
        f"no run {run_id!r} in tenant {tenant!r}{when}: graphstore.runs.list lists the runs",
        kind="run",
        name=run_id,
    )


def invoke(store: Store, operation_id: str, input: Any, *, tenant: str) -> Any:
    """Run one operation as ``store``'s principal (see :meth:`Executor.invoke`) with an
    executor of its own, closed before this returns (for a subscription: when the
    subscription is closed)."""
    executor = Executor(store)
    try:
        result = executor.invoke(operation_id, input, tenant=tenant)
    except BaseException:
        executor.close()
        raise
    if isinstance(result, OperationSubscription):
        result._on_close = executor.close
    else:
        executor.close()
    return result
