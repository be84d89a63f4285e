"""The flowgraph's rows and the fold that keeps them, over a small store interface.

The rules of the views (:mod:`projections.flowgraph` states them, docs/flowgraph.md
gives the reasons) are written once, here, in :class:`Fold`, over :class:`Store`: the
projection runs it on SQL tables in its transaction (:mod:`projections.flowgraph`),
the replay on dictionaries in memory (:mod:`projections.replay`), so a replay at the
head equals the live view. The rows (:class:`CallRow`, :class:`RunRow`) are what both
stores keep and what the queries turn into :class:`~projections.flowgraph.FlowCall` and
:class:`~projections.flowgraph.FlowRun`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, Protocol

import msgspec

from domain.calls import CALL_GRAPH, CALL_STATUSES, GRAPH_NAME
from projections.errors import EventNotProjectableError, ViewDivergedError

__all__ = [
    "ACTIVE_STATUSES",
    "CALL_COLUMNS",
    "COUNT_COLUMN",
    "RUN_COLUMNS",
    "RUN_STATUSES",
    "CallAttributes",
    "CallError",
    "CallRow",
    "Fold",
    "RunRow",
    "RunStatus",
    "Store",
    "attributes_changed",
    "call_row",
    "decode_attributes",
]

RunStatus = Literal["running", "completed", "failed", "aborted"]
RUN_STATUSES: Final = ("running", "completed", "failed", "aborted")
ACTIVE_STATUSES: Final = frozenset({"pending", "running"})

_EMPTY_OBJECT: Final = msgspec.Raw(b"{}")
COUNT_COLUMN: Final = {status: f"{status}_calls" for status in CALL_STATUSES}
"""The run column counting the calls of each status."""


# --- what is decoded --------------------------------------------------------------------


class CallError(msgspec.Struct, frozen=True):
    code: str
    message: str


class CallAttributes(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The attributes of a ``call`` node the views read (docs/calls.md); others skipped."""

    operation_id: str
    status: str
    operation_type: str | None = None
    parent_request_id: str | None = None
    requested_at: int | None = None
    started_at: int | None = None
    completed_at: int | None = None
    error: CallError | None = None
    metadata: msgspec.Raw = _EMPTY_OBJECT


_attributes_decoder = msgspec.json.Decoder(CallAttributes)


def decode_attributes(raw: msgspec.Raw | bytes, key: str) -> CallAttributes:
    """The attributes of call ``key``; :class:`EventNotProjectableError` if malformed."""
    try:
        attributes = _attributes_decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        raise EventNotProjectableError(f"call {key!r} has malformed attributes: {exc}") from exc
    if attributes.status not in COUNT_COLUMN:
        raise EventNotProjectableError(
            f"call {key!r} has status {attributes.status!r}, not one of {CALL_STATUSES}"
        )
    return attributes


def attributes_changed(
    old: CallRow,
    changes: Mapping[str, Any],
    appended: Mapping[str, Sequence[Any]] | None = None,
) -> CallAttributes:
    """The attributes the views read of a call whose row is ``old``, after a
    ``CallUpdated`` that carries what changed (issue 17): a change never touches the
    request (operation, parent, times requested, metadata), only the status, the times
    started and completed (stored, or derived from the ``events`` entry it
    ``appended``: ``domain.calls.tree.derived_times``), the error and the output."""
    from domain.calls.tree import derived_times  # noqa: PLC0415 - domain.calls is lazy

    had_start, had_end = old.started_at is not None, old.completed_at is not None
    changes = {
        **changes,
        **derived_times(changes, appended, started=had_start, completed=had_end),
    }
    try:
        error = (
            msgspec.convert(changes["error"], CallError)
            if "error" in changes
            else None
            if old.error_code is None
            else CallError(old.error_code, old.error_message or "")
        )
        started = changes.get("startedAt", old.started_at)
        completed = changes.get("completedAt", old.completed_at)
        attributes = CallAttributes(
            operation_id=old.operation,
            status=str(changes.get("status", old.status)),
            operation_type=old.operation_type,
            parent_request_id=old.parent,
            requested_at=old.requested_at,
            started_at=None if started is None else int(started),
            completed_at=None if completed is None else int(completed),
            error=error,
            metadata=msgspec.Raw(old.metadata.encode("utf-8")),
        )
    except (msgspec.MsgspecError, TypeError, ValueError) as exc:
        raise EventNotProjectableError(f"call {old.id!r} has a malformed change: {exc}") from exc
    if attributes.status not in COUNT_COLUMN:
        raise EventNotProjectableError(
            f"call {old.id!r} has status {attributes.status!r}, not one of {CALL_STATUSES}"
        )
    return attributes


