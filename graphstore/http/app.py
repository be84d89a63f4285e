"""The HTTP API and the live run view of a data directory, as one ASGI application.

    app = create_app("data")            # serve it with uvicorn (graphstore serve)

Routes (docs/http.md):

- ``POST /v1/tenants/{org}/ops/{operationId}``: every operation of the tenant's
  operation contracts (:mod:`graphstore.operations`), input the JSON body, output the
  JSON answer; ``GET`` of a subscription operation streams it as Server-Sent Events;
- ``POST /v1/tenants/{org}/calls``: call events, one all-or-nothing batch
  (:mod:`graphstore.http.calls`);
- ``GET /v1/tenants/{org}/changes``: projection changes as SSE, resumable by
  ``Last-Event-ID`` (:mod:`graphstore.http.changes`);
- ``GET /openapi.json``: the OpenAPI document generated from the operation contracts;
- ``GET /healthz`` (alive), ``GET /readyz`` (projections within the lag allowed),
  ``GET /metrics`` (Prometheus, loopback clients only; docs/operations.md);
- ``GET /``: the live run view (static files, no build step).

Every request under ``/v1/`` carries ``Authorization: Bearer <API key>``; every error is
``application/problem+json`` with the platform's error code
(:mod:`graphstore.http.problems`), and never holds the server's data path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from domain.errors import DomainError
from graphstore.http.auth import Principals
from graphstore.http.calls import CallIntake
from graphstore.http.changes import Feeds
from graphstore.http.edge import Edge, HttpMetrics, holder_of
from graphstore.http.limits import Limits, RefusalLimiter
from graphstore.http.operations import Operations, openapi
from graphstore.http.problems import ProblemError, problem_of
from graphstore.metrics import ProjectorCollector, ProjectorLike
from graphstore.operations.errors import OperationError
from graphstore.operations.specs import store_operations

__all__ = ["DEFAULT_MAX_BODY", "create_app", "readiness"]

log = structlog.wrap_logger(logging.getLogger("graphstore.http"))

DEFAULT_MAX_BODY: Final = 16 * 1024 * 1024
"""Bytes a request body may have (``--max-body``)."""

STATIC: Final = Path(__file__).with_name("static")

_HTTP_CODES: Final = {
    404: ("NOT_FOUND", "no such route: the API is under /v1/tenants/{org}/...; see /openapi.json"),
    405: ("METHOD_NOT_ALLOWED", "this route does not take that method; see /openapi.json"),
}


def create_app(
    path: str | os.PathLike[str],
    *,
    settings: dict[str, str] | None = None,
    heartbeat: float = 15.0,
    max_body: int = DEFAULT_MAX_BODY,
    limits: Limits | None = None,
    statuses: Callable[[], Sequence[ProjectorLike]] | None = None,
) -> Starlette:
    """The ASGI application of the data directory at ``path`` (see the module).

    ``limits`` are the server's (default: :meth:`Limits.from_env`); ``statuses`` gives
    the projectors' status (the runner's, when it runs in the same process) for
    ``/metrics`` and ``/readyz``."""
    root = Path(path)
    limits = limits or Limits.from_env()
    principals = Principals(root, settings=settings)
    feeds = Feeds(
        principals, root, settings=settings, heartbeat=heartbeat, per_key=limits.sse_per_key
    )
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, lambda: feeds.open_streams)
    if statuses is not None:
        registry.register(ProjectorCollector(statuses))
    intake = CallIntake(
        principals, max_body=max_body, body_timeout=limits.body_timeout, on_ingest=metrics.ingested
    )
    operations = Operations(
        principals,
        feeds,
        max_body=max_body,
        body_timeout=limits.body_timeout,
        on_ingest=metrics.ingested,
    )
    limiter = RefusalLimiter(limits.refusals, limits.refusal_window)
    # the data directory's absolute forms (a relative one, like "data", is a word too)
    hidden = sorted(
        {p for p in (str(root.absolute()), str(root.resolve())) if len(p) > 1},
        key=len,
        reverse=True,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # every stream has ended by now: close the files under them
            feeds.close()
            principals.close()

    async def view(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def ready(request: Request) -> Response:
        return readiness(statuses() if statuses is not None else [], limits.ready_lag)

    async def scrape(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if client not in _LOOPBACK:
            raise ProblemError(
                403,
                "ACCESS_DENIED",
                "/metrics answers clients on this machine only: scrape it through a local "
                "agent or proxy",
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def store_openapi(request: Request) -> Response:
        """The store's own operations (no tenant, no credentials needed)."""
        return JSONResponse(openapi([op.spec for op in store_operations()], tenant=None))

    async def tenant_openapi(request: Request) -> Response:
        """A tenant's operations, its graph types' included (needs ``read`` on it)."""
        org_id = request.path_params["org"]
        executor = await run_in_threadpool(principals.admit, request, org_id)
        specs = await run_in_threadpool(executor.specs, org_id)
        return JSONResponse(openapi(specs, tenant=org_id))

    async def problem(request: Request, exc: Exception) -> Response:
        found = problem_of(exc)
        if found.status >= 500:
            log.error("request failed", path=request.url.path, error=repr(exc), exc_info=exc)
        metrics.refusal(found.status, found.code)
        if found.refusal:
            limiter.refused(holder_of(request.scope))
        for secret in hidden:  # a message of the store may name a file: never its place
            found.detail = found.detail.replace(secret, "<data directory>")
        return found.response(str(request.path_params.get("operation_id", "")))

    async def http_problem(request: Request, exc: Any) -> Response:
        code, detail = _HTTP_CODES.get(exc.status_code, ("HTTP_ERROR", str(exc.detail)))
        metrics.refusal(exc.status_code, code)
        return ProblemError(exc.status_code, code, detail).response()

    app = Starlette(
        routes=[
            Route("/", view),
            Route("/healthz", health),
            Route("/readyz", ready),
            Route("/metrics", scrape),
            Route("/openapi.json", store_openapi),
            Route("/v1/tenants/{org}/openapi.json", tenant_openapi),
            Route("/v1/tenants/{org}/ops/{operation_id}", operations.invoke, methods=["POST"]),
            Route("/v1/tenants/{org}/ops/{operation_id}", operations.follow, methods=["GET"]),
            Route("/v1/tenants/{org}/calls", intake.ingest, methods=["POST"]),
            Route("/v1/tenants/{org}/changes", feeds.changes, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Edge, limiter=limiter, metrics=metrics)],
        exception_handlers={
            ProblemError: problem,
            DomainError: problem,
            OperationError: problem,
            HTTPException: http_problem,
            Exception: problem,  # the unexpected: a 500 saying only that
        },
    )
    app.state.principals = principals
    app.state.max_body = max_body
    app.state.limits = limits
    app.state.registry = registry
    return app


def readiness(statuses: Sequence[ProjectorLike], max_lag: float) -> JSONResponse:
    """``/readyz``: 200 when every projector is within ``max_lag`` seconds of its head
    and none failed; 503 naming those that are not (docs/operations.md)."""
    behind = [
        {
            "tenant": s.tenant,
            "projector": s.projector,
            "state": s.state,
            "lagEvents": s.lag_events,
            "lagSeconds": s.lag_seconds,
        }
        for s in statuses
        if s.state == "failed" or s.lag_seconds > max_lag
    ]
    body = {"ready": not behind, "maxLagSeconds": max_lag, "behind": behind}
    return JSONResponse(body, status_code=503 if behind else 200)


_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
