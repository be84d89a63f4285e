"""What an operation's refusal or failure is, as one small typed tree with the platform's
error codes and the HTTP status a front end answers with.

Every error the executor raises is an :class:`OperationError`; ``code`` is the
platform's machine-readable category (the seven codes of the call protocol plus the
store's ``NOT_FOUND`` and ``CONFLICT``), ``http_status`` what an HTTP layer returns,
``operation_id`` the operation asked for and ``details`` a JSON object saying more
(the offending field, what a principal lacks, ...). ``str(error)`` says what was wrong
and how to fix it. A refusal (every code but ``EXECUTION_ERROR``, ``TIMEOUT`` and
``UNKNOWN_ERROR``) wrote nothing::

    OperationError                  UNKNOWN_ERROR        500  an unexpected failure
    ├── OperationNotFoundError      OPERATION_NOT_FOUND  404  no such operation
    ├── InputValidationError        VALIDATION_ERROR     400  input breaks the inputSchema
    │                                                         or a rule of the store
    ├── OperationAccessDeniedError  ACCESS_DENIED        403  the principal may not
    ├── ResourceNotFoundError       NOT_FOUND            404  a named thing does not exist
    ├── ResourceConflictError       CONFLICT             409  contradicts what is recorded
    ├── OperationTimeoutError       TIMEOUT              504  the read model did not catch up
    ├── OperationAbortedError       ABORTED              409  the call was aborted
    └── ExecutionError              EXECUTION_ERROR      500  the store failed running it
        └── OutputValidationError                             its output broke outputSchema

:data:`ERRORS` lists them by code; every generated spec declares them in its
``errorSchemas`` (docs/operations.md, "Errors").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from graphstore.errors import GraphstoreError

__all__ = [
    "ERRORS",
    "ExecutionError",
    "InputValidationError",
    "OperationAbortedError",
    "OperationAccessDeniedError",
    "OperationError",
    "OperationNotFoundError",
    "OperationTimeoutError",
    "OutputValidationError",
    "ResourceConflictError",
    "ResourceNotFoundError",
]


class OperationError(GraphstoreError):
    """An operation refused or failed; see the module docstring for the codes."""

    code: ClassVar[str] = "UNKNOWN_ERROR"
    http_status: ClassVar[int] = 500
    summary: ClassVar[str] = "an unexpected failure; the message says what happened"

    def __init__(
        self, message: str, *, operation_id: str = "", details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation_id = operation_id
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: ``{code, message, httpStatus, operationId, details}`` (the
        shape of every ``errorSchemas`` entry's ``schema``)."""
        return {
            "code": self.code,
            "message": self.message,
            "httpStatus": self.http_status,
            "operationId": self.operation_id,
            "details": self.details,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.operation_id!r}, {self.message!r})"


class OperationNotFoundError(OperationError):
    """No operation has this id (for the tenant asked, for a graph type's operations)."""

    code: ClassVar[str] = "OPERATION_NOT_FOUND"
    http_status: ClassVar[int] = 404
    summary: ClassVar[str] = "no operation has this id; `graphstore ops export` lists them"


class InputValidationError(OperationError):
    """The input does not match the operation's inputSchema, or breaks a rule of the
    store (attributes against their type's schema, a malformed call event). ``details``
    has ``path`` (a JSON Pointer into the input) and ``reason`` when known."""

    code: ClassVar[str] = "VALIDATION_ERROR"
    http_status: ClassVar[int] = 400
    summary: ClassVar[str] = "the input is invalid; nothing was written"


class OperationAccessDeniedError(OperationError):
    """The principal may not make this operation in this tenant (docs/identity.md, "Who
    may do what in a tenant"); ``details`` has ``operation`` (the group) and
    ``missing``. The refusal is in the audit log."""

    code: ClassVar[str] = "ACCESS_DENIED"
    http_status: ClassVar[int] = 403
    summary: ClassVar[str] = "the principal may not make this operation; nothing was written"


class ResourceNotFoundError(OperationError):
    """A graph, node, edge, run or tenant named by the input does not exist (or not in
    the read model yet); ``details`` has ``kind`` and ``name``."""

    code: ClassVar[str] = "NOT_FOUND"
    http_status: ClassVar[int] = 404
    summary: ClassVar[str] = "a thing the input names does not exist; nothing was written"


class ResourceConflictError(OperationError):
    """The operation contradicts what is recorded: a key in use, an archived graph, a
    second outcome of a call, a lost race on every retry."""

    code: ClassVar[str] = "CONFLICT"
    http_status: ClassVar[int] = 409
    summary: ClassVar[str] = "the operation contradicts what is recorded; nothing was written"


class OperationTimeoutError(OperationError):
    """A query asked to see a position (``minPosition``) the read model did not reach in
    time: the projector runner is behind or not running."""

    code: ClassVar[str] = "TIMEOUT"
    http_status: ClassVar[int] = 504
    summary: ClassVar[str] = "the read model did not reach the position asked for in time"


class OperationAbortedError(OperationError):
    """The call was aborted before it completed (the call protocol's ``ABORTED``)."""

    code: ClassVar[str] = "ABORTED"
    http_status: ClassVar[int] = 409
    summary: ClassVar[str] = "the call was aborted"


class ExecutionError(OperationError):
    """The store failed while running the operation (storage, a projection)."""

    code: ClassVar[str] = "EXECUTION_ERROR"
    http_status: ClassVar[int] = 500
    summary: ClassVar[str] = "the store failed running the operation"


class OutputValidationError(ExecutionError):
    """The operation ran but its output broke the spec's outputSchema: a defect of the
    store, reported rather than passed on."""


ERRORS: Final[Mapping[str, type[OperationError]]] = {
    cls.code: cls
    for cls in (
        OperationNotFoundError,
        InputValidationError,
        OperationAccessDeniedError,
        ResourceNotFoundError,
        ResourceConflictError,
        OperationTimeoutError,
        OperationAbortedError,
        ExecutionError,
        OperationError,
    )
}
"""Every error code, with the class that carries it (its ``http_status`` and ``summary``)."""
