"""MsgspecTranscoder: eventsourcing's transcoder contract, and JSONTranscoder's wire format."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.tests import persistence as es_tests
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.transcoder import MsgspecTranscoder, TupleAsList

# --- transcodings for the contract's subclass tests ------------------------------------


class MydictAsDict(Transcoding):
    type = es_tests.Mydict
    name = "mydict"

    def encode(self, obj: es_tests.Mydict[Any, Any]) -> dict[Any, Any]:
        return dict(obj)

    def decode(self, data: dict[Any, Any]) -> es_tests.Mydict[Any, Any]:
        return es_tests.Mydict(data)


class MyListAsList(Transcoding):
    type = es_tests.MyList
    name = "mylist"

    def encode(self, obj: es_tests.MyList[Any]) -> list[Any]:
        return list(obj)

    def decode(self, data: list[Any]) -> es_tests.MyList[Any]:
        return es_tests.MyList(data)


class MyStrAsStr(Transcoding):
    type = es_tests.MyStr
    name = "mystr"

    def encode(self, obj: es_tests.MyStr) -> str:
        return str.__str__(obj)

    def decode(self, data: str) -> es_tests.MyStr:
        return es_tests.MyStr(data)


class MyIntAsInt(Transcoding):
    type = es_tests.MyInt
    name = "myint"

    def encode(self, obj: es_tests.MyInt) -> int:
        return int.__int__(obj)

    def decode(self, data: int) -> es_tests.MyInt:
        return es_tests.MyInt(data)


def contract_transcodings() -> list[Transcoding]:
    return [
        UUIDAsHex(),
        DecimalAsStr(),
        DatetimeAsISO(),
        es_tests.CustomType1AsDict(),
        es_tests.CustomType2AsDict(),
        TupleAsList(),
        MydictAsDict(),
        MyListAsList(),
        MyStrAsStr(),
        MyIntAsInt(),
    ]


class TestMsgspecTranscoderContract(es_tests.TranscoderTestCase):
    """The whole contract passes, no skips: tuples and builtin subclasses keep their type
    through the transcodings the contract's expected bytes name (``tuple_as_list``,
    ``mydict``); eventsourcing's own JSONTranscoder run skips those six tests."""

    def construct_transcoder(self) -> Transcoder:
        transcoder = MsgspecTranscoder()
        for transcoding in contract_transcodings():
            transcoder.register(transcoding)
        return transcoder


# --- same wire format as JSONTranscoder -------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


class ColourAsName(Transcoding):
    type = Colour
    name = "colour"

    def encode(self, obj: Colour) -> str:
        return obj.name

    def decode(self, data: str) -> Colour:
        return Colour[data]


class Level(enum.IntEnum):
    HIGH = 3


class Tag(str):
    """A str subclass with no transcoding: both transcoders write it as a plain string."""

    __slots__ = ()


def application_transcoders(*extra: Transcoding) -> tuple[JSONTranscoder, MsgspecTranscoder]:
    """Both transcoders, with what Application.register_transcodings gives them."""
    pair = (JSONTranscoder(), MsgspecTranscoder())
    for transcoder in pair:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), *extra):
            transcoder.register(transcoding)
    return pair


def typed(value: Any) -> Any:
    """``value`` with every scalar's type made explicit: 1, 1.0 and True differ here."""
    if isinstance(value, dict):
        return (type(value), [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [typed(item) for item in value])
    if isinstance(value, float | Decimal):
        return (type(value), repr(value))  # NaN equals itself here
    if isinstance(value, es_tests.CustomType1 | es_tests.CustomType2):
        return (type(value), typed(value.value))
    return (type(value), value)


U1 = UUID("b2723fe2c01a40d2875ea3aac6a09ff5")
NOW = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)

