"""What a retirement removes from a stream (streams.retirement), on a real tenant file.

A pass reads each run's entries once, to choose it, and names them in its record: the
entries of several reads :func:`combined` are those one read of all would find (offsets,
size, digest in offset order, also when the runs' events interleave); the delete checks
only the offsets again, and refuses when an aggregate gained an event since the read.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from streams import HonkerDatastore, read_after
from streams.persistence import HonkerApplicationRecorder
from streams.retirement import combined, digest_of, entries_of, remove_entries
from tests.streams.conftest import application_recorder

STREAM = "removed"


@pytest.fixture
def recorder(datastore: HonkerDatastore) -> HonkerApplicationRecorder:
    return application_recorder(datastore, STREAM)


def record(recorder: HonkerApplicationRecorder, aggregate: UUID, version: int) -> int:
    state = b'{"v":%d,"of":"%s"}' % (version, aggregate.hex.encode())
    (offset,) = recorder.insert_events([StoredEvent(aggregate, version, "E", state)]) or []
    return offset


def test_the_entries_of_several_reads_combine_as_one_read(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore
) -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    for version in (1, 2, 3):  # interleaved: a, b, c, a, b, c, ...
        for aggregate in (a, b, c):
            record(recorder, aggregate, version)
    of_a = entries_of(datastore, STREAM, [a])
    of_b = entries_of(datastore, STREAM, [b], also=[of_a.offsets[0]])  # overlapping
    whole = entries_of(datastore, STREAM, [a, b])
    joined = combined([of_b, of_a])
    assert (joined.offsets, joined.size, joined.digest) == (
        whole.offsets,
        whole.size,
        whole.digest,
    )
    payloads = {e.offset: e.payload.encode() for e in read_after(datastore, STREAM, 0)}
    assert len(whole.offsets) == 6 and whole.digest == digest_of(payloads[o] for o in whole.offsets)
    assert entries_of(datastore, STREAM, [b, a]).digest == whole.digest  # offset order
    assert combined([entries_of(datastore, STREAM, [c]), whole]).digest != whole.digest


def test_the_delete_refuses_entries_that_changed_since_they_were_read(
    recorder: HonkerApplicationRecorder, datastore: HonkerDatastore
) -> None:
    a, b = uuid4(), uuid4()
    record(recorder, a, 1)
    record(recorder, b, 1)
    read = entries_of(datastore, STREAM, [a])
    record(recorder, a, 2)  # after the read
    changed = pytest.raises(IntegrityError, match="changed since they were read")
    with changed, datastore.transaction() as tx:
        remove_entries(tx, STREAM, [a], read.offsets)
    assert len(read_after(datastore, STREAM, 0)) == 3  # nothing removed
    again = entries_of(datastore, STREAM, [a])
    with datastore.transaction() as tx:
        remove_entries(tx, STREAM, [a], again.offsets)
    assert [e.offset for e in read_after(datastore, STREAM, 0)] == entries_of(
        datastore, STREAM, [b]
    ).offsets
