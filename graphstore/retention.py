"""Retention: keeping a tenant's history bounded, and erasing one run now.

The policy is an event (:class:`domain.retention.Retention`, ``Retention.PolicySet``). A
pass (:func:`run_pass`) picks finished workflow runs the policy lets go, from the
flowgraph views, checks each against the write model (a run with a call in flight is
never retired, whatever the views say), and retires them in bounded units of work: each
records ONE ``Retention.RunsRetired`` (:mod:`streams.retirement`) and deletes the runs'
events (call trees, call references, snapshots, their stream entries) in the same
transaction. Then the file's free pages are given back and its WAL emptied
(:func:`streams.retirement.reclaim`), so the deleted bytes are not readable in it.

Safe point: a run whose last offset a durable consumer of the stream (the relay, a
projector, a named subscription) has not passed yet waits; :func:`retention_status`
says which consumer. An erasure (:func:`forget_run`) does not wait: it is the point.

The archive (issue 16, item 4) is another module's; the two calls into it are
:func:`archive_runs` and :func:`forget_archived`, the only places to connect.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import msgspec

from domain import Metagraph, UnitOfWork
from domain.calls import CallTree, call_ledger
from domain.calls.ledger import locate
from domain.calls.protocol import TERMINAL_STATUSES
from domain.calls.tree import ref_id
from domain.errors import NotFoundError, ValidationError
from domain.graphs import Graph
from domain.retention import RETENTION_ID, Retention, RetentionPolicy
from graphstore.archive import Archive, archived_run, default_root
from graphstore.legacy_calls import LegacyCalls, LegacyGraph
from projections import (
    Flowgraph,
    FlowgraphProjection,
    MetagraphProjection,
    Projector,
)
from projections.errors import ProjectionError, ViewNotBuiltError
from projections.rebuild import live_projection
from streams import HonkerDatastore, positions_table, saved_position, stream_head
from streams.access import honker_recorder
from streams.pauses import Pauses
from streams.reader import cipher_of
from streams.retirement import (
    Reclaimed,
    RemovedEntries,
    combined,
    entries_of,
    merged_ranges,
    reclaim,
)

__all__ = [
    "BATCH_RUNS",
    "CATCH_UP_BATCH",
    "INTERVAL_SETTING",
    "PassReport",
    "RetentionSchedule",
    "RetentionStatus",
    "RunRetirement",
    "Waiting",
    "archive_root",
    "archive_runs",
    "forget_archived",
    "forget_run",
    "policy_from_wire",
    "policy_of",
    "retention_status",
    "run_pass",
    "set_policy",
]

INTERVAL_SETTING: Final = "GRAPHSTORE_RETENTION_INTERVAL"
"""Seconds between the passes ``graphstore serve`` and ``graphstore projector run`` make
over every tenant with a policy (unset or 0: no scheduled pass)."""
_NOTHING: Final = hashlib.sha256(b"").hexdigest()
"""The digest of no removed entries (an archived run's erasure removes none)."""

if TYPE_CHECKING:
    from graphstore.store import Store

log = logging.getLogger(__name__)

BATCH_RUNS: Final = 25
"""Runs retired per transaction: bounded, so a writer never waits long for the file."""
CATCH_UP_BATCH: Final = 50
"""Events per transaction when a pass catches the views up: short write transactions,
so the tenant's writers never wait long (benchmarks/retention.py)."""
_FINISHED: Final = ("completed", "failed", "aborted")
_MAX_CANDIDATES: Final = 100_000


class Waiting(msgspec.Struct, frozen=True, kw_only=True):
    """A run the policy lets go that waits for ``consumer`` (at ``position``) to pass
    ``last_offset``."""

    run_id: str
    consumer: str
    position: int
    last_offset: int


class RunRetirement(msgspec.Struct, frozen=True, kw_only=True):
    """One run a pass retires (or would, in a dry run): its events and their bytes."""

    run_id: str
    status: str
    completed_at: int | None
    calls: int
    events: int
    bytes: int


class PassReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a pass did (or, with ``dry_run``, would do)."""

    tenant: str
    dry_run: bool
    policy: RetentionPolicy | None
    runs: list[RunRetirement]
    waiting: list[Waiting]
    skipped_in_flight: list[str]
    transactions: int
    bytes: int
    file_before: int | None = None
    file_after: int | None = None
    archive: list[str] = []
    note: str | None = None
    """Why nothing could be chosen (e.g. the flowgraph views are not built yet)."""


class RetentionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's policy, how many runs it retired so far, and the runs that wait."""

    tenant: str
    policy: RetentionPolicy | None
    retired: int
    due: int
    waiting: list[Waiting]
    note: str | None = None


# --- the policy ------------------------------------------------------------------------


def _retention(unit: UnitOfWork) -> Retention:
    found = unit.load(RETENTION_ID, Retention)
    if found is None:
        found = Retention.start()
        unit.add(found)
    return found


def policy_of(metagraph: Metagraph) -> RetentionPolicy | None:
    """The tenant's retention policy (None: no policy, nothing is retired)."""
    metagraph.require("read", "read the retention policy")
    with metagraph.transaction() as unit:
        found = unit.load(RETENTION_ID, Retention)
        return None if found is None else found.policy


def policy_from_wire(data: dict[str, Any]) -> RetentionPolicy | None:
    """The policy an operation's input names (``clear``: None), or a
    :class:`~domain.errors.ValidationError` saying what is missing."""
    if data.get("clear"):
        return None
    if "finishedOlderThanS" not in data:
        raise ValidationError("give finishedOlderThanS (seconds), or clear: true")
    fields = {wire: name for name, wire in _WIRE_NAMES.items()}
    given = {fields[key]: value for key, value in data.items() if key in fields}
    try:
        policy = msgspec.convert(given, RetentionPolicy)
    except msgspec.ValidationError as error:  # say it in the wire's names
        message = str(error)
        for name, wire in _WIRE_NAMES.items():
            message = message.replace(f"$.{name}", wire)
        raise ValidationError(f"invalid retention policy: {message}") from None
    return policy.checked()


_WIRE_NAMES: Final = {
    "finished_older_than_s": "finishedOlderThanS",
    "failed_older_than_s": "failedOlderThanS",
    "keep_at_most": "keepAtMost",
    "archive": "archive",
}


def set_policy(metagraph: Metagraph, policy: RetentionPolicy | None) -> RetentionPolicy | None:
    """Record ``policy`` as the tenant's (None clears it); needs ``operate``, audited."""
    metagraph.require("operate", "set the retention policy")
    checked = None if policy is None else policy.checked()

    def work(unit: UnitOfWork) -> None:
        details = {"policy": None if checked is None else msgspec.to_builtins(checked)}
        unit.describe("set the retention policy", details)
        _retention(unit).set_policy(checked)

    metagraph.atomic(work)
    return checked


# --- one run, in the write model --------------------------------------------------------


class _Run(msgspec.Struct, kw_only=True):
    run_id: str
    aggregates: list[UUID]
    calls: list[str]
    in_flight: list[str]
    legacy: LegacyCalls | None = None
    """Its calls' events in the call graph of a version before call trees (they go too)."""
    removed: RemovedEntries | None = None
    """Its stream entries, once read (:func:`_entries`)."""


def _run_in(unit: UnitOfWork, run_id: str, legacy: LegacyGraph | None = None) -> _Run | None:
    """The aggregates holding run ``run_id`` (its trees and every call's reference), its
    calls and those not finished, and what of them the ``legacy`` call graph holds; None
    if no call ``run_id`` is recorded."""
    root = locate(unit, run_id)
    if root is None:
        return None
    aggregates: dict[UUID, None] = {}
    calls: dict[str, None] = {}
    in_flight: list[str] = []
    trees: dict[UUID, CallTree] = {}
    # Where each call of a tree read so far is: in that tree (a call is added to one
    # tree only), so only the links out of the trees read are looked up.
    located: dict[str, UUID] = {run_id: root}
    stack = [run_id]
    while stack:
        key = stack.pop()
        if key in calls:
            continue
        where = located.get(key) or locate(unit, key)
        if where is None:
            continue
        calls[key] = None
        aggregates[ref_id(key)] = None  # its CallRef, or its reference's index row
        tree = trees.get(where) or unit.load(where, CallTree)
        if tree is None:
            continue
        if tree.id not in trees:
            trees[tree.id] = tree
            aggregates[tree.id] = None
            located.update(dict.fromkeys(tree.calls, tree.id))
            stack.extend(tree.calls)  # a tree holds one run's calls: all of them go
            for kids in tree.children.values():
                stack.extend(kids)
        attributes = tree.calls.get(key)
        if attributes is None or attributes.get("status") not in TERMINAL_STATUSES:
            in_flight.append(key)
        stack.extend(tree.children.get(key, ()))
    return _Run(
        run_id=run_id,
        aggregates=list(aggregates),
        calls=list(calls),
        in_flight=in_flight,
        legacy=None if legacy is None else legacy.of(calls),
    )


def _import_legacy_calls(metagraph: Metagraph) -> None:
    """A tenant written before call trees keeps its calls as nodes of its call graph
    until a first call write copies them into trees (docs/calls.md, "Upgrading"); a
    pass or an erasure finds runs through their trees, so it makes that copy first, in
    its own transaction (once: then the ledger remembers the graph)."""
    ledger = call_ledger(metagraph)
    metagraph.atomic(lambda unit: ledger.graph_id(unit, create=False))


def _legacy_graph(metagraph: Metagraph) -> LegacyGraph | None:
    """The legacy call graph's events by call (None: the tenant has none)."""
    with metagraph.transaction() as unit:
        return LegacyGraph.read(metagraph, unit, _datastore(metagraph), _stream(metagraph))


def _entries(datastore: HonkerDatastore, stream: str, run: _Run) -> RemovedEntries:
    """The stream entries retiring ``run`` removes: its aggregates' events and its calls'
    events in a legacy call graph. Read once: a pass reads them to choose the run, and
    its retirement record names the same ones (the delete checks they did not change)."""
    if run.removed is None:
        also = [] if run.legacy is None else run.legacy.offsets
        run.removed = entries_of(datastore, stream, run.aggregates, also=also)
    return run.removed


def _datastore(metagraph: Metagraph) -> HonkerDatastore:
    return honker_recorder(metagraph.recorder).datastore


def _stream(metagraph: Metagraph) -> str:
    return honker_recorder(metagraph.recorder).stream


def _positions(datastore: HonkerDatastore, stream: str) -> dict[str, int]:
    rows = datastore.query(
        f'SELECT name, "offset" FROM {positions_table()} WHERE topic = ?', [stream]
    )
    return {str(row["name"]): int(row["offset"]) for row in rows}


def _waits_for(run_id: str, last: int, positions: dict[str, int]) -> Waiting | None:
    behind = sorted((pos, name) for name, pos in positions.items() if pos < last)
    if not behind:
        return None
    position, consumer = behind[0]
    return Waiting(run_id=run_id, consumer=consumer, position=position, last_offset=last)


def _forget_cached(metagraph: Metagraph, retired: Sequence[_Run]) -> None:
    """Drop the retired aggregates from this process's caches (they are gone)."""
    cache = metagraph.repository.cache
    for run in retired:
        if cache is not None:
            for aggregate_id in run.aggregates:
                with suppress(KeyError):
                    cache.get(aggregate_id, evict=True)
        call_ledger(metagraph).forget(run.calls)


def _retire(
    unit: UnitOfWork,
    metagraph: Metagraph,
    runs: Sequence[_Run],
    *,
    reason: str,
    archive: str | None,
) -> None:
    """Record the retirement of ``runs`` and delete their events, in ``unit``; their
    calls' events in a legacy call graph go too, named by a ``Graph.NodesRetired``."""
    datastore, stream = _datastore(metagraph), _stream(metagraph)
    aggregates = [a for run in runs for a in run.aggregates]
    legacy = [run.legacy for run in runs if run.legacy is not None]
    removed = combined(_entries(datastore, stream, run) for run in runs)
    unit.describe(
        "retire runs" if reason == "policy" else "forget a run",
        {"runs": [run.run_id for run in runs], "reason": reason, "events": len(removed.offsets)},
    )
    _retention(unit).record_retirement(
        runs=[run.run_id for run in runs],
        ranges=merged_ranges(removed.offsets),
        archive=archive,
        digest=removed.digest,
        reason=reason,
    )
    partial = None
    if legacy:
        graph = unit.load(legacy[0].graph_id, Graph)
        if graph is not None:
            graph.retire_nodes(
                [k for calls in legacy for k in calls.keys],
                [e for calls in legacy for e in calls.edge_ids],
            )
            unit.add(graph)
        partial = [legacy[0].graph_id]
    unit.retire(stream, aggregates, removed.offsets, partial=partial)


# --- the archive (another module's; connected here only) -------------------------------


def archive_runs(metagraph: Metagraph, org_id: str, root: str, run_ids: Sequence[str]) -> str:
    """Write ``run_ids`` (still in the file) to the archive at ``root``; its reference.

    Idempotent by run id: a pass that crashed after archiving and before deleting writes
    the same runs again and deletes them then, so a run is never lost nor doubled."""
    runs = [archived_run(metagraph, run_id) for run_id in run_ids]
    return Archive(Path(root), cipher_of(metagraph.env)).write(org_id, runs)


def forget_archived(org_id: str, root: str | None, run_id: str) -> bool:
    """Remove ``run_id`` from the archive at ``root`` too (an erasure); whether it was
    there. Without a root (no policy naming an archive), there is nothing to remove."""
    if root is None:
        return False
    return Archive(Path(root)).forget(org_id, run_id)


def archive_root(metagraph: Metagraph, data_dir: str | os.PathLike[str]) -> Path:
    """Where the tenant's retired runs are archived: the directory its policy names, or
    the data directory's default (``<data-dir>/archive``)."""
    policy = policy_of(metagraph)
    if policy is not None and policy.archive is not None:
        return Path(policy.archive)
    return default_root(data_dir)


# --- a pass -----------------------------------------------------------------------------


def _candidates(flowgraph: Flowgraph, policy: RetentionPolicy, now_ms: int) -> list[str]:
    """Run ids the policy lets go, oldest completion first (views' word; re-checked)."""
    chosen: dict[str, int] = {}
    completed_cut = now_ms - policy.period_of("completed") * 1000
    failed_cut = now_ms - policy.period_of("failed") * 1000
    for run in flowgraph.finished_runs(
        ["completed"], completed_before=completed_cut, limit=_MAX_CANDIDATES
    ):
        chosen[run.run_id] = run.completed_at or 0
    for run in flowgraph.finished_runs(
        ["failed", "aborted"], completed_before=failed_cut, limit=_MAX_CANDIDATES
    ):
        chosen[run.run_id] = run.completed_at or 0
    if policy.keep_at_most is not None:
        excess = flowgraph.count_runs(_FINISHED) - policy.keep_at_most
        if excess > 0:
            for run in flowgraph.finished_runs(_FINISHED, limit=min(excess, _MAX_CANDIDATES)):
                chosen[run.run_id] = run.completed_at or 0
    return sorted(chosen, key=lambda run_id: (chosen[run_id], run_id))


def _choose(
    unit: UnitOfWork,
    chunk: Sequence[str],
    flowgraph: Flowgraph,
    positions: dict[str, int],
    *,
    datastore: HonkerDatastore,
    stream: str,
    legacy: LegacyGraph | None = None,
) -> tuple[list[tuple[_Run, RunRetirement]], list[Waiting], list[str]]:
    """Of ``chunk``, the runs that go now (finished, passed by every consumer), those
    that wait for a consumer, and those in flight (never retired)."""
    going: list[tuple[_Run, RunRetirement]] = []
    waiting: list[Waiting] = []
    flying: list[str] = []
    for run_id in chunk:
        run = _run_in(unit, run_id, legacy)
        if run is None:
            continue  # already retired (another pass), or never in the write model
        if run.in_flight:
            flying.append(run_id)
            continue
        removed = _entries(datastore, stream, run)
        if not removed.offsets:
            continue
        wait = _waits_for(run_id, removed.offsets[-1], positions)
        if wait is not None:
            waiting.append(wait)
            continue
        view = flowgraph.run(run_id)
        info = RunRetirement(
            run_id=run_id,
            status="completed" if view is None else view.status,
            completed_at=None if view is None else view.completed_at,
            calls=len(run.calls),
            events=len(removed.offsets),
            bytes=removed.size,
        )
        going.append((run, info))
    return going, waiting, flying


def run_pass(
    metagraph: Metagraph,
    flowgraph: Flowgraph,
    org_id: str,
    *,
    dry_run: bool = False,
    now_ms: int | None = None,
    batch: int = BATCH_RUNS,
    reclaim_space: bool = True,
    only: Sequence[str] | None = None,
) -> PassReport:
    """Apply the tenant's policy once: retire the runs it lets go, ``batch`` per
    transaction, then reclaim the file's free pages. ``dry_run``: only say what would go.
    ``only``: these runs instead of the policy's choice (still only finished ones, once
    every consumer passed them). Needs ``operate``; every transaction is audited."""
    metagraph.require("operate", "run a retention pass")
    policy = policy_of(metagraph)
    empty = PassReport(
        tenant=org_id,
        dry_run=dry_run,
        policy=policy,
        runs=[],
        waiting=[],
        skipped_in_flight=[],
        transactions=0,
        bytes=0,
    )
    if policy is None:
        return empty
    now = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        candidates = list(only) if only is not None else _candidates(flowgraph, policy, now)
    except ViewNotBuiltError as exc:  # the runs are chosen from the views: build them
        return msgspec.structs.replace(empty, note=str(exc))
    if not dry_run:
        _import_legacy_calls(metagraph)
    # One job's pauses: the WAL it writes is copied into the file while it goes on.
    with Pauses(_datastore(metagraph).file) as pauses:
        report = _retire_units(
            metagraph, flowgraph, candidates, empty, dry_run=dry_run, batch=batch, pauses=pauses
        )
        if report.runs and not dry_run and reclaim_space:
            reclaimed = reclaim_file(metagraph, pauses=pauses)
            report = msgspec.structs.replace(
                report, file_before=reclaimed.before, file_after=reclaimed.after
            )
    return report


def _retire_units(
    metagraph: Metagraph,
    flowgraph: Flowgraph,
    candidates: list[str],
    empty: PassReport,
    *,
    dry_run: bool,
    batch: int,
    pauses: Pauses,
) -> PassReport:
    """The write transactions of a pass: ``candidates``, ``batch`` per transaction, each
    followed by a pause; ``empty`` with what they retired (or would), waited for, skipped."""
    policy, org_id = empty.policy, empty.tenant
    assert policy is not None
    datastore, stream = _datastore(metagraph), _stream(metagraph)
    positions = _positions(datastore, stream)
    legacy = _legacy_graph(metagraph) if candidates else None  # O(the legacy graph)
    retired: list[RunRetirement] = []
    waiting: list[Waiting] = []
    in_flight: list[str] = []
    references: list[str] = []
    transactions = 0
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]

        def work(unit: UnitOfWork, chunk: list[str] = chunk) -> list[tuple[_Run, RunRetirement]]:
            going, waiting_now, flying = _choose(
                unit, chunk, flowgraph, positions, datastore=datastore, stream=stream, legacy=legacy
            )
            waiting.extend(waiting_now)
            in_flight.extend(flying)
            if going and not dry_run:
                archive = (
                    None
                    if policy.archive is None
                    else archive_runs(
                        metagraph, org_id, policy.archive, [r.run_id for r, _ in going]
                    )
                )
                if archive is not None:
                    references.append(archive)
                _retire(unit, metagraph, [r for r, _ in going], reason="policy", archive=archive)
            return going

        started = time.monotonic()
        going = metagraph.atomic(work)
        pauses.after(started)
        if going and not dry_run:
            transactions += 1
            _forget_cached(metagraph, [r for r, _ in going])
            for run, _ in going:
                if legacy is not None and run.legacy is not None:
                    legacy.forget(run.legacy)
        retired.extend(info for _, info in going)
    return msgspec.structs.replace(
        empty,
        runs=retired,
        waiting=waiting,
        skipped_in_flight=in_flight,
        transactions=transactions,
        bytes=sum(r.bytes for r in retired),
        archive=references,
    )


