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
- ``GET /``: the live run view (static files, no build step).

Every request but the view's files and ``/healthz`` carries ``Authorization: Bearer
<API key>``; every error is ``application/problem+json`` with the platform's error code
(:mod:`graphstore.http.problems`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from domain.errors import DomainError
from graphstore.http.auth import Principals
from graphstore.http.calls import CallIntake
from graphstore.http.changes import Feeds
from graphstore.http.operations import Operations, openapi
from graphstore.http.problems import ProblemError, problem_of
from graphstore.operations.errors import OperationError
from graphstore.operations.specs import store_operations

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

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
) -> Starlette:
    """The ASGI application of the data directory at ``path`` (see the module)."""
    root = Path(path)
    principals = Principals(root, settings=settings)
    feeds = Feeds(principals, root, settings=settings, heartbeat=heartbeat)
    intake = CallIntake(principals, max_body=max_body)
    operations = Operations(principals, feeds, max_body=max_body)

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

    async def store_openapi(request: Request) -> Response:
        """The store's own operations (no tenant, no credentials needed)."""
        return JSONResponse(openapi([op.spec for op in store_operations()], tenant=None))

    async def tenant_openapi(request: Request) -> Response:
        """A tenant's operations, its graph types' included (needs ``read`` on it)."""
        org_id = request.path_params["org"]
        principal = await run_in_threadpool(principals.authenticate, request)
        executor = principals.executor(principal)
        specs = await run_in_threadpool(executor.specs, org_id)
        return JSONResponse(openapi(specs, tenant=org_id))

    app = Starlette(
        routes=[
            Route("/", view),
            Route("/healthz", health),
            Route("/openapi.json", store_openapi),
            Route("/v1/tenants/{org}/openapi.json", tenant_openapi),
            Route("/v1/tenants/{org}/ops/{operation_id}", operations.invoke, methods=["POST"]),
            Route("/v1/tenants/{org}/ops/{operation_id}", operations.follow, methods=["GET"]),
            Route("/v1/tenants/{org}/calls", intake.ingest, methods=["POST"]),
            Route("/v1/tenants/{org}/changes", feeds.changes, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={
            ProblemError: _problem,
            DomainError: _problem,
            OperationError: _problem,
            HTTPException: _http_problem,
            Exception: _problem,  # the unexpected: a 500 saying only that
        },
    )
    app.state.principals = principals
    app.state.max_body = max_body
    return app


async def _problem(request: Request, exc: Exception) -> Response:
    problem = problem_of(exc)
    if problem.status >= 500:
        log.error("request failed", path=request.url.path, error=repr(exc), exc_info=exc)
    return problem.response(str(request.path_params.get("operation_id", "")))


async def _http_problem(request: Request, exc: Any) -> Response:
    code, detail = _HTTP_CODES.get(exc.status_code, ("HTTP_ERROR", str(exc.detail)))
    return ProblemError(exc.status_code, code, detail).response()
