"""What operations take and give, as typed values with camelCase names on the wire.

The rows (:class:`NodeRow`, :class:`EdgeRow`, :class:`GraphRow`) have the columns of
the metagraph projection's ``nodes``, ``edges`` and ``graphs`` tables
(``projections/metagraph.py``; a test compares them with the tables of a real tenant
file); the runs values have the fields of the flowgraph views and of replay
(``projections/flowgraph.py``, ``projections/replay.py``). The JSON Schemas of the
specs are derived from these types (:mod:`graphstore.operations.schemas`), so a field
added here shows in every spec that gives it.

A row read from the projection has ``createdAt``, ``updatedAt`` and ``metadata``; a row
a mutation returns is what the write recorded, with ``position``: the stream offset a
query can wait for (``minPosition``) to read that write.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "CallOut",
    "ChangeOut",
    "EdgeDeleted",
    "EdgeRow",
    "EdgesPage",
    "ExportOut",
    "GraphRow",
    "GraphsPage",
    "HistoryEntryOut",
    "HistoryOut",
    "IngestOut",
    "NodeDeleted",
    "NodeRow",
    "NodesPage",
    "ProtocolEntryOut",
    "RunCursorOut",
    "RunDetailOut",
    "RunOut",
    "RunSnapshotOut",
    "RunsPage",
]


class _Wire(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    pass


# --- the metagraph tables ---------------------------------------------------------------


class NodeRow(_Wire, frozen=True):
    """A node: a row of the ``nodes`` table (``id`` is derived from graph and key)."""

    id: str
    graph_id: str
    key: str
    node_type: str
    attributes: dict[str, Any]
    schema_version: int
    metadata: dict[str, Any] | None = None
    created_at: int | None = None
    updated_at: int | None = None
    position: int | None = None


class EdgeRow(_Wire, frozen=True):
    """An edge: a row of the ``edges`` table (``id`` is assigned by the store, ``key`` is
    the caller's, if any)."""

    id: str
    graph_id: str
    key: str | None
    edge_type: str
    source_node_key: str
    target_node_key: str
    attributes: dict[str, Any]
    undirected: bool
    schema_version: int
    metadata: dict[str, Any] | None = None
    created_at: int | None = None
    updated_at: int | None = None
    position: int | None = None


class GraphRow(_Wire, frozen=True):
    """A graph: a row of the ``graphs`` table (``graphTypeId`` is null once its type was
    deleted)."""

    id: str
    graph_type_id: str | None
    graph_type_name: str
    name: str
    description: str
    status: Literal["draft", "active", "archived"]
    owner_id: str
    project_id: str
    metadata: dict[str, Any] | None = None
    created_at: int | None = None
    updated_at: int | None = None
    position: int | None = None


class NodesPage(_Wire, frozen=True):
    """One page of nodes by key; ``next`` is the key to pass as ``after`` (null: last)."""

    items: list[NodeRow]
    next: str | None


class EdgesPage(_Wire, frozen=True):
    """One page of edges by id; ``next`` is the id to pass as ``after`` (null: last)."""

    items: list[EdgeRow]
    next: str | None


class GraphsPage(_Wire, frozen=True):
    """One page of graphs by id; ``next`` is the id to pass as ``after`` (null: last)."""

    items: list[GraphRow]
    next: str | None


class NodeDeleted(_Wire, frozen=True):
    """A deleted node and the edges deleted with it."""

    graph_id: str
    key: str
    deleted_edge_ids: list[str]
    position: int


class EdgeDeleted(_Wire, frozen=True):
    """A deleted edge."""

    graph_id: str
    id: str
    position: int


# --- calls and runs -----------------------------------------------------------------------


class IngestOut(_Wire, frozen=True):
    """What an ingested batch did (``domain.calls.IngestReport``) and the stream offset at
    or after its commit."""

    events: int
    applied: int
    unchanged: int
    writes: int
    transactions: int
    attempts: int
    position: int


class CallOut(_Wire, frozen=True):
    """One call of a run (the flowgraph's ``flow_calls`` row). Every time in ms since the
    epoch; ``createdAt``/``updatedAt`` (when the view row was written) to the second."""

    request_id: str
    run_id: str
    parent: str | None
    depth: int
    operation: str
    operation_type: str | None
    status: str
    requested_at: int
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    metadata: dict[str, Any]
    created_at: int
    updated_at: int


class RunOut(_Wire, frozen=True):
    """One workflow run (the flowgraph's ``flow_runs`` row)."""

    run_id: str
    root_operation: str
    root_parent: str | None
    status: str
    started_at: int
    completed_at: int | None
    duration_ms: int | None
    calls: int
    pending_calls: int
    running_calls: int
    completed_calls: int
    failed_calls: int
    aborted_calls: int
    last_completed_at: int | None
    created_at: int
    updated_at: int


class RunCursorOut(_Wire, frozen=True):
    """Where the next page of runs starts (pass it as ``after``)."""

    started_at: int
    run_id: str


class RunsPage(_Wire, frozen=True):
    """One page of runs; ``next`` is null on the last page."""

    runs: list[RunOut]
    next: RunCursorOut | None


class RunDetailOut(_Wire, frozen=True):
    """A run now and its calls in tree order."""

    run: RunOut
    calls: list[CallOut]


class RunSnapshotOut(_Wire, frozen=True):
    """A run as of a stream offset and its calls then, in tree order."""

    offset: int
    run: RunOut
    calls: list[CallOut]


class ProtocolEntryOut(_Wire, frozen=True):
    """A call protocol event a stream event applied to a call."""

    id: str
    type: str
    at: int
    cause: str | None = None


class HistoryEntryOut(_Wire, frozen=True):
    """One stream event that touched a call of the run, with the call's status after it."""

    offset: int
    time: int
    event: str
    request_id: str
    status: str | None
    applied: list[ProtocolEntryOut]


class HistoryOut(_Wire, frozen=True):
    """A run's history, in stream order."""

    run_id: str
    entries: list[HistoryEntryOut]


class ExportOut(_Wire, frozen=True):
    """A run's call protocol events (each as ``graphstore.calls.ingest`` takes them) and
    the operation types re-ingesting them needs."""

    run_id: str
    events: list[dict[str, Any]]
    operation_types: dict[str, Literal["query", "mutation", "subscription"]]


class ChangeOut(_Wire, frozen=True):
    """One committed change of a projection (``projections.Change``); ``position`` is
    its stream offset, what a consumer resumes after. A retirement (docs/retention.md)
    has ``status`` ``retired`` and ``runs``, the runs whose rows are gone."""

    position: int
    time: int
    type: str
    event: str
    subject: str
    projector: str
    graph_id: str | None = None
    node_key: str | None = None
    edge_id: str | None = None
    call_id: str | None = None
    status: str | None = None
    run_id: str | None = None
    runs: list[str] | None = None
