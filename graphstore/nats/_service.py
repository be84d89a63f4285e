"""How the long-running NATS components (the remote projector, the hub's ingester) run:
``await run()`` in an event loop of the caller's, or :meth:`Service.start` in a thread
of their own, stopped from any thread by :meth:`Service.stop`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self

__all__ = ["Service"]


class Service:
    """A component whose :meth:`run` works until :meth:`stop`; subclasses implement
    :meth:`run` and wait on :meth:`stopping`."""

    thread_name = "nats-service"

    def __init__(self) -> None:
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def stopping(self) -> asyncio.Event:
        """The event :meth:`stop` sets, made in the running loop on first use."""
        self._loop = asyncio.get_running_loop()
        if self._stop is None:
            self._stop = asyncio.Event()
        return self._stop

    def start(self) -> Self:
        """Run in a thread of its own until :meth:`stop`."""
        ready = threading.Event()

        async def go() -> None:
            self.stopping()
            ready.set()
            await self.run()

        self._thread = threading.Thread(
            target=lambda: asyncio.run(go()), name=self.thread_name, daemon=True
        )
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        """Stop (from any thread); waits for the thread :meth:`start` began."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended
                loop.call_soon_threadsafe(stop.set)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
