"""Load and faults against a real ``graphstore serve`` on 127.0.0.1 (issue 10, item 5).

- 200 concurrent SSE subscribers of one tenant's flowgraph changes, all connected before
  call events are ingested over HTTP in several batches: each receives every change
  exactly once, in order, the same positions as a subscription from Python;
- subscribers cut mid-stream reconnect with ``Last-Event-ID`` (or ``?after=``): no gap,
  no duplicate;
- the server killed with SIGKILL while ingest requests are in flight, then restarted:
  every acknowledged batch is in the store, every batch is whole or absent, and a
  retried batch applies at most once.

Bounded in count and in time (every wait has a deadline); no assertion on speed (the
benchmarks measure it: ``python -m benchmarks serve``). The numbers seen are printed
(``pytest -s``).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import pytest

import graphstore
from tests.http.conftest import TENANT, Server, call, responded

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(150)]

SUBSCRIBERS: Final = 200
BATCHES: Final = 6
CALLS_PER_BATCH: Final = 15  # each a call.requested and its call.responded
DEADLINE: Final = 90.0  # seconds any one phase of a test may take, at most


# --- the SSE client ----------------------------------------------------------------------


@dataclass
class Feed:
    """What one SSE subscriber received: the ``id`` of every event, in order."""

    name: str
    ids: list[int] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0
    reconnected_after: int | None = None  # batches ingested when it reconnected

    @property
    def last(self) -> int | None:
        return self.ids[-1] if self.ids else None


@dataclass
class Goal:
    """Where every subscriber stops: once it received ``position`` (known when the
    ingestion is over; None until then)."""

    position: int | None = None
    ingested: int = 0  # batches acknowledged so far


def changes_url(server: Server) -> str:
    return f"{server.url}/v1/tenants/{TENANT}/changes"


async def follow(
    client: httpx.AsyncClient,
    server: Server,
    feed: Feed,
    goal: Goal,
    *,
    last_event_id: int | None = None,
    after: int | None = None,
    cut_after: int | None = None,
) -> None:
    """Read the tenant's flowgraph changes into ``feed`` until ``goal`` is reached, or
    until ``cut_after`` events came on this connection (then close it).

    The stream is read line by line (the SSE format: ``id:``, ``event:``, ``data:``
    fields, a blank line ending an event, ``:`` a comment: the heartbeat), so a
    heartbeat sets ``feed.connected`` and lets the goal be checked when no event comes.
    """
    headers = server.headers()
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {"projector": "flowgraph"}
    if after is not None:
        params["after"] = str(after)
    feed.connections += 1
    received = 0
    async with client.stream("GET", changes_url(server), params=params, headers=headers) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        event_id: int | None = None
        async for line in answer.aiter_lines():
            if line.startswith(":"):
                feed.connected.set()
            elif line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line == "" and event_id is not None:
                feed.ids.append(event_id)
                event_id = None
                received += 1
                if cut_after is not None and received >= cut_after:
                    return  # leaving the block closes the connection
            if goal.position is not None and feed.last is not None and feed.last >= goal.position:
                return


def sse_client(connections: int) -> httpx.AsyncClient:
    """One client for every subscriber: a connection each, reads bounded by heartbeats."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(30.0, read=15.0),  # heartbeats come every second
    )


async def all_connected(feeds: Sequence[Feed], tasks: Sequence[asyncio.Task[None]]) -> None:
    """Wait (bounded) until every subscriber saw a heartbeat; fail early if one ended."""
    deadline = time.monotonic() + DEADLINE
    while not all(feed.connected.is_set() for feed in feeds):
        for task in tasks:
            if task.done():
                task.result()  # raises what ended it
                pytest.fail("a subscriber ended before the ingestion started")
        missing = sum(not feed.connected.is_set() for feed in feeds)
        assert time.monotonic() < deadline, f"{missing} subscribers not connected in {DEADLINE} s"
        await asyncio.sleep(0.05)


async def all_received(
    feeds: Sequence[Feed], tasks: Sequence[asyncio.Task[None]], count: int
) -> None:
    """Wait (bounded) until every feed received ``count`` distinct changes; fail early if
    a subscriber ended."""
    deadline = time.monotonic() + DEADLINE
    while not all(len(set(feed.ids)) >= count for feed in feeds):
        for task in tasks:
            if task.done() and task.exception() is not None:
                task.result()  # raises what ended it
        behind = {feed.name: len(set(feed.ids)) for feed in feeds if len(set(feed.ids)) < count}
        assert time.monotonic() < deadline, f"not {count} changes in {DEADLINE} s: {behind}"
        await asyncio.sleep(0.01)


# --- ingestion and the reference ---------------------------------------------------------


def batch(label: str, index: int, calls: int = CALLS_PER_BATCH) -> list[dict[str, Any]]:
    """Batch ``index``: ``calls`` calls, each requested then responded."""
    at = 1_700_000_000_000 + index * 10_000
    events: list[dict[str, Any]] = []
    for n in range(calls):
        request_id = f"{label}-{index}-{n}"
        events.append(call(request_id, at + 2 * n))
        events.append(responded(request_id, at + 2 * n + 1))
    return events


