"""Projection changes as Server-Sent Events: a tenant's, a graph's or a workflow run's.

``GET /v1/tenants/{org}/changes?run=<run id>`` (or ``graph=<graph id>``, or neither;
``projector=metagraph|flowgraph``) streams every committed change of the projector, in
order, each event ``id`` its stream position. A client that reconnects with
``Last-Event-ID`` (or ``?after=``) resumes right after that position: nothing missed,
nothing twice, however long it was away. Comment lines keep the connection alive
(``heartbeat`` seconds) through proxies and tell a client the server is there.

Fan-out: the clients of one feed (tenant, projector, run or graph) share ONE reader.
It reads each newly committed batch once, encodes each change once, and keeps the
recent ones (:data:`HISTORY` of them); every client sends, in one write, what it has
not sent yet, then waits for the reader's next batch. A client that asks for older
changes than the reader keeps (an old ``Last-Event-ID``, or a client too slow to keep
up) first catches up on its own reader up to where the shared one starts, then joins
it. The feed's reader stops when its last client leaves. All feeds of a tenant share
one open file (one reader pool and one commit watcher per tenant in the server: the
process shares a file among its readers), opened through the store's read side
(``Store.subscribe``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from domain import Principal
from graphstore.http.auth import Principals
from graphstore.http.problems import ProblemError
from graphstore.operations.wire import ChangeOut
from graphstore.store import Store
from projections import FlowgraphProjection, MetagraphProjection
from projections.changes import Change, Subscription

__all__ = ["DEFAULT_SSE_PER_KEY", "HISTORY", "Feeds"]

DEFAULT_SSE_PER_KEY: Final = 500
"""Event streams one API key may hold open at once (``--sse-per-key``)."""

HISTORY: Final = 20_000
"""Changes a feed keeps for its clients; a client further behind catches up alone."""

_PROJECTORS: dict[str, type[MetagraphProjection] | type[FlowgraphProjection]] = {
    "metagraph": MetagraphProjection,
    "flowgraph": FlowgraphProjection,
}
_NO_BUFFERING: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_EVENT_STREAM: Final = "text/event-stream"

_Key = tuple[str, str, str | None, str | None]  # tenant, projector, run, graph


def _encoded(change: Change) -> bytes:
    """One SSE event: ``id`` its position, ``data`` the change as the subscription
    operations give it (``ChangeOut``: camelCase, as every answer of the API)."""
    fields = {f: getattr(change, f) for f in change.__struct_fields__}
    data = msgspec.json.encode(ChangeOut(**fields))
    return b"id: %d\nevent: change\ndata: %s\n\n" % (change.position, data)


class _Feed:
    """One shared reader and the recent changes it read (see the module docstring).

    Runs in the server's event loop; its reads run in threads. ``base``: every change
    after it is in :attr:`positions`/:attr:`chunks` (older ones were let go or came
    before the feed started); ``head``: read up to here.
    """

    def __init__(self, open_reader: _Opener, poll_interval: float):
        self.open_reader = open_reader
        self.poll_interval = poll_interval
        self.reader = open_reader(None)
        self.base = self.head = self.reader.cursor
        self.positions: list[int] = []
        self.chunks: list[bytes] = []
        self.changed = asyncio.Event()
        self.clients = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(woken.set)

        watcher = self.reader.datastore.watcher
        watcher.add(wake)
        try:
            while True:
                woken.clear()
                changes = await asyncio.to_thread(self.reader.poll)
                self.head = self.reader.cursor
                if changes:
                    self.positions += [c.position for c in changes]
                    self.chunks += [_encoded(c) for c in changes]
                    if len(self.positions) > HISTORY:  # let the oldest go
                        cut = len(self.positions) - HISTORY
                        self.base = self.positions[cut - 1]
                        del self.positions[:cut], self.chunks[:cut]
                    self.changed.set()
                    self.changed = asyncio.Event()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.poll_interval)
        finally:
            watcher.discard(wake)

    def after(self, position: int) -> tuple[bytes, int] | None:
        """What comes after ``position`` (at or after :attr:`base`), in one chunk, and
        the last position in it; None if nothing yet."""
        start = bisect.bisect_right(self.positions, position)
        if start == len(self.positions):
            return None
        return b"".join(self.chunks[start:]), self.positions[-1]

    async def stream(self, after: int | None, heartbeat: float) -> AsyncIterator[bytes]:
        """One client's events: from after ``after`` (None: from now on), forever, with
        a comment line after each ``heartbeat`` seconds without one."""
        position = self.head if after is None else after
        while True:
            if position < self.base:  # older than the feed keeps: catch up alone
                target = self.base
                reached = position
                async for chunk, reached in self._catch_up(position, target):  # noqa: B007
                    yield chunk
                position = max(reached, target)
                continue
            changed = self.changed  # taken before looking: no batch is missed
            found = self.after(position)
            if found is None:
                try:
                    async with asyncio.timeout(heartbeat):
                        await changed.wait()
                except TimeoutError:
                    yield b": ping\n\n"
                continue
            chunk, position = found
            yield chunk

    async def _catch_up(self, position: int, target: int) -> AsyncIterator[tuple[bytes, int]]:
        """The changes after ``position`` up to ``target``, read by a reader of the
        client's own, in chunks with the last position of each."""
        reader = await asyncio.to_thread(self.open_reader, position)
        try:
            while True:
                changes = await asyncio.to_thread(reader.poll)
                early = [c for c in changes if c.position <= target]
                if early:
                    yield b"".join(_encoded(c) for c in early), early[-1].position
                if not changes or changes[-1].position > target or reader.cursor >= target:
                    return
        finally:
            reader.close()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.reader.close()


