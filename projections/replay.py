"""Replay and time travel: a run's history, a run or a graph as of any offset, export.

:class:`Replay` reads one tenant file through the reader pool and never writes:

- :meth:`Replay.history`: the stream events that touched a run's calls, in stream order,
  each with its offset, time, the call's status after it and the call protocol events
  it applied;
- :meth:`Replay.run_as_of`: the flowgraph view of one run as it was at an offset,
  rebuilt in memory from that run's events only (the live tables are not touched);
- :meth:`Replay.graph_as_of`: any graph's nodes and edges as of an offset;
- :meth:`Replay.export_run`: a run's history as call protocol events (JSON Lines, the
  format of docs/calls.md) that re-ingest into an empty tenant to the same view.

How a run's events are found quickly: the flowgraph projection indexes each call's node
events by offset (``flow_call_events``). One SQL statement (one snapshot of the file)
reads the projector's position, the events of every call of the run (through
``flow_calls.run_id``), and the events the live view has not applied: those after the
position and those parked. Runs those events may join (a parent arriving after the
position re-roots a waiting subtree) are read too. The events are then folded in memory
by the same :class:`~projections.flowgraph_fold.Fold` the projection runs on SQL, so a
replay at the head equals the live view.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, NamedTuple, cast
from uuid import UUID

import msgspec
from eventsourcing.utils import Environment

from domain.calls import (
    CALL,
    CALL_GRAPH,
    GRAPH_NAME,
    TRIGGERED,
    CallEvent,
    OperationType,
    call_event,
)
from domain.names import canonical, names_of
from domain.values import Edge, Node
from projections.errors import (
    EventNotProjectableError,
    MissingCipherError,
    ProjectionError,
    UnknownEventError,
    ViewDivergedError,
)
from projections.events import (
    CALL_ADDED,
    CALL_EVENTS,
    CALL_IMPORTED,
    CALL_UPDATED,
    CREATED,
    GRAPH_TOPIC,
    NODE_ADDED,
    NODE_DELETED,
    NODE_UPDATED,
    TREE_TOPIC,
    AnyGraphEvent,
    CallAdded,
    CallChanged,
    FoldedEvent,
    attributes_after,
    call_key,
)
from projections.flowgraph import (
    FlowCall,
    FlowgraphProjection,
    FlowRun,
    flow_call,
    flow_run,
    tree_order,
)
from projections.flowgraph_fold import CallRow, Fold, RunRow, decode_attributes
from projections.metagraph import call_edge_id
from projections.projector import PARKED_TABLE
from projections.rebuild import live_projection
from streams import (
    HonkerDatastore,
    TenantReader,
    aggregate_offsets,
    positions_table,
    read_after,
    read_at,
    stream_table,
)
from streams import envelope as envelopes

__all__ = [
    "GraphSnapshot",
    "HistoryEntry",
    "MemoryStore",
    "ProtocolEntry",
    "Replay",
    "RunExport",
    "RunSnapshot",
]

_HEAD: Final = 2**62
"""An offset beyond any stream's head."""
_FOLDED: Final = (
    CREATED,
    NODE_ADDED,
    NODE_UPDATED,
    NODE_DELETED,
    CALL_ADDED,
    CALL_UPDATED,
    CALL_IMPORTED,
)
"""The events the flowgraph's fold reads: the call graph's, and the call trees'."""
_ADDED: Final = frozenset({NODE_ADDED, CALL_ADDED})
_INDEXED_TABLES: Final = ("flow_calls", "flow_runs", "flow_call_events")


# --- results ----------------------------------------------------------------------------


class ProtocolEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A call protocol event as a call lists it (its ``events`` attribute); ``cause``
    names the call whose abort reached this one (a cascade), else None."""

    id: str
    type: str
    at: int
    cause: str | None = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One stream event that touched a call of the run.

    ``event`` is the graph event (``NodeAdded``, ``NodeUpdated``, ``NodeDeleted``),
    ``time`` its envelope time (ms, when it was recorded), ``status`` the call's status
    after it (None once deleted) and ``applied`` the protocol events it added to the
    call's ``events``.
    """

    offset: int
    time: int
    event: str
    request_id: str
    status: str | None
    applied: list[ProtocolEntry]


class RunSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A run as of ``offset``: its row and its calls in tree order."""

    offset: int
    run: FlowRun
    calls: list[FlowCall]


class GraphSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A graph as of ``offset``: its name, type, status, nodes (by key) and edges (by id)."""

    graph_id: str
    offset: int
    name: str
    graph_type_name: str
    status: str
    nodes: list[Node]
    edges: list[Edge]


class RunExport(msgspec.Struct, frozen=True, kw_only=True):
    """A run's history as call protocol events, in the order they were applied.

    ``operation_types`` is what ingestion needs to tell subscriptions from queries (the
    protocol's events do not say): pass it as ``operation_types`` when re-ingesting.
    """

    run_id: str
    events: list[CallEvent]
    operation_types: dict[str, OperationType]

    def jsonl(self) -> bytes:
        """The events as JSON Lines (one ``{id, type, at, payload}`` per line)."""
        return b"".join(msgspec.json.encode(event) + b"\n" for event in self.events)

    def write(self, destination: str | os.PathLike[str] | IO[bytes]) -> int:
        """Write :meth:`jsonl` to a path or a binary stream; the number of events."""
        data = self.jsonl()
        if isinstance(destination, str | os.PathLike):
            Path(destination).write_bytes(data)
        else:
            destination.write(data)
        return len(self.events)


# --- the in-memory store ----------------------------------------------------------------