def reclaim_file(
    metagraph: Metagraph, *, truncate_wal: bool = False, pauses: Pauses | None = None
) -> Reclaimed:
    """Catch the tenant's local projections up (they drop the retired runs' rows), then
    give the file's free pages back (:func:`streams.retirement.reclaim`); ``truncate_wal``
    (an erasure) also empties the WAL at once: nothing of the runs stays in it.
    ``pauses``: the calling job's (by default, its own)."""
    datastore = _datastore(metagraph)
    if pauses is None:
        with Pauses(datastore.file) as own:
            return reclaim_file(metagraph, truncate_wal=truncate_wal, pauses=own)
    _catch_up_projections(metagraph, pauses)
    return reclaim(datastore, truncate_wal=truncate_wal, pauses=pauses)


def _catch_up_projections(metagraph: Metagraph, pauses: Pauses) -> None:
    """Apply the retirement records to the projections this file keeps (those that ever
    ran: a projection never built is not built here). A projection that cannot catch up
    now (parked, stopped) keeps the rows until its projector passes the record."""
    datastore = _datastore(metagraph)
    # Up to the head as it is now (past the pass's records): writers adding events all
    # the while must not keep the pass catching up for ever.
    upto = stream_head(datastore, _stream(metagraph)).offset
    for base in (MetagraphProjection, FlowgraphProjection):
        projection = live_projection(datastore, base)
        if saved_position(datastore, projection.consumer, projection.upstream) is None:
            continue
        projector = Projector.open(metagraph.env, projection, batch_size=CATCH_UP_BATCH, upto=upto)
        try:
            while True:
                started = time.monotonic()
                projector.step()
                # After the last step too: the next view's catch-up, or the reclaim, writes.
                pauses.after(started)
                if not projector.has_more or not projector.active:
                    break
        except ProjectionError:
            continue  # said by `graphstore projector status`; the rows go when it passes
        finally:
            projector.close()


