"""Input checks: names, keys, JSON values and attributes against JSON Schemas.

Attribute schemas are JSON Schema documents, validated with the ``jsonschema`` library
(draft 2020-12 unless the schema's ``$schema`` names another known draft). ``format``
is an annotation, not asserted. Only local ``$ref`` (``#...``) is allowed: a tenant's
schema must not make the store fetch anything.

Every write validates attributes, so the common case, valid attributes, is answered by
``jsonschema-rs`` (compiled Rust, ~100x faster: 0.5 us instead of 60 us for the call
graph's schema). ``jsonschema`` stays the authority: it checks the schema itself, it
judges every value the fast validator refuses (and writes the error message), and
schemas whose meaning could differ between the two (``pattern`` and
``patternProperties``: Python's ``re`` vs a Rust regex engine; ``format``) use it alone.

Every check raises :class:`~domain.errors.ValidationError` (or its subclass
:class:`~domain.errors.AttributesInvalidError`) with the offending value and a fix.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec

from domain.errors import AttributesInvalidError, ValidationError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

# jsonschema, jsonschema-rs and referencing are imported by the functions that compile
# or check a schema: reading a store that loads no graph type (a status, a list of runs)
# does not pay for them (issue 17, command line start).
# ruff: noqa: PLC0415

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "AttributeSchema",
    "check_attributes",
    "check_key",
    "check_name",
    "compiled_schema",
]

MAX_KEY_LENGTH: Final = 1024
MAX_DEPTH: Final = 64
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")
_CACHE_SIZE: Final = 1024
_MAX_SHOWN = 200

# The event transcoder (eventsourcing's JSONTranscoder) reads any JSON object whose only
# keys are these two as a tagged custom value, so such an object could not round-trip.
_RESERVED_KEYS: Final = frozenset({"_type_", "_data_"})


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _shown(value: object) -> str:
    return _clip(repr(value))


def check_name(value: object, *, what: str) -> str:
    """A type name: 1-128 characters from ``A-Z a-z 0-9 _ . : -``, starting with a letter."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"invalid {what} {_shown(value)}: use 1-128 characters from A-Z a-z 0-9 _ . : - "
            "starting with a letter (for example 'person' or 'call-graph')"
        )
    return value


