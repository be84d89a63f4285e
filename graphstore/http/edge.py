"""The server's edge: what every request passes before and after its handler.

Before: a key (or address) over the refusal rate limit is answered 429 with
``Retry-After`` from memory (:class:`~graphstore.http.limits.RefusalLimiter`), before
any authentication or file is touched. After: the request's latency per operation and
every refusal by status go to the server's metrics (:class:`HttpMetrics`, scraped at
``/metrics``; docs/operations.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphstore.http.limits import RefusalLimiter
from graphstore.http.problems import ProblemError

__all__ = ["OPERATION_KEY", "Edge", "HttpMetrics"]

OPERATION_KEY: Final = "graphstore.operation"
"""Where a handler puts, in the ASGI scope, the operation id a request turned out to be
(an id that exists: metrics labels never hold what a client made up)."""

_TENANT_ROUTE: Final = re.compile(r"^/v1/tenants/[^/]+/(calls|changes|openapi\.json|ops/)")
_PLAIN: Final = {"/": "view", "/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics"}


class HttpMetrics:
    """The HTTP server's own metrics, in ``registry``."""

    def __init__(self, registry: CollectorRegistry, open_streams: Callable[[], int]) -> None:
        self.requests = Counter(
            "graphstore_http_requests",
            "Requests answered, by operation and HTTP status.",
            ["operation", "status"],
            registry=registry,
        )
        self.refused = Counter(
            "graphstore_http_refused",
            "Requests refused (4xx), by HTTP status and the platform's error code.",
            ["status", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "graphstore_http_request_duration_seconds",
            "Time to the response's headers, by operation (an SSE stream: to its start).",
            ["operation"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.ingested_events = Counter(
            "graphstore_ingested_events",
            "Call events in batches committed over HTTP, by tenant.",
            ["tenant"],
            registry=registry,
        )
        self.ingested_batches = Counter(
            "graphstore_ingested_batches",
            "Call event batches committed over HTTP, by tenant.",
            ["tenant"],
            registry=registry,
        )
        subscribers = Gauge(
            "graphstore_sse_subscribers",
            "Server-Sent Event streams open now.",
            registry=registry,
        )
        subscribers.set_function(lambda: float(open_streams()))

    def refusal(self, status: int, code: str) -> None:
        """Count one refused request (a 4xx) with its platform error code."""
        if 400 <= status < 500:
            self.refused.labels(str(status), code).inc()

    def ingested(self, tenant: str, events: int) -> None:
        """Count one committed batch of ``events`` call events."""
        self.ingested_events.labels(tenant).inc(events)
        self.ingested_batches.labels(tenant).inc()


def operation_of(scope: Scope) -> str:
    """The metrics label of a request: the operation id its handler found, else its
    route (``calls``, ``changes``, ``ops``, ...), never the raw path."""
    named = scope.get(OPERATION_KEY)
    if isinstance(named, str):
        return named
    path = str(scope.get("path", ""))
    if path in _PLAIN:
        return _PLAIN[path]
    found = _TENANT_ROUTE.match(path)
    if found:
        return found.group(1).rstrip("/")
    if path == "/openapi.json":
        return "openapi.json"
    return "static" if path.startswith("/static/") else "other"


class Edge:
    """The ASGI middleware (see the module)."""

    def __init__(self, app: ASGIApp, *, limiter: RefusalLimiter, metrics: HttpMetrics) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            operation = operation_of(scope)
            self.metrics.latency.labels(operation).observe(time.perf_counter() - started)
            self.metrics.requests.labels(operation, str(status)).inc()

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                observe()
            await send(message)

        try:
            if str(scope.get("path", "")).startswith("/v1/"):
                wait = self.limiter.retry_after(holder_of(scope))
                if wait:
                    self.metrics.refusal(429, "TOO_MANY_REQUESTS")
                    await _too_many(wait, self.limiter)(scope, receive, watched)
                    return
            await self.app(scope, receive, watched)
        finally:
            observe()


def holder_of(scope: Scope) -> str:
    """Who a request counts against: its key (a digest), else its client address."""
    authorization = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    client: Any = scope.get("client")
    return RefusalLimiter.holder(authorization, client[0] if client else None)


def _too_many(wait: int, limiter: RefusalLimiter) -> Any:
    return ProblemError(
        429,
        "TOO_MANY_REQUESTS",
        f"this key was refused {limiter.limit} times within {limiter.window:g} s: fix the "
        f"key or the tenant it asks for, and retry after {wait} s",
        headers={"Retry-After": str(wait)},
        details={"retryAfter": wait},
    ).response()