def retention_status(metagraph: Metagraph, flowgraph: Flowgraph, org_id: str) -> RetentionStatus:
    """The policy, the runs retired so far, and what the next pass would do: how many
    runs are due, and which wait for a consumer (named)."""
    metagraph.require("read", "read the retention policy")
    with metagraph.transaction() as unit:
        found = unit.load(RETENTION_ID, Retention)
    policy = None if found is None else found.policy
    retired = 0 if found is None else found.retired
    if policy is None:
        return RetentionStatus(tenant=org_id, policy=None, retired=retired, due=0, waiting=[])
    report = run_pass(metagraph, flowgraph, org_id, dry_run=True)
    return RetentionStatus(
        tenant=org_id,
        policy=policy,
        retired=retired,
        due=len(report.runs),
        waiting=report.waiting,
        note=report.note,
    )


# --- erasure ------------------------------------------------------------------------------


def forget_run(
    metagraph: Metagraph, org_id: str, run_id: str, *, abort: bool = False
) -> PassReport:
    """Remove run ``run_id`` from the file now, whatever the policy, leaving only the
    retirement record (reason ``forget``: run ids and offsets, no payload). Needs
    ``operate`` (an admin or the owner), audited. An unknown run raises
    :class:`~domain.errors.NotFoundError`; a run in flight a
    :class:`~domain.errors.ValidationError` unless ``abort`` (its calls are aborted first,
    then it goes). A run retired before and kept only in the policy's archive is removed
    from the archive (its tombstone removes no offsets). Nothing changes when refused."""
    metagraph.require("operate", f"forget run {run_id!r}")
    if abort:
        _abort_run(metagraph, run_id)
    policy = policy_of(metagraph)

    archived_in = None if policy is None else policy.archive

    _import_legacy_calls(metagraph)
    legacy = _legacy_graph(metagraph)

    def work(unit: UnitOfWork) -> _Run | None:
        run = _run_in(unit, run_id, legacy)
        if (
            run is None
            and archived_in is not None
            and Archive(Path(archived_in), cipher_of(metagraph.env)).find(org_id, run_id)
        ):
            # Retired before and kept only in the archive: the tombstone names the run
            # and removes no offsets; the archive's copy goes once this commits.
            unit.describe("forget an archived run", {"runs": [run_id], "reason": "forget"})
            _retention(unit).record_retirement(
                runs=[run_id], ranges=[], archive=archived_in, digest=_NOTHING, reason="forget"
            )
            return None
        if run is None:
            raise NotFoundError(
                f"no run {run_id!r} in tenant {org_id!r}: `graphstore runs list --tenant "
                f"{org_id}` shows the runs",
                kind="run",
                name=run_id,
            )
        if run.in_flight:
            raise ValidationError(
                f"run {run_id!r} has {len(run.in_flight)} call(s) in flight (e.g. "
                f"{run.in_flight[0]!r}): add --abort to abort them and forget the run"
            )
        _retire(unit, metagraph, [run], reason="forget", archive=None)
        return run

    run = metagraph.atomic(work)
    if run is not None:
        _forget_cached(metagraph, [run])
    forget_archived(org_id, archived_in, run_id)
    reclaimed = reclaim_file(metagraph, truncate_wal=True)
    return PassReport(
        tenant=org_id,
        dry_run=False,
        policy=policy,
        runs=[
            RunRetirement(
                run_id=run_id,
                status="forgotten",
                completed_at=None,
                calls=0 if run is None else len(run.calls),
                events=0,
                bytes=0,
            )
        ],
        waiting=[],
        skipped_in_flight=[],
        transactions=1,
        bytes=0,
        file_before=reclaimed.before,
        file_after=reclaimed.after,
    )


