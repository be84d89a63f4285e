"""Folding call events into the tenant's call trees: one batch, one transaction.

:func:`ingest` checks the format of every event, then applies them one by one with
:class:`~domain.calls.rules.Rules` to the call trees (:mod:`domain.calls.tree`) inside
ONE unit of work (:meth:`domain.Metagraph.transaction`): a refused event raises, the
unit rolls back, and nothing is written; otherwise every change of the batch commits in
one SQLite transaction. A crash at any moment leaves the batch whole or absent. A unit
that lost a race to another writer of the same run is re-run on fresh state (its events
already recorded by the other writer then change nothing).

What a batch reads is what it touches: the reference of each call it names (one indexed
read, remembered), the trees of those calls (cached, fast-forwarded), and the call
index. Nothing else of the tenant's history is loaded, so the cost of a write, the
memory of a writer and a cold start do not grow with the history.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from uuid import UUID

import msgspec

from domain.application import Metagraph
from domain.calls.graph import CALL, CALL_GRAPH, GRAPH_NAME, install
from domain.calls.protocol import (
    DEFAULT_ABORT_POLICY,
    AbortPolicy,
    CallEvent,
    OperationTypes,
    as_event,
)
from domain.calls.rules import Rules
from domain.calls.tree import INDEX_ID, CallIndex, CallRef, CallTree, ref_id
from domain.errors import (
    CallEventError,
    ConcurrencyError,
    GraphArchivedError,
    ValidationError,
)
from domain.graphs import Graph
from domain.logs import wrap_logger
from domain.names import names_of
from domain.retention import RETENTION_ID, Retention
from domain.unit_of_work import UnitOfWork

__all__ = [
    "CallLedger",
    "IngestReport",
    "call_ledger",
    "find_call_graph",
    "get_call",
    "ingest",
    "locate",
    "tenant_call_graph",
]

log = wrap_logger(logging.getLogger("domain.calls"))

_LOCATIONS: Final = 65_536
"""Call references remembered per application (each ~150 bytes); beyond, read again."""
_PAGE: Final = 1000


class IngestReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a batch did: ``events`` given, ``applied`` (changed a call), ``unchanged``
    (duplicates and ignored events), ``writes`` (calls added or changed) and
    ``transactions`` committed (1, or 0 when nothing changed); ``attempts``: how many
    times the batch was run (more than 1 when another writer of the same run won a
    race and the batch was run again on fresh state)."""

    events: int
    applied: int
    unchanged: int
    writes: int
    transactions: int = 1
    attempts: int = 1


