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

__all__ = ["ORG_PATTERN", "Operations", "openapi"]

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


ORG_PATTERN: Final = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
"""An org id (``domain``'s rule): 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."""


def _problem(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


_REFUSALS: Final = {
    "400": "VALIDATION_ERROR: the input, a parameter or the body is invalid (not UTF-8, not "
    "JSON, nested too deep, breaks the schema or a rule of the store, a minPosition or "
    "Last-Event-ID past the stream's head); nothing was written",
    "404": "NOT_FOUND: no tenant of this org id that the key may read (one answer for both), "
    "or a thing the input names does not exist; OPERATION_NOT_FOUND: no such operation",
}
_BODY_REFUSALS: Final = {
    "408": _problem("REQUEST_TIMEOUT: the body did not arrive within the server's body timeout"),
    "413": _problem(
        "PAYLOAD_TOO_LARGE: the body is larger than the server's --max-body, or a "
        "batch holds more call events than one transaction takes"
    ),
    "415": _problem("UNSUPPORTED_MEDIA_TYPE: the body is not of a content type this path reads"),
}
_AUTH: Final = {
    "401": _problem(
        "UNAUTHENTICATED: no API key, or one that is unknown, revoked or expired",
        **{"WWW-Authenticate": "Bearer"},
    ),
    "429": _problem(
        "TOO_MANY_REQUESTS: this key was refused too often lately (or holds the most event "
        "streams it may); retry after Retry-After seconds",
        **{"Retry-After": "Seconds to wait before retrying"},
    ),
}


def _responses(ok: dict[str, Any], spec: OperationSpec | None, *, body: bool) -> dict[str, Any]:
    """Every status an operation's path can answer: 200, its errorSchemas' statuses and
    the HTTP layer's own refusals, each with the Problem schema."""
    texts: dict[str, list[str]] = {code: [text] for code, text in _REFUSALS.items()}
    for error in (spec.error_schemas or []) if spec is not None else []:
        status = str(error.http_status or 400)
        texts.setdefault(status, []).append(f"{error.code}: {error.description}")
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({*texts, *_AUTH, *(_BODY_REFUSALS if body else {})}):
        if status in _AUTH:
            responses[status] = _AUTH[status]
        elif body and status in _BODY_REFUSALS:
            responses[status] = _BODY_REFUSALS[status]
        else:
            responses[status] = _problem("; ".join(dict.fromkeys(texts[status])))
    return responses


def openapi(specs: list[OperationSpec], *, tenant: str | None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``specs`` (their JSON Schemas are 2020-12, as 3.1's)
    and of the call ingestion and change feed paths: every status each can answer,
    its security (a bearer key) and the pattern of ``org``."""
    paths: dict[str, Any] = {}
    for spec in specs:
        operation_id = f"{spec.namespace}.{spec.name}"
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
            ok = {
                "description": "Server-Sent Events, one `change` per output; `Last-Event-ID` "
                "resumes (a position past the stream's head is a 400)",
                "content": {_EVENT_STREAM: {"schema": spec.output_schema}},
            }
            paths[path] = {
                "get": {
                    **common,
                    "parameters": [_ORG, *_query_parameters(spec.input_schema), _LAST_EVENT_ID],
                    "responses": _responses(ok, spec, body=False),
                }
            }
        else:
            ok = {
                "description": "the output",
                "content": {"application/json": {"schema": spec.output_schema}},
            }
            paths[path] = {
                "post": {
                    **common,
                    "requestBody": {
                        "required": bool(spec.input_schema.get("required")),
                        "description": "The input (an empty body is `{}`).",
                        "content": {"application/json": {"schema": spec.input_schema}},
                    },
                    "responses": _responses(ok, spec, body=True),
                }
            }
    ingest = next((s for s in specs if s.operation_id == "graphstore.calls.ingest"), None)
    if ingest is not None:
        paths.update(_calls_path(ingest))
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


def _calls_path(ingest: OperationSpec) -> dict[str, Any]:
    """``POST /v1/tenants/{org}/calls`` (graphstore.http.calls)."""
    events = ingest.input_schema["properties"]["events"]
    ok = {
        "description": "the batch's report",
        "content": {"application/json": {"schema": ingest.output_schema}},
    }
    return {
        "/v1/tenants/{org}/calls": {
            "post": {
                "operationId": "calls",
                "summary": "Ingest call events (one batch, all or nothing)",
                "description": "A JSON array of call events, the input of "
                "graphstore.calls.ingest as a JSON object, or JSON Lines. "
                "`subscription=` names the operations that are subscriptions; "
                "`abortPolicy=` is the command line's --abort-policy.",
                "tags": ["calls"],
                "security": [{"apiKey": []}],
                "parameters": [
                    _ORG,
                    {
                        "name": "subscription",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[^,]+(,[^,]+)*$"},
                        "description": "Operation ids that are subscriptions, comma-separated.",
                    },
                    {
                        "name": "abortPolicy",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["abort-dependents", "continue-running"]},
                        "description": "How an abort treats the call's descendants (the "
                        "command line's --abort-policy; a JSON object's abortPolicy wins).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"anyOf": [events, ingest.input_schema]}},
                        "application/jsonl": {
                            "schema": {"type": "string", "description": "One call event per line."}
                        },
                    },
                },
                "responses": _responses(ok, ingest, body=True),
            }
        }
    }


_EVENT_STREAM: Final = "text/event-stream"

_ORG: Final = {
    "name": "org",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ORG_PATTERN, "maxLength": 63},
    "description": "The tenant's org id.",
}

_LAST_EVENT_ID: Final = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
    "description": "Resume after this position (the id of the last event received); "
    "past the stream's head is a 400.",
}

_PROBLEM: Final = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "The platform's error code."},
        "detail": {"type": "string", "description": "What was wrong and how to fix it."},
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
