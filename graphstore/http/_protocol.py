"""uvicorn's httptools protocol with two limits it lacks: time and bytes to the end of
a request's headers.

uvicorn times out an idle keep-alive connection, but not one that connects and then
sends nothing, or sends its headers one byte a minute (a slowloris), and httptools
reads headers of any size. Each such connection would be held for ever, within
``limit_concurrency`` (then every new client gets 503). Here a connection that has not
finished a request's headers within ``header_timeout`` seconds of connecting (or of
that request's first byte) is answered 408 and closed, and one whose request line and
headers pass ``max_header_bytes`` is answered 400 and closed (docs/http.md, "Limits").
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["guarded_protocol"]


class _Guarded(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes: int = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            # raised in a parser callback: httptools stops parsing and uvicorn answers
            # 400 ("Invalid HTTP request received.") and closes the connection
            raise ValueError("request headers too large")

    def _too_slow(self) -> None:
        self._head_timer = None
        self._refuse(b"408 Request Timeout", b"the request's headers did not arrive in time")

    def _refuse(self, status: bytes, message: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(message), message)
        )
        transport.close()


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type[HttpToolsProtocol]:
    """The httptools protocol class with these limits (uvicorn's ``http=`` setting)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_Guarded,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