class MemoryStore:
    """The fold's store in dictionaries (see :class:`projections.flowgraph_fold.Store`)."""

    def __init__(self, graph_id: str | None = None) -> None:
        self.graph_id = graph_id
        self.calls: dict[str, CallRow] = {}
        self.runs: dict[str, RunRow] = {}
        self.members: dict[str, set[str]] = {}  # run id -> its calls
        self.kids: dict[str, set[str]] = {}  # parentRequestId -> calls naming it
        # Each call's attributes as folded: a CallUpdated may carry only what changed.
        self.attributes: dict[str, msgspec.Raw] = {}

    def graph(self) -> str | None:
        return self.graph_id

    def set_graph(self, graph_id: str, seconds: int) -> None:
        self.graph_id = graph_id

    def call(self, key: str) -> CallRow | None:
        return self.calls.get(key)

    def insert_call(self, row: CallRow) -> None:
        self.calls[row.id] = row
        self.members.setdefault(row.run_id, set()).add(row.id)
        if row.parent is not None:
            self.kids.setdefault(row.parent, set()).add(row.id)

    def update_call(self, row: CallRow) -> None:
        old = self.calls[row.id]
        if old.run_id != row.run_id:
            self._leave(old.run_id, row.id)
            self.members.setdefault(row.run_id, set()).add(row.id)
        if old.parent != row.parent:
            if old.parent is not None:
                self.kids[old.parent].discard(row.id)
            if row.parent is not None:
                self.kids.setdefault(row.parent, set()).add(row.id)
        self.calls[row.id] = row

    def delete_call(self, key: str) -> None:
        old = self.calls.pop(key)
        self._leave(old.run_id, key)
        if old.parent is not None:
            self.kids[old.parent].discard(key)

    def run(self, run_id: str) -> RunRow | None:
        return self.runs.get(run_id)

    def insert_run(self, row: RunRow) -> None:
        self.runs[row.id] = row

    def update_run(self, row: RunRow) -> None:
        self.runs[row.id] = row

    def delete_run(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def waiting_children(self, key: str) -> list[str]:
        return sorted(k for k in self.kids.get(key, ()) if self.calls[k].run_id == k)

    def attached_children(self, key: str) -> list[str]:
        return sorted(k for k in self.kids.get(key, ()) if self.calls[k].run_id != k)

    def subtree(self, key: str) -> list[str]:
        found, queue = [key], [key]
        while queue:
            for child in self.attached_children(queue.pop()):
                found.append(child)
                queue.append(child)
        return found

    def move_run(self, source: str, target: str, depth_shift: int) -> None:
        moved = self.members.pop(source, set())
        for key in moved:
            row = self.calls[key]
            row.run_id = target
            row.depth += depth_shift
        self.members.setdefault(target, set()).update(moved)

    def move_calls(self, keys: Sequence[str], target: str, depth_shift: int) -> None:
        for key in keys:
            row = self.calls[key]
            self._leave(row.run_id, key)
            row.run_id = target
            row.depth += depth_shift
            self.members.setdefault(target, set()).add(key)

    def calls_of(self, run_id: str) -> list[CallRow]:
        return [self.calls[k] for k in self.members.get(run_id, ())]

    def note(self, key: str, offset: int) -> None:
        pass  # the replay keeps its own list of what each event touched

    def _leave(self, run_id: str, key: str) -> None:
        members = self.members.get(run_id)
        if members is not None:
            members.discard(key)
            if not members:
                del self.members[run_id]


# --- decoding ---------------------------------------------------------------------------


class _Envelope(msgspec.Struct, kw_only=True):
    type: str
    subject: str
    time: int
    data: FoldedEvent | msgspec.UnsetType = msgspec.UNSET
    data_b64: str | msgspec.UnsetType = msgspec.UNSET


class _Events(msgspec.Struct):
    events: list[ProtocolEntry] = []


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_data_decoder = msgspec.json.Decoder(FoldedEvent)
_events_decoder = msgspec.json.Decoder(_Events)


class _Touch(NamedTuple):
    """What one replayed event did: its offset, time, type, call and attributes."""

    offset: int
    time: int
    topic: str
    key: str
    attributes: msgspec.Raw


class _Folded(NamedTuple):
    store: MemoryStore
    touched: list[_Touch]


def _short(topic: str) -> str:
    return topic.removeprefix(GRAPH_TOPIC).removeprefix(TREE_TOPIC)


# --- graph events (graph_as_of) ---------------------------------------------------------


_graph_event_decoder = msgspec.json.Decoder(AnyGraphEvent)


_call_event_decoder = msgspec.json.Decoder(CallChanged)
_call_added_decoder = msgspec.json.Decoder(CallAdded)
_GRAPH_EVENTS: Final = frozenset(
    GRAPH_TOPIC + name
    for name in (
        "Created",
        "StatusChanged",
        "NodeAdded",
        "NodeUpdated",
        "NodeDeleted",
        "EdgeAdded",
        "EdgeUpdated",
        "EdgeDeleted",
        "NodesRetired",
    )
)


class _GraphState:
    def __init__(self, graph_id: str) -> None:
        self.graph_id = graph_id
        self.created = False
        self.name = self.graph_type_name = self.status = ""
        self.nodes: dict[str, tuple[str, msgspec.Raw, int]] = {}
        self.edges: dict[str, AnyGraphEvent] = {}

    def apply(self, topic: str, event: AnyGraphEvent) -> None:
        name = _short(topic)
        if name == "Created":
            self.created = True
            self.name, self.graph_type_name = event.name, event.graph_type_name
            self.status = event.status
        elif name == "StatusChanged":
            self.status = event.status
        elif name == "NodeAdded":
            self.nodes[str(event.key)] = (event.node_type, event.attributes, event.schema_version)
        elif name == "NodeUpdated":
            node_type = self.nodes[str(event.key)][0]
            self.nodes[str(event.key)] = (node_type, event.attributes, event.schema_version)
        elif name == "NodeDeleted":
            del self.nodes[str(event.key)]
        elif name == "EdgeAdded":
            self.edges[event.edge_id] = event
        elif name == "EdgeUpdated":
            edge = self.edges[event.edge_id]
            self.edges[event.edge_id] = msgspec.structs.replace(
                edge, attributes=event.attributes, schema_version=event.schema_version
            )
        elif name == "NodesRetired":  # their own events were removed with them
            for edge_id in event.edge_ids:
                self.edges.pop(edge_id, None)
            for key in event.keys:
                self.nodes.pop(key, None)
        else:  # EdgeDeleted
            del self.edges[event.edge_id]

    def snapshot(self, offset: int) -> GraphSnapshot:
        nodes = [
            Node(
                key=key,
                node_type=node_type,
                attributes=msgspec.json.decode(attributes),
                schema_version=version,
            )
            for key, (node_type, attributes, version) in sorted(self.nodes.items())
        ]
        edges = [
            Edge(
                id=edge_id,
                key=e.key,
                edge_type=e.edge_type,
                source=e.source,
                target=e.target,
                undirected=e.undirected,
                attributes=msgspec.json.decode(e.attributes),
                schema_version=e.schema_version,
            )
            for edge_id, e in sorted(self.edges.items())
        ]
        return GraphSnapshot(
            graph_id=self.graph_id,
            offset=offset,
            name=self.name,
            graph_type_name=self.graph_type_name,
            status=self.status,
            nodes=nodes,
            edges=edges,
        )


# --- the replay -------------------------------------------------------------------------


class Replay:
    """Histories, time travel and export on one tenant file (module docstring).

    ``stream`` is the metagraph's stream in the file; ``projection`` the flowgraph
    projection whose index and position are used (its table prefix and consumer name);
    ``plain_state`` undoes a cipher or compressor (as for a projector).
    """

    def __init__(
        self,
        datastore: HonkerDatastore,
        *,
        stream: str = "metagraph",
        projection: FlowgraphProjection | None = None,
        plain_state: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.datastore = datastore
        self.stream = stream
        self.projection = projection or FlowgraphProjection()
        self._plain_state = plain_state
        self._owned: TenantReader | None = None
        names = self.projection.tables
        self._flow_tables = (names["flow_calls"], names["flow_runs"], names["flow_graph"])

    @classmethod
    def open(cls, env: Mapping[str, str] | Environment, **options: Any) -> Replay:
        """A replay of the tenant file ``env`` selects (as the writers' env), on the live
        flowgraph version (after a rebuild's swap) unless ``projection`` is given."""
        return TenantReader(env).adopt(lambda reader: cls.on(reader, owns=True, **options))

    @classmethod
    def on(cls, reader: TenantReader, *, owns: bool = False, **options: Any) -> Replay:
        """A replay reading through ``reader`` (its stream and cipher, the live flowgraph
        version, unless ``options`` say otherwise); with ``owns``, :meth:`close` closes
        the reader."""
        options.setdefault("stream", reader.stream)
        options.setdefault("plain_state", reader.plain_state)
        if options.get("projection") is None:
            options["projection"] = live_projection(reader.datastore, FlowgraphProjection)
        replay = cls(reader.datastore, **options)
        replay._owned = reader if owns else None
        return replay

    def close(self) -> None:
        """Close the file if :meth:`open` opened it."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- public -----------------------------------------------------------------------

    def run_as_of(self, run_id: str, offset: int) -> RunSnapshot | None:
        """The flowgraph view of run ``run_id`` as it was once the event at ``offset``
        (and every event before it) was recorded; None if it was not a run then."""
        store = self._fold(run_id, offset, keep=False).store
        run = store.runs.get(run_id)
        if run is None:
            return None
        calls = tree_order(store.calls_of(run_id), run_id)
        return RunSnapshot(
            offset=offset, run=flow_run(run), calls=[flow_call(call) for call in calls]
        )

    def history(self, run_id: str, *, upto: int | None = None) -> list[HistoryEntry]:
        """Every stream event that touched a call of run ``run_id``, in stream order, up to
        ``upto`` (default: the head). Empty if ``run_id`` is not a run (then)."""
        folded = self._fold(run_id, _HEAD if upto is None else upto, keep=True)
        entries: list[HistoryEntry] = []
        for touch, applied in self._applied(run_id, folded):
            status = None
            if touch.topic != NODE_DELETED:
                status = decode_attributes(touch.attributes, touch.key).status
            entries.append(
                HistoryEntry(
                    offset=touch.offset,
                    time=touch.time,
                    event=_short(touch.topic),
                    request_id=touch.key,
                    status=status,
                    applied=[entry for entry, _ in applied],
                )
            )
        return entries

    def export_run(self, run_id: str) -> RunExport:
        """Run ``run_id``'s call protocol events, in the order they were applied.

        Built from each call's ``events`` list and attributes: the request from the
        request's fields, each response from the outputs (a subscription's n-th response
        is its n-th output), the error from ``error``. Aborts passed on by an ancestor
        (``cause``) are left out: ingestion passes them on again under the default
        policy, ``abort-dependents``. Empty if ``run_id`` is not a run.
        """
        folded = self._fold(run_id, _HEAD, keep=True)
        events: list[CallEvent] = []
        for touch, applied in self._applied(run_id, folded):
            own = [(entry, index) for entry, index in applied if entry.cause is None]
            if not own:
                continue
            attributes: dict[str, Any] = msgspec.json.decode(touch.attributes)
            for entry, index in own:
                events.append(_protocol_event(touch.key, attributes, entry, index))
        calls = folded.store.calls_of(run_id) if run_id in folded.store.runs else []
        types: dict[str, OperationType] = {}
        for call in sorted(calls, key=lambda c: c.operation):
            if call.operation_type in ("query", "mutation", "subscription"):
                types[call.operation] = cast("OperationType", call.operation_type)
        return RunExport(run_id=run_id, events=events, operation_types=types)

    def graph_as_of(self, graph_id: UUID | str, offset: int) -> GraphSnapshot | None:
        """Graph ``graph_id``'s nodes and edges as of ``offset``, folded from its events
        (found through the stream's aggregate index); None if it did not exist then (or
        ``graph_id`` is not a graph)."""
        uuid = UUID(str(graph_id))
        versions = aggregate_offsets(
            self.datastore, self.stream, uuid if self.datastore.uuid_ids else str(uuid), upto=offset
        )
        payloads = dict(read_at(self.datastore, self.stream, [v.offset for v in versions]))
        state = _GraphState(str(uuid))
        for at in (v.offset for v in versions if v.offset in payloads):
            topic, state_bytes = self._state(at, payloads[at])
            if not topic.startswith(GRAPH_TOPIC):
                continue
            if topic not in _GRAPH_EVENTS:
                raise UnknownEventError(
                    f"{topic} (offset {at}) is a graph event this replay does not "
                    "know: upgrade projections/replay.py"
                )
            try:
                event = _graph_event_decoder.decode(state_bytes)
            except msgspec.MsgspecError as exc:
                raise EventNotProjectableError(
                    f"malformed {topic} event at offset {at}: {exc}"
                ) from exc
            if event.class_version != 1:
                raise EventNotProjectableError(
                    f"{topic} event of class_version {event.class_version} at offset "
                    f"{at}: this replay reads version 1 only"
                )
            state.apply(topic, event)
        if not state.created:
            return None
        if state.name == GRAPH_NAME and state.graph_type_name == CALL_GRAPH:
            self._calls_as_of(state, offset)
        return state.snapshot(offset)

    def _calls_as_of(self, state: _GraphState, offset: int) -> None:
        """The call graph's calls are kept in call trees (docs/calls.md): fold their events
        up to ``offset`` as the metagraph projection does (a call is a node, each link a
        ``triggered`` edge). This reads every call event up to ``offset``."""
        entries = read_after(self.datastore, self.stream, 0, upto=offset, types=sorted(CALL_EVENTS))
        for entry in entries:
            topic, state_bytes = self._state(entry.offset, entry.payload)
            try:
                event = (
                    _call_added_decoder if topic == CALL_ADDED else _call_event_decoder
                ).decode(state_bytes)
            except msgspec.MsgspecError as exc:
                raise EventNotProjectableError(
                    f"malformed {topic} event at offset {entry.offset}: {exc}"
                ) from exc
            attributes = event.attributes
            if event.is_delta:  # what changed (issue 17)
                before = state.nodes.get(event.key)
                if before is None:
                    raise EventNotProjectableError(
                        f"{topic} at offset {entry.offset} changes call {event.key!r}, "
                        "which no earlier event added"
                    )
                attributes = attributes_after(before[1], event)
            state.nodes[event.key] = (CALL, attributes, 1)
            links = event.triggered() if isinstance(event, CallAdded) else event.links
            for parent, child in links:
                edge_id = call_edge_id(state.graph_id, parent, child)
                state.edges[edge_id] = AnyGraphEvent(
                    key=f"{TRIGGERED}:{child}",
                    edge_id=edge_id,
                    edge_type=TRIGGERED,
                    source=parent,
                    target=child,
                )

    # --- folding ----------------------------------------------------------------------

    def _fold(self, run_id: str, upto: int, *, keep: bool) -> _Folded:
        graph_id, rows = self._involved(run_id, upto)
        store = MemoryStore(graph_id)
        fold = Fold(store)
        touched: list[_Touch] = []
        done: set[int] = set()
        for offset, payload in rows:
            if offset in done:
                continue
            done.add(offset)
            try:
                touch = self._apply(fold, store, offset, payload)
            except (EventNotProjectableError, ViewDivergedError):
                continue  # the live projection refuses it too (it stops or parks it)
            if keep and touch is not None:
                touched.append(touch)
        return _Folded(store, touched)

    def _apply(self, fold: Fold, store: MemoryStore, offset: int, payload: str) -> _Touch | None:
        try:
            envelope = _envelope_decoder.decode(payload)
        except msgspec.MsgspecError as exc:
            raise EventNotProjectableError(f"stream entry {offset} is not an envelope") from exc
        topic = canonical(envelope.type)
        if topic not in _FOLDED:
            return None
        data = envelope.data
        if isinstance(data, msgspec.UnsetType):
            data = self._decode_data(offset, envelope)
        if data.class_version != 1:
            raise EventNotProjectableError(f"{topic} of class_version {data.class_version}")
        if topic == CREATED:
            fold.created(envelope.subject, data.name, data.graph_type_name, envelope.time)
            return None
        key, time = data.key, envelope.time
        if topic in CALL_EVENTS:  # a call tree's: always of the tenant's call graph
            raw = data.attributes
            key = call_key(key, raw)  # a CallAdded stores no key when it is its requestId
            if data.is_delta:  # what changed (issue 17), applied to what was folded
                before = store.attributes.get(key)
                if before is None:
                    raise EventNotProjectableError(f"a change of call {key!r} before it was added")
                raw = attributes_after(before, data)
            attributes = decode_attributes(raw, key)
            if topic == CALL_UPDATED or (topic == CALL_IMPORTED and store.call(key) is not None):
                fold.updated(key, attributes, offset, time)
            else:
                fold.added(key, attributes, offset, time)
                topic = CALL_ADDED
            store.attributes[key] = raw
            return _Touch(offset, time, topic, key, raw)
        if envelope.subject != store.graph_id:
            return None
        if topic == NODE_ADDED:
            if data.node_type != CALL:
                return None
            fold.added(key, decode_attributes(data.attributes, key), offset, time)
            store.attributes[key] = data.attributes
        elif topic == NODE_UPDATED:
            fold.updated(key, decode_attributes(data.attributes, key), offset, time)
            store.attributes[key] = data.attributes
        else:
            fold.deleted(key, offset, time)
            store.attributes.pop(key, None)
        return _Touch(offset, time, topic, key, data.attributes)

    def _decode_data(self, offset: int, envelope: _Envelope) -> FoldedEvent:
        if isinstance(envelope.data_b64, msgspec.UnsetType):
            raise EventNotProjectableError(f"stream entry {offset} has no data")
        if self._plain_state is None:
            raise _no_cipher(offset)
        try:
            state = self._plain_state(base64.b64decode(envelope.data_b64, validate=True))
            return _data_decoder.decode(state)
        except (binascii.Error, msgspec.MsgspecError) as exc:
            raise EventNotProjectableError(f"event {offset}: {exc}") from exc

    def _state(self, offset: int, payload: str) -> tuple[str, bytes]:
        """An event's stable name (docs/events.md) and plain state bytes."""
        try:
            envelope = envelopes.decode(payload)
            state = envelopes.state_of(envelope)
        except msgspec.MsgspecError as exc:
            raise EventNotProjectableError(f"stream entry {offset} is not an envelope") from exc
        if not isinstance(envelope.data_b64, msgspec.UnsetType):
            if self._plain_state is None:
                raise _no_cipher(offset)
            state = self._plain_state(state)
        return canonical(envelope.type), state

    def _applied(
        self, run_id: str, folded: _Folded
    ) -> list[tuple[_Touch, list[tuple[ProtocolEntry, int]]]]:
        """The touches of the run's calls, each with the protocol events it added to the
        call's ``events`` (and their index in that list)."""
        store = folded.store
        members = store.members.get(run_id, set()) if run_id in store.runs else set()
        listed: dict[str, int] = {}
        result: list[tuple[_Touch, list[tuple[ProtocolEntry, int]]]] = []
        for touch in folded.touched:
            if touch.key not in members:
                continue
            if touch.topic == NODE_DELETED:
                listed.pop(touch.key, None)
                result.append((touch, []))
                continue
            try:
                events = _events_decoder.decode(touch.attributes).events
            except msgspec.MsgspecError as exc:
                raise EventNotProjectableError(
                    f"call {touch.key!r} has a malformed events list: {exc}"
                ) from exc
            before = 0 if touch.topic in _ADDED else listed.get(touch.key, 0)
            listed[touch.key] = len(events)
            added = [(events[i], i) for i in range(before, len(events))]
            result.append((touch, added))
        return result

    def _involved(self, run_id: str, upto: int) -> tuple[str | None, list[tuple[int, str]]]:
        """The call graph's id and the events to fold for ``run_id`` up to ``upto``, read
        in one statement (one snapshot): see the module docstring."""
        present = {
            row["name"]
            for row in self.datastore.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?, ?)",
                [*self._flow_tables, PARKED_TABLE],
            )
        }
        indexed = all(name in present for name in self._flow_tables)
        sql, params = self._involved_sql(
            run_id, upto, indexed=indexed, parked=PARKED_TABLE in present
        )
        graph_id: str | None = None
        position = 0
        events: list[tuple[int, str]] = []
        sealed: list[tuple[int, str]] = []  # unapplied events whose keys SQL cannot read
        for row in self.datastore.query(sql, params):
            offset, payload = row["offset"], row["payload"]
            if offset == -2:
                position = int(payload)
            elif offset == -1:
                graph_id = payload
            else:
                events.append((offset, payload))
                if row["unapplied"] and '"data_b64"' in payload:
                    sealed.append((offset, payload))
        if indexed and sealed:
            events += self._runs_named_by(sealed, min(position, upto))
        events.sort(key=lambda event: event[0])
        return graph_id, events

    def _names_in(self, offset: int, payload: str) -> set[str]:
        """The call an event is about and the parent it names (none if unreadable: the
        fold then reports or skips the event itself)."""
        try:
            data = self._decode_data(offset, _envelope_decoder.decode(payload))
            if data.is_delta:  # a change never names a parent
                return {data.key}
            parent = decode_attributes(data.attributes, data.key).parent_request_id
        except (ProjectionError, msgspec.MsgspecError):
            return set()
        return {data.key} if parent is None else {data.key, parent}

    def _runs_named_by(self, sealed: list[tuple[int, str]], upto: int) -> list[tuple[int, str]]:
        """The indexed events (up to ``upto``, the position the first read saw) of the runs
        that encrypted unapplied events may join: the statement could not read their keys.

        Read after the first statement, so the runs may have grown since; a superset of
        whole runs only adds calls the fold keeps apart.
        """
        names: set[str] = set()
        for offset, payload in sealed:
            names |= self._names_in(offset, payload)
        names.discard("")
        if not names:
            return []
        fc, fr, fe = (f'"{self.projection.tables[t]}"' for t in _INDEXED_TABLES)
        rows = self.datastore.query(
            "WITH named(k) AS (SELECT value FROM json_each(?)), "
            f"runs(r) AS (SELECT run_id FROM {fc} WHERE id IN (SELECT k FROM named) "
            f"UNION SELECT id FROM {fr} WHERE root_parent IN (SELECT k FROM named)) "
            f'SELECT DISTINCT e."offset" AS "offset" FROM {fc} c '
            f"JOIN {fe} e ON e.call_id = c.id "
            'WHERE c.run_id IN (SELECT r FROM runs) AND e."offset" <= ?',
            [msgspec.json.encode(sorted(names)).decode(), upto],
        )
        offsets = [int(row["offset"]) for row in rows]
        return [
            (entry.offset, entry.payload) for entry in read_at(self.datastore, self.stream, offsets)
        ]

    def _involved_sql(
        self, run_id: str, upto: int, *, indexed: bool, parked: bool
    ) -> tuple[str, list[Any]]:
        consumer, names = self.projection.consumer, self.projection.tables
        fg, fc, fr, fe = (
            f'"{names[t]}"' for t in ("flow_graph", "flow_calls", "flow_runs", "flow_call_events")
        )
        # The stream and the saved positions are joined with the flowgraph's tables in
        # this ONE statement (one snapshot: the position and the rows it reflects agree),
        # hence streams' table names rather than its per-query functions.
        stream, positions = stream_table(), positions_table()
        ctes: list[str] = []
        params: list[Any] = []
        if indexed:
            ctes.append(
                f'pos(p) AS (SELECT coalesce((SELECT "offset" FROM {positions} '
                "WHERE name = ? AND topic = ?), 0))"
            )
            ctes.append(f"graph(g) AS (SELECT id FROM {fg} ORDER BY created_at, id LIMIT 1)")
            params += [consumer, self.stream]
        else:  # the projection never ran here: everything is "not applied yet"
            ctes += ["pos(p) AS (SELECT 0)", "graph(g) AS (SELECT NULL)"]
        # Events the live view has not applied: after its position, and parked ones.
        # A type matches under every name it was recorded with (docs/events.md).
        folded = [name for topic in _FOLDED for name in names_of(topic)]
        unscoped = [*names_of(CREATED), *sorted(CALL_EVENTS)]  # not the graph's own events
        tail = (
            'tail("offset", payload) AS ('
            f'SELECT "offset", payload FROM {stream} WHERE topic = ? '
            'AND "offset" > (SELECT p FROM pos) AND "offset" <= ? '
            f"AND payload ->> '$.type' IN ({_marks(folded)}) "
            f"AND (payload ->> '$.type' IN ({_marks(unscoped)}) OR (SELECT g FROM graph) IS NULL "
            "OR payload ->> '$.subject' = (SELECT g FROM graph))"
        )
        params += [self.stream, upto, *folded, *unscoped]
        if parked:
            tail += (
                f' UNION ALL SELECT "offset", payload FROM "{PARKED_TABLE}" '
                'WHERE consumer = ? AND "offset" <= ?'
            )
            params += [consumer, upto]
        ctes.append(tail + ")")
        select = (
            'SELECT -2 AS "offset", (SELECT p FROM pos) AS payload, 0 AS unapplied '
            "UNION ALL SELECT -1, (SELECT g FROM graph), 0"
        )
        if indexed:
            # The runs to read: the run's own, and those the unapplied events may join
            # (the runs of the calls they name, and runs waiting for those calls).
            ctes.append(
                "named(k) AS (SELECT coalesce(payload ->> '$.data.key', "
                "payload ->> '$.data.attributes.requestId', "
                "payload ->> '$.data.request.requestId') FROM tail "
                "UNION SELECT coalesce(payload ->> '$.data.attributes.parentRequestId', "
                "payload ->> '$.data.request.parentRequestId') FROM tail "
                "UNION SELECT ?)"
            )
            ctes.append(
                f"runs(r) AS (SELECT run_id FROM {fc} WHERE id IN (SELECT k FROM named) "
                f"UNION SELECT id FROM {fr} WHERE root_parent IN (SELECT k FROM named))"
            )
            params.append(run_id)
            select += (
                f' UNION ALL SELECT e."offset", s.payload, 0 FROM {fc} c '
                f"JOIN {fe} e ON e.call_id = c.id "
                f'JOIN {stream} s ON s."offset" = e."offset" '
                'WHERE c.run_id IN (SELECT r FROM runs) AND e."offset" <= ?'
            )
            params.append(upto)
        select += ' UNION ALL SELECT "offset", payload, 1 FROM tail'
        return f"WITH {', '.join(ctes)} {select}", params