class CallLedger:
    """The call-protocol side of one :class:`~domain.Metagraph`: where its calls are.

    Remembers the tree of recently seen calls (references never change once filed) and
    the call graph's id; everything else is read through the application, inside the
    batch's unit of work. Use :func:`call_ledger` to share one per application. It has
    no lock of its own: everything it does runs inside the application's unit of work,
    under the application's lock (one lock, so no lock order to get wrong).
    """

    def __init__(self, app: Metagraph) -> None:
        self.app = app
        self._where: OrderedDict[str, UUID] = OrderedDict()
        self._graph_id: UUID | None = None
        self._retention_version: int | None = None  # the tenant's Retention, as last read

    def ingest(
        self,
        events: Iterable[CallEvent | Mapping[str, Any]],
        *,
        abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
        operation_types: OperationTypes | None = None,
        lines: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
        also: Callable[[UnitOfWork], object] | None = None,
    ) -> IngestReport:
        """Fold a batch of events, all or nothing, in one transaction; see :func:`ingest`."""
        if abort_policy not in ("abort-dependents", "continue-running"):
            raise ValidationError(
                f"invalid abort policy {abort_policy!r}: use 'abort-dependents' or "
                "'continue-running'"
            )
        checked = [_labelled(as_event, e, i, lines) for i, e in enumerate(events)]

        attempt = 0
        # The first attempt guesses that unseen calls are new, and a retry reads; a batch
        # joined to an outer unit cannot be retried alone, so it reads at once.
        joined = self.app.in_transaction

        def fold(unit: UnitOfWork) -> tuple[int, int]:
            nonlocal attempt
            attempt += 1
            read = attempt > 1 or joined
            retention = self._after_retirements(unit, read=read)
            trees = _Trees(self, unit, guess_new=attempt == 1 and not joined)
            if also is not None:
                also(unit)
            trees.open()
            rules = Rules(trees, abort_policy, operation_types)
            writes = applied = 0
            for done, event in enumerate(checked, start=1):
                changed = _labelled(rules.apply, event, done - 1, lines)
                writes += changed
                applied += changed > 0
                if progress is not None:
                    progress(done, len(checked))
            trees.settle()
            # An event found already recorded wrote nothing, so no commit checks the
            # trees it was found in: check them as a read would (a retired run's request
            # id sent again is then new, whichever process receives it).
            if (
                applied < len(checked)
                and not read
                and self._after_retirements(unit, read=True) != retention
            ):
                raise ConcurrencyError(
                    "a retention pass retired runs since this process last looked: "
                    "the batch runs again on fresh reads"
                )
            if _extends_a_recorded_tree(unit):
                # A pass that retires that tree between this unit's reads and its commit
                # makes the commit fail and the unit run again on fresh reads, so an
                # event never lands after a retired tree's deleted history. Batches that
                # only start trees expect nothing, and never wait on a running pass.
                self.app.expect(unit, RETENTION_ID, retention)
            return writes, applied

        writes, applied = self.app.atomic(fold)
        return IngestReport(
            events=len(checked),
            applied=applied,
            unchanged=len(checked) - applied,
            writes=writes,
            transactions=int(writes > 0),
            attempts=attempt,
        )

    def get(self, request_id: str) -> dict[str, Any] | None:
        """A call's attributes as recorded, or ``None``."""
        with self.app.transaction() as unit:
            if self.graph_id(unit, create=False) is None:
                return None
            return _Trees(self, unit).attributes(request_id)

    def graph_id(self, unit: UnitOfWork, *, create: bool) -> UUID | None:
        """The tenant's call graph; with ``create``, made (in ``unit``) if missing.

        A tenant written before call trees has a call graph whose calls are its own
        nodes: the first use upgrades it (in ``unit``), copying them into call trees.
        """
        if self._graph_id is not None:
            return self._graph_id
        index = unit.load(INDEX_ID, CallIndex)
        if index is not None:
            self._graph_id = index.graph_id
            return index.graph_id
        legacy = _legacy_call_graph(self.app)
        if legacy is None and not create:
            return None
        if legacy is None:
            graph_id = self.app.create_graph(
                install(self.app),
                GRAPH_NAME,
                description="The tenant's calls (call protocol history).",
                status="active",
            )
            imported = 0
        else:
            graph_id = legacy
            imported = _import_legacy(self.app, unit, _Trees(self, unit, graph_id))
        unit.add(CallIndex.start(graph_id, imported))
        unit.on_commit(lambda: self.remember({}, graph_id))
        return graph_id

    def remember(self, locations: Mapping[str, UUID], graph_id: UUID | None) -> None:
        """Keep what a committed unit learnt (references never change once filed)."""
        if graph_id is not None:
            self._graph_id = graph_id
        where = self._where
        where.update(locations)
        while len(where) > _LOCATIONS:
            where.popitem(last=False)

    def _after_retirements(self, unit: UnitOfWork, *, read: bool) -> int:
        """The version of the tenant's Retention aggregate a batch relies on.

        When a pass retired runs since this process last read it (the aggregate moved
        on), every remembered location and cached aggregate is dropped: a cached tree of
        a retired run must not take a late event, appended after its deleted history
        (issue 16). Unless ``read``, the version last read is taken without a read: a
        batch that extends a recorded tree expects it in its commit, which fails if a
        pass moved it since, and the retry reads (``read``). So a batch reads the
        aggregate only the first time, on a retry, or when joined to an outer unit."""
        if not read and self._retention_version is not None:
            return self._retention_version
        found = unit.load(RETENTION_ID, Retention)
        version = 0 if found is None else int(found.version)
        if version == self._retention_version:
            return version
        self._retention_version = version
        self._where.clear()
        cache = self.app.repository.cache
        if cache is not None:
            for key in list(cache.cache):
                cache.get(key, evict=True)
        return version

    def forget(self, request_ids: Iterable[str]) -> None:
        """Drop what is remembered of these calls (their run was retired from the file)."""
        for request_id in request_ids:
            self._where.pop(request_id, None)

    def location(self, request_id: str) -> UUID | None:
        found = self._where.get(request_id)
        if found is not None:
            self._where.move_to_end(request_id)
        return found


