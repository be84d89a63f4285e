"""TypedMapper: the store's own events decoded through derived Structs, bytes unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic, resolve_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import Metagraph
from domain.calls import ingest
from domain.graphs import Graph
from domain.identity import Identity
from streams.mapper import (
    RecordedEvent,
    TypedMapper,
    derived_fields,
    omitted_if_none,
    typed_fields,
)
from streams.transcoder import MsgspecTranscoder, TupleAsList, from_utc_micros, utc_micros
from tests.domain._call_writer import run_events
from tests.streams.test_envelope import READER

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOW = datetime(2026, 12, 6, 6, 30, 0, 123456, tzinfo=UTC)


def env_of(path: Path, **extra: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path), **extra}


def typed_view(value: Any) -> Any:
    """``value`` with every type explicit: 1, 1.0 and True differ here."""
    if isinstance(value, dict):
        return (type(value), [(typed_view(k), typed_view(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [typed_view(item) for item in value])
    return (type(value), value)


def compacted(mapper: TypedMapper, cls: type, state: bytes) -> bytes:
    """``state`` as eventsourcing's Mapper wrote it, with the UTC datetimes of the
    class's datetime fields as integers of microseconds, and without the fields of its
    ``OMITTED_IF_NONE`` that are null and those of its ``DERIVED_FIELDS`` that are
    derivable (what TypedMapper writes)."""
    codec = mapper.codec_of(cls)
    try:
        decoded = msgspec.json.decode(state)
    except msgspec.DecodeError:  # NaN: written by the stdlib, left as it is
        return state
    for name in codec.micros if codec else ():
        value = decoded.get(name)
        if isinstance(value, dict) and value.get("_data_", "").endswith("+00:00"):
            decoded[name] = utc_micros(datetime.fromisoformat(value["_data_"]))
    for name in omitted_if_none(cls):
        if name in decoded and decoded[name] is None:
            del decoded[name]
    for name, container, key in derived_fields(cls):
        source = decoded.get(container)
        if isinstance(source, dict) and name in decoded and source.get(key) == decoded[name]:
            del decoded[name]
    if codec is not None and codec.record_time:  # the record's time stands for it
        decoded.pop("timestamp", None)
    return msgspec.json.encode(decoded)


def fields_of(event: Any) -> dict[str, Any]:
    """``vars(event)``, with the fields of ``OMITTED_IF_NONE`` it lacks as ``None``: an
    absent one reads as its class default, ``None``, so both are the same event."""
    state = dict(vars(event))
    for name in omitted_if_none(type(event)):
        state.setdefault(name, None)
    for name, container, key in derived_fields(type(event)):  # eventsourcing's Mapper
        source = state.get(container)  # the first container present counts
        if name not in state and isinstance(source, dict):  # TypedMapper puts it back
            state[name] = source[key]
    return dict(sorted(state.items()))  # a key's place is not part of the event


def assert_same_as_eventsourcing(mapper: TypedMapper, stored: StoredEvent) -> bool:
    """``stored`` decodes to the event eventsourcing's Mapper builds; encoding it writes
    the same bytes but for compact timestamps, which read back to the same event.
    Returns whether the typed path (not the fallback) decoded it."""
    generic = Mapper(mapper.transcoder, compressor=mapper.compressor, cipher=mapper.cipher)
    ours, theirs = mapper.to_domain_event(stored), generic.to_domain_event(stored)
    assert type(ours) is type(theirs)
    codec = mapper.codec_of(type(ours))
    if codec is not None:  # a compact timestamp: eventsourcing's Mapper reads an int
        codec.restore_micros(vars(theirs))
    time_ms = getattr(stored, "time_ms", None)
    if codec is not None and codec.record_time and "timestamp" not in vars(theirs):
        assert isinstance(time_ms, int)  # not written: the record's time, in ms
        assert ours.timestamp == from_utc_micros(time_ms * 1000)
        object.__setattr__(theirs, "timestamp", ours.timestamp)
    assert typed_view(fields_of(ours)) == typed_view(fields_of(theirs)), stored.topic
    written, expected = mapper.to_stored_event(ours), generic.to_stored_event(theirs)
    unpack = mapper.compressor.decompress if mapper.compressor else bytes
    assert unpack(written.state) == compacted(mapper, type(ours), unpack(expected.state))
    assert (written.originator_id, written.topic) == (expected.originator_id, expected.topic)
    if codec is not None and codec.record_time:  # read back with a record's time
        moment = utc_micros(ours.timestamp) // 1000
        written = RecordedEvent(*vars(written).values(), time_ms=moment)  # type: ignore[misc]
        again = mapper.to_domain_event(written)
        assert again.timestamp == from_utc_micros(moment * 1000)
        object.__setattr__(again, "timestamp", ours.timestamp)
    else:
        again = mapper.to_domain_event(written)
    assert typed_view(fields_of(again)) == typed_view(fields_of(ours))
    if codec is None:
        return False
    try:
        codec.decode(unpack(stored.state))
    except Exception:
        return False
    return True


def fixture_files() -> list[tuple[type[Any], Path]]:
    """Every tenant and system file of the committed fixtures (any fixture added later
    is checked too)."""
    found: list[tuple[type[Any], Path]] = []
    for directory in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        found += [(Metagraph, p) for p in sorted(directory.glob("tenant-*.db"))]
        found += [(Identity, p) for p in sorted(directory.glob("system.db"))]
    return found


@pytest.mark.parametrize(
    ("app_class", "source"), fixture_files(), ids=lambda v: getattr(v, "name", str(v))
)
def test_every_event_of_the_fixtures_reads_and_writes_as_eventsourcings_mapper_does(
    app_class: type[Any], source: Path, tmp_path: Path
) -> None:
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    app = app_class(env=env_of(copy))
    try:
        assert type(app.mapper) is TypedMapper
        stored = app.recorder.select_notifications(0, 1_000_000)
        typed = [assert_same_as_eventsourcing(app.mapper, n) for n in stored]
    finally:
        app.close()
    assert stored
    assert sum(typed) >= len(typed) // 2  # the typed path, not only the fallback


def test_call_events_of_a_fresh_file_read_and_write_as_eventsourcings_mapper_does(
    tenant_file: Path,
) -> None:
    with Metagraph(env=env_of(tenant_file)) as app:
        for run in range(3):
            for batch in run_events(run):
                ingest(app, batch)
        stored = app.recorder.select_notifications(0, 100_000)
        typed = [assert_same_as_eventsourcing(app.mapper, n) for n in stored]
        topics = {n.topic for n, t in zip(stored, typed, strict=True) if t}
    assert any("CallTree" in topic for topic in topics)
    assert sum(typed) >= len(typed) * 3 // 4


def node_added(attributes: dict[str, Any], **overrides: Any) -> Graph.NodeAdded:
    values: dict[str, Any] = {
        "originator_id": uuid4(),
        "originator_version": 2,
        "timestamp": NOW,
        "key": "alice",
        "node_type": "person",
        "attributes": attributes,
        "schema_version": 1,
    }
    values.update(overrides)
    return Graph.NodeAdded(**values)


@pytest.fixture
def mapper(tenant_file: Path) -> Any:
    app = Metagraph(env=env_of(tenant_file))
    yield app.mapper
    app.close()


@pytest.mark.parametrize(
    "attributes",
    [
        {"name": "Alice", "age": 42, "score": 3.5, "tags": ["a", "b"], "none": None},
        {"friend": UUID(int=7), "born": NOW, "deep": [{"at": NOW}]},  # custom values inside
        {"look_alike": {"_type_": "x", "_data_x": 1}},
        {"escaped": "caf\u00e9 \u2028 \\u005f", "quote": '"_type_"'},
        {"nan": float("nan"), "inf": float("-inf")},
        {"big": 2**70, "float_int": 1.0, "exp": 1e16},
    ],
    ids=["plain", "custom values", "look-alike", "escapes", "nan", "numbers"],
)
def test_a_domain_event_round_trips_exactly_as_with_eventsourcings_mapper(
    mapper: TypedMapper, attributes: dict[str, Any]
) -> None:
    domain_event = node_added(attributes)
    stored = mapper.to_stored_event(domain_event)
    assert_same_as_eventsourcing(mapper, stored)
    assert_same_as_eventsourcing(mapper, Mapper(mapper.transcoder).to_stored_event(domain_event))
    decoded = mapper.to_domain_event(stored)
    assert decoded.originator_id == domain_event.originator_id
    assert typed_view(vars(decoded)["attributes"]) == typed_view(
        Mapper(mapper.transcoder).to_domain_event(stored).__dict__["attributes"]
    )


@pytest.mark.parametrize(
    "state",
    [
        # an extra key (a field since removed), a missing key, a value of another type
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-06T06:30:00+00:00"},'
        b'"key":"a","node_type":"p","attributes":{},"schema_version":1,"old":true}',
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-06T06:30:00+00:00"},'
        b'"key":"a","attributes":{},"schema_version":1}',
        b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-06T06:30:00+00:00"},'
        b'"key":"a","node_type":"p","attributes":{},"schema_version":1.0}',
        b'{"timestamp":"2026-12-06T06:30:00+00:00",'
        b'"key":7,"node_type":"p","attributes":{},"schema_version":true}',
    ],
    ids=["extra key", "missing key", "float for int", "other types"],
)
def test_state_the_struct_does_not_describe_is_read_as_eventsourcing_reads_it(
    mapper: TypedMapper, state: bytes
) -> None:
    stored = StoredEvent(
        originator_id=uuid4(),
        originator_version=3,
        topic=get_topic(Graph.NodeAdded),
        state=state,
    )
    assert assert_same_as_eventsourcing(mapper, stored) is False


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name


def test_other_classes_take_eventsourcings_path(mapper: TypedMapper) -> None:
    assert mapper.codec_of(Dog.Registered) is None
    assert mapper.codec_of(Graph.NodeAdded) is not None
    registered = Dog("fido").collect_events()[0]
    stored = mapper.to_stored_event(registered)
    assert stored == Mapper(mapper.transcoder).to_stored_event(registered)
    assert vars(mapper.to_domain_event(stored)) == vars(registered)


def test_the_struct_is_derived_from_the_event_class_annotations() -> None:
    fields = typed_fields(Graph.NodeAdded)
    assert fields == [
        ("timestamp", datetime),
        ("key", str),
        ("node_type", str),
        ("attributes", dict[str, Any]),
        ("schema_version", int),
    ]
    assert typed_fields(int) is None
    assert resolve_topic(get_topic(Graph.NodeAdded)) is Graph.NodeAdded


def test_a_compressed_application_stores_the_same_bytes(tenant_file: Path) -> None:
    env = env_of(tenant_file, COMPRESSOR_TOPIC="eventsourcing.compressor:ZlibCompressor")
    with Metagraph(env=env) as app:
        assert app.mapper.compressor is not None
        domain_event = node_added({"name": "Alice"})
        stored = app.mapper.to_stored_event(domain_event)
        assert assert_same_as_eventsourcing(app.mapper, stored)


def test_mapper_topic_still_chooses_the_mapper(tenant_file: Path) -> None:
    env = env_of(tenant_file, MAPPER_TOPIC="eventsourcing.persistence:Mapper")
    with Metagraph(env=env) as app:
        assert type(app.mapper) is Mapper


# --- the walk skipped for plain JSON values ----------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.uuids()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.decimals(allow_nan=False)
)
_json_keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_json_keys, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_exact_json_is_the_walks_bytes_or_nothing(value: Any) -> None:
    fast = MsgspecTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        fast.register(transcoding)
    exact = fast.exact_json(value)
    if exact is not None:
        assert exact == fast.encode(value)


def test_exact_json_covers_plain_values_and_refuses_what_the_walk_rewrites() -> None:
    fast = MsgspecTranscoder()
    fast.register(UUIDAsHex())
    plain = {"a": [1, 2.5, "x", None, True, {"b": []}], "big": 2**70}
    assert fast.exact_json(plain) == fast.encode(plain)
    for rewritten in (
        {"id": UUID(int=1)},
        {"nan": float("nan")},
        {"pair": (1, 2)},
        {1: "int key"},
        {"tag": type("Tag", (str,), {})("x")},
    ):
        assert fast.exact_json(rewritten) is None
    fast.register(TupleAsList())
    assert fast.exact_json(plain) is None  # a transcoding for a JSON type: the walk only


def test_a_utc_timestamp_is_stored_as_microseconds_and_read_back_exactly(
    mapper: TypedMapper,
) -> None:
    domain_event = node_added({"name": "Alice"})
    stored = mapper.to_stored_event(domain_event)
    tagged = Mapper(mapper.transcoder).to_stored_event(domain_event).state
    assert stored.state.startswith(b'{"timestamp":%d,' % utc_micros(NOW))
    assert len(tagged) - len(stored.state) == 53  # of 68 bytes, on every event
    assert mapper.to_domain_event(stored).timestamp == NOW
    assert mapper.to_domain_event(stored).timestamp.tzinfo is UTC


def test_a_timestamp_in_another_zone_is_stored_as_before(mapper: TypedMapper) -> None:
    elsewhere = datetime.fromisoformat("2026-12-06T07:30:00.000001+01:00")
    domain_event = node_added({}, timestamp=elsewhere)
    stored = mapper.to_stored_event(domain_event)
    assert b'"_data_":"2026-12-06T07:30:00.000001+01:00"' in stored.state
    assert mapper.to_domain_event(stored).timestamp.utcoffset() == elsewhere.utcoffset()


def test_a_process_with_only_honker_and_the_stdlib_reads_a_domain_events_data(
    tenant_file: Path,
) -> None:
    with Metagraph(env=env_of(tenant_file)) as app:
        ingest(app, run_events(0)[0])
        expected = [
            (n.id, n.topic, json.loads(n.state)) for n in app.recorder.select_notifications(0, 1000)
        ]
    result = subprocess.run(
        [sys.executable, "-I", "-c", READER, str(tenant_file), "metagraph"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = json.loads(result.stdout)
    assert out["foreign_modules"] == []
    assert [(row[0], row[1], row[4]) for row in out["history"]] == expected
    # A call tree's events leave their timestamp to the envelope's time; others write it.
    tree = [row[4] for row in out["history"] if row[1].startswith("CallTree.")]
    others = [row[4] for row in out["history"] if not row[1].startswith("CallTree.")]
    assert tree and all("timestamp" not in data for data in tree)
    assert others and all(type(data["timestamp"]) is int for data in others)
