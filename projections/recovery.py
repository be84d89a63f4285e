"""After a crash: the workflow runs left with calls that will never end, and aborting them.

A writer that dies in the middle of a workflow (or whose producer died) leaves calls
``pending`` or ``running`` for ever: nothing will send their ``call.completed``.
:func:`in_flight_runs` lists the runs that have such calls from the flowgraph views,
after catching the flowgraph projector up to the stream's head in this process (so the
answer is not stale while a runner lags; the views are the only place that knows which
runs are active without reading every call of the tenant). :func:`abort_in_flight` ends
them through the write side, :func:`domain.calls.abort_calls`: one ``call.aborted`` per
head under the ``abort-dependents`` policy, so the rules, the cascade and every
projection follow as for an abort sent by a producer. See docs/recovery.md.

The run of a call is the tree under its topmost recorded ancestor, as the flowgraph
views define it: a call whose parent is not recorded heads a *detached* run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from domain import Metagraph
from domain.calls import IngestReport, abort_calls, abort_events
from projections.flowgraph import Flowgraph, FlowgraphProjection
from projections.rebuild import open_live_projector

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


_PAGE: Final = 500


def in_flight_runs(app: Metagraph, *, catch_up: bool = True) -> list[InFlightRun]:
    """The tenant's runs that have pending or running calls, by run id. Writes nothing
    but the flowgraph projector's progress (unless ``catch_up`` is false)."""
    if catch_up:
        with open_live_projector(app.env, FlowgraphProjection) as projector:
            projector.catch_up()
    found: list[InFlightRun] = []
    with Flowgraph.open(app.env) as views:
        page = views.runs(status="running", detached=True, limit=_PAGE, newest_first=False)
        while True:
            for run in page.runs:
                calls = views.call_tree(run.run_id)
                status = {c.request_id: c.status for c in calls}
                parent = {c.request_id: c.parent for c in calls}
                active = sorted(k for k, s in status.items() if s in ACTIVE_STATUSES)
                if not active:
                    continue
                heads = [k for k in active if not _active_ancestor(k, status, parent)]
                found.append(
                    InFlightRun(
                        run_id=run.run_id,
                        root_operation=run.root_operation,
                        root_status=status[run.run_id],
                        calls=run.calls,
                        active=active,
                        heads=heads,
                    )
                )
            if page.next is None:
                break
            page = views.runs(
                status="running", detached=True, limit=_PAGE, newest_first=False, after=page.next
            )
    return sorted(found, key=lambda r: r.run_id)


def _active_ancestor(key: str, status: dict[str, str], parent: dict[str, str | None]) -> bool:
    seen = {key}
    node = parent.get(key)
    while node is not None and node in status and node not in seen:
        if status[node] in ACTIVE_STATUSES:
            return True
        seen.add(node)
        node = parent.get(node)
    return False


def abort_in_flight(
    app: Metagraph, *, runs: Iterable[str] | None = None, at: int | None = None
) -> AbortReport:
    """Abort every in-flight run (or those of ``runs``) through call-protocol ingestion.

    Each head's ``call.aborted`` is ingested (one batch, one transaction) under the
    ``abort-dependents`` policy: the head ends ``aborted`` and the cascade aborts its
    active descendants, each with an ``events`` entry naming the head as ``cause``.
    ``at`` (default: now) is the abort's time. Nothing in flight: nothing is written.
    """
    wanted = None if runs is None else set(runs)
    targets = [r for r in in_flight_runs(app) if wanted is None or r.run_id in wanted]
    if not targets:
        return AbortReport(runs=[], aborted_calls=0, events=[], report=None)
    when = int(time.time() * 1000) if at is None else at
    heads = [head for run in targets for head in run.heads]
    report = abort_calls(app, heads, at=when)
    return AbortReport(
        runs=[r.run_id for r in targets],
        aborted_calls=sum(len(r.active) for r in targets),
        events=abort_events(heads, at=when),
        report=report,
    )