def _extends_a_recorded_tree(unit: UnitOfWork) -> bool:
    """Whether ``unit`` appends events to a call tree that was recorded before it."""
    return any(
        isinstance(aggregate, CallTree)
        and unit.versions[aggregate.id] > 0
        and aggregate.version != unit.versions[aggregate.id]
        for aggregate in unit.aggregates.values()
    )


def locate(unit: UnitOfWork, key: str) -> UUID | None:
    """The tree holding call ``key`` (or its placeholder), as recorded: its reference is
    an index row of the call event that filed it, or (files written before, and
    recorders without references) a ``CallRef`` of its own. ``None``: not recorded."""
    ref = ref_id(key)
    if unit.refer is not None:
        found = unit.references.get(ref) or unit.refer(ref)
        if found is None or found != ref:
            return found
    filed = unit.load(ref, CallRef)
    return None if filed is None else filed.tree_id


class _Trees:
    """The rules' state over the call trees, inside one unit of work.

    A call's tree is found through its reference; a new call joins the tree of its
    placeholder (children came first), else its parent's tree, else starts one. A
    parent not recorded yet gets a placeholder reference in the child's tree.
    """

    def __init__(
        self,
        ledger: CallLedger,
        unit: UnitOfWork,
        graph_id: UUID | None = None,
        *,
        guess_new: bool = False,
    ):
        self.ledger = ledger
        self.unit = unit
        self._graph_id = graph_id
        self._new: dict[str, UUID] = {}
        self._guess_new = guess_new
        self._guessed: set[str] = set()
        self._trees: dict[str, CallTree] = {}  # a call's tree, once found in this unit
        self._unfiled: list[str] = []  # references the next call added files (index rows)

    # reads ------------------------------------------------------------------------------

    def requested(self, key: str) -> dict[str, Any] | None:
        """A ``call.requested`` of a call this process has never seen is guessed new,
        without a read: filing its reference checks the guess (a reference filed twice
        is a version conflict at commit, and the batch is then re-run reading)."""
        if self._guess_new and key not in self._new and self.ledger.location(key) is None:
            self._guessed.add(key)
            return None
        return self.attributes(key)

    def _locate(self, key: str) -> UUID | None:
        found = self._new.get(key) or self.ledger.location(key)
        if found is None and key not in self._guessed:
            found = locate(self.unit, key)
            if found is not None:
                self._new[key] = found
        return found

    def _tree(self, key: str) -> CallTree | None:
        tree = self._trees.get(key)
        if tree is not None:
            return tree
        where = self._locate(key)
        if where is None:
            return None
        tree = self.unit.load(where, CallTree)
        if tree is None:  # pragma: no cover - a reference is filed with its tree
            raise RuntimeError(f"call {key!r} refers to tree {where}, which is not recorded")
        self._trees[key] = tree
        return tree

    def attributes(self, key: str) -> dict[str, Any] | None:
        tree = self._tree(key)
        return None if tree is None else tree.calls.get(key)

    def status(self, key: str) -> str | None:
        found = self.attributes(key)
        return None if found is None else str(found["status"])

    def parent(self, key: str) -> str | None:
        found = self.attributes(key)
        return None if found is None else found.get("parentRequestId")

    def children(self, key: str) -> Iterable[str]:
        tree = self._tree(key)
        return () if tree is None else tree.children.get(key, ())

    # writes -----------------------------------------------------------------------------

    def add(self, key: str, attributes: dict[str, Any]) -> None:
        tree, parent_tree = self._place(key, attributes)
        parent = attributes.get("parentRequestId")
        links: list[list[str]] = []
        if parent is not None:
            assert parent_tree is not None
            if parent_tree is not tree:
                parent_tree.link_child(parent, key)
                self.unit.add(parent_tree)
            if parent in parent_tree.calls:
                links.append([parent, key])
        links.extend([key, child] for child in tree.children.get(key, ()))
        tree.add_call(key, attributes, links, self._take_refs())
        self.unit.add(tree)

    def import_call(self, key: str, attributes: dict[str, Any]) -> None:
        """A call of an older version's call graph (its edges are recorded already)."""
        tree, parent_tree = self._place(key, attributes)
        parent = attributes.get("parentRequestId")
        if parent is not None and parent_tree is not None and parent_tree is not tree:
            parent_tree.link_child(parent, key)
            self.unit.add(parent_tree)
        tree.import_call(key, attributes, self._take_refs())
        self.unit.add(tree)

    def update(self, key: str, attributes: dict[str, Any]) -> None:
        tree = self._tree(key)
        assert tree is not None, key
        tree.update_call(key, attributes)
        self.unit.add(tree)

    def settle(self) -> None:
        """Hand what this unit learnt to the ledger once the unit commits."""
        ledger, new = self.ledger, self._new
        graph_id = self._graph_id
        self.unit.on_commit(lambda: ledger.remember(new, graph_id))

    def _place(self, key: str, attributes: dict[str, Any]) -> tuple[CallTree, CallTree | None]:
        """The tree of a new call and its parent's (placeholders filed as needed)."""
        parent = attributes.get("parentRequestId")
        tree = self._tree(key)  # a placeholder: children were recorded first
        parent_tree = self._tree(parent) if parent is not None else None
        if tree is None:
            tree = parent_tree or self._start(key)
            self._file(key, tree)
        if parent is not None and parent_tree is None:
            self._file(parent, tree)
            parent_tree = tree
        return tree, parent_tree

    def _start(self, first: str) -> CallTree:
        graph_id = self._graph()
        tree = CallTree.start(graph_id, first)
        self.unit.add(tree)
        return tree

    def _file(self, key: str, tree: CallTree) -> None:
        """File ``key``'s reference to ``tree``: an index row of the call event added
        next (in ``tree``), or a ``CallRef.Filed`` of its own when the recorder files no
        references (docs/events.md)."""
        if self.unit.refer is not None:
            ref = ref_id(key)
            self._unfiled.append(ref.hex)
            self.unit.references[ref] = tree.id
        else:
            self.unit.add(CallRef.file(key, tree.id))
        self._new[key] = tree.id
        self._trees[key] = tree

    def _take_refs(self) -> list[str] | None:
        refs, self._unfiled = self._unfiled, []
        return refs or None

    def open(self) -> None:
        """Find the call graph before any call is read: upgrading a tenant written before
        call trees files its calls' references, which the rules then read."""
        graph_id = self.ledger.graph_id(self.unit, create=False)
        if graph_id is not None:
            self._use(graph_id)

    def _graph(self) -> UUID:
        if self._graph_id is None:
            graph_id = self.ledger.graph_id(self.unit, create=True)
            assert graph_id is not None
            self._use(graph_id)
        assert self._graph_id is not None
        return self._graph_id

    def _use(self, graph_id: UUID) -> None:
        graph = self._peeked_graph(graph_id)
        if graph is None:
            graph = self.unit.load(graph_id, Graph)
        if graph is not None and graph.status == "archived":
            raise GraphArchivedError(
                f"the tenant's call graph ({graph_id}) is archived, so calls can no longer be "
                "recorded in it; nothing was written"
            )
        self._graph_id = graph_id

    def _peeked_graph(self, graph_id: UUID) -> Graph | None:
        """The call graph as this process last saw it, if it is not archived, when the
        unit may guess (its first attempt): its commit checks that the graph did not
        change since (another process archiving it), and a retry loads it."""
        if not self._guess_new or graph_id in self.unit.aggregates:
            return None
        graph = self.ledger.app.peek(self.unit, graph_id)
        if not isinstance(graph, Graph) or graph.status == "archived":
            self.unit.expected.pop(graph_id, None)  # decided on the loaded graph instead
            return None
        return graph


