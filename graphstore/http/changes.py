"""Projection changes as Server-Sent Events: a tenant's, a graph's or a workflow run's.

``GET /v1/tenants/{org}/changes?run=<run id>`` (or ``graph=<graph id>``, or neither;
``projector=metagraph|flowgraph``) streams every committed change of the projector, in
order, each event ``id`` its stream position. A client that reconnects with
``Last-Event-ID`` (or ``?after=``) resumes right after that position: nothing missed,
nothing twice, however long it was away. Comment lines keep the connection alive
(``heartbeat`` seconds) through proxies and tell a client the server is there.

All subscribers of a tenant share one open file (one reader pool and one commit watcher
per tenant in the server), not one each.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from eventsourcing.utils import Environment
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from domain import Principal
from graphstore.data import DataDirectory
from graphstore.http.auth import Principals
from graphstore.http.problems import ProblemError
from projections import FlowgraphProjection, MetagraphProjection
from projections.changes import Subscription
from projections.projector import plain_state_reader
from projections.rebuild import live_projection
from streams import HonkerFactory

__all__ = ["Feeds"]

_PROJECTORS: dict[str, type[MetagraphProjection] | type[FlowgraphProjection]] = {
    "metagraph": MetagraphProjection,
    "flowgraph": FlowgraphProjection,
}


class Feeds:
    """The SSE endpoint of every tenant, over one shared file per tenant."""

    def __init__(
        self,
        principals: Principals,
        path: Path,
        *,
        settings: dict[str, str] | None = None,
        heartbeat: float = 15.0,
    ) -> None:
        self.principals = principals
        self.heartbeat = heartbeat
        self._data = DataDirectory(path, settings=settings)
        self._factories: dict[str, HonkerFactory] = {}
        self._lock = threading.Lock()

    def _factory(self, org_id: str) -> HonkerFactory:
        with self._lock:
            found = self._factories.get(org_id)
            if found is None:
                env = Environment(MetagraphProjection().upstream, self._data.tenant_env(org_id))
                found = self._factories[org_id] = HonkerFactory(env)
            return found

    async def changes(self, request: Request) -> EventSourceResponse:
        """``GET /v1/tenants/{org}/changes``: see the module docstring."""
        query = request.query_params
        principal = await run_in_threadpool(self.principals.authenticate, request)
        return await self.respond(
            request,
            request.path_params["org"],
            principal,
            projector=query.get("projector"),
            run=query.get("run"),
            graph=query.get("graph"),
        )

    async def respond(
        self,
        request: Request,
        org_id: str,
        principal: Principal,
        *,
        projector: str | None = None,
        run: str | None = None,
        graph: str | None = None,
        start: int | None = None,
    ) -> EventSourceResponse:
        """The SSE stream of one feed, for an authenticated principal; it begins after
        ``Last-Event-ID`` (or ``?after=``), else after ``start``, else with the changes
        committed from now on."""
        chosen = projector or ("flowgraph" if run is not None else "metagraph")
        if chosen not in _PROJECTORS:
            raise ProblemError(
                400, "VALIDATION_ERROR", f"projector={chosen!r}: use metagraph or flowgraph"
            )
        if run is not None and graph is not None:
            raise ProblemError(400, "VALIDATION_ERROR", "give run= or graph=, not both")
        if run is not None and chosen != "flowgraph":
            raise ProblemError(400, "VALIDATION_ERROR", "run= follows the flowgraph projector")
        after = _position(request.headers.get("last-event-id") or request.query_params.get("after"))
        if after is None:
            after = start
        store = self.principals.store(principal)
        await run_in_threadpool(store.authorize, org_id, "read", "subscribe to changes")
        subscription = await run_in_threadpool(self._open, org_id, chosen, run, graph, after)
        return EventSourceResponse(
            _events(subscription), ping=max(1, round(self.heartbeat)), headers=_NO_BUFFERING
        )

    def _open(
        self, org_id: str, chosen: str, run: str | None, graph: str | None, after: int | None
    ) -> Subscription:
        factory = self._factory(org_id)
        followed = live_projection(factory.datastore, _PROJECTORS[chosen])
        return Subscription(
            factory.datastore,
            followed,
            stream=factory.stream,
            plain_state=plain_state_reader(factory),
            run=run,
            graph=graph,
            after=after,
            poll_interval=1.0,
        )

    def close(self) -> None:
        """Close every shared file (after the server stopped every stream)."""
        with self._lock:
            factories, self._factories = list(self._factories.values()), {}
        for factory in factories:
            factory.close()
        self._data.close()


_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _events(subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    try:
        async for change in subscription:
            yield ServerSentEvent(
                data=msgspec.json.encode(change).decode(), id=str(change.position), event="change"
            )
    finally:
        subscription.close()


def _position(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            f"Last-Event-ID / after={raw!r} is not a position: give the id of the last event "
            "received (a stream offset, a whole number)",
        )
    return int(raw)