# --- rows -----------------------------------------------------------------------------


class CallRow(msgspec.Struct, kw_only=True, gc=False):
    """One row of ``flow_calls`` (the column names)."""

    id: str
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
    metadata: str
    created_at: int
    updated_at: int


class RunRow(msgspec.Struct, kw_only=True, gc=False):
    """One row of ``flow_runs`` (the column names)."""

    id: str
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
    metadata: str
    created_at: int
    updated_at: int

    def count(self, status: str, delta: int) -> None:
        column = COUNT_COLUMN[status]
        setattr(self, column, getattr(self, column) + delta)

    @property
    def active(self) -> int:
        return self.pending_calls + self.running_calls


CALL_COLUMNS: Final = tuple(CallRow.__struct_fields__)
RUN_COLUMNS: Final = tuple(RunRow.__struct_fields__)


def call_row(key: str, attributes: CallAttributes, old: CallRow | None, time_ms: int) -> CallRow:
    """The row of call ``key`` after an event recorded at ``time_ms`` gave it ``attributes``.

    Run and depth are kept from ``old`` (the fold moves them). ``requested_at`` falls
    back to the recording time for a call written without ``requestedAt`` (by hand), and
    ``completed_at`` likewise for an ended call without ``completedAt``, so that an
    ended call always has both.
    """
    status = attributes.status
    requested = attributes.requested_at
    if requested is None:
        requested = old.requested_at if old is not None else time_ms
    completed: int | None = None
    if status not in ACTIVE_STATUSES:
        completed = attributes.completed_at
        if completed is None:
            completed = old.completed_at if old is not None else None
        if completed is None:
            completed = time_ms
    error = attributes.error
    seconds = time_ms // 1000
    return CallRow(
        id=key,
        run_id=old.run_id if old is not None else key,
        parent=attributes.parent_request_id,
        depth=old.depth if old is not None else 0,
        operation=attributes.operation_id,
        operation_type=attributes.operation_type,
        status=status,
        requested_at=requested,
        started_at=attributes.started_at,
        completed_at=completed,
        duration_ms=None if completed is None else completed - requested,
        error_code=None if error is None else error.code,
        error_message=None if error is None else error.message,
        metadata=bytes(attributes.metadata).decode("utf-8"),
        created_at=old.created_at if old is not None else seconds,
        updated_at=seconds,
    )


def _single_run(call: CallRow) -> RunRow:
    run = RunRow(
        id=call.id,
        root_operation=call.operation,
        root_parent=call.parent,
        status="running",
        started_at=call.requested_at,
        completed_at=None,
        duration_ms=None,
        calls=1,
        pending_calls=0,
        running_calls=0,
        completed_calls=0,
        failed_calls=0,
        aborted_calls=0,
        last_completed_at=call.completed_at,
        metadata="{}",
        created_at=call.updated_at,
        updated_at=call.updated_at,
    )
    run.count(call.status, 1)
    _settle(run, call, call.updated_at)
    return run


def _settle(run: RunRow, root: CallRow, seconds: int) -> None:
    """Derive status, completion and duration from the counts (the run status rule)."""
    if run.active:
        run.status, run.completed_at, run.duration_ms = "running", None, None
    else:  # every call ended, the root too
        run.status = root.status
        run.completed_at = run.last_completed_at
        last = run.last_completed_at
        run.duration_ms = None if last is None else last - run.started_at
    run.updated_at = seconds


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


