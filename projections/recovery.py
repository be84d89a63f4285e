"""After a crash: the workflow runs left with calls that will never end, and aborting them.

A writer that dies in the middle of a workflow (or whose producer died) leaves calls
``pending`` or ``running`` in the tenant's call graph for ever: nothing will send their
``call.completed``. :func:`in_flight_runs` lists the runs that have such calls, read from
the call graph itself (the aggregates, not the projections: it is right even while a
projector lags or is rebuilt). :func:`abort_in_flight` ends them through the normal path:
it ingests ``call.aborted`` call-protocol events with :func:`domain.calls.ingest` under
the ``abort-dependents`` policy, so the call rules, the abort cascade and every
projection follow exactly as for an abort sent by a producer. See docs/recovery.md.

The run of a call is the tree under its topmost recorded ancestor (``parentRequestId``
links between recorded calls), as the flowgraph views define it: a call whose parent is
not recorded heads a run of its own (a *detached* run).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from domain import Metagraph
from domain.calls import IngestReport, ingest
from domain.modules.call_graph import find_call_graph

__all__ = ["ACTIVE_STATUSES", "AbortReport", "InFlightRun", "abort_in_flight", "in_flight_runs"]

ACTIVE_STATUSES: Final = frozenset({"pending", "running"})
"""Call statuses that are not an end: a run with such a call is in flight."""


class InFlightRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run with calls that have not ended.

    ``run_id`` is the root's requestId, ``root_status`` the root's status, ``active`` the
    requestIds of its pending and running calls (sorted), ``heads`` those of them without
    an active ancestor: aborting the heads aborts every active call of the run (the
    cascade passes through ended calls), ``calls`` how many calls the run has.
    """

    run_id: str
    root_operation: str
    root_status: str
    calls: int
    active: list[str]
    heads: list[str]


class AbortReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`abort_in_flight` did: the runs and calls it aborted, the events it
    ingested (one ``call.aborted`` per head) and the ingestion's report."""

    runs: list[str]
    aborted_calls: int
    events: list[dict[str, Any]]
    report: IngestReport | None


def _calls(app: Metagraph) -> dict[str, dict[str, Any]]:
    graph = find_call_graph(app)
    if graph is None:
        return {}
    return {key: app.get_node(graph, key).attributes for key in app.nodes(graph)}


def _runs_of(calls: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """requestIds by run id (the topmost recorded ancestor; a cycle's entry call heads it)."""
    root_of: dict[str, str] = {}
    for key in calls:
        chain: list[str] = []
        seen: set[str] = set()
        node = key
        while True:
            if node in root_of:
                root = root_of[node]
                break
            chain.append(node)
            seen.add(node)
            parent = calls[node].get("parentRequestId")
            if parent is None or parent not in calls or parent in seen:
                root = node
                break
            node = parent
        for member in chain:
            root_of[member] = root
    runs: dict[str, list[str]] = {}
    for key, root in root_of.items():
        runs.setdefault(root, []).append(key)
    return runs


def _active_ancestor(key: str, calls: Mapping[str, Mapping[str, Any]]) -> bool:
    seen = {key}
    parent = calls[key].get("parentRequestId")
    while parent is not None and parent in calls and parent not in seen:
        if calls[parent]["status"] in ACTIVE_STATUSES:
            return True
        seen.add(parent)
        parent = calls[parent].get("parentRequestId")
    return False


def in_flight_runs(app: Metagraph) -> list[InFlightRun]:
    """The tenant's runs that have pending or running calls, by run id. Writes nothing."""
    calls = _calls(app)
    found: list[InFlightRun] = []
    for run_id, members in sorted(_runs_of(calls).items()):
        active = sorted(k for k in members if calls[k]["status"] in ACTIVE_STATUSES)
        if not active:
            continue
        heads = [k for k in active if not _active_ancestor(k, calls)]
        root = calls[run_id]
        found.append(
            InFlightRun(
                run_id=run_id,
                root_operation=str(root["operationId"]),
                root_status=str(root["status"]),
                calls=len(members),
                active=active,
                heads=heads,
            )
        )
    return found


def abort_events(runs: Iterable[InFlightRun], *, at: int) -> list[dict[str, Any]]:
    """One ``call.aborted`` event per head of each run, at ``at`` (ms since the epoch).

    Ids are ``recovery:<requestId>:<at>``: a second abort at the same time is recognised
    as the same event.
    """
    return [
        {
            "id": f"recovery:{head}:{at}",
            "type": "call.aborted",
            "at": at,
            "payload": {"requestId": head},
        }
        for run in runs
        for head in run.heads
    ]


def abort_in_flight(
    app: Metagraph, *, runs: Iterable[str] | None = None, at: int | None = None
) -> AbortReport:
    """Abort every in-flight run (or those of ``runs``) through call-protocol ingestion.

    Each head's ``call.aborted`` is ingested (one batch, all or nothing) under the
    ``abort-dependents`` policy: the head ends ``aborted`` and the cascade aborts its
    active descendants, each with an ``events`` entry naming the head as ``cause``.
    ``at`` (default: now) is the abort's time. Nothing in flight: nothing is written.
    """
    wanted = None if runs is None else set(runs)
    targets = [r for r in in_flight_runs(app) if wanted is None or r.run_id in wanted]
    if not targets:
        return AbortReport(runs=[], aborted_calls=0, events=[], report=None)
    events = abort_events(targets, at=int(time.time() * 1000) if at is None else at)
    report = ingest(app, events, abort_policy="abort-dependents")
    return AbortReport(
        runs=[r.run_id for r in targets],
        aborted_calls=sum(len(r.active) for r in targets),
        events=events,
        report=report,
    )