def _abort_run(metagraph: Metagraph, run_id: str) -> None:
    """Abort the calls of ``run_id`` still in flight (as crash recovery does)."""
    from domain.calls import abort_calls  # noqa: PLC0415

    with metagraph.transaction() as unit:
        run = _run_in(unit, run_id)
    if run is not None and run.in_flight:
        abort_calls(metagraph, run.in_flight)


# --- the schedule ---------------------------------------------------------------------------


class RetentionSchedule:
    """Passes over every tenant with a policy, every ``interval`` seconds, on a thread of
    its own (``graphstore serve``, ``graphstore projector run``). A tenant without a
    policy costs one read per round. A failed pass is logged by the caller's logging and
    tried again next round; ``stop`` waits for the pass under way."""

    def __init__(self, store: Store, interval: float) -> None:
        if interval <= 0:
            raise ValidationError(f"{INTERVAL_SETTING} must be a positive number of seconds")
        self.store = store
        self.interval = interval
        self.passes: list[PassReport] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    @classmethod
    def from_env(
        cls, store: Store, env: Mapping[str, str] | None = None
    ) -> RetentionSchedule | None:
        """A schedule if :data:`INTERVAL_SETTING` is set to a positive number, else None."""
        raw = (os.environ if env is None else env).get(INTERVAL_SETTING, "").strip()
        if not raw or raw == "0":
            return None
        try:
            interval = float(raw)
        except ValueError:
            raise ValidationError(
                f"{INTERVAL_SETTING}={raw!r} is not a number of seconds (e.g. 3600; 0: off)"
            ) from None
        return cls(store, interval)

    def start(self) -> RetentionSchedule:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def run_once(self) -> list[PassReport]:
        """One round: a pass over each tenant that has a policy."""
        done = []
        for org_id in self.store.tenants():
            if self._stop.is_set():
                break
            metagraph = self.store.tenant(org_id)
            if policy_of(metagraph) is None:
                continue
            with self.store.views(org_id) as views:
                done.append(run_pass(metagraph, views, org_id))
        self.passes = (self.passes + done)[-100:]
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("retention pass failed; retrying next round")
