"""JSON Schemas of operation inputs and outputs, derived rather than written by hand.

Three sources:

- typed values (:mod:`graphstore.operations.wire`, the call protocol's payloads in
  :mod:`domain.calls.protocol`): :func:`struct_schema` asks msgspec for their schema
  and inlines its ``$defs``, so every schema of a spec stands alone (no ``$ref`` a host
  would have to resolve);
- a graph type (:class:`domain.GraphTypeInfo`): :func:`typed_attributes` binds each node
  or edge type's attribute schema to its type name (``if nodeType is X then attributes
  match X's schema``), embedded under an ``$id`` of its own so its local ``$ref`` keep
  working;
- a few shared pieces (:data:`GRAPH_ID`, :data:`KEY`, ...) with the store's own limits.

Every schema is draft 2020-12 (the default of ``jsonschema``, and of OpenAPI 3.1).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from domain.calls.protocol import EVENT_TYPES
from domain.schema import MAX_KEY_LENGTH
from domain.values import EdgeTypeDef, NodeTypeDef

__all__ = [
    "AFTER",
    "CALL_EVENT",
    "GRAPH_ID",
    "KEY",
    "LIMIT",
    "MAX_BATCH",
    "MAX_LIMIT",
    "MIN_POSITION",
    "OFFSET",
    "error_body",
    "obj",
    "struct_schema",
    "typed_attributes",
]

MAX_LIMIT: Final = 1000
"""The largest page a list operation gives."""
MAX_BATCH: Final = 10_000
"""The most call events one ingest takes (a batch is one transaction)."""

_UUID: Final = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

GRAPH_ID: Final[Mapping[str, Any]] = {
    "type": "string",
    "pattern": _UUID,
    "description": "The graph's id, a UUID (as createGraph returned it).",
}
KEY: Final[Mapping[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "description": "A node's (or edge's) key, unique in its graph.",
}
LIMIT: Final[Mapping[str, Any]] = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_LIMIT,
    "default": 100,
    "description": "At most this many items.",
}
AFTER: Final[Mapping[str, Any]] = {
    "type": "string",
    "minLength": 1,
    "description": "Start after this item (the previous page's next).",
}
MIN_POSITION: Final[Mapping[str, Any]] = {
    "type": "integer",
    "minimum": 0,
    "description": "Wait until the read model has applied this stream offset (a "
    "mutation's position) before reading: read your own writes.",
}
OFFSET: Final[Mapping[str, Any]] = {
    "type": "integer",
    "minimum": 0,
    "description": "A stream offset of the tenant file.",
}


def obj(
    properties: Mapping[str, Any],
    required: tuple[str, ...] = (),
    *,
    description: str = "",
    **more: Any,
) -> dict[str, Any]:
    """A closed object schema (unknown fields refused, as the store refuses them)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: copy.deepcopy(dict(value)) for name, value in properties.items()},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    schema.update(more)
    return schema


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = _inline(defs[ref.removeprefix("#/$defs/")], defs)
            rest = {k: _inline(v, defs) for k, v in node.items() if k != "$ref"}
            return {**target, **rest}
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


@functools.cache
def _struct_schema(cls: type[msgspec.Struct]) -> dict[str, Any]:
    generated = msgspec.json.schema(cls)
    defs = generated.pop("$defs", {})
    inlined: dict[str, Any] = _inline(generated, defs)
    return inlined


def struct_schema(cls: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of a msgspec Struct (wire names), with nothing to resolve: its
    ``$defs`` are inlined (the types used here are not recursive)."""
    return copy.deepcopy(_struct_schema(cls))


def _embedded(schema: Mapping[str, Any], resource: str) -> dict[str, Any]:
    """An attribute schema embedded in an operation's schema as a resource of its own: a
    ``$ref`` inside it (``#/$defs/...``) still resolves against it."""
    embedded = copy.deepcopy(dict(schema))
    embedded.setdefault("$id", resource)
    return embedded


def typed_attributes(
    graph_type: str,
    kind: str,
    types: Mapping[str, NodeTypeDef | EdgeTypeDef],
    *,
    type_field: str,
    current_version: bool = False,
) -> list[dict[str, Any]]:
    """``allOf`` clauses binding ``attributes`` to the schema of the type named in
    ``type_field`` (one ``if``/``then`` per type).

    With ``current_version`` (outputs), a clause also needs ``schemaVersion`` to be the
    type's current schema version: a node written before its type's schema evolved keeps
    the attributes of its own version, which the current schema need not accept.
    """
    clauses: list[dict[str, Any]] = []
    for name, definition in sorted(types.items()):
        condition: dict[str, Any] = {
            "properties": {type_field: {"const": name}},
            "required": [type_field],
        }
        if current_version:
            condition["properties"]["schemaVersion"] = {"const": definition.schema_version}
            condition["required"].append("schemaVersion")
        resource = (
            f"urn:graphstore:graph-type:{graph_type}:{kind}:{name}:v{definition.schema_version}"
        )
        clauses.append(
            {
                "if": condition,
                "then": {"properties": {"attributes": _embedded(definition.schema, resource)}},
            }
        )
    return clauses


def _call_event_schema() -> dict[str, Any]:
    types = sorted(EVENT_TYPES)
    event = obj(
        {
            "id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "description": "The event's identity; derived from its content when absent.",
            },
            "type": {"enum": types},
            "at": {"type": "integer", "minimum": 0, "description": "ms since the epoch"},
            "payload": {"type": "object"},
        },
        ("type", "at", "payload"),
        description="A call protocol event {id?, type, at, payload} (docs/calls.md).",
    )
    event["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"payload": struct_schema(EVENT_TYPES[name])}},
        }
        for name in types
    ]
    return event


CALL_EVENT: Final[Mapping[str, Any]] = _call_event_schema()
"""One call protocol event, its payload checked by its type's payload schema."""


def error_body(code: str) -> dict[str, Any]:
    """The JSON Schema of an error with ``code``: what ``OperationError.to_dict`` gives."""
    return obj(
        {
            "code": {"const": code},
            "message": {"type": "string"},
            "httpStatus": {"type": "integer"},
            "operationId": {"type": "string"},
            "details": {"type": "object"},
        },
        ("code", "message"),
    )