class _Opener:
    """Opens a reader of one feed through the store's read side (``Store.subscribe``):
    the live version of the feed's projection, positions kept by the feed (no
    ``auto_commit``)."""

    def __init__(
        self,
        store: Store,
        org_id: str,
        projector: type[MetagraphProjection] | type[FlowgraphProjection],
        run: str | None,
        graph: str | None,
    ) -> None:
        self.store = store
        self.org_id = org_id
        self.projector = projector
        self.run = run
        self.graph = graph

    def __call__(self, after: int | None) -> Subscription:
        return self.store.subscribe(
            self.org_id,
            self.projector,
            run=self.run,
            graph=self.graph,
            after=after,
            auto_commit=False,
        )


class Feeds:
    """The SSE endpoint of every tenant, over one shared file per tenant."""

    def __init__(
        self,
        principals: Principals,
        path: Path,
        *,
        settings: dict[str, str] | None = None,
        heartbeat: float = 15.0,
        poll_interval: float = 1.0,
        per_key: int = DEFAULT_SSE_PER_KEY,
    ) -> None:
        self.principals = principals
        self.per_key = per_key
        self.open_streams = 0
        """Event streams open now (the ``graphstore_sse_subscribers`` gauge)."""
        self._subscribers: dict[str, int] = {}
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval
        self._store = Store(path, settings=settings)
        """The operator's store: the feeds' readers are shared by every client, so each
        request is authorized for its own principal (:meth:`respond`) before it joins."""
        self._feeds: dict[_Key, _Feed] = {}

    async def changes(self, request: Request) -> StreamingResponse:
        """``GET /v1/tenants/{org}/changes``: see the module docstring."""
        query = request.query_params
        org_id = request.path_params["org"]
        executor = await run_in_threadpool(self.principals.admit, request, org_id)
        return await self.respond(
            request,
            org_id,
            executor.store.principal,
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
    ) -> StreamingResponse:
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
        if after is not None:
            head = await run_in_threadpool(_head, store, org_id)
            if after > head:
                raise ProblemError(
                    400,
                    "VALIDATION_ERROR",
                    f"Last-Event-ID / after={after} is past the tenant stream's head ({head}): "
                    "give the id of an event this stream sent (or leave it out to start now)",
                    details={"reason": "past the head", "head": head},
                )
        holder = str(principal.credential_id or principal.actor_id)
        self._admit_subscriber(holder)
        try:
            key: _Key = (org_id, chosen, run, graph)
            feed = await self._join(key)
        except BaseException:
            self._leave(holder)
            raise
        return StreamingResponse(
            self._events(key, feed, after, holder),
            media_type=_EVENT_STREAM,
            headers=_NO_BUFFERING,
        )

    def _admit_subscriber(self, holder: str) -> None:
        """Count one more open stream of ``holder`` (a key), or a 429 problem when it has
        :attr:`per_key` open already."""
        open_now = self._subscribers.get(holder, 0)
        if open_now >= self.per_key:
            raise ProblemError(
                429,
                "TOO_MANY_REQUESTS",
                f"this key has {open_now} open event streams, the most it may have "
                f"(--sse-per-key): close one first",
                headers={"Retry-After": "5"},
                details={"open": open_now, "limit": self.per_key},
            )
        self._subscribers[holder] = open_now + 1
        self.open_streams += 1

    def _leave(self, holder: str) -> None:
        left = self._subscribers.get(holder, 0) - 1
        if left > 0:
            self._subscribers[holder] = left
        else:
            self._subscribers.pop(holder, None)
        self.open_streams -= 1

    async def _join(self, key: _Key) -> _Feed:
        feed = self._feeds.get(key)
        if feed is None:
            org_id, chosen, run, graph = key
            opener = _Opener(self._store, org_id, _PROJECTORS[chosen], run, graph)
            feed = await run_in_threadpool(_Feed, opener, self.poll_interval)
            if key in self._feeds:  # another client made it meanwhile
                feed.close()
                feed = self._feeds[key]
            else:
                self._feeds[key] = feed
                feed.start()
        feed.clients += 1
        return feed

    async def _events(
        self, key: _Key, feed: _Feed, after: int | None, holder: str
    ) -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"  # the headers and a first line go out at once
            async for chunk in feed.stream(after, self.heartbeat):
                yield chunk
        finally:
            self._leave(holder)
            feed.clients -= 1
            if feed.clients == 0 and self._feeds.get(key) is feed:
                del self._feeds[key]
                feed.close()

    def close(self) -> None:
        """Close every feed, then the store (after the server ended every stream)."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.close()
        self._store.close()


def _head(store: Any, org_id: str) -> int:
    return int(store.tenant(org_id).recorder.max_notification_id() or 0)


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
