"""The public reading API: entries with their envelopes, heads, counts, aggregates and
consumer positions, on real Honker files; and the rule that only ``streams`` knows
Honker's tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking

import streams
from streams import (
    Entry,
    Head,
    HonkerApplicationRecorder,
    HonkerDatastore,
    HonkerTrackingRecorder,
    VersionOffset,
    _honker,
    aggregate_offsets,
    count_between,
    persistence,
    positions_table,
    read_after,
    read_at,
    save_position,
    saved_position,
    side_writes,
    stream_head,
    stream_table,
    time_at,
)

ROOT = Path(__file__).resolve().parents[2]


def _recorder(datastore: HonkerDatastore, stream: str) -> HonkerApplicationRecorder:
    recorder = HonkerApplicationRecorder(datastore, stream=stream)
    recorder.create_table()
    return recorder


def _record(recorder: HonkerApplicationRecorder, *events: tuple[UUID | str, int, str]) -> list[int]:
    stored = [StoredEvent(i, v, topic, b'{"v":%d}' % v) for i, v, topic in events]
    return list(recorder.insert_events(stored) or [])


@pytest.fixture
def two_streams(datastore: HonkerDatastore) -> tuple[list[int], list[int]]:
    """Offsets of stream ``a`` (A.Created, A.Changed x2 of one aggregate, then B.Created)
    and of stream ``b``, interleaved in one file (so each stream's offsets have gaps)."""
    a, b = _recorder(datastore, "a"), _recorder(datastore, "b")
    x, y = uuid4(), uuid4()
    offsets_a: list[int] = []
    offsets_b: list[int] = []
    offsets_a += _record(a, (x, 1, "A.Created"))
    offsets_b += _record(b, (y, 1, "Other"))
    offsets_a += _record(a, (x, 2, "A.Changed"), (x, 3, "A.Changed"))
    offsets_b += _record(b, (y, 2, "Other"))
    offsets_a += _record(a, (uuid4(), 1, "B.Created"))
    return offsets_a, offsets_b


# --- entries ------------------------------------------------------------------------


def test_entries_after_an_offset_come_in_offset_order_with_their_envelopes(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, _ = two_streams
    entries = read_after(datastore, "a", 0)
    assert [entry.offset for entry in entries] == offsets
    assert all(isinstance(entry, Entry) for entry in entries)
    envelopes = [entry.envelope() for entry in entries]
    assert [e.type for e in envelopes] == ["A.Created", "A.Changed", "A.Changed", "B.Created"]
    assert all(e.time > 1_700_000_000_000 for e in envelopes)  # ms since the epoch


def test_a_read_after_is_bounded_by_limit_upto_and_types(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, _ = two_streams
    assert [e.offset for e in read_after(datastore, "a", offsets[0], limit=2)] == offsets[1:3]
    assert [e.offset for e in read_after(datastore, "a", 0, upto=offsets[2])] == offsets[:3]
    changed = read_after(datastore, "a", 0, types=["A.Changed", "B.Created"])
    assert [e.offset for e in changed] == offsets[1:]
    assert read_after(datastore, "a", offsets[-1]) == []
    assert read_after(datastore, "missing", 0) == []


def test_entries_at_offsets_come_once_in_offset_order_and_only_from_the_stream_asked(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets_a, offsets_b = two_streams
    asked = [offsets_a[3], offsets_a[0], offsets_a[3], *offsets_b, 10**9]
    found = read_at(datastore, "a", asked)
    assert [entry.offset for entry in found] == [offsets_a[0], offsets_a[3]]
    everything = read_after(datastore, "a", 0)
    assert found == [entry for entry in everything if entry.offset in (asked[0], asked[1])]
    assert read_at(datastore, "a", []) == []


def test_entries_at_many_offsets_are_read_in_one_statement(datastore: HonkerDatastore) -> None:
    recorder = _recorder(datastore, "many")
    x = uuid4()
    offsets = _record(recorder, *[(x, v, "E") for v in range(1, 3001)])
    assert [e.offset for e in read_at(datastore, "many", offsets)] == offsets


# --- head, times, counts ------------------------------------------------------------


def test_the_head_of_an_empty_stream_is_zero_without_a_time(datastore: HonkerDatastore) -> None:
    _recorder(datastore, "a")
    assert stream_head(datastore, "a") == Head(0, None)
    assert time_at(datastore, "a", 0) is None
    assert count_between(datastore, "a", 0, 100) == 0


def test_the_head_is_the_streams_last_offset_with_its_envelope_time(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, others = two_streams
    last = read_after(datastore, "a", 0)[-1]
    assert stream_head(datastore, "a") == Head(offsets[-1], last.envelope().time)
    assert stream_head(datastore, "b").offset == others[-1]


def test_time_at_an_offset_and_at_zero_the_first_entrys_time(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, others = two_streams
    entries = read_after(datastore, "a", 0)
    assert time_at(datastore, "a", 0) == entries[0].envelope().time
    assert time_at(datastore, "a", offsets[2]) == entries[2].envelope().time
    assert time_at(datastore, "a", others[0]) is None  # an offset of another stream


def test_counts_between_two_offsets_skip_the_other_streams_entries(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, others = two_streams
    assert count_between(datastore, "a", 0, offsets[-1]) == 4
    assert count_between(datastore, "a", offsets[0], offsets[-1]) == 3
    assert count_between(datastore, "b", 0, offsets[-1]) == len(others)
    assert count_between(datastore, "a", offsets[-1], offsets[0]) == 0


def test_a_read_in_a_write_transaction_sees_its_uncommitted_entries(
    datastore: HonkerDatastore,
) -> None:
    recorder = _recorder(datastore, "a")
    with datastore.transaction() as tx:
        (offset,) = recorder._insert_events(tx, [StoredEvent(uuid4(), 1, "E", b"{}")]) or []
        assert stream_head(tx, "a").offset == offset
        assert [e.offset for e in read_after(tx, "a", 0)] == [offset]
        assert stream_head(datastore, "a") == Head(0, None)  # the reader pool: committed only


# --- aggregates ---------------------------------------------------------------------


def test_an_aggregates_offsets_come_in_version_order_up_to_an_offset(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    offsets, _ = two_streams
    subject = UUID(read_after(datastore, "a", 0)[0].envelope().subject)
    found = aggregate_offsets(datastore, "a", subject)
    assert found == [VersionOffset(v, o) for v, o in zip((1, 2, 3), offsets[:3], strict=True)]
    assert aggregate_offsets(datastore, "a", subject, upto=offsets[1]) == found[:2]
    assert aggregate_offsets(datastore, "a", uuid4()) == []
    entries = read_at(datastore, "a", [v.offset for v in found])
    assert [e.envelope().version for e in entries] == [1, 2, 3]


def test_an_aggregates_offsets_are_found_by_index_not_by_scanning_the_stream(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    subject = uuid4()
    issued: list[tuple[str, list[Any]]] = []
    original = datastore.query

    def spy(sql: str, params: Any = ()) -> list[dict[str, Any]]:
        issued.append((sql, list(params)))
        return original(sql, params)

    datastore.query = spy  # type: ignore[method-assign]
    try:
        aggregate_offsets(datastore, "a", subject, upto=10)
        read_at(datastore, "a", [1, 2, 3])
    finally:
        datastore.query = original  # type: ignore[method-assign]
    for sql, params in issued:
        plan = " | ".join(r["detail"] for r in original("EXPLAIN QUERY PLAN " + sql, params))
        assert not re.search(r"SCAN (_honker_stream|es_)", plan), plan


def test_text_ids_are_looked_up_as_text(tenant_file: Path) -> None:
    datastore = HonkerDatastore(tenant_file, originator_id_type="text")
    try:
        recorder = _recorder(datastore, "texts")
        offsets = _record(recorder, ("order-1", 1, "E"), ("order-2", 1, "E"), ("order-1", 2, "E"))
        found = aggregate_offsets(datastore, "texts", "order-1")
        assert found == [VersionOffset(1, offsets[0]), VersionOffset(2, offsets[2])]
    finally:
        datastore.close()


# --- positions ----------------------------------------------------------------------


def test_a_consumer_that_never_saved_has_no_position(datastore: HonkerDatastore) -> None:
    assert saved_position(datastore, "view@v1", "a") is None


def test_a_position_commits_with_the_callers_rows(datastore: HonkerDatastore) -> None:
    with datastore.transaction() as tx:
        tx.execute("CREATE TABLE view (n INTEGER)")
        tx.execute("INSERT INTO view VALUES (1)")
        save_position(tx, "view@v1", "a", 7)
        assert saved_position(tx, "view@v1", "a") == 7
        assert saved_position(datastore, "view@v1", "a") is None  # not committed yet
    assert saved_position(datastore, "view@v1", "a") == 7
    assert saved_position(datastore, "view@v1", "b") is None  # per stream
    assert saved_position(datastore, "other@v1", "a") is None  # per consumer


@pytest.mark.parametrize("position", [7, 3])
def test_a_position_that_does_not_advance_is_refused_and_nothing_is_written(
    datastore: HonkerDatastore, position: int
) -> None:
    with datastore.transaction() as tx:
        tx.execute("CREATE TABLE view (n INTEGER)")
        save_position(tx, "view@v1", "a", 7)
    refused = pytest.raises(IntegrityError, match="already at offset 7 of 'a'")
    with refused, datastore.transaction() as tx:
        tx.execute("INSERT INTO view VALUES (1)")
        save_position(tx, "view@v1", "a", position)
    assert datastore.query("SELECT count(*) AS n FROM view")[0]["n"] == 0
    assert saved_position(datastore, "view@v1", "a") == 7


def test_tracking_recorders_keep_their_records_as_these_positions(
    datastore: HonkerDatastore,
) -> None:
    recorder = HonkerTrackingRecorder(datastore, consumer="view@v1")
    recorder.insert_tracking(Tracking("a", 5))
    assert saved_position(datastore, "view@v1", "a") == 5
    with datastore.transaction() as tx:
        save_position(tx, "view@v1", "a", 9)
    assert recorder.max_tracking_id("a") == 9
    with pytest.raises(IntegrityError):
        recorder.insert_tracking(Tracking("a", 9))


# --- the tables a one-statement join may name ---------------------------------------


def test_the_named_tables_have_the_documented_columns(
    datastore: HonkerDatastore, two_streams: tuple[list[int], list[int]]
) -> None:
    def columns(table: str) -> set[str]:
        return {r["name"] for r in datastore.query(f"PRAGMA table_info({table})")}

    assert {"offset", "topic", "payload"} <= columns(stream_table())
    assert {"name", "topic", "offset"} <= columns(positions_table())
    with datastore.transaction() as tx:
        save_position(tx, "view@v1", "a", two_streams[0][1])
    rows = datastore.query(
        f'SELECT s."offset" AS "offset" FROM {positions_table()} p '
        f'JOIN {stream_table()} s ON s.topic = p.topic AND s."offset" <= p."offset" '
        'WHERE p.name = ? ORDER BY s."offset"',
        ["view@v1"],
    )
    assert [row["offset"] for row in rows] == two_streams[0][:2]


# --- only streams knows Honker --------------------------------------------------------

_HONKER_INTERNALS = re.compile(
    r"_honker_stream|_insert_tracking|index_table_name|streams\._|class Transaction\b"
)


@pytest.mark.parametrize("package", ["projections", "domain", "graphstore"])
def test_only_streams_names_honkers_tables_the_recorders_privates_or_a_transaction(
    package: str,
) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _HONKER_INTERNALS.search(line)
    ]
    assert offenders == [], "use streams.reading / streams.positions instead"


def test_the_transaction_protocol_is_declared_once_in_streams() -> None:
    assert streams.Transaction is streams.transaction.Transaction
    for module in (_honker, persistence, side_writes):
        assert module.Transaction is streams.Transaction