# --- the fold, over a store -----------------------------------------------------------


class Store(Protocol):
    """Where the fold keeps its rows: SQL tables, or dictionaries in memory."""

    def graph(self) -> str | None: ...
    def set_graph(self, graph_id: str, seconds: int) -> None: ...
    def call(self, key: str) -> CallRow | None: ...
    def insert_call(self, row: CallRow) -> None: ...
    def update_call(self, row: CallRow) -> None: ...
    def delete_call(self, key: str) -> None: ...
    def run(self, run_id: str) -> RunRow | None: ...
    def insert_run(self, row: RunRow) -> None: ...
    def update_run(self, row: RunRow) -> None: ...
    def delete_run(self, run_id: str) -> None: ...
    def waiting_children(self, key: str) -> list[str]:
        """Calls naming ``key`` as parent that are the roots of their own (detached) run."""
        ...

    def attached_children(self, key: str) -> list[str]:
        """Calls naming ``key`` as parent and linked to it (in its run, not roots)."""
        ...

    def subtree(self, key: str) -> list[str]:
        """``key`` and every call linked below it."""
        ...

    def move_run(self, source: str, target: str, depth_shift: int) -> None:
        """Every call of run ``source`` into run ``target``, ``depth_shift`` deeper."""
        ...

    def move_calls(self, keys: Sequence[str], target: str, depth_shift: int) -> None: ...
    def calls_of(self, run_id: str) -> list[CallRow]: ...
    def note(self, key: str, offset: int) -> None:
        """Record that the event at ``offset`` touched call ``key`` (the replay index)."""
        ...


