"""The metagraph application: typed commands and reads over one tenant file.

:class:`Metagraph` is an eventsourcing ``Application``. It knows nothing of where events
go: persistence is chosen purely by environment (``PERSISTENCE_MODULE``, e.g.
``streams.persistence`` with ``HONKER_DBNAME=<tenant file>``). Its name, ``metagraph``,
is the default stream name and the prefix of its settings (``METAGRAPH_<KEY>`` wins over
``<KEY>``).

Each command loads the aggregates it needs, lets them check every rule, and saves all
new events in ONE recorder call: a command is recorded whole or not at all. A refused
command raises a :class:`~domain.errors.DomainError` before any event exists, so it
writes nothing.

Performance settings (read from the environment like every other setting):

``AGGREGATE_CACHE_MAXSIZE`` aggregates kept in memory (default 256). Cached aggregates
    are used in place (no deep copy, which would cost O(graph size) per command); an
    aggregate a failed command may have touched is evicted, and a cached one is
    fast-forwarded with events other processes recorded before every command.
``SNAPSHOT_INTERVAL`` take a snapshot of an aggregate each time its version crosses a
    multiple of this (default 1000; 0 disables). For a graph the interval grows with
    its size (see :func:`snapshot_interval`), so loading a graph costs O(its size):
    the latest snapshot plus at most about ``size / 32`` events.

Who acts: a Metagraph given a ``gate`` (:class:`domain.access.Gate`, e.g. the
:class:`~domain.access.TenantAccess` the store builds for a principal) asks it before
every read, command and unit of work, and the graph-type rules check the scope of the
actor the gate gives; a refused operation raises before anything is read or written.
Without a gate the application acts for the local operator, who opened the file and may
do anything (system scope), and records no audit records unless ``auditor`` is set.

Commands are serialised per application object by a lock. Between processes, the
recorder's optimistic concurrency decides; a command that lost a race is re-run on
fresh state (up to 3 attempts), so its rules are always checked against what is
recorded.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, Concatenate, Final, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder
from eventsourcing.utils import EnvType

# Every class a tenant file stores decodes with this application (a replay of each
# aggregate, `graphstore verify`): their modules register their names when imported.
import domain.calls.tree
import domain.retention  # noqa: F401
from domain.access import Gate, Operation
from domain.audit import Auditor, AuditRecord
from domain.codec import transcodings
from domain.errors import (
    AccessDeniedError,
    ConcurrencyError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from domain.es_compat import (
    collect,
    notify_saved,
    project,
    record_processed,
    save_is_overridden,
    take_snapshots,
)
from domain.graph_types import CATALOG_ID, GraphType, GraphTypeCatalog
from domain.graphs import AttributesAt, Graph
from domain.logs import wrap_logger
from domain.unit_of_work import SideWrite, UnitOfWork
from domain.values import (
    Actor,
    Edge,
    GraphConfig,
    GraphInfo,
    GraphStatus,
    GraphTypeInfo,
    Node,
    Scope,
    UpdateMode,
)

__all__ = ["LOCAL_OPERATOR", "SNAPSHOT_SHARE", "GraphTypeRef", "Metagraph", "snapshot_interval"]

log = wrap_logger(logging.getLogger("domain"))

GraphTypeRef = UUID | str
"""A graph type by id (a ``UUID``) or by name (a ``str``)."""

LOCAL_OPERATOR: Final = Actor(scope="system", id="system")
"""Who acts in a Metagraph opened without a gate: whoever opened the file."""

_ATTEMPTS: Final = 3
_AttributesEvent = Graph.NodeAdded | Graph.NodeUpdated | Graph.EdgeAdded | Graph.EdgeUpdated
_ATTRIBUTES_EVENTS: Final = (
    Graph.NodeAdded,
    Graph.NodeUpdated,
    Graph.EdgeAdded,
    Graph.EdgeUpdated,
)
_A = TypeVar("_A", bound=Aggregate)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _what(method: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """An operation in words for refusals and the audit log: ``define graph type 'x'``."""
    name = method.__name__.replace("_", " ")
    first = args[0] if args and isinstance(args[0], str) else None
    return f"{name} {first!r}" if first is not None else name


def _guarded(
    operation: Operation,
) -> Callable[[Callable[Concatenate[Metagraph, _P], _R]], Callable[Concatenate[Metagraph, _P], _R]]:
    """A command of group ``operation`` (``write``, or ``define`` for graph types): asks
    the gate, runs under the lock, discards touched aggregates if it fails, retries
    races. A refusal by a domain rule about who may act (a scope the actor lacks) is
    reported to the gate, which audits it."""

    def decorate(
        method: Callable[Concatenate[Metagraph, _P], _R],
    ) -> Callable[Concatenate[Metagraph, _P], _R]:
        @functools.wraps(method)
        def run(self: Metagraph, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            what = _what(method, args)
            with self._lock:
                if operation == "define" and self._module_actor is not None:
                    self._actor = self._module_actor
                else:
                    self._actor = self.require(operation, what)
                try:
                    return self._run(method, *args, **kwargs)
                except ForbiddenError as exc:
                    if self.gate is not None and not isinstance(exc, AccessDeniedError):
                        self.gate.refused(operation, what, exc)
                    raise

        return run

    return decorate


_command = _guarded("write")
_definition = _guarded("define")


def _read(
    method: Callable[Concatenate[Metagraph, _P], _R],
) -> Callable[Concatenate[Metagraph, _P], _R]:
    """A read: asks the gate, runs under the lock (cached aggregates are shared with
    commands)."""

    @functools.wraps(method)
    def run(self: Metagraph, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.require("read", _what(method, args))
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            finally:
                self._loaded.clear()

    return run


class Metagraph(Application[UUID]):
    """Graph types, graphs, nodes and edges of one tenant, with their rules enforced.

    Every command either records all its events or raises a
    :class:`~domain.errors.DomainError` and records nothing.
    """

    name = "metagraph"
    is_snapshotting_enabled = True
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "256"}

    SNAPSHOT_INTERVAL: Final = "SNAPSHOT_INTERVAL"
    DEFAULT_SNAPSHOT_INTERVAL: Final = 1000

    def __init__(self, env: EnvType | None = None, *, gate: Gate | None = None) -> None:
        super().__init__(env)
        self._lock = threading.RLock()
        self._loaded: dict[UUID, tuple[Aggregate, int]] = {}
        self._unit: UnitOfWork | None = None
        self._actor: Actor = LOCAL_OPERATOR
        self._module_actor: Actor | None = None
        self._gate = gate
        self.auditor: Auditor | None = None if gate is None else gate.auditor
        """Who this application's writes are made by: when set, every commit also
        records an :class:`~domain.audit.AuditRecord`, in the same transaction."""
        raw = (self.env.get(self.SNAPSHOT_INTERVAL) or "").strip()
        try:
            self.snapshot_interval = int(raw) if raw else self.DEFAULT_SNAPSHOT_INTERVAL
        except ValueError:
            raise ValueError(
                f"{self.SNAPSHOT_INTERVAL}={raw!r} is not an integer: use the number of events "
                "between snapshots, or 0 for none"
            ) from None

    @property
    def gate(self) -> Gate | None:
        """Who decides what may be done here (fixed when the application is built)."""
        return self._gate

    def require(self, operation: Operation, what: str) -> Actor:
        """The actor making ``what`` (an operation of group ``operation``, see
        :data:`domain.access.OPERATIONS`), or the gate's
        :class:`~domain.errors.AccessDeniedError`. For code outside this class that
        reads or writes the tenant (the call ledger, the built-in modules)."""
        if self._gate is None:
            return LOCAL_OPERATOR
        return self._gate.require(operation, what)

    @contextmanager
    def acting_as_module(self, actor: Actor) -> Iterator[None]:
        """Graph-type commands in the block act as ``actor`` without asking the gate
        about ``define``: for the store's own modules (their types are system scope),
        never for a caller's choice. Other operations still ask the gate."""
        with self._lock:
            previous, self._module_actor = self._module_actor, actor
            try:
                yield
            finally:
                self._module_actor = previous

    def _run(self, method: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        """``method`` as a command: joins an open unit, or runs alone with retries."""
        if self._unit is not None:  # inside a unit of work: it records, it retries
            try:
                return method(self, *args, **kwargs)
            except DomainError:
                raise  # refused before any event was triggered: the unit is intact
            except BaseException as exc:
                self._unit.poisoned = exc
                raise
        for attempt in range(1, _ATTEMPTS + 1):
            self._loaded.clear()
            try:
                return method(self, *args, **kwargs)
            except IntegrityError as exc:
                self._discard_changed()
                log.info("command lost a race, retrying", command=method.__name__)
                if attempt == _ATTEMPTS:
                    raise ConcurrencyError(
                        f"{method.__name__}: other writers changed the same graph or type "
                        f"during each of {_ATTEMPTS} attempts; nothing was written, retry "
                        "later"
                    ) from exc
            except BaseException:
                self._discard_changed()
                raise
            finally:
                self._loaded.clear()
        raise AssertionError("unreachable")  # pragma: no cover

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Register the library's transcodings and the domain's (:mod:`domain.codec`)."""
        super().register_transcodings(transcoder)
        for transcoding in transcodings():
            transcoder.register(transcoding)

    def take_snapshot(
        self,
        aggregate_id: UUID,
        version: int | None = None,
        projector_func: Any = project_aggregate,
    ) -> None:
        """Snapshot an aggregate's current state (or, as eventsourcing does, its state at
        ``version``).

        The current state is taken from the cache as it is (fast-forwarded), not from a
        deep copy: a snapshot only reads the aggregate, and copying a 300k-element graph
        would take seconds.
        """
        if version is not None or projector_func is not project_aggregate or not self.snapshots:
            super().take_snapshot(aggregate_id, version, projector_func)
            return
        with self._lock:
            aggregate = self.repository.get(
                aggregate_id, deepcopy_from_cache=False, projector_func=project
            )
            self.snapshots.put([aggregate.Snapshot.take(aggregate)])

    # --- units of work -------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """Run many commands, on any aggregates of this tenant, as ONE transaction.

        Every command inside the block joins the unit; when the block ends, all their
        events (and the unit's queue jobs, notifications and stream entries) are
        recorded in one recorder transaction. If the block raises, or a command failed
        for a reason other than a refusal, nothing is written and the aggregates it
        touched are reloaded on next use. A refused command (a
        :class:`~domain.errors.DomainError`) triggers no event, so the block may catch it
        and go on. A version conflict at the end raises
        :class:`~domain.errors.ConcurrencyError` and writes nothing: run the block again
        (:meth:`atomic` does). A block inside another one joins the outer unit; if it
        raises, the outer unit rolls back too (it is not a savepoint), whatever the
        outer block does with the exception.
        """
        with self._lock:
            if self._unit is not None:
                # Joined, not a savepoint: what failed inside may have changed aggregates
                # of the outer unit, so the outer unit can no longer commit.
                try:
                    yield self._unit
                except BaseException as exc:
                    self._unit.poisoned = exc
                    raise
                return
            unit = self._unit = UnitOfWork(self._fetch, self._refer)
            try:
                yield unit
                if unit.poisoned is not None:
                    raise RuntimeError(
                        "a command in this unit of work failed, so the unit was rolled back "
                        "and nothing was written"
                    ) from unit.poisoned
                self._commit(unit)
            except BaseException:
                self._roll_back(unit)
                raise
            finally:
                self._unit = None
            for callback in unit.committed:
                callback()

    @property
    def in_transaction(self) -> bool:
        """Whether this thread's commands join an open unit of work (see :meth:`transaction`)."""
        unit = self._unit
        return unit is not None and unit.thread == threading.get_ident()

    def atomic(self, work: Callable[[UnitOfWork], _R], *, attempts: int = _ATTEMPTS) -> _R:
        """``work(unit)`` in a :meth:`transaction`, re-run on fresh state when another
        writer won a race (up to ``attempts`` times); its result."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as unit:
                    return work(unit)
            except ConcurrencyError:
                if attempt == attempts or self._unit is not None:
                    raise
                log.info("unit of work lost a race, retrying", attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit(self, unit: UnitOfWork) -> None:
        for aggregate in unit.aggregates.values():  # events triggered without add()
            if aggregate.pending_events:
                unit.add(aggregate)
        if not unit.events and not unit.side_writes:
            return
        # Every write of a unit passes here, whatever made it (a command, the call
        # ledger, a side write): the gate decides once more, with the commit in sight.
        self.require("write", unit.description or "commit a unit of work")
        changed = [a for a in unit.aggregates.values() if a.version != unit.versions[a.id]]
        if unit.side_writes and not getattr(self.recorder, "supports_side_writes", False):
            raise ValidationError(
                f"this application's recorder ({type(self.recorder).__name__}) cannot commit "
                "queue jobs, notifications or stream entries with events; open the tenant "
                "through the store (its files use the Honker persistence module)"
            )
        stream = getattr(self.recorder, "stream", None)
        for aggregate_id, version in unit.expected.items():
            if stream is None:  # pragma: no cover - peek() expects only what can be checked
                raise AssertionError("an expectation without a recorder that checks it")
            unit.side_writes.append(
                SideWrite(kind="expect", target=stream, key=str(aggregate_id), payload=str(version))
            )
        # the unit's events, in the order they were triggered (already collected)
        processing = collect((), unit.events)
        for aggregate in changed:
            processing.aggregates[aggregate.id] = aggregate
        if self.auditor is not None and unit.events:
            record = AuditRecord.of(
                self.auditor, unit.events, what=unit.description, details=unit.details
            )
            processing.events.extend(record.collect_events())
        if unit.side_writes:
            processing.saved_kwargs["side_writes"] = unit.side_writes
        try:
            recordings = record_processed(self, processing)
        except IntegrityError as exc:
            raise ConcurrencyError(
                "another writer changed an aggregate of this unit of work after the unit "
                "read it; nothing was written: run the unit again"
            ) from exc
        cache = self.repository.cache
        if cache is not None:
            for aggregate in changed:
                cache.put(aggregate.id, aggregate)
        unit.versions.update((a.id, a.version) for a in changed)
        notify_saved(self, processing, recordings)
        recorded: dict[UUID, int] = {}
        for event in processing.events:
            recorded[event.originator_id] = recorded.get(event.originator_id, 0) + 1
        for aggregate in changed:
            self._snapshot_if_due(aggregate, aggregate.version - recorded[aggregate.id])

    def _roll_back(self, unit: UnitOfWork) -> None:
        """Forget what the unit changed in memory: drop pending events, evict from cache."""
        cache = self.repository.cache
        for aggregate_id, aggregate in unit.aggregates.items():
            if aggregate.pending_events or aggregate.version != unit.versions[aggregate_id]:
                aggregate.collect_events()
                if cache is not None:
                    with suppress(KeyError):
                        cache.get(aggregate_id, evict=True)

    def peek(self, unit: UnitOfWork, aggregate_id: UUID) -> Aggregate | None:
        """The aggregate as this process last saw it (from the cache, NOT brought up to
        date from the store), for a unit that relies on it without writing it; or
        ``None`` if it is not cached or the store cannot check it (then load it).

        The read of a fast-forward is saved; if ``unit`` writes anything, its commit
        checks, in its transaction, that no writer changed the aggregate since: else it
        writes nothing and raises :class:`~domain.errors.ConcurrencyError` (:meth:`atomic`
        runs the unit again, and a second run should load). A unit that writes nothing
        checks nothing: decide nothing that is written elsewhere from a peeked aggregate.
        """
        cache = self.repository.cache
        if cache is None or not self._checks_expectations:
            return None
        try:
            found = cache.get(aggregate_id)
        except KeyError:
            return None
        if not isinstance(found, Aggregate) or found.pending_events:  # pragma: no cover
            return None  # the cache holds committed aggregates
        self.expect(unit, aggregate_id, found.version)
        return found

    def expect(self, unit: UnitOfWork, aggregate_id: UUID, version: int) -> bool:
        """Make ``unit``'s commit check, in its transaction, that aggregate
        ``aggregate_id`` is still at ``version`` (0: has no events), as read: else
        nothing is written and :class:`~domain.errors.ConcurrencyError` is raised
        (:meth:`atomic` runs the unit again). ``False``, and nothing checked, when the
        recorder cannot check it (not the Honker persistence module)."""
        if not self._checks_expectations:
            return False
        unit.expected[aggregate_id] = version
        return True

    @property
    def _checks_expectations(self) -> bool:
        return getattr(self.recorder, "supports_side_writes", False) and isinstance(
            getattr(self.recorder, "stream", None), str
        )

    @functools.cached_property
    def _refer(self) -> Callable[[UUID], UUID | None] | None:
        """The recorder's reference lookup, when its events can file references (their
        state's ``refs``, read as JSON: so not with a compressor or a cipher)."""
        select = getattr(self.recorder, "select_reference", None)
        if select is None or self.mapper.compressor is not None or self.mapper.cipher is not None:
            return None

        def refer(aggregate_id: UUID) -> UUID | None:
            found = select(aggregate_id)
            return None if found is None else UUID(found)

        return refer

    def _fetch(self, aggregate_id: UUID) -> Aggregate | None:
        """An aggregate from the cache (fast-forwarded) or the store; ``None`` if unknown."""
        try:
            found: Aggregate = self.repository.get(
                aggregate_id, deepcopy_from_cache=False, projector_func=project
            )
        except AggregateNotFoundError:
            return None
        return found

    # --- graph types ---------------------------------------------------------------

    @_definition
    def define_graph_type(
        self,
        name: str,
        *,
        config: GraphConfig | dict[str, Any] | None = None,
        description: str = "",
        scope: Scope | None = None,
    ) -> UUID:
        """Define a graph type with a unique ``name``; returns its id.

        ``scope`` defaults to the acting principal's scope (docs/identity.md); no one
        may define a type of a higher scope than their own. ``config`` is fixed for the
        type's life.
        """
        graph_type = GraphType.define(
            name, actor=self._actor, config=config, description=description, scope=scope
        )
        catalog = self._catalog()
        catalog.claim(name, graph_type.id)
        self._save(catalog, graph_type)
        return graph_type.id

    @_definition
    def add_node_type(
        self,
        graph_type: GraphTypeRef,
        name: str,
        *,
        schema: dict[str, Any] | None = None,
        description: str = "",
    ) -> None:
        """Add a node type whose attributes must match the JSON Schema ``schema``."""
        found = self._graph_type(graph_type)
        found.add_node_type(name, actor=self._actor, schema=schema, description=description)
        self._save(found)

    @_definition
    def add_edge_type(
        self,
        graph_type: GraphTypeRef,
        name: str,
        *,
        schema: dict[str, Any] | None = None,
        description: str = "",
        allowed_source_types: tuple[str, ...] | list[str] = (),
        allowed_target_types: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Add an edge type; the allowed endpoint node types must exist (empty: any)."""
        found = self._graph_type(graph_type)
        found.add_edge_type(
            name,
            actor=self._actor,
            schema=schema,
            description=description,
            allowed_source_types=allowed_source_types,
            allowed_target_types=allowed_target_types,
        )
        self._save(found)

    @_definition
    def evolve_node_type_schema(
        self, graph_type: GraphTypeRef, name: str, schema: dict[str, Any]
    ) -> int:
        """Replace a node type's schema; returns the new schema version.

        Versioned, not checked against existing nodes (see :mod:`domain.graph_types`):
        existing nodes keep their attributes; their next write must match ``schema``.
        """
        found = self._graph_type(graph_type)
        version = found.evolve_node_type_schema(name, schema, actor=self._actor)
        self._save(found)
        return version

    @_definition
    def evolve_edge_type_schema(
        self, graph_type: GraphTypeRef, name: str, schema: dict[str, Any]
    ) -> int:
        """Replace an edge type's schema; returns the new schema version (as for nodes)."""
        found = self._graph_type(graph_type)
        version = found.evolve_edge_type_schema(name, schema, actor=self._actor)
        self._save(found)
        return version

    @_definition
    def delete_graph_type(self, graph_type: GraphTypeRef) -> None:
        """Delete a graph type and free its name; its graphs become read-only."""
        found = self._graph_type(graph_type)
        found.delete(actor=self._actor)
        catalog = self._catalog()
        catalog.release(found.name)
        self._save(catalog, found)

    @_read
    def get_graph_type(self, graph_type: GraphTypeRef) -> GraphTypeInfo:
        """A graph type by id or name; :class:`NotFoundError` if unknown or deleted."""
        found = self._graph_type(graph_type)
        found.check_usable()
        return found.info()

    @_read
    def graph_types(self) -> dict[str, UUID]:
        """Names of the defined graph types, each with its id."""
        try:
            return dict(self._load(CATALOG_ID, GraphTypeCatalog, "graph type catalog").names)
        except NotFoundError:
            return {}

    # --- graphs --------------------------------------------------------------------

    @_command
    def create_graph(
        self,
        graph_type: GraphTypeRef,
        name: str,
        *,
        description: str = "",
        owner_id: str = "",
        project_id: str = "",
        status: GraphStatus = "draft",
    ) -> UUID:
        """Create a graph of ``graph_type`` in status ``draft`` (or ``active``); its id."""
        graph = Graph.create(
            self._graph_type(graph_type),
            name,
            description=description,
            owner_id=owner_id,
            project_id=project_id,
            status=status,
        )
        self._save(graph)
        return graph.id

    @_command
    def set_graph_status(self, graph_id: UUID | str, status: GraphStatus) -> None:
        """Change a graph's status: draft->active, draft->archived, active->archived."""
        graph = self._graph(graph_id)
        graph.set_status(status)
        self._save(graph)

    def activate_graph(self, graph_id: UUID | str) -> None:
        """Make a draft graph active."""
        self.set_graph_status(graph_id, "active")

    def archive_graph(self, graph_id: UUID | str) -> None:
        """Archive a graph: from then on it refuses every write, for good."""
        self.set_graph_status(graph_id, "archived")

    @_read
    def get_graph(self, graph_id: UUID | str) -> GraphInfo:
        """A graph's metadata, status and size."""
        return self._graph(graph_id).info()

    # --- nodes ---------------------------------------------------------------------

    @_command
    def add_node(
        self,
        graph_id: UUID | str,
        key: str,
        node_type: str,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Add a node with a key unique in the graph, valid against its type's schema."""
        graph = self._graph(graph_id)
        graph.add_node(
            self._type_of(graph), key, node_type, {} if attributes is None else attributes
        )
        self._save(graph)

    @_command
    def update_node(
        self,
        graph_id: UUID | str,
        key: str,
        attributes: dict[str, Any],
        *,
        mode: UpdateMode = "merge",
    ) -> None:
        """Change a node's attributes: ``merge`` (shallow: top-level keys given replace
        those recorded, others stay) or ``replace``; the result must match the schema."""
        graph = self._graph(graph_id)
        graph.update_node(self._type_of(graph), key, attributes, mode, self._attributes_at(graph))
        self._save(graph)

    @_command
    def delete_node(self, graph_id: UUID | str, key: str) -> list[str]:
        """Delete a node and every edge touching it (one event each); the edge ids."""
        graph = self._graph(graph_id)
        edge_ids = graph.delete_node(key, self._type_of(graph))
        self._save(graph)
        return edge_ids

    @_read
    def get_node(self, graph_id: UUID | str, key: str) -> Node:
        """A node with its current attributes."""
        graph = self._graph(graph_id)
        entry = graph.node(key)
        event = self._event_at(graph, entry.version)
        return Node(
            key=key,
            node_type=entry.type,
            attributes=event.attributes,
            schema_version=event.schema_version,
        )

    @_read
    def nodes(self, graph_id: UUID | str) -> dict[str, str]:
        """Every node key of a graph, each with its node type."""
        return {key: entry.type for key, entry in self._graph(graph_id).index.nodes.items()}

    # --- edges ---------------------------------------------------------------------

    @_command
    def add_edge(
        self,
        graph_id: UUID | str,
        edge_type: str,
        source: str,
        target: str,
        attributes: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        undirected: bool | None = None,
    ) -> str:
        """Add an edge between two existing nodes; returns the edge's id.

        ``key`` is optional and unique in the graph. ``undirected`` defaults to the graph
        type's kind (directed for ``mixed``).
        """
        graph = self._graph(graph_id)
        edge_id = graph.add_edge(
            self._type_of(graph),
            edge_type,
            source,
            target,
            {} if attributes is None else attributes,
            key=key,
            undirected=undirected,
        )
        self._save(graph)
        return edge_id

    @_command
    def update_edge(
        self,
        graph_id: UUID | str,
        edge_id: str,
        attributes: dict[str, Any],
        *,
        mode: UpdateMode = "merge",
    ) -> None:
        """Change an edge's attributes (``merge`` or ``replace``, as for nodes)."""
        graph = self._graph(graph_id)
        graph.update_edge(
            self._type_of(graph), edge_id, attributes, mode, self._attributes_at(graph)
        )
        self._save(graph)

    @_command
    def delete_edge(self, graph_id: UUID | str, edge_id: str) -> None:
        """Delete one edge."""
        graph = self._graph(graph_id)
        graph.delete_edge(edge_id, self._type_of(graph))
        self._save(graph)

    @_read
    def get_edge(self, graph_id: UUID | str, edge_id: str) -> Edge:
        """An edge, by id, with its current attributes."""
        return self._edge_view(self._graph(graph_id), edge_id)

    @_read
    def find_edge(self, graph_id: UUID | str, key: str) -> Edge:
        """An edge, by its caller-chosen key."""
        graph = self._graph(graph_id)
        return self._edge_view(graph, graph.edge_id_for_key(key))

    @_read
    def edge_ids(self, graph_id: UUID | str) -> list[str]:
        """The ids of every edge of a graph."""
        return list(self._graph(graph_id).index.edges)

    # --- internals -----------------------------------------------------------------

    def _edge_view(self, graph: Graph, edge_id: str) -> Edge:
        entry = graph.edge(edge_id)
        event = self._event_at(graph, entry.version)
        return Edge(
            id=edge_id,
            key=entry.key,
            edge_type=entry.type,
            source=entry.source,
            target=entry.target,
            undirected=entry.undirected,
            attributes=event.attributes,
            schema_version=event.schema_version,
        )

    def _event_at(self, graph: Graph, version: int) -> _AttributesEvent:
        for event in self.events.get(graph.id, gt=version - 1, lte=version):
            if isinstance(event, _ATTRIBUTES_EVENTS):
                return event
        raise RuntimeError(
            f"event {version} of graph {graph.id} holds no attributes although the graph's "
            "index points at it: the event store is inconsistent with the aggregate"
        )

    def _attributes_at(self, graph: Graph) -> AttributesAt:
        def attributes_at(version: int) -> dict[str, Any]:
            attributes: dict[str, Any] = self._event_at(graph, version).attributes
            return attributes

        return attributes_at

    def _load(self, aggregate_id: UUID, cls: type[_A], kind: str) -> _A:
        found: object = (
            self._unit.load(aggregate_id, cls)
            if self._unit is not None
            else self._fetch(aggregate_id)
        )
        if not isinstance(found, cls):
            raise NotFoundError(
                f"no {kind} with id {aggregate_id}; check the id", kind=kind, name=str(aggregate_id)
            )
        self._loaded[found.id] = (found, found.version)
        return found

    def _catalog(self) -> GraphTypeCatalog:
        try:
            return self._load(CATALOG_ID, GraphTypeCatalog, "graph type catalog")
        except NotFoundError:
            return GraphTypeCatalog.start()

    def _graph_type(self, ref: GraphTypeRef) -> GraphType:
        if isinstance(ref, UUID):
            return self._load(ref, GraphType, "graph type")
        if isinstance(ref, str):
            try:
                names = self._load(CATALOG_ID, GraphTypeCatalog, "graph type catalog").names
            except NotFoundError:
                names = {}
            if ref in names:
                return self._load(names[ref], GraphType, "graph type")
            raise NotFoundError(
                f"no graph type named {ref!r}; known: {sorted(names)}. Define it first, or "
                "pass its id as a UUID",
                kind="graph type",
                name=ref,
            )
        raise ValidationError(f"invalid graph type {ref!r}: pass its name (str) or id (UUID)")

    def _graph(self, graph_id: UUID | str) -> Graph:
        return self._load(_as_uuid(graph_id, "graph id"), Graph, "graph")

    def _type_of(self, graph: Graph) -> GraphType:
        return self._load(graph.graph_type_id, GraphType, "graph type")

    def _save(self, *aggregates: Aggregate) -> None:
        if self._unit is not None:
            self._unit.add(*aggregates)
            return
        before = [(a, a.version - len(a.pending_events)) for a in aggregates]
        if save_is_overridden(self):  # a subclass changed save(): honour it
            self.save(*aggregates)
        else:
            self._save_lean(aggregates)
        for aggregate, version in before:
            self._snapshot_if_due(aggregate, version)

    def _save_lean(self, aggregates: tuple[Aggregate, ...]) -> None:
        """What ``Application.save(*aggregates)`` does, step by step
        (:mod:`domain.es_compat`), minus its two runtime Protocol checks per aggregate
        (about 15 us of a 150 us command), plus the audit record in the same write."""
        processing = collect(aggregates)
        if self.auditor is not None and processing.events:
            record = AuditRecord.of(self.auditor, processing.events)
            processing.events.extend(record.collect_events())
        recordings = record_processed(self, processing)
        take_snapshots(self, processing)
        notify_saved(self, processing, recordings)

    def _snapshot_if_due(self, aggregate: Aggregate, before: int) -> None:
        if self.snapshots is None or self.snapshot_interval <= 0:
            return
        interval = snapshot_interval(
            self.snapshot_interval, aggregate.size if isinstance(aggregate, Graph) else 0
        )
        if aggregate.version // interval == before // interval:
            return
        try:  # the events are recorded: a failed snapshot only costs a longer replay
            self.snapshots.put([aggregate.Snapshot.take(aggregate)])
        except Exception:
            log.warning(
                "snapshot failed",
                aggregate_id=str(aggregate.id),
                version=aggregate.version,
                exc_info=True,
            )

    def _discard_changed(self) -> None:
        """Evict aggregates a failed command changed in memory, so none is half-applied."""
        cache = self.repository.cache
        for aggregate, version in self._loaded.values():
            if aggregate.version != version or aggregate.pending_events:
                aggregate.collect_events()
                if cache is not None:
                    with suppress(KeyError):
                        cache.get(aggregate.id, evict=True)


SNAPSHOT_SHARE: Final = 32
"""A graph is snapshotted about every ``size / SNAPSHOT_SHARE`` events (see
:func:`snapshot_interval`)."""


def snapshot_interval(base: int, size: int) -> int:
    """Events between snapshots of an aggregate holding ``size`` nodes and edges.

    Every snapshot holds the whole index, so taking one costs O(size) (about 0.25 s at
    300k nodes and edges, in the command that crosses the interval) and a cold start
    costs decoding it (about 0.35 s) plus replaying the events recorded since (about
    14 us each); ``benchmarks/results/domain.json`` has the measured figures. A fixed
    interval of ``base`` events would make snapshots the dearest part of a big graph's
    writes (0.25 ms per write at 300k); growing the interval with the graph, to the
    power of two at or below ``size / SNAPSHOT_SHARE`` (or ``base`` if larger), keeps
    the snapshot's share of a write constant (about 30 us) and bounds the replay of a
    cold start to about ``size / 32`` events (about 0.12 s at 300k). Powers of two
    nest, so a growing interval never skips a due snapshot by much.

    This assumes the snapshot store keeps only each aggregate's latest snapshot: if it
    kept them all, a graph would store about 2 x ``SNAPSHOT_SHARE`` copies of its index.
    """
    share = size // SNAPSHOT_SHARE
    return max(base, 1 << (share.bit_length() - 1)) if share else base


def _as_uuid(value: UUID | str, what: str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise ValidationError(
            f"invalid {what} {value!r}: pass the UUID the store returned (or its string form)"
        ) from None
