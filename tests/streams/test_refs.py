"""References: an event's ``refs`` are extra index rows of its own entry (streams.index).

On a real tenant file: the recorder writes one row ``(ref, 1) -> offset`` per reference
in the event's transaction; the id is then taken (a second reference, or an event of
that id, is a version conflict and nothing is written); ``select_reference`` finds the
entry's aggregate; the id has no events of its own; a copy written back from the entries
(replication, restore) has the same rows; the check finds a missing or stray row.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from streams import HonkerDatastore, read_after
from streams.check import aggregate_ids, index_problems
from streams.index import index_table, refs_of
from streams.persistence import HonkerApplicationRecorder
from streams.replication import append_entries
from tests.streams.conftest import application_recorder

STREAM = "refs"


@pytest.fixture
def recorder(datastore: HonkerDatastore) -> HonkerApplicationRecorder:
    return application_recorder(datastore, STREAM)


def filing(tree: UUID, version: int, *refs: UUID) -> StoredEvent:
    listed = ",".join(f'"{r.hex}"' for r in refs)
    state = b'{"key":"k","attributes":{"refs":["nested"]},"refs":[%s]}' % listed.encode()
    return StoredEvent(tree, version, "Tree.Added", state)


def rows(datastore: HonkerDatastore) -> set[tuple[bytes, int, int]]:
    found = datastore.query(f'SELECT * FROM "{index_table(STREAM)}"')
    return {(bytes(r["originator_id"]), r["originator_version"], r["offset"]) for r in found}


def test_refs_of_reads_only_the_top_level_list() -> None:
    assert refs_of(b'{"refs":["ab"],"x":1}') == ["ab"]
    assert refs_of(b'{"a":{"refs":["ab"]}}') == []  # nested: not a reference
    assert refs_of(b'{"refs":[]}') == [] and refs_of(b"\x78\x9c") == []


def test_a_reference_is_an_index_row_of_its_event(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore
) -> None:
    tree, a, b = uuid4(), uuid4(), uuid4()
    first = recorder.insert_events([StoredEvent(tree, 1, "Tree.Started", b"{}")])
    (offset,) = recorder.insert_events([filing(tree, 2, a, b)]) or []
    assert first is not None and offset > first[0]
    assert (a.bytes, 1, offset) in rows(datastore) and (b.bytes, 1, offset) in rows(datastore)
    assert len(read_after(datastore, STREAM, 0)) == 2  # no entry of its own
    assert recorder.select_reference(a) == str(tree)
    assert recorder.select_reference(tree) == str(tree)  # an aggregate's own first event
    assert recorder.select_reference(uuid4()) is None
    assert recorder.select_events(a) == []  # the reference has no events
    assert [e.originator_version for e in recorder.select_events(tree)] == [1, 2]
    assert index_problems(datastore, STREAM) == []
    assert set(aggregate_ids(datastore, STREAM)) == {tree}


def test_a_taken_reference_is_a_version_conflict_and_nothing_is_written(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore
) -> None:
    tree, other, a = uuid4(), uuid4(), uuid4()
    recorder.insert_events([StoredEvent(tree, 1, "Tree.Started", b"{}"), filing(tree, 2, a)])
    before = (rows(datastore), len(read_after(datastore, STREAM, 0)))
    with pytest.raises(IntegrityError):  # the same reference filed by another writer
        recorder.insert_events([StoredEvent(other, 1, "Tree.Started", b"{}"), filing(other, 2, a)])
    with pytest.raises(IntegrityError):  # an event of the reference's own id
        recorder.insert_events([StoredEvent(a, 1, "Ref.Filed", b"{}")])
    assert (rows(datastore), len(read_after(datastore, STREAM, 0))) == before
    assert recorder.select_reference(a) == str(tree)


def test_a_copy_from_the_entries_rebuilds_the_reference_rows(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore, tmp_path: Path
) -> None:
    tree, a = uuid4(), uuid4()
    recorder.insert_events([StoredEvent(tree, 1, "Tree.Started", b"{}")])
    recorder.insert_events([filing(tree, 2, a), filing(tree, 3)])
    entries = read_after(datastore, STREAM, 0)
    copy = HonkerDatastore(tmp_path / "tenant-copy.db")
    try:
        HonkerApplicationRecorder(copy, stream=STREAM).create_table()
        with copy.transaction() as tx:
            append_entries(tx, STREAM, entries)
        assert rows(copy) == rows(datastore)
        assert index_problems(copy, STREAM) == []
    finally:
        copy.close()


def test_the_check_finds_a_missing_or_stray_reference_row(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore
) -> None:
    tree, a = uuid4(), uuid4()
    recorder.insert_events([StoredEvent(tree, 1, "Tree.Started", b"{}"), filing(tree, 2, a)])
    (offset,) = [o for _, v, o in rows(datastore) if v == 2]
    with datastore.transaction() as tx:
        tx.execute(f'DELETE FROM "{index_table(STREAM)}" WHERE originator_id = ?', [a.bytes])
    (missing,) = index_problems(datastore, STREAM)
    assert "references" in missing.message and missing.offsets == (offset,)
    with datastore.transaction() as tx:  # a row for an id the entry does not file
        tx.execute(f'INSERT INTO "{index_table(STREAM)}" VALUES (?, 1, ?)', [uuid4().bytes, offset])
    kinds = [p.message for p in index_problems(datastore, STREAM)]
    assert any("disagree" in w for w in kinds) and any("references" in w for w in kinds)
