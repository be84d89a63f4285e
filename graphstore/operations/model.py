"""The OperationSpec, as typed values: exactly the fields of the data model (ADR-048,
``shared/docs/data-model.md``, "OperationSpec"), camelCase on the wire.

An :class:`OperationSpec` is a contract: what an operation is called
(``namespace.name``, its :attr:`~OperationSpec.operation_id`), what kind it is, what it
takes and gives (JSON Schemas), how it fails and who may call it. The JSON Schema of the
spec itself is ``operation-spec.schema.json`` beside this module
(:func:`spec_schema`); every generated spec validates against it (tests/operations).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "SPEC_SCHEMA_FILE",
    "AccessControl",
    "ErrorSchema",
    "OperationKind",
    "OperationSpec",
    "encode_specs",
    "spec_schema",
]

OperationKind = Literal["query", "mutation", "subscription"]
"""A query reads, a mutation writes, a subscription streams outputs until closed."""

SPEC_SCHEMA_FILE: Final = "operation-spec.schema.json"


class ErrorSchema(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """One way the operation fails: its ``code``, what it means, the JSON Schema of the
    error body and the HTTP status a front end answers with."""

    code: str
    description: str
    schema: dict[str, Any]
    http_status: int | None = None


class AccessControl(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """Who may call the operation: every scope of ``required_scopes`` (and one of
    ``required_scopes_any`` when given); ``resource_type`` and ``resource_action`` name
    what it acts on; ``custom_auth`` names an extra check a host must run (none here)."""

    required_scopes: list[str]
    required_scopes_any: list[str] | None = None
    resource_type: str | None = None
    resource_action: str | None = None
    custom_auth: str | None = None


class OperationSpec(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, frozen=True):
    """One operation contract (module docstring). ``version`` is a semantic version of
    the contract (docs/operations.md, "Versions")."""

    name: str
    namespace: str
    version: str
    type: OperationKind
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    access_control: AccessControl
    title: str | None = None
    tags: list[str] | None = None
    error_schemas: list[ErrorSchema] | None = None

    @property
    def operation_id(self) -> str:
        """``namespace.name``: how the operation is called."""
        return f"{self.namespace}.{self.name}"

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON values, camelCase."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def encode_specs(specs: list[OperationSpec]) -> bytes:
    """The specs as one JSON array (what ``graphstore ops export`` prints)."""
    return msgspec.json.encode(specs)


@functools.cache
def spec_schema() -> dict[str, Any]:
    """The JSON Schema of an OperationSpec (draft 2020-12), as checked into the package."""
    text = resources.files(__package__).joinpath(SPEC_SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
