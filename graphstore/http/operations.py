"""Every operation contract as an HTTP endpoint, and the OpenAPI document of them.

``POST /v1/tenants/{org}/ops/{operationId}`` runs a query or a mutation: the body is its
input (JSON, ``application/json``; empty means ``{}``), the answer its output. ``GET``
of the same path streams a subscription operation as Server-Sent Events, its input
from the query string (``?runId=run-1``; a JSON value where the schema wants one); the
stream is the SSE feed of :mod:`graphstore.http.changes` (``Last-Event-ID`` resumes).
Nothing here is written per operation: the endpoints, their validation and their
documentation all come from the specs (:mod:`graphstore.operations`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graphstore.http.auth import Principals
from graphstore.http.body import DEFAULT_BODY_TIMEOUT, decode_json, read_body
from graphstore.http.changes import Feeds
from graphstore.http.problems import PROBLEM_JSON, ProblemError
from graphstore.operations import OperationSpec, OperationSubscription

__all__ = ["Operations", "openapi"]

_FEEDS: Final = {
    "graphstore.changes.tenant": {"projection": "projector"},
    "graphstore.changes.graph": {"graphId": "graph"},
    "graphstore.changes.run": {"runId": "run"},
}
"""The subscription operations, served by the SSE feed: input field -> feed parameter."""


class Operations:
    """The generated endpoints (see the module docstring)."""

    def __init__(
        self,
        principals: Principals,
        feeds: Feeds,
        *,
        max_body: int,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        on_ingest: Callable[[str, int], None] | None = None,
    ) -> None:
        self.principals = principals
        self.on_ingest = on_ingest
        self.feeds = feeds
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def invoke(self, request: Request) -> Response:
        org_id = request.path_params["org"]
        operation_id = request.path_params["operation_id"]
        executor = await run_in_threadpool(self.principals.admit, request, org_id)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request, self.max_body, self.body_timeout)
        if body and media != "application/json":
            raise ProblemError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {media or '(none)'!r} is not read here: send the operation's "
                "input as application/json",
            )
        data = decode_json(body, what="the operation's input as JSON") if body else {}
        result = await run_in_threadpool(executor.invoke, operation_id, data, tenant=org_id)
        request.scope["graphstore.operation"] = operation_id
        if isinstance(result, OperationSubscription):  # asked by POST: say how to follow it
            result.close()
            raise ProblemError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{operation_id} is a subscription: GET this path (Accept: text/event-stream) "
                "to follow it as Server-Sent Events",
            )
        if operation_id == "graphstore.calls.ingest" and self.on_ingest is not None:
            self.on_ingest(org_id, int(result["events"]))
        return JSONResponse(result)

    async def follow(self, request: Request) -> Response:
        """A subscription operation as SSE: checked against its spec, then the feed."""
        org_id = request.path_params["org"]
        operation_id = request.path_params["operation_id"]
        executor = await run_in_threadpool(self.principals.admit, request, org_id)
        found = await run_in_threadpool(executor.find, operation_id, tenant=org_id)
        fields = _FEEDS.get(operation_id)
        if fields is None:
            raise ProblemError(
                405,
                "METHOD_NOT_ALLOWED",
                f"GET follows subscription operations only; POST the input of "
                f"{operation_id} as JSON",
            )
        request.scope["graphstore.operation"] = operation_id
        data = _query_input(request.query_params, found.spec.input_schema)
        if "name" in data:
            raise ProblemError(
                400,
                "VALIDATION_ERROR",
                "name= keeps a durable position for Python subscribers; over SSE the client "
                "keeps it: reconnect with Last-Event-ID (or ?after=)",
            )
        # The executor authorizes and checks the input (refusals audited); the stream
        # itself is the shared feed's.
        checked = await run_in_threadpool(executor.invoke, operation_id, data, tenant=org_id)
        if isinstance(checked, OperationSubscription):
            checked.close()
        feed = {fields[k]: str(v) for k, v in data.items() if k in fields}
        start = 0 if data.get("fromStart") else None
        principal = executor.store.principal
        return await self.feeds.respond(request, org_id, principal, start=start, **feed)


def _query_input(query: QueryParams, schema: dict[str, Any]) -> dict[str, Any]:
    """The input of a GET: each query parameter as the schema's type wants it."""
    properties = schema.get("properties", {})
    data: dict[str, Any] = {}
    for name, raw in query.items():
        if name not in properties:
            continue  # after, from the feed's own parameters
        wanted = properties[name].get("type")
        if wanted in ("integer", "number", "boolean", "array", "object"):
            data[name] = decode_json(raw.encode(), what=f"{name}= as a JSON {wanted}")
        else:
            data[name] = raw
    return data


def openapi(specs: list[OperationSpec], *, tenant: str | None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``specs`` (their JSON Schemas are 2020-12, as 3.1's)."""
    paths: dict[str, Any] = {}
    for spec in specs:
        operation_id = f"{spec.namespace}.{spec.name}"
        errors = {
            str(error.http_status or 400): {
                "description": error.description,
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            for error in spec.error_schemas or []
        }
        common = {
            "operationId": operation_id,
            "summary": spec.title or spec.name,
            "description": spec.description,
            "tags": spec.tags or [spec.namespace],
            "parameters": [_ORG],
            "security": [{"apiKey": []}],
            "x-accessControl": msgspec.to_builtins(spec.access_control),
        }
        path = f"/v1/tenants/{{org}}/ops/{operation_id}"
        if spec.type == "subscription":
            paths[path] = {
                "get": {
                    **common,
                    "parameters": [_ORG, *_query_parameters(spec.input_schema)],
                    "responses": {
                        "200": {
                            "description": "Server-Sent Events, one `change` per output; "
                            "`Last-Event-ID` resumes",
                            "content": {"text/event-stream": {"schema": spec.output_schema}},
                        },
                        **errors,
                    },
                }
            }
        else:
            paths[path] = {
                "post": {
                    **common,
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": spec.input_schema}},
                    },
                    "responses": {
                        "200": {
                            "description": "the output",
                            "content": {"application/json": {"schema": spec.output_schema}},
                        },
                        **errors,
                    },
                }
            }
    title = "graphstore" + (f" · tenant {tenant}" if tenant else "")
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": _PROBLEM},
        },
    }


_ORG: Final = {
    "name": "org",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The tenant's org id.",
}

_PROBLEM: Final = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "The platform's error code."},
        "detail": {"type": "string"},
        "operationId": {"type": "string"},
        "details": {"type": "object"},
    },
}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]
