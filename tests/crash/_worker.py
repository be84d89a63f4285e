"""Worker processes for ``tests/crash/test_kill9.py``: ``python -m tests.crash._worker``.

Real OS processes on a real data directory; the test kills them with SIGKILL while they
work. Each reports the phases of every unit of work through the pipe of
:mod:`tests._kill` (``started``, the persistence hook's ``built``/``commit``/
``committed`` for each write transaction, ``acked``), and besides:

``ready``             set up, about to start the work the test wants to interrupt
``done``              nothing left to do (the worker then waits to be killed)

Roles (``ARGS`` after ``ROLE DATA_DIR``):

``ingest START``         ingests :func:`run_batch` ``START``, ``START + 1``, ... into
                         tenant ``acme``, one whole run per :func:`domain.calls.ingest`.
``hubs GRAPH ROUND N``   adds N hubs ``r<ROUND>-hub<i>`` to graph GRAPH, each with
                         :data:`EDGES` edges to the leaves (half in, half out), reports
                         ``ready``, then deletes them in a seeded order, one
                         :meth:`Metagraph.delete_node` (one save) per hub.
``audited START``        as ``ingest``, through a store opened with an actor: every
                         batch commits with its audit record (docs/identity.md).
``tenants LABEL OWNER``  creates tenants ``<LABEL>-t<i>`` (i = 0, 1, ...) with
                         :meth:`graphstore.Store.create_tenant`, reporting the phases
                         ``file``/``filed`` around the tenant file and ``open`` before
                         the tenant's metagraph is opened (the ``system.db`` save reports
                         its transaction's phases through the hook).
"""

from __future__ import annotations

import functools
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog

import graphstore
from domain import Metagraph, Principal
from domain.calls import OperationType, ingest
from graphstore.data import DataDirectory
from tests._kill import Reporter, reporter

TENANT: Final = "acme"
START_MS: Final = 1_800_000_000_000
OPERATION_TYPES: Final[dict[str, OperationType]] = {"feed.watch": "subscription"}
EDGES: Final = 50
"""Edges per hub."""
HUB_GRAPH_TYPE: Final = "hubs"
LEAVES: Final = tuple(f"leaf-{j}" for j in range(EDGES))

_F = TypeVar("_F", bound=Callable[..., Any])


# --- the call-ingestion workload ---------------------------------------------------------


def run_batch(index: int) -> list[dict[str, Any]]:
    """Batch ``index``: every event of one whole run ``run<index>`` (20-30 events).

    A root with children and grandchildren, each requested and then answered (a query
    completes, a subscription keeps running, a call errs or stays pending). Some
    batches send a call (with its answer) before its parent's request; some end with a
    ``call.aborted`` of the root, which aborts every call of the run still active.
    """
    rng = random.Random(index)
    while True:
        events = _run_events(index, rng)
        if 20 <= len(events) <= 30:
            return events


def _run_events(index: int, rng: random.Random) -> list[dict[str, Any]]:
    root = f"run{index}"
    clock = iter(range(START_MS + index * 100_000, START_MS + (index + 1) * 100_000, 7))
    events: list[dict[str, Any]] = []

    def event(kind: str, request_id: str, **payload: Any) -> dict[str, Any]:
        return {
            "id": f"{request_id}/{kind}",
            "type": kind,
            "at": next(clock),
            "payload": {"requestId": request_id, **payload},
        }

    def call(request_id: str, parent: str | None, depth: int) -> list[dict[str, Any]]:
        operation = rng.choice(("db.query", "mail.send", "billing.charge", "feed.watch"))
        requested = {"operationId": operation, "input": {"n": rng.randrange(100)}}
        if parent is not None:
            requested["parentRequestId"] = parent
        own = [event("call.requested", request_id, **requested)]
        below: list[list[dict[str, Any]]] = []
        if depth < 2:
            for n in range(rng.randint(2, 4) if depth == 0 else rng.randint(0, 2)):
                below.append(call(f"{request_id}.{n}", request_id, depth + 1))
        answer: list[dict[str, Any]] = []
        outcome = rng.random()
        if depth == 0:
            pass  # the root is answered (or aborted) at the end
        elif outcome < 0.6:
            output = {"data": {"ok": True}, "meta": {"source": "local"}}
            answer = [event("call.responded", request_id, output=output)]
        elif outcome < 0.8:
            answer = [event("call.error", request_id, code="TIMEOUT", message="too slow")]
        # else: left pending (or, for feed.watch, nothing streamed yet)
        return own + [e for part in below for e in part] + answer

    events = call(root, None, 0)
    if rng.random() < 0.35:  # a child (and what follows it) before its parent's request
        movable = [i for i, e in enumerate(events) if e["type"] == "call.requested" and i > 0]
        first = rng.choice(movable)
        request_id = events[first]["payload"]["requestId"]
        moved = [e for e in events if e["payload"]["requestId"] == request_id]
        events = moved + [e for e in events if e["payload"]["requestId"] != request_id]
    if rng.random() < 0.35:
        events.append(event("call.aborted", root))
    else:
        output = {"data": {"runs": index}, "meta": {"source": "local"}}
        events.append(event("call.responded", root, output=output))
    return events