def _import_legacy(app: Metagraph, unit: UnitOfWork, trees: _Trees) -> int:
    """Copy the calls an older version recorded as the call graph's own nodes into call
    trees (``CallImported``: their nodes and edges are in the stream already)."""
    graph_id = trees._graph_id
    assert graph_id is not None
    nodes = app.nodes(graph_id)
    count = 0
    for key in sorted(nodes):
        if nodes[key] == CALL and trees.attributes(key) is None:
            trees.import_call(key, app.get_node(graph_id, key).attributes)
            count += 1
    if count:
        log.info("calls of an older version imported into call trees", calls=count)
    return count


def _legacy_call_graph(app: Metagraph) -> UUID | None:
    """The call graph of a tenant written before call trees (found by its creation
    event), or ``None``. Read once, when a tenant has no call index yet."""
    type_id = app.graph_types().get(CALL_GRAPH)
    if type_id is None:
        return None
    start: int | None = None
    while True:
        page = app.recorder.select_notifications(
            start, _PAGE, topics=list(names_of("Graph.Created")), inclusive_of_start=False
        )
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if (
                isinstance(event, Graph.Created)
                and event.name == GRAPH_NAME
                and event.graph_type_id == type_id
            ):
                return event.originator_id
        if len(page) < _PAGE:
            return None
        start = page[-1].id