# (value, what both transcoders decode it to)
SAME_BYTES: dict[str, tuple[Any, Any]] = {
    "typical event": (
        {
            "timestamp": NOW,
            "originator_topic": "domain.metagraph:Graph",
            "node_id": U1,
            "label": "Person",
            "attributes": {"name": "Alice", "age": 42, "score": 3.5, "tags": ["a", "b"]},
        },
        None,
    ),
    "uuid": (U1, None),
    "aware datetime, other offset": (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        None,
    ),
    "naive datetime, no microseconds": (datetime(1999, 12, 31, 23, 59, 59), None),
    "decimals": ([Decimal("0.1"), Decimal("-1E+3"), Decimal("NaN")], None),
    "nested custom types": (
        {"a": es_tests.CustomType2(es_tests.CustomType1(U1)), "b": [es_tests.CustomType1(U1)]},
        None,
    ),
    "tuples become lists": ((1, ("a", (U1,)), []), [1, ["a", [U1]], []]),
    "dict with _type_ and another key": ({"_type_": "uuid_hex", "x": "y"}, None),
    "dict with _type_, _data_ and a third key": (
        {"_type_": "uuid_hex", "_data_": U1.hex, "z": 1},
        None,
    ),
    "dict with only _type_": ({"_type_": "uuid_hex"}, None),
    "dict with only _data_": ({"_data_": 1}, None),
    "custom value inside a look-alike": ({"_type_": U1, "_data_x": NOW}, None),
    "unicode and escapes": ('🐈 哈哈 " \\ \n \t \x00 \x1f \u2028 </script>', None),
    "big integers": ([2**64, -(2**70), 10**40], None),
    "plain floats": ([0.1, -0.0, 1.5, 123456789.125, 5e-324], None),
    "non-string keys": (
        {1: "int", 2.5: "float", False: "bool", None: "none"},
        {"1": "int", "2.5": "float", "false": "bool", "null": "none"},
    ),
    "int and str enums are plain values": ({"l": Level.HIGH, "t": Tag("x")}, {"l": 3, "t": "x"}),
    "registered enum": ([Colour.RED], None),
    "empty things": ([{}, [], "", 0, False, None], None),
    "deep nesting": ({"a": [[{"b": [[{"c": [U1]}]]}]]}, None),
}


@pytest.mark.parametrize(("value", "expected"), SAME_BYTES.values(), ids=SAME_BYTES.keys())
def test_both_transcoders_write_the_same_bytes_and_read_each_other(
    value: Any, expected: Any
) -> None:
    stdlib, fast = application_transcoders(
        ColourAsName(), es_tests.CustomType1AsDict(), es_tests.CustomType2AsDict()
    )
    expected = value if expected is None else expected
    written = fast.encode(value)
    assert written == stdlib.encode(value)
    assert typed(stdlib.decode(written)) == typed(expected)
    assert typed(fast.decode(written)) == typed(expected)


# Values msgspec writes differently (still the same JSON values) or not at all (then the
# stdlib encoder writes them, as JSONTranscoder does): (value, what both read back).
OTHER_BYTES: dict[str, tuple[Any, Any]] = {
    "float exponents": ([1e16, 1e-05, 1.7976931348623157e308], None),
    "nan and infinities": ({"a": [math.nan, math.inf, -math.inf]}, None),
    "nan and infinity keys": ({math.nan: 1, -math.inf: 2}, {"NaN": 1, "-Infinity": 2}),
    "exponent key": ({1e16: 1}, {"1e+16": 1}),
}


@pytest.mark.parametrize(("value", "expected"), OTHER_BYTES.values(), ids=OTHER_BYTES.keys())
def test_floats_read_back_the_same_whichever_transcoder_wrote_them(
    value: Any, expected: Any
) -> None:
    stdlib, fast = application_transcoders()
    expected = value if expected is None else expected
    for writer in (stdlib, fast):
        written = writer.encode(value)
        for reader in (stdlib, fast):
            assert typed(reader.decode(written)) == typed(expected)


def test_input_only_the_stdlib_accepts_is_read_as_the_stdlib_reads_it() -> None:
    stdlib, fast = application_transcoders()
    for data in (b"[NaN,Infinity,-Infinity]", b'"\\ud83d"', b"1E400", b'{"a":1e999}'):
        assert typed(fast.decode(data)) == typed(stdlib.decode(data))


def test_malformed_input_raises_what_the_stdlib_raises() -> None:
    stdlib, fast = application_transcoders()
    for data in (b"{", b"\xff", b""):
        with pytest.raises(ValueError) as expected:
            stdlib.decode(data)
        with pytest.raises(ValueError) as got:
            fast.decode(data)
        assert type(got.value) is type(expected.value)