def _wait_to_be_killed(side: Reporter) -> None:
    side.say("done", "-")
    time.sleep(120)  # the test kills every worker; this bounds a forgotten one


# --- roles ------------------------------------------------------------------------------


def _ingest(data: Path, side: Reporter, start: int) -> None:
    with Metagraph(env=DataDirectory(data).tenant_env(TENANT)) as app:
        _ingest_runs(app, side, start)


def _audited(data: Path, side: Reporter, start: int) -> None:
    with graphstore.open(data, principal=Principal.system()) as store:
        _ingest_runs(store.tenant(TENANT), side, start)


def _ingest_runs(app: Metagraph, side: Reporter, start: int) -> None:
    """Ingest runs ``start``, ``start + 1``, ..., one whole run per batch, marking each."""
    ingest(app, [])  # opens the call ledger before the timed work
    side.say("ready", "-")
    for index in range(start, start + 2000):
        batch = run_batch(index)
        side.unit(
            str(index), functools.partial(ingest, app, batch, operation_types=OPERATION_TYPES)
        )
    _wait_to_be_killed(side)


def _hubs(data: Path, side: Reporter, graph: str, round_: int, count: int) -> None:
    hubs = [f"r{round_}-hub{i}" for i in range(count)]
    with Metagraph(env=DataDirectory(data).tenant_env(TENANT)) as app:
        for hub in hubs:
            app.add_node(graph, hub, "node", {"hub": True})
            for j, leaf in enumerate(LEAVES):
                ends = (hub, leaf) if j % 2 == 0 else (leaf, hub)
                app.add_edge(graph, "link", *ends, key=f"{hub}:{j}")
        side.say("ready", "-")
        random.Random(round_).shuffle(hubs)
        for hub in hubs:
            side.unit(hub, functools.partial(app.delete_node, graph, hub))
        _wait_to_be_killed(side)


def _tenants(data: Path, side: Reporter, label: str, owner: str) -> None:
    current = [""]

    def marked(cls: type, name: str, before: str, after: str | None) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            side.say(before, current[0])
            result = original(*args, **kwargs)
            if after is not None:
                side.say(after, current[0])
            return result

        setattr(cls, name, wrapper)

    marked(DataDirectory, "create_tenant_file", "file", "filed")
    with graphstore.open(data) as store:
        store.tenants()  # system.db open before the timed work
        marked(type(store), "tenant", "open", None)
        side.say("ready", "-")
        for i in range(10_000):
            org_id = current[0] = f"{label}-t{i}"
            side.unit(
                org_id,
                functools.partial(
                    store.create_tenant, org_id, name=f"Org {org_id}", owner_email=owner
                ),
            )
        _wait_to_be_killed(side)


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    role, data, *args = sys.argv[1:]
    side = reporter()
    if role == "ingest":
        _ingest(Path(data), side, int(args[0]))
    elif role == "audited":
        _audited(Path(data), side, int(args[0]))
    elif role == "hubs":
        _hubs(Path(data), side, args[0], int(args[1]), int(args[2]))
    elif role == "tenants":
        _tenants(Path(data), side, args[0], args[1])
    else:
        raise SystemExit(f"unknown role {role!r}: use ingest, audited, hubs or tenants")


if __name__ == "__main__":
    main()