def request_ids(events: Sequence[dict[str, Any]]) -> set[str]:
    return {str(event["payload"]["requestId"]) for event in events}


async def ingest(client: httpx.AsyncClient, server: Server, events: list[dict[str, Any]]) -> Any:
    answer = await client.post(
        f"{server.url}/v1/tenants/{TENANT}/calls", json=events, headers=server.headers()
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def reference(server: Server, position: int) -> list[int]:
    """Every flowgraph change of the tenant from the start, read from Python once the
    projector has applied the stream up to ``position`` (the last batch's answer)."""
    with graphstore.open(server.data) as store, store.subscribe(TENANT, from_start=True) as sub:
        deadline = time.monotonic() + DEADLINE
        while sub.visible() < position:
            assert time.monotonic() < deadline, (
                f"the projector is at {sub.visible()}, not {position}, after {DEADLINE} s"
            )
            time.sleep(0.05)
        return [change.position for change in sub.poll()]


def in_order_once(ids: Sequence[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(ids))


# --- 1. 200 subscribers ------------------------------------------------------------------


def test_200_subscribers_each_receive_every_change_once_in_order(server: Server) -> None:
    timings: dict[str, float] = {}

    async def scenario() -> tuple[list[Feed], list[int]]:
        goal = Goal()
        feeds = [Feed(f"s{n}") for n in range(SUBSCRIBERS)]
        async with sse_client(SUBSCRIBERS + 10) as client, httpx.AsyncClient(timeout=60) as writer:
            began = time.monotonic()
            tasks = [asyncio.create_task(follow(client, server, feed, goal)) for feed in feeds]
            try:
                await all_connected(feeds, tasks)
                timings["connect_s"] = time.monotonic() - began
                began = time.monotonic()
                answers = [await ingest(writer, server, batch("load", i)) for i in range(BATCHES)]
                timings["ingest_s"] = time.monotonic() - began
                assert all(answer["applied"] == 2 * CALLS_PER_BATCH for answer in answers)
                expected = await asyncio.to_thread(reference, server, answers[-1]["position"])
                goal.position = expected[-1]
                timings["reference_s"] = time.monotonic() - began
                done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
                timings["delivered_s"] = time.monotonic() - began
                for task in done:
                    task.result()
                lagging = {feed.name: len(feed.ids) for feed in feeds if feed.last != goal.position}
                assert not pending, f"not done in {DEADLINE} s (changes received: {lagging})"
                return feeds, expected
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    feeds, expected = asyncio.run(scenario())
    print(f"\n{SUBSCRIBERS} subscribers, {len(expected)} changes each: {timings}")
    # Each requested call is a node added, each response a node updated: one change each.
    assert len(expected) == BATCHES * CALLS_PER_BATCH * 2
    assert in_order_once(expected)
    for feed in feeds:
        assert feed.connections == 1
        assert in_order_once(feed.ids), f"{feed.name}: out of order or repeated"
        assert feed.ids == expected, f"{feed.name}: {len(feed.ids)} of {len(expected)} changes"


# --- 2. cut and resumed --------------------------------------------------------------------


def test_a_subscriber_cut_mid_stream_resumes_with_last_event_id(server: Server) -> None:
    """Subscribers cut after k events (while the ingestion goes on) reconnect once with
    the last id they saw, as ``Last-Event-ID`` (one with ``?after=``): together the two
    connections deliver the reference exactly, in order."""
    cuts = [1, 7, 30, 61, 90, 150]  # events on the first connection, then cut

    async def resumed(
        client: httpx.AsyncClient, feed: Feed, goal: Goal, cut: int, header: bool
    ) -> None:
        await follow(client, server, feed, goal, cut_after=cut)
        assert len(feed.ids) == cut, f"{feed.name}: cut after {cut}, got {len(feed.ids)}"
        last = feed.last
        assert last is not None
        feed.reconnected_after = goal.ingested
        if header:
            await follow(client, server, feed, goal, last_event_id=last)
        else:
            await follow(client, server, feed, goal, after=last)

    async def scenario() -> tuple[list[Feed], list[int]]:
        goal = Goal()
        feeds = [Feed(f"cut-{cut}") for cut in cuts]
        whole = Feed("whole")
        async with sse_client(len(cuts) + 5) as client, httpx.AsyncClient(timeout=60) as writer:
            tasks = [
                asyncio.create_task(resumed(client, feed, goal, cut, header=n != 1))
                for n, (feed, cut) in enumerate(zip(feeds, cuts, strict=True))
            ]
            tasks.append(asyncio.create_task(follow(client, server, whole, goal)))
            try:
                await all_connected([*feeds, whole], tasks)
                answers = []
                for i in range(BATCHES):
                    answers.append(await ingest(writer, server, batch("cut", i)))
                    goal.ingested += 1
                    # Every feed has this batch (a cut one on its second connection)
                    # before the next: cuts and reconnections interleave with the
                    # ingestion by construction, not by a sleep.
                    await all_received([*feeds, whole], tasks, goal.ingested * CALLS_PER_BATCH * 2)
                expected = await asyncio.to_thread(reference, server, answers[-1]["position"])
                goal.position = expected[-1]
                done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
                for task in done:
                    task.result()
                assert not pending, f"not done in {DEADLINE} s"
                return [*feeds, whole], expected
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    feeds, expected = asyncio.run(scenario())
    assert len(expected) == BATCHES * CALLS_PER_BATCH * 2
    for feed in feeds:
        assert in_order_once(feed.ids), f"{feed.name}: a duplicate or out of order"
        assert feed.ids == expected, f"{feed.name}: {len(feed.ids)} of {len(expected)} changes"
    assert [feed.connections for feed in feeds] == [2] * len(cuts) + [1]
    reconnections = [feed.reconnected_after for feed in feeds[:-1]]
    print(f"\nbatches ingested when each cut subscriber reconnected: {reconnections}")
    assert any(n is not None and n < BATCHES for n in reconnections), "no cut mid-stream"


# --- 3. SIGKILL while ingesting ------------------------------------------------------------


def status(tenant: Any, request_id: str) -> str | None:
    """The call's status as the store has it (None: no such call)."""
    found = graphstore.get_call(tenant, request_id)
    return None if found is None else str(found["status"])


@dataclass
class Attempt:
    """One batch sent while the server was killed: its events and what came back."""

    events: list[dict[str, Any]]
    answer: dict[str, Any] | None = None  # HTTP 200's body: acknowledged
    error: str | None = None  # the transport error: no answer


def test_sigkill_while_ingesting_loses_no_acknowledged_batch(server: Server) -> None:
    writers = 4
    calls = 40  # 80 events a batch: each commit takes a while, so requests are in flight
    acknowledged_before_kill = 6

    async def scenario() -> list[Attempt]:
        attempts: list[Attempt] = []
        enough = asyncio.Event()
        stop = asyncio.Event()

        async def write(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                attempt = Attempt(batch("kill", len(attempts), calls))
                attempts.append(attempt)
                try:
                    answer = await client.post(
                        f"{server.url}/v1/tenants/{TENANT}/calls",
                        json=attempt.events,
                        headers=server.headers(),
                    )
                except httpx.TransportError as exc:
                    attempt.error = type(exc).__name__
                    return  # the server is gone
                assert answer.status_code == 200, answer.text
                attempt.answer = answer.json()
                if sum(a.answer is not None for a in attempts) >= acknowledged_before_kill:
                    enough.set()

        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as client:
            tasks = [asyncio.create_task(write(client)) for _ in range(writers)]
            try:
                await asyncio.wait_for(enough.wait(), DEADLINE)
                server.stop(signal.SIGKILL)  # at once: the writers are mid-request
                stop.set()
                done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
                assert not pending, "a writer still waits for the killed server"
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return attempts

    attempts = asyncio.run(scenario())
    acknowledged = [a for a in attempts if a.answer is not None]
    unanswered = [a for a in attempts if a.answer is None]
    in_flight = [a for a in unanswered if a.error != "ConnectError"]
    print(
        f"\n{len(attempts)} batches sent, {len(acknowledged)} acknowledged, "
        f"{len(unanswered)} unanswered: {[a.error for a in unanswered]}"
    )
    assert len(acknowledged) >= acknowledged_before_kill
    assert in_flight, "the kill landed while no request was in flight"
    assert all(a.answer is not None and a.answer["applied"] == 2 * calls for a in acknowledged)

    server.start()
    present: dict[int, bool] = {}
    with graphstore.open(server.data) as store:
        acme = store.tenant(TENANT)
        for n, attempt in enumerate(attempts):
            found = {rid: status(acme, rid) for rid in sorted(request_ids(attempt.events))}
            whole = set(found.values()) == {"completed"}
            absent = set(found.values()) == {None}
            assert whole or absent, f"batch {n} half applied: {found}"
            assert whole or attempt.answer is None, f"acknowledged batch {n} lost"
            present[n] = whole
    committed = [present[attempts.index(a)] for a in unanswered]
    print(f"unanswered batches committed before the kill: {committed}")

    async def retry(rounds: int) -> list[list[dict[str, Any]]]:
        async with httpx.AsyncClient(timeout=60) as client:
            return [
                [await ingest(client, server, a.events) for a in unanswered] for _ in range(rounds)
            ]

    first, second = asyncio.run(retry(2))
    for attempt, answer in zip(unanswered, first, strict=True):
        was_present = present[attempts.index(attempt)]
        assert answer["applied"] == (0 if was_present else 2 * calls), answer
    assert all(answer["applied"] == 0 and answer["writes"] == 0 for answer in second)
    assert second[-1]["position"] == first[-1]["position"]  # nothing written the second time
    head = server.head()
    assert head == second[-1]["position"]
    with graphstore.open(server.data) as store:
        acme = store.tenant(TENANT)
        for attempt in attempts:
            for rid in request_ids(attempt.events):
                assert status(acme, rid) == "completed", rid