def test_a_circular_structure_raises_the_stdlib_error() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        MsgspecTranscoder().encode(looped)


def test_tuples_stay_tuples_with_tuple_as_list_on_both_sides() -> None:
    stdlib, fast = application_transcoders(TupleAsList())
    value = {"edge": (U1, ("a", 1)), "empty": ()}
    written = fast.encode(value)
    assert written == (
        b'{"edge":{"_type_":"tuple_as_list","_data_":[{"_type_":"uuid_hex","_data_":"'
        + U1.hex.encode()
        + b'"},{"_type_":"tuple_as_list","_data_":["a",1]}]},'
        b'"empty":{"_type_":"tuple_as_list","_data_":[]}}'
    )
    assert typed(stdlib.decode(written)) == typed(value)
    assert typed(fast.decode(written)) == typed(value)
    # The stdlib encoder ignores a tuple transcoding: its events hold arrays, read as lists.
    assert fast.decode(stdlib.encode(value)) == {"edge": [U1, ["a", 1]], "empty": []}


def test_transcodings_registered_after_construction_are_used() -> None:
    transcoder = MsgspecTranscoder()
    with pytest.raises(TypeError):
        transcoder.encode(U1)
    transcoder.register(UUIDAsHex())
    assert transcoder.decode(transcoder.encode([U1])) == [U1]


def test_one_transcoder_serves_many_threads() -> None:
    _, fast = application_transcoders()
    values = [{"i": i, "at": NOW + timedelta(seconds=i), "ids": [U1] * (i % 5)} for i in range(64)]

    def round_trips(value: dict[str, Any]) -> bool:
        return all(fast.decode(fast.encode(value)) == value for _ in range(200))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(round_trips, values))


# Hypothesis: any mix of JSON values and registered custom values round-trips both ways.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.uuids()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.decimals(allow_nan=False)
)
_keys = st.text() | st.sampled_from(["_type_", "_data_"])
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys, children, max_size=4)
        | st.builds(lambda v: {"_type_": "uuid_hex", "_data_": v}, children)
    ),
    max_leaves=20,
)


def outcome(round_trip: Any) -> Any:
    """What a round trip gives: the decoded value (types explicit) or the error's type."""
    try:
        return typed(round_trip())
    except Exception as error:  # a look-alike dict's data can be anything, so can errors
        return type(error)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_any_value_reads_the_same_whichever_transcoder_wrote_it(value: Any) -> None:
    stdlib, fast = application_transcoders()
    expected = outcome(lambda: stdlib.decode(stdlib.encode(value)))
    assert outcome(lambda: fast.decode(stdlib.encode(value))) == expected
    assert outcome(lambda: stdlib.decode(fast.encode(value))) == expected
    assert outcome(lambda: fast.decode(fast.encode(value))) == expected


# --- errors ------------------------------------------------------------------------------


class Unregistered:
    pass


@pytest.mark.parametrize(
    ("value", "bad_type"),
    [
        (Unregistered(), Unregistered),
        ({"a": [Unregistered()]}, Unregistered),
        ((1, Unregistered()), Unregistered),
        (date(2026, 1, 1), date),  # msgspec alone would write it natively
    ],
    ids=["top level", "nested", "in a tuple", "date"],
)
def test_an_unregistered_type_is_a_type_error_naming_it_and_saying_how_to_register(
    value: Any, bad_type: type
) -> None:
    _, fast = application_transcoders()
    with pytest.raises(TranscodingNotRegisteredError) as caught:
        fast.encode(value)
    error = caught.value
    assert isinstance(error, TypeError)
    assert error.args[0] == (  # JSONTranscoder's message, word for word
        f"Object of type {bad_type} is not serializable. Please define "
        "and register a custom transcoding for this type."
    )
    note = " ".join(error.__notes__)
    assert bad_type.__qualname__ in note
    assert "Transcoding" in note
    assert "register_transcodings" in note


def test_an_unknown_transcoding_name_is_a_type_error_naming_it() -> None:
    with pytest.raises(TranscodingNotRegisteredError, match="'uuid_hex' is not deserializable"):
        MsgspecTranscoder().decode(b'[{"_type_":"uuid_hex","_data_":"00"}]')


def test_an_unsupported_key_is_the_stdlib_type_error() -> None:
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        MsgspecTranscoder().encode({(1, 2): "x"})