def _marks(values: Sequence[object]) -> str:
    """One SQL parameter mark per value: ``?, ?, ?``."""
    return ", ".join("?" * len(values))


def _no_cipher(offset: int) -> MissingCipherError:
    return MissingCipherError(
        f"event {offset} is encrypted or compressed (data_b64) and this replay has no "
        "cipher: open it with the writers' CIPHER_KEY / COMPRESSOR_TOPIC settings "
        "(Replay.open(env))"
    )


def _protocol_event(
    key: str, attributes: dict[str, Any], entry: ProtocolEntry, index: int
) -> CallEvent:
    """The call protocol event that added ``entry`` (at ``index`` of the call's
    ``events``), rebuilt from the call's attributes right after it."""
    payload: dict[str, Any] = {"requestId": key}
    if entry.type == "call.requested":
        payload["operationId"] = attributes["operationId"]
        payload["input"] = attributes.get("input")
        for name in ("parentRequestId", "deadline", "idleTimeout", "identity", "metadata"):
            if attributes.get(name) is not None:
                payload[name] = attributes[name]
    elif entry.type == "call.responded":
        events = attributes.get("events", [])
        earlier = sum(1 for e in events[:index] if e.get("type") == "call.responded")
        output = attributes.get("output")
        payload["output"] = output[earlier] if isinstance(output, list) else output
    elif entry.type == "call.error":
        error = attributes.get("error") or {}
        payload.update(code=error.get("code"), message=error.get("message"))
        if error.get("details") is not None:
            payload["details"] = error["details"]
    return call_event(entry.type, payload, at=entry.at, id=entry.id)