def check_key(value: object, *, what: str) -> str:
    """A node or edge key: any non-empty text of at most 1024 characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"invalid {what} {_shown(value)}: use a non-empty string of at most "
            f"{MAX_KEY_LENGTH} characters"
        )
    _check_text(value, what=what, path="")
    return value


def _check_text(value: str, *, what: str, path: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                f"{what}: the text at {path or '(root)'} is not valid Unicode (it holds a "
                "lone surrogate); send well-formed text"
            ) from None


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
_CONTAINER_OPENERS: Final = (b"{", b"[")


def _is_clean_json(value: object) -> bool:
    """The check of :func:`_check_json` without building paths: the fast common case.

    msgspec writes ``value`` and reads it back in C; the value is clean if it reads back
    equal, holds no reserved key and at most :data:`MAX_DEPTH` containers in all. Every
    value the walk refuses fails that: a non-finite float (written ``null``), a tuple, a
    set, bytes or another non-JSON value (read back as something else, or refused), a
    non-string key (read back a string, or refused), a lone surrogate (refused). A value
    that fails it, or holds ``"_type_"`` or many containers, is judged by the walk.
    """
    try:
        written = _encode_json(value)
        same = _decode_json(written) == value
    except (TypeError, ValueError, OverflowError, RecursionError):  # UnicodeError: a ValueError
        same = False
    if (
        same
        and b'"_type_"' not in written
        and sum(written.count(opener) for opener in _CONTAINER_OPENERS) <= MAX_DEPTH
    ):
        return True
    return _is_clean_json_walk(value)


def _is_clean_json_walk(value: object, depth: int = 0) -> bool:
    """:func:`_is_clean_json` by a Python walk of ``value`` (exact, slower)."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, str):
        return value.isascii() or _encodes(value)
    if isinstance(value, float):
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if isinstance(value, dict):
        if len(value) == 2 and value.keys() == _RESERVED_KEYS:
            return False
        return all(
            isinstance(key, str)
            and (key.isascii() or _encodes(key))
            and _is_clean_json_walk(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_is_clean_json_walk(item, depth + 1) for item in value)
    return False  # not JSON: the full check says where and why


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_json(value: object, *, what: str, path: str, depth: int = 0) -> None:
    if depth == 0 and _is_clean_json(value):
        return
    if depth > MAX_DEPTH:
        raise ValidationError(
            f"{what}: {path[:_MAX_SHOWN]}... is nested more than {MAX_DEPTH} levels deep; "
            "flatten the value"
        )
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        _check_text(value, what=what, path=path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(
                f"{what}: {path or '(root)'} is {value!r}, which JSON cannot carry; "
                "send a finite number or null"
            )
    elif isinstance(value, dict):
        if len(value) == 2 and value.keys() == _RESERVED_KEYS:
            raise ValidationError(
                f"{what}: the object at {path or '(root)'} has exactly the keys '_type_' "
                "and '_data_', a shape the event store reserves; rename or add a key"
            )
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{what}: key {_shown(key)} at {path or '(root)'} is not a string; "
                    "JSON object keys are strings"
                )
            _check_text(key, what=what, path=path)
            _check_json(item, what=what, path=f"{path}/{_escape(key)}", depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, what=what, path=f"{path}/{index}", depth=depth + 1)
    else:
        raise ValidationError(
            f"{what}: {path or '(root)'} is a {type(value).__name__} ({_shown(value)}), "
            "which is not JSON; use null, booleans, numbers, strings, lists and dicts"
        )


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(parts: Iterator[str | int] | Any) -> str:
    return "".join(f"/{_escape(str(part))}" for part in parts)


def check_attributes(value: object, *, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object (a ``dict`` of JSON values), else ValidationError."""
    if not isinstance(value, dict):
        raise ValidationError(
            f"{what}: attributes must be a JSON object (a dict), got "
            f"{type(value).__name__} {_shown(value)}"
        )
    _check_json(value, what=what, path="")
    return value


class AttributeSchema:
    """A checked, compiled JSON Schema for the attributes of one node or edge type."""

    __slots__ = ("_fast", "_validator", "schema")

    def __init__(self, schema: dict[str, Any], validator: Validator) -> None:
        self.schema = schema
        self._validator = validator
        self._fast = _fast_validator(schema)

    @classmethod
    def compile(cls, schema: object, *, what: str) -> AttributeSchema:
        """Check ``schema`` is a usable JSON Schema object and compile it."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        if not isinstance(schema, dict):
            raise ValidationError(
                f"{what}: a schema must be a JSON Schema object (a dict), got "
                f"{type(schema).__name__} {_shown(schema)}; use {{}} to accept any attributes"
            )
        _check_json(schema, what=what, path="")
        # validator_for returns the default for an unknown $schema; None marks "unknown"
        # (the stubs only admit a validator class there).
        validator_class = (
            validator_for(schema, default=None)  # type: ignore[arg-type]
            if "$schema" in schema
            else Draft202012Validator
        )
        if validator_class is None:
            raise ValidationError(
                f"{what}: unknown $schema {_shown(schema.get('$schema'))}; omit it (draft "
                "2020-12 is used) or name a JSON Schema draft jsonschema knows"
            )
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise ValidationError(
                f"{what}: not a valid JSON Schema: {_clip(exc.message)} at "
                f"{_pointer(exc.path) or '(root)'}; fix the schema"
            ) from None
        _check_refs(schema, what=what)
        return cls(schema, validator_class(schema))

    def validate(self, attributes: dict[str, Any], *, what: str) -> None:
        """Raise :class:`AttributesInvalidError` unless ``attributes`` match the schema."""
        if self._fast is not None and self._fast.is_valid(attributes):
            return
        from jsonschema.exceptions import best_match
        from referencing.exceptions import Unresolvable

        try:
            error = best_match(self._validator.iter_errors(attributes))
        except Unresolvable as exc:  # a $ref check_refs could not see (nested $id)
            raise ValidationError(
                f"{what}: the type's schema has an unresolvable $ref ({exc}); evolve the "
                "schema to fix it"
            ) from None
        if error is None:
            return
        path = _pointer(error.absolute_path)
        raise AttributesInvalidError(
            f"{what}: attribute {path or '(root)'} is invalid: {_clip(error.message)} "
            f"(schema rule {error.validator!s}); fix the value to match the type's schema, "
            "or evolve the schema",
            path=path,
            reason=error.message,
        )


_SLOW_ONLY: Final = frozenset({"pattern", "patternProperties", "format"})


def _keywords(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, item in schema.items():
            yield key
            yield from _keywords(item)
    elif isinstance(schema, list):
        for item in schema:
            yield from _keywords(item)


def _fast_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs validator where it judges exactly as jsonschema does, else None."""
    if not _SLOW_ONLY.isdisjoint(_keywords(schema)):
        return None
    import jsonschema_rs

    try:
        return jsonschema_rs.validator_for(schema, validate_formats=False)
    except (ValueError, jsonschema_rs.ValidationError):  # a schema it cannot compile
        return None


def _refs(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, item in schema.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _check_refs(schema: dict[str, Any], *, what: str) -> None:
    refs = list(_refs(schema))
    if not refs:
        return
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = Registry[Any]().resolver_with_root(resource)
    for ref in refs:
        if not ref.startswith("#"):
            raise ValidationError(
                f"{what}: $ref {_shown(ref)} points outside the schema; only local "
                "references ('#/$defs/...') are allowed: inline the referenced schema"
            )
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValidationError(
                f"{what}: $ref {_shown(ref)} does not resolve inside the schema; add the "
                "target (for example under $defs) or fix the reference"
            ) from None


_compiled: OrderedDict[Hashable, AttributeSchema] = OrderedDict()
_compiled_lock = threading.Lock()


def compiled_schema(identity: Hashable, schema: dict[str, Any], *, what: str) -> AttributeSchema:
    """The compiled schema for an immutable ``identity`` (type id, kind, name, version).

    Compiling costs far more than validating, and a type's schema at a given schema
    version never changes, so compiled schemas are kept (least recently used first out).
    """
    with _compiled_lock:
        found = _compiled.get(identity)
        if found is not None:
            _compiled.move_to_end(identity)
            return found
    compiled = AttributeSchema.compile(schema, what=what)
    with _compiled_lock:
        _compiled[identity] = compiled
        if len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    return compiled