# --- a whole application on Honker ------------------------------------------------------


class Node(Aggregate):
    @event("Created")
    def __init__(self, label: str, graph_id: UUID, attributes: dict[str, Any]) -> None:
        self.label = label
        self.graph_id = graph_id
        self.attributes = attributes
        self.history: list[Any] = []

    @event("Changed")
    def change(self, key: str, value: Any) -> None:
        self.attributes[key] = value
        self.history.append((key, value))


ATTRIBUTES: dict[str, Any] = {
    "name": "Alice 🐈",
    "born": datetime(1990, 5, 17, 8, 30, tzinfo=UTC),
    "balance": Decimal("1234.50"),
    "friends": [U1],
    "pair": (1, "a"),
    "look_alike": {"_type_": "x", "_data_x": 1},
}


@pytest.fixture
def honker_env(tenant_file: Path) -> Iterator[dict[str, str]]:
    yield {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(tenant_file)}


def save_node(env: dict[str, str]) -> Node:
    app: Application[UUID] = Application(env=env)
    try:
        node = Node("Person", U1, dict(ATTRIBUTES))
        node.change("score", 3.5)
        node.change("seen", datetime(2026, 1, 1, tzinfo=UTC))
        app.save(node)
        return node
    finally:
        app.close()


def load_node(env: dict[str, str], node_id: UUID) -> tuple[Node, Transcoder]:
    app: Application[UUID] = Application(env=env)
    try:
        return app.repository.get(node_id), app.mapper.transcoder
    finally:
        app.close()


def as_json_reads_it(node: Node) -> Node:
    """``node`` as replaying JSON events builds it: a tuple in an event comes back a list."""
    reloaded = Node.__new__(Node)
    reloaded.__dict__.update(node.__dict__)
    reloaded.attributes = {**node.attributes, "pair": [1, "a"]}
    return reloaded


FAST = {"TRANSCODER_TOPIC": "streams.transcoder:MsgspecTranscoder"}
STDLIB = {"TRANSCODER_TOPIC": "eventsourcing.persistence:JSONTranscoder"}


def test_the_persistence_module_defaults_to_the_msgspec_transcoder(
    honker_env: dict[str, str],
) -> None:
    saved = save_node(honker_env)
    loaded, transcoder = load_node(honker_env, saved.id)
    assert type(transcoder) is MsgspecTranscoder
    assert loaded == as_json_reads_it(saved)


def test_an_application_with_the_msgspec_transcoder_saves_and_reloads_an_aggregate(
    honker_env: dict[str, str],
) -> None:
    saved = save_node({**honker_env, **FAST})
    loaded, transcoder = load_node({**honker_env, **FAST}, saved.id)
    assert type(transcoder) is MsgspecTranscoder
    assert {"uuid_hex", "decimal_str", "datetime_iso"} <= set(transcoder.names)
    assert loaded == as_json_reads_it(saved)
    assert loaded.version == 3


def test_events_written_with_one_transcoder_load_with_the_other(
    honker_env: dict[str, str],
) -> None:
    saved = save_node({**honker_env, **FAST})
    loaded_by_json, transcoder = load_node({**honker_env, **STDLIB}, saved.id)
    assert type(transcoder) is JSONTranscoder
    assert loaded_by_json == as_json_reads_it(saved)

    other_env = {**honker_env, "HONKER_DBNAME": honker_env["HONKER_DBNAME"] + ".2"}
    saved = save_node({**other_env, **STDLIB})
    loaded_by_msgspec, _ = load_node({**other_env, **FAST}, saved.id)
    assert loaded_by_msgspec == as_json_reads_it(saved)


def test_an_application_keeping_tuples_as_tuples(honker_env: dict[str, str]) -> None:
    class TupleApplication(Application[UUID]):
        def register_transcodings(self, transcoder: JSONTranscoder) -> None:
            super().register_transcodings(transcoder)
            transcoder.register(TupleAsList())

    app = TupleApplication(env={**honker_env, **FAST})
    try:
        node = Node("Edge", U1, dict(ATTRIBUTES))
        node.change("ends", (U1, U1))
        app.save(node)
        assert app.repository.get(node.id) == node
    finally:
        app.close()