def _labelled(
    step: Callable[[Any], Any], value: Any, index: int, lines: Sequence[int] | None
) -> Any:
    try:
        return step(value)
    except CallEventError as exc:
        exc.line = lines[index] if lines is not None else index + 1
        where = f"line {exc.line}" if lines is not None else f"event {exc.line}"
        exc.args = (f"{where}: {exc.args[0]}", *exc.args[1:])
        raise


_ledgers: weakref.WeakKeyDictionary[Metagraph, CallLedger] = weakref.WeakKeyDictionary()
_ledgers_lock = threading.Lock()


def call_ledger(app: Metagraph) -> CallLedger:
    """The :class:`CallLedger` of ``app`` (one per application object)."""
    with _ledgers_lock:
        found = _ledgers.get(app)
        if found is None:
            found = _ledgers[app] = CallLedger(app)
        return found


def ingest(
    app: Metagraph,
    events: Iterable[CallEvent | Mapping[str, Any]],
    *,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
    operation_types: OperationTypes | None = None,
    progress: Callable[[int, int], None] | None = None,
    also: Callable[[UnitOfWork], object] | None = None,
) -> IngestReport:
    """Fold call protocol events into the tenant's call graph, as ONE transaction.

    ``events`` are :class:`CallEvent` values or mappings ``{id?, type, at, payload}``.
    Every event is checked and applied in order; the first refused one raises a
    :class:`~domain.errors.CallEventError` whose ``line`` is its 1-based position, and
    nothing of the batch is written. Otherwise all its changes commit together: a crash
    leaves the batch whole or absent. Inside a :meth:`~domain.Metagraph.transaction`
    block the batch joins that unit instead. ``abort_policy`` is how an abort treats
    descendants; ``operation_types`` tells subscriptions from queries and mutations
    (unknown operations are queries). ``progress(done, total)`` is called as each event
    is applied, before the commit. ``also(unit)`` adds the caller's own writes to the
    batch's unit of work (a consumer's position, say: ``unit.save_position``), so they
    commit with it; it runs on every attempt. Unlike an outer
    :meth:`~domain.Metagraph.transaction`, it keeps the batch's own retries and its
    first attempt's guess that unseen calls are new.
    """
    return call_ledger(app).ingest(
        events,
        abort_policy=abort_policy,
        operation_types=operation_types,
        progress=progress,
        also=also,
    )


def get_call(app: Metagraph, request_id: str) -> dict[str, Any] | None:
    """The attributes of call ``request_id`` as recorded (docs/calls.md), or ``None``."""
    app.require("read", f"get call {request_id!r}")
    return call_ledger(app).get(request_id)


def find_call_graph(app: Metagraph) -> UUID | None:
    """The id of the tenant's call graph, or ``None`` if it has none yet. Writes nothing,
    except the one-time upgrade of a tenant written before call trees."""
    app.require("read", "find the call graph")
    with app.transaction() as unit:
        return call_ledger(app).graph_id(unit, create=False)


def tenant_call_graph(app: Metagraph) -> UUID:
    """The id of the tenant's call graph, created (and an older one upgraded) if needed."""
    ledger = call_ledger(app)

    def ensure(unit: UnitOfWork) -> UUID:
        graph_id = ledger.graph_id(unit, create=True)
        assert graph_id is not None
        unit.on_commit(lambda: ledger.remember({}, graph_id))
        return graph_id

    return app.atomic(ensure)
