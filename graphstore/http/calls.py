"""Call-event ingestion over HTTP: ``POST /v1/tenants/{org}/calls``.

The body is a JSON array of call-protocol events (``Content-Type: application/json``)
or JSON Lines (``application/jsonl`` or ``application/x-ndjson``), or a JSON object, the
input of the ``graphstore.calls.ingest`` operation (``{"events": [...],
"operationTypes": {...}, "abortPolicy": ...}``). Which operations are subscriptions is
said by ``?subscription=<operation id>`` (repeatable, or comma-separated: the command
line's ``--subscription``) or by the object's ``operationTypes``; unknown operations are
queries. ``?abortPolicy=`` is the command line's ``--abort-policy`` (the object's
``abortPolicy`` wins). It is one batch, as for the command line's ``ingest``: every
event is checked, then all of them commit in one transaction with their audit record,
or none does (a refused event is a 400 naming its position). Call events are
idempotent (a repeated one changes nothing), so a client that lost the answer sends
the same batch again: the retry changes nothing and answers ``applied: 0``. The answer
is the batch's report and ``position``, the tenant's stream offset after it, which
``?minPosition=`` of a query or an SSE stream can wait for.

Order of the checks (docs/http.md, "Refusals"): the key (401), the tenant (404), the
content type (415), the body's size and time (413, 408), its encoding and shape (400),
the batch's size (413), then the events.

Every form is the ``graphstore.calls.ingest`` operation (graphstore/operations/ingest.py):
the object through :meth:`~graphstore.operations.Executor.invoke`, an array or JSON Lines
through :meth:`~graphstore.operations.Executor.ingest_calls` (events checked by the call
protocol, refusals naming their line), with the same authorization, audit record
(``call events ingested``, source ``http``), errors and answer.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from domain.calls import (
    DEFAULT_ABORT_POLICY,
    AbortPolicy,
    CallEvent,
    OperationType,
    read_jsonl,
)
from domain.errors import InvalidCallEventError
from graphstore.http.auth import Principals
from graphstore.http.body import DEFAULT_BODY_TIMEOUT, decode_json, json_text, read_body
from graphstore.http.problems import ProblemError
from graphstore.operations.errors import ResourceConflictError
from graphstore.operations.ingest import INGEST_OPERATION
from graphstore.operations.schemas import MAX_BATCH

__all__ = ["INGEST_OPERATION", "JSON_LINES", "CallIntake"]

JSON_LINES: Final = ("application/jsonl", "application/x-ndjson", "application/json-lines")


class CallIntake:
    """The ingestion endpoint (see the module docstring)."""

    def __init__(
        self,
        principals: Principals,
        *,
        max_body: int,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        on_ingest: Callable[[str, int], None] | None = None,
    ) -> None:
        self.principals = principals
        self.on_ingest = on_ingest
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def ingest(self, request: Request) -> JSONResponse:
        org_id = request.path_params["org"]
        executor = await run_in_threadpool(self.principals.admit, request, org_id)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and media not in JSON_LINES:
            raise ProblemError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {media or '(none)'!r} is not read here: send a JSON array of "
                "call events as application/json, or JSON Lines as application/jsonl",
            )
        subscriptions = _subscriptions(request)
        abort_policy = _abort_policy(request)
        body = await read_body(request, self.max_body, self.body_timeout)
        if media in JSON_LINES:
            lines = _lines(body)
        else:
            decoded = decode_json(body, what="a JSON array of call events")
            if isinstance(decoded, dict):  # the ingest operation's input
                decoded.setdefault("operationTypes", {})
                if isinstance(decoded["operationTypes"], dict):
                    decoded["operationTypes"] = {**subscriptions, **decoded["operationTypes"]}
                if abort_policy is not None:
                    decoded.setdefault("abortPolicy", abort_policy)
                request.scope["graphstore.operation"] = INGEST_OPERATION
                out = await run_in_threadpool(
                    executor.invoke, INGEST_OPERATION, decoded, tenant=org_id
                )
                self._counted(org_id, out["events"])
                return JSONResponse(out)
            lines = _array(decoded)
        _check_batch(len(lines))
        try:
            out = await run_in_threadpool(
                functools.partial(
                    executor.ingest_calls,
                    [event for _, event in lines],
                    tenant=org_id,
                    source="http",
                    operation_types=subscriptions,
                    abort_policy=abort_policy or DEFAULT_ABORT_POLICY,
                    lines=[line for line, _ in lines],
                )
            )
        except ResourceConflictError as exc:
            if "operation_types" not in str(exc):
                raise
            raise ProblemError(
                409,
                "CONFLICT",
                f"{exc} (over HTTP: ?subscription=<operation id>)",
            ) from None
        self._counted(org_id, out["events"])
        return JSONResponse(out)

    def _counted(self, org_id: str, events: int) -> None:
        if self.on_ingest is not None:
            self.on_ingest(org_id, events)


def _subscriptions(request: Request) -> dict[str, OperationType]:
    """``?subscription=a,b&subscription=c`` as operation types."""
    names = [
        name.strip()
        for value in request.query_params.getlist("subscription")
        for name in value.split(",")
    ]
    if any(not name for name in names):
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            "subscription= names an operation id: give one or more, comma-separated "
            "(?subscription=feed.watch,feed.tail)",
        )
    subscription: OperationType = "subscription"
    return dict.fromkeys(names, subscription)


def _abort_policy(request: Request) -> AbortPolicy | None:
    """``?abortPolicy=``: how an abort treats the call's descendants (the command line's
    ``--abort-policy``); None if not given."""
    value = request.query_params.get("abortPolicy")
    if value is None:
        return None
    policies: tuple[AbortPolicy, ...] = ("abort-dependents", "continue-running")
    for policy in policies:
        if value == policy:
            return policy
    raise ProblemError(
        400,
        "VALIDATION_ERROR",
        f"abortPolicy={value!r} is not a policy: use abort-dependents (the default) or "
        "continue-running",
        details={"reason": "abortPolicy"},
    )


def _lines(body: bytes) -> list[tuple[int, CallEvent]]:
    json_text(body, what="one JSON call event per line")  # a clear 400 before any line
    lines = read_jsonl(io.BytesIO(body))
    if not lines:
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            "the body holds no call events: send one JSON call event per line",
            details={"reason": "empty"},
        )
    return lines


def _check_batch(events: int) -> None:
    if events > MAX_BATCH:
        raise ProblemError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"the batch has {events} call events, more than {MAX_BATCH}: send them in "
            "several batches (each is one transaction)",
            details={"events": events, "maxEvents": MAX_BATCH},
        )


def _array(events: Any) -> list[tuple[int, CallEvent | Any]]:
    if not isinstance(events, list):
        raise InvalidCallEventError(
            f"the body is a JSON {type(events).__name__}, not an array: send a JSON array of "
            "call events (or JSON Lines as application/jsonl, or the input of "
            f"{INGEST_OPERATION} as a JSON object)",
            reason="not an array",
        )
    if not events:
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            "the array holds no call events: send at least one",
            details={"reason": "empty"},
        )
    return list(enumerate(events, start=1))
