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
import logging
from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client

__all__ = ["Link", "connect_until_stopped", "log_connection_error"]

_log = structlog.wrap_logger(logging.getLogger(__name__))  # the application routes it


async def log_connection_error(exc: Exception) -> None:
    """nats-py's ``error_cb`` for every client of this package: the error at debug level.

    Without one, nats-py's default logs each failed attempt with its traceback through
    the standard library's logging, which prints to stderr when nothing is configured; a
    library prints nothing."""
    text = str(exc)
    _log.debug(
        "NATS connection error",
        error=f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
    )


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


class Link:
    """The NATS connection of a long-running component (the remote projector, the
    hub's ingester): connected with :func:`connect_until_stopped`, reporting trouble in
    :attr:`error` and the log, counting reconnections (a consumer may be gone after one:
    :attr:`reconnects` tells its user to check)."""

    def __init__(
        self, url: str, log: structlog.stdlib.BoundLogger, *, max_backoff: float = 5.0
    ) -> None:
        self.url = url
        self.client: Client | None = None
        self.error: str | None = None
        """The last failed connection attempt's error, until connected."""
        self.reconnects = 0
        self._log = log
        self._max_backoff = max_backoff

    async def open(self, stop: asyncio.Event) -> Client | None:
        """Connect (retrying, reported) until connected or ``stop`` is set."""

        def trouble(problem: str, retry_in: float) -> None:
            self._log.warning(
                "nats unreachable, retrying", url=self.url, error=problem, retry_in=retry_in
            )
            self.error = problem

        self.client = await connect_until_stopped(
            self.url,
            stop,
            on_trouble=trouble,
            reconnected=self._reconnected,
            disconnected=self._disconnected,
            error=self._error,
            max_backoff=self._max_backoff,
        )
        self.error = None
        return self.client

    def check(self) -> None:
        """Raise :class:`ConnectionError` unless connected now."""
        client = self.client
        if client is None or not client.is_connected:
            raise ConnectionError(f"not connected to {self.url}: waiting for the server")

    async def _reconnected(self) -> None:
        self.reconnects += 1
        self._log.info("nats reconnected", url=self.url)

    async def _disconnected(self) -> None:
        self._log.warning("nats disconnected", url=self.url)

    async def _error(self, exc: Exception) -> None:
        self._log.debug("nats client error", error=str(exc))