class Fold:
    """The rules of the views, applied to one store event by event (module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def created(self, graph_id: str, event_name: str, type_name: str, time_ms: int) -> None:
        """A graph was created: the first ``calls`` graph of type ``call-graph`` is followed."""
        if event_name == GRAPH_NAME and type_name == CALL_GRAPH and self.store.graph() is None:
            self.store.set_graph(graph_id, time_ms // 1000)

    def added(self, key: str, attributes: CallAttributes, offset: int, time_ms: int) -> None:
        store = self.store
        if store.call(key) is not None:
            raise ViewDivergedError(
                f"call {key!r} is added but already in the flowgraph view: the tables were "
                "edited or an event was applied twice; rebuild the projection"
            )
        row = call_row(key, attributes, None, time_ms)
        waiting = store.waiting_children(key)
        parent = store.call(row.parent) if row.parent is not None else None
        if parent is not None and not waiting:  # the common case: straight into its run
            row.run_id, row.depth = parent.run_id, parent.depth + 1
            store.insert_call(row)
            run = self._run(parent.run_id)
            run.calls += 1
            run.count(row.status, 1)
            run.started_at = min(run.started_at, row.requested_at)
            run.last_completed_at = _later(run.last_completed_at, row.completed_at)
            self._save(run, row.updated_at)
        else:
            store.insert_call(row)
            store.insert_run(_single_run(row))
            for child in waiting:
                self._merge(child, key, row.updated_at)
            if parent is not None:
                self._merge(key, parent.id, row.updated_at)
        store.note(key, offset)

    def updated(self, key: str, attributes: CallAttributes, offset: int, time_ms: int) -> None:
        store = self.store
        old = self._call(key)
        new = call_row(key, attributes, old, time_ms)
        store.update_call(new)
        store.note(key, offset)
        seconds = new.updated_at
        if new.parent != old.parent:  # only by hand: ingestion never changes a request
            self._reparent(key, was_linked=old.run_id != key, seconds=seconds)
            return
        run = self._run(old.run_id)
        shrinks = (
            old.completed_at is not None
            and old.completed_at == run.last_completed_at
            and (new.completed_at is None or new.completed_at < old.completed_at)
        ) or (new.requested_at > old.requested_at and old.requested_at == run.started_at)
        if shrinks:  # an earlier value was the run's bound (by hand): count again
            self._recompute(run.id, seconds)
            return
        if old.status != new.status:
            run.count(old.status, -1)
            run.count(new.status, 1)
        run.started_at = min(run.started_at, new.requested_at)
        run.last_completed_at = _later(run.last_completed_at, new.completed_at)
        if key == run.id:
            run.root_operation = new.operation
            _settle(run, new, seconds)
            store.update_run(run)
        else:
            self._save(run, seconds)

    def changed(
        self,
        key: str,
        changes: Mapping[str, Any],
        offset: int,
        time_ms: int,
        appended: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """A ``CallUpdated`` that carries what changed (:func:`attributes_changed`)."""
        new = attributes_changed(self._call(key), changes, appended)
        self.updated(key, new, offset, time_ms)

    def deleted(self, key: str, offset: int, time_ms: int) -> None:
        store = self.store
        old = self._call(key)
        store.note(key, offset)
        seconds = time_ms // 1000
        for child in store.attached_children(key):
            self._detach(child, seconds)
        store.delete_call(key)
        if old.run_id == key:
            store.delete_run(key)
        else:
            self._recompute(old.run_id, seconds)

    # --- structure --------------------------------------------------------------------

    def _merge(self, sub_root: str, parent_key: str, seconds: int) -> None:
        """Link the detached run ``sub_root`` below ``parent_key`` (re-root its subtree)."""
        store = self.store
        parent = self._call(parent_key)
        if parent.run_id == sub_root:
            return  # the parent is inside the subtree: a cycle (written by hand) stays open
        sub, target = self._run(sub_root), self._run(parent.run_id)
        store.move_run(sub_root, target.id, parent.depth + 1)
        store.delete_run(sub_root)
        target.calls += sub.calls
        for status in CALL_STATUSES:
            target.count(status, getattr(sub, COUNT_COLUMN[status]))
        target.started_at = min(target.started_at, sub.started_at)
        target.last_completed_at = _later(target.last_completed_at, sub.last_completed_at)
        self._save(target, seconds)

    def _detach(self, key: str, seconds: int) -> None:
        """Make ``key``'s subtree a run of its own (its parent left, or changed)."""
        row = self._call(key)
        old_run = row.run_id
        self.store.move_calls(self.store.subtree(key), key, -row.depth)
        self._recompute(key, seconds)
        self._recompute(old_run, seconds)

    def _reparent(self, key: str, *, was_linked: bool, seconds: int) -> None:
        if was_linked:
            self._detach(key, seconds)
        else:
            self._recompute(key, seconds)  # a root: its root_parent changed
        row = self._call(key)
        if row.parent is not None and self.store.call(row.parent) is not None:
            self._merge(key, row.parent, seconds)

    def _recompute(self, run_id: str, seconds: int) -> None:
        """Count a run again from its calls (rare: changes made by hand)."""
        store = self.store
        calls = store.calls_of(run_id)
        existing = store.run(run_id)
        if not calls:
            if existing is not None:
                store.delete_run(run_id)
            return
        root = next(c for c in calls if c.id == run_id)
        run = _single_run(root)
        if existing is not None:
            run.created_at = existing.created_at
        for call in calls:
            if call.id != run_id:
                run.calls += 1
                run.count(call.status, 1)
                run.started_at = min(run.started_at, call.requested_at)
                run.last_completed_at = _later(run.last_completed_at, call.completed_at)
        _settle(run, root, seconds)
        if existing is None:
            store.insert_run(run)
        else:
            store.update_run(run)

    def _save(self, run: RunRow, seconds: int) -> None:
        _settle(run, self._call(run.id), seconds)
        self.store.update_run(run)

    def _call(self, key: str) -> CallRow:
        found = self.store.call(key)
        if found is None:
            raise ViewDivergedError(
                f"call {key!r} is not in the flowgraph view: an earlier event was parked or "
                "the tables were edited; replay the parked events, or rebuild the projection"
            )
        return found

    def _run(self, run_id: str) -> RunRow:
        found = self.store.run(run_id)
        if found is None:
            raise ViewDivergedError(
                f"run {run_id!r} is not in the flowgraph view: an earlier event was parked "
                "or the tables were edited; replay the parked events, or rebuild the projection"
            )
        return found
