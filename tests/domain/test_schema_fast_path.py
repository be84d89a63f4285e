"""The fast validator (jsonschema-rs) judges exactly as jsonschema, the authority."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calls.graph import CALL_SCHEMA
from domain.errors import AttributesInvalidError
from domain.schema import MAX_DEPTH, AttributeSchema, _is_clean_json, _is_clean_json_walk

SCHEMAS: list[dict[str, Any]] = [
    CALL_SCHEMA,
    {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 5},
            "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 150},
            "score": {"type": "number", "multipleOf": 0.5},
            "tags": {"type": "array", "items": {"enum": ["a", "b", 1]}, "uniqueItems": True},
            "kind": {"const": "x"},
            "either": {"oneOf": [{"type": "null"}, {"type": "boolean"}]},
        },
    },
    {
        "$defs": {"leaf": {"type": ["string", "integer"]}},
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/leaf"}, "y": {"anyOf": [{"type": "array"}, {}]}},
        "minProperties": 1,
        "dependentRequired": {"x": ["y"]},
    },
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-200, 200)
    | st.floats(-200, 200, allow_nan=False)
    | st.sampled_from(["", "a", "b", "abcdef", "x", "pending", "running", "r1"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "age", "score", "tags", "kind", "either", "x", "y", "requestId", "status"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("schema", SCHEMAS, ids=["call", "person", "refs"])
@settings(max_examples=300, deadline=None)
@given(instance=json_values)
def test_fast_and_authoritative_validators_agree(schema: dict[str, Any], instance: Any) -> None:
    compiled = AttributeSchema.compile(schema, what="test")
    authority = jsonschema.Draft202012Validator(schema).is_valid(instance)
    assert compiled._fast is not None
    assert compiled._fast.is_valid(instance) == authority
    if isinstance(instance, dict):
        if authority:
            compiled.validate(instance, what="test")
        else:
            with pytest.raises(AttributesInvalidError):
                compiled.validate(instance, what="test")


def test_schemas_with_patterns_or_formats_use_jsonschema_alone() -> None:
    for schema in ({"properties": {"a": {"pattern": "^x"}}}, {"format": "email"}):
        assert AttributeSchema.compile(schema, what="test")._fast is None
    with pytest.raises(AttributesInvalidError, match="does not match"):
        AttributeSchema.compile({"properties": {"a": {"pattern": "^x"}}}, what="t").validate(
            {"a": "y"}, what="t"
        )


# Values the JSON check must refuse, mixed with JSON ones: the C check (msgspec's round
# trip) and the Python walk must judge every one alike.
_odd_scalars = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=3)
    | st.integers(-(2**80), 2**80)
    | st.binary(max_size=3)
    | st.sampled_from(["_type_", "_data_", "é", "\\u0041"])
)
any_values = st.recursive(
    st.none() | st.booleans() | _odd_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(
            st.sampled_from(["_type_", "_data_", "a", "é"]) | st.integers(0, 3), inner, max_size=4
        )
    ),
    max_leaves=10,
)


@settings(max_examples=1000, deadline=None)
@given(value=any_values)
def test_the_c_json_check_judges_as_the_walk(value: Any) -> None:
    assert _is_clean_json(value) == _is_clean_json_walk(value)


def test_the_c_json_check_refuses_what_the_walk_refuses() -> None:
    deep: list[Any] = []
    innermost = deep
    for _ in range(MAX_DEPTH):
        innermost.append([])
        innermost = innermost[0]
    refused = [
        {"_type_": "x", "_data_": 1},
        [{"a": {"_type_": 1, "_data_": [2]}}],
        {"a": float("nan")},
        {"a": (1, 2)},
        {1: "a"},
        {"a": "\ud800"},
        {"a": {1, 2}},
        deep,
    ]
    for value in refused:
        assert not _is_clean_json(value), value
        assert not _is_clean_json_walk(value), value
    accepted = [{"_type_": "x"}, {"a": [1, 2.5, None, True, "é"]}, deep[0], 2**70]
    for value in accepted:
        assert _is_clean_json(value), value
        assert _is_clean_json_walk(value), value
