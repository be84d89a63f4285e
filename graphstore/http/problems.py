"""Errors as ``application/problem+json`` (RFC 9457) carrying the platform's error codes.

Every refusal or failure the HTTP API answers with is one body::

    {"type": "https://graphstore.invalid/problems/validation-error",
     "title": "the input is invalid; nothing was written", "status": 400,
     "code": "VALIDATION_ERROR", "detail": "<what was wrong and how to fix it>",
     "operationId": "...", "details": {...}}

``code`` is the platform's (the operation executor's codes, docs/operations.md) and
``status`` the HTTP status; ``detail`` is the store's own message, which never holds a
secret (the domain's rule for every message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.responses import JSONResponse

from domain.errors import AuthenticationError, DomainError
from graphstore.errors import GraphstoreError
from graphstore.operations.errors import OperationError

__all__ = ["PROBLEM_JSON", "ProblemError", "problem_of"]

PROBLEM_JSON: Final = "application/problem+json"

_DOMAIN_STATUS: Final = {
    "VALIDATION_ERROR": 400,
    "ACCESS_DENIED": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
}


class ProblemError(GraphstoreError):
    """A refusal of the HTTP layer itself (a body too large, a content type it does not
    read, no credentials); raised in a handler, answered as problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str = "",
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        refusal: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").lower()
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        self.refusal = refusal or status in (401, 403)
        """Counted against the key by the refusal rate limit (docs/http.md)."""

    def response(self, operation_id: str = "") -> JSONResponse:
        body: dict[str, Any] = {
            "type": f"https://graphstore.invalid/problems/{self.code.lower().replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if operation_id:
            body["operationId"] = operation_id
        if self.details:
            body["details"] = self.details
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers
        )


def problem_of(error: Exception) -> ProblemError:
    """The problem an exception of the store stands for (an unexpected one is a 500
    that says only that: its text may hold anything)."""
    if isinstance(error, ProblemError):
        return error
    if isinstance(error, OperationError):
        return ProblemError(
            error.http_status,
            error.code,
            str(error),
            title=type(error).summary,
            details=error.details,
        )
    if isinstance(error, AuthenticationError):
        return ProblemError(
            401,
            "UNAUTHENTICATED",
            str(error),
            headers={"WWW-Authenticate": 'Bearer realm="graphstore"'},
        )
    if isinstance(error, DomainError):
        status = _DOMAIN_STATUS.get(error.code, 400)
        return ProblemError(
            status, error.code if error.code in _DOMAIN_STATUS else "VALIDATION_ERROR", str(error)
        )
    return ProblemError(500, "UNKNOWN_ERROR", "the server failed; its log says why")
