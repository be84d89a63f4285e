"""Connecting to NATS until it answers or the caller stops: shared by the remote
projector (:mod:`graphstore.nats.remote`) and the hub's ingester
(:mod:`graphstore.nats.ingester`).

nats-py's ``connect`` with unlimited reconnection retries the *first* connection for ever
without a word; here each attempt is bounded (``attempt_timeout``), reported through
``on_trouble``, followed by an exponential backoff (50 ms to ``max_backoff``), and given up
as soon as ``stop`` is set. Once connected, nats-py reconnects by itself after a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client

__all__ = ["connect_until_stopped"]


async def connect_until_stopped(
    url: str,
    stop: asyncio.Event,
    *,
    on_trouble: Callable[[str, float], None],
    reconnected: Callable[[], Awaitable[None]],
    disconnected: Callable[[], Awaitable[None]],
    error: Callable[[Exception], Awaitable[None]],
    attempt_timeout: float = 3.0,
    max_backoff: float = 5.0,
) -> Client | None:
    """A connected client (reconnecting by itself from then on), or None once ``stop``
    is set. ``on_trouble(error, retry_in)`` is called after each failed attempt."""
    backoff = 0.0
    while not stop.is_set():
        attempt = asyncio.ensure_future(
            nats.connect(
                url,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                reconnected_cb=reconnected,
                disconnected_cb=disconnected,
                error_cb=error,
            )
        )
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(
            {attempt, stopped}, timeout=attempt_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stopped.cancel()
        if attempt in done and attempt.exception() is None:
            return attempt.result()
        if attempt in done:
            problem = f"{type(attempt.exception()).__name__}: {attempt.exception()}"
        else:
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            problem = f"no NATS server answered at {url} within {attempt_timeout} s"
        if stop.is_set():
            break
        backoff = min(max(backoff * 2, 0.05), max_backoff)
        on_trouble(problem, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
    return None
