"""What one client may cost the server: the limits of ``graphstore serve`` and the
refusal rate limit (docs/http.md, "Limits").

A key (or, without one, a client address) refused :attr:`Limits.refusals` times within
:attr:`Limits.refusal_window` seconds (401, 403, or the 404 of a tenant it may not see)
gets 429 with ``Retry-After`` for every request until the window has room again: the
server answers it from memory, before authentication, so a refusal flood costs neither
``system.db`` writes nor key hashing. Kept in this process's memory only, per key (a
digest of it, never the key), a sliding window.

The limits are read from the environment (``GRAPHSTORE_HTTP_*``, :meth:`Limits.from_env`)
so an operator sets them without changing the command line.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, fields
from typing import Final

from domain.errors import ValidationError

__all__ = ["ENV_PREFIX", "Limits", "RefusalLimiter"]

ENV_PREFIX: Final = "GRAPHSTORE_HTTP_"


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits; each is ``GRAPHSTORE_HTTP_<NAME>`` in the environment."""

    body_timeout: float = 30.0
    """Seconds a client has to send a whole request body (then 408)."""
    sse_per_key: int = 500
    """Event streams one key may hold open at once (the next gets 429)."""
    refusals: int = 50
    """Refusals of a key within :attr:`refusal_window` before it gets 429."""
    refusal_window: float = 60.0
    """Seconds of the refusal rate limit's sliding window."""
    max_connections: int = 2048
    """Connections and requests at once (uvicorn's ``limit_concurrency``; over it, 503)."""
    keep_alive: float = 5.0
    """Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
    max_header_bytes: int = 64 * 1024
    """Bytes of a request's line and headers (then 400 and the connection closed)."""
    header_timeout: float = 10.0
    """Seconds from connecting (or a request's first byte) to the end of its headers
    (then 408 and the connection closed: a slowloris holds nothing for long)."""
    ready_lag: float = 30.0
    """Seconds of projection lag ``/readyz`` accepts before it answers 503."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """The defaults, each replaced by ``GRAPHSTORE_HTTP_<NAME>`` when set; a value
        that is not a positive number raises :class:`~domain.errors.ValidationError`
        naming the variable (the command line prints it as one line)."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, float | int] = {}
        for field in fields(cls):
            name = ENV_PREFIX + field.name.upper()
            raw = env.get(name)
            if raw is None:
                continue
            kind = int if field.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                value = -1
            if value <= 0:
                raise ValidationError(
                    f"{name}={raw!r}: give a positive {kind.__name__} (docs/http.md, 'Limits')"
                )
            values[field.name] = value
        return cls(**values)  # type: ignore[arg-type]


class RefusalLimiter:
    """Refusals per key in a sliding window (see the module); thread-safe."""

    def __init__(self, limit: int, window: float, *, keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.keys = keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def holder(authorization: str | None, client: str | None) -> str:
        """Who is counted: a digest of the ``Authorization`` header, else the address."""
        if authorization:
            return "key:" + hashlib.blake2b(authorization.encode(), digest_size=12).hexdigest()
        return "addr:" + (client or "?")

    def retry_after(self, holder: str, now: float | None = None) -> int:
        """Seconds until ``holder`` may be answered again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.get(holder)
            if times is None:
                return 0
            self._expire(times, now)
            if len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[len(times) - self.limit] + self.window - now))

    def refused(self, holder: str, now: float | None = None) -> None:
        """Count one refusal of ``holder``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.pop(holder, None) or deque()
            self._expire(times, now)
            times.append(now)
            while len(times) > self.limit:  # only the newest `limit` matter
                times.popleft()
            self._seen[holder] = times  # the most recent last
            while len(self._seen) > self.keys:
                self._seen.popitem(last=False)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()
