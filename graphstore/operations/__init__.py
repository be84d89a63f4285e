"""Operation contracts (ADR-048): the store's surface as OperationSpecs, generated from
its graph types and read models, and an executor that runs them (docs/operations.md).

    from graphstore.operations import Executor, operation_specs

    with graphstore.open("data", api_key=key) as store, Executor(store) as ops:
        specs = ops.specs("acme")                       # OperationSpec values
        ops.invoke("graphstore.runs.list", {"status": ["failed"]}, tenant="acme")

- :mod:`~graphstore.operations.model`: the OperationSpec values and their JSON Schema;
- :mod:`~graphstore.operations.specs`: generating them, and the permission mapping;
- :mod:`~graphstore.operations.schemas`: deriving the JSON Schemas they hold;
- :mod:`~graphstore.operations.wire`: the typed inputs and outputs (camelCase);
- :mod:`~graphstore.operations.tables`: reading the read model for queries;
- :mod:`~graphstore.operations.executor`: finding, checking, authorizing, running;
- :mod:`~graphstore.operations.errors`: the error codes and HTTP statuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphstore.operations.errors import (
    ERRORS,
    ExecutionError,
    InputValidationError,
    OperationAbortedError,
    OperationAccessDeniedError,
    OperationError,
    OperationNotFoundError,
    OperationTimeoutError,
    OutputValidationError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from graphstore.operations.executor import (
    DEFAULT_WAIT,
    Executor,
    OperationSubscription,
    invoke,
)
from graphstore.operations.model import (
    AccessControl,
    ErrorSchema,
    OperationKind,
    OperationSpec,
    encode_specs,
    spec_schema,
)
from graphstore.operations.specs import SCOPES, STORE_VERSION, BoundOperation

if TYPE_CHECKING:
    from graphstore.store import Store

__all__ = [
    "DEFAULT_WAIT",
    "ERRORS",
    "SCOPES",
    "STORE_VERSION",
    "AccessControl",
    "BoundOperation",
    "ErrorSchema",
    "ExecutionError",
    "Executor",
    "InputValidationError",
    "OperationAbortedError",
    "OperationAccessDeniedError",
    "OperationError",
    "OperationKind",
    "OperationNotFoundError",
    "OperationSpec",
    "OperationSubscription",
    "OperationTimeoutError",
    "OutputValidationError",
    "ResourceConflictError",
    "ResourceNotFoundError",
    "encode_specs",
    "invoke",
    "operation_specs",
    "spec_schema",
]


def operation_specs(store: Store, tenant: str | None = None) -> list[OperationSpec]:
    """Every operation's spec: the store's own, then each graph type's of ``tenant``
    (none without a tenant); reading a tenant's graph types needs ``read`` on it."""
    with Executor(store) as executor:
        return executor.specs(tenant)
