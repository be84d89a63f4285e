"""Call-event ingestion over HTTP: ``POST /v1/tenants/{org}/calls``.

The body is a JSON array of call-protocol events (``Content-Type: application/json``)
or JSON Lines (``application/jsonl`` or ``application/x-ndjson``). It is one batch, as
for the command line's ``ingest``: every event is checked, then all of them commit in
one transaction with their audit record, or none does (a refused event is a 400 naming
its position). Call events are idempotent (a repeated one changes nothing), so a
client that lost the answer sends the same batch again: the retry changes nothing and
answers ``applied: 0``. The answer is the batch's report and ``position``, the tenant's
stream offset after it, which ``?minPosition=`` of a query or an SSE stream can wait for.
"""

from __future__ import annotations

import io
from typing import Any, Final

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from domain.calls import CallEvent, IngestReport, call_ledger, read_jsonl
from domain.errors import InvalidCallEventError
from graphstore.http.auth import Principals
from graphstore.http.body import read_body
from graphstore.http.problems import ProblemError

__all__ = ["JSON_LINES", "CallIntake"]

JSON_LINES: Final = ("application/jsonl", "application/x-ndjson", "application/json-lines")


class CallIntake:
    """The ingestion endpoint (see the module docstring)."""

    def __init__(self, principals: Principals, *, max_body: int) -> None:
        self.principals = principals
        self.max_body = max_body

    async def ingest(self, request: Request) -> JSONResponse:
        org_id = request.path_params["org"]
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and media not in JSON_LINES:
            raise ProblemError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content-Type {media or '(none)'!r} is not read here: send a JSON array of "
                "call events as application/json, or JSON Lines as application/jsonl",
            )
        principal = await run_in_threadpool(self.principals.authenticate, request)
        body = await read_body(request, self.max_body)
        store = self.principals.store(principal)
        report, position = await run_in_threadpool(self._fold, store, org_id, media, body)
        return JSONResponse({**msgspec.to_builtins(report), "position": position})

    @staticmethod
    def _fold(store: Any, org_id: str, media: str, body: bytes) -> tuple[IngestReport, int]:
        metagraph = store.tenant(org_id)  # authorized here and at the commit
        lines = read_jsonl(io.BytesIO(body)) if media in JSON_LINES else _array(body)

        def fold(unit: Any) -> IngestReport:
            done = call_ledger(metagraph).ingest(
                [event for _, event in lines], lines=[line for line, _ in lines]
            )
            unit.describe(
                "call events ingested",
                {"source": "http", "events": done.events, "applied": done.applied},
            )
            return done

        report = metagraph.atomic(fold)
        return report, metagraph.recorder.max_notification_id() or 0


def _array(body: bytes) -> list[tuple[int, CallEvent | Any]]:
    try:
        events = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidCallEventError(
            f"the body is not JSON ({exc}); send a JSON array of call events",
            reason="not JSON",
        ) from None
    if not isinstance(events, list):
        raise InvalidCallEventError(
            f"the body is a JSON {type(events).__name__}, not an array: send a JSON array of "
            "call events (or JSON Lines as application/jsonl)",
            reason="not an array",
        )
    return list(enumerate(events, start=1))
