"""Two writer processes and one subscriber process on one tenant file, at full speed.

Everything is real: three OS processes (``tests/streams/_writer.py``), one SQLite file,
Honker's commit watcher for the subscriber's wake-ups. The writers report what their
``save`` calls returned; the subscriber reports what it was delivered, in order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.streams._writer import Stop, Worker, index_matches_stream, ledger

SAVES_PER_WRITER = 1500

pytestmark = pytest.mark.multiprocess

Row = tuple[int, str, int]  # (notification id, originator id, version)


def _committed(report: dict[str, Any]) -> list[list[Row]]:
    return [[(i, o, v) for i, o, v in save] for save in report["saves"]]


def test_two_writers_and_a_subscriber_lose_nothing(tenant_file: Path, tmp_path: Path) -> None:
    # The file and its tables exist before anyone races to create them.
    ledger(tenant_file).close()

    with contextlib.ExitStack() as stack:
        subscriber = stack.enter_context(
            Worker("subscribe", tmp_path / "received.json", dbname=tenant_file)
        )
        subscriber.expect("ready")
        writers = [
            stack.enter_context(
                Worker("write", tmp_path / f"w{n}.json", SAVES_PER_WRITER, n, dbname=tenant_file)
            )
            for n in (1, 2)
        ]
        for writer in writers:
            writer.expect("ready")
        for writer in writers:  # both start together: they contend for the write lock
            writer.send("go")
        for writer in writers:  # each committed its first save before either goes on,
            writer.expect("first", timeout=60)  # so their commits interleave (no sleep)
        for writer in writers:
            writer.send("on")
        for writer in writers:
            writer.expect("done", timeout=60)
            writer.finish()

        # The writers have exited; the sentinel commits after everything they committed.
        sentinel_app = ledger(tenant_file)
        try:
            sentinel = sentinel_app.save(Stop())[0].notification.id
        finally:
            sentinel_app.close()
        subscriber.expect("done", timeout=30)
        subscriber.finish()

    app = ledger(tenant_file)  # a fresh reader: this process has the file closed now
    try:
        reports = [json.loads((tmp_path / f"w{n}.json").read_text()) for n in (1, 2)]
        per_writer = [_committed(report) for report in reports]
        received_all = [tuple(row) for row in json.loads((tmp_path / "received.json").read_text())]
        assert received_all[-1][0] == sentinel
        received: list[Row] = [(i, o, v) for i, o, v, _topic in received_all[:-1]]

        # Each writer: every save returned its ids in event order, and the ids of later
        # saves are higher (ids increase in commit order).
        for saves in per_writer:
            assert len(saves) == SAVES_PER_WRITER
            assert all(save for save in saves)
            ids = [row[0] for save in saves for row in save]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # Both writers really ran at once: their id ranges interleave (each one's first
        # save committed before the other's last: the "first"/"on" handshake).
        ranges = [(saves[0][0][0], saves[-1][-1][0]) for saves in per_writer]
        assert ranges[0][0] < ranges[1][1] and ranges[1][0] < ranges[0][1], ranges

        committed = [row for saves in per_writer for save in saves for row in save]
        # Nothing duplicated: ids distinct and strictly increasing in delivery order.
        delivered_ids = [row[0] for row in received]
        assert all(a < b for a, b in itertools.pairwise(delivered_ids))
        assert not [row for row, n in Counter(received).items() if n > 1]
        # Nothing lost, nothing invented: exactly what the writers were told they committed.
        assert sorted(received) == sorted(committed)
        assert len(received) == len(committed)
        assert len(committed) > SAVES_PER_WRITER * 2  # multi-event saves happened

        # Every aggregate's versions arrive in order: 1, 2, 3, ... without gaps.
        versions: dict[str, list[int]] = defaultdict(list)
        for _id, originator_id, version in received:
            versions[originator_id].append(version)
        for originator_id, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), originator_id
        assert max(len(seen) for seen in versions.values()) > 2

        # A fresh reader after the fact reads the same stream, in the same order.
        reread = app.recorder.select_notifications(start=0, limit=len(received) + 10)
        assert [(n.id, str(n.originator_id), n.originator_version) for n in reread] == [
            *received,
            (sentinel, received_all[-1][1], 1),
        ]
        assert app.recorder.max_notification_id() == sentinel
        # ... and aggregates rebuilt from the index agree with what was delivered.
        for originator_id, seen in list(versions.items())[:50]:
            assert app.repository.get(UUID(originator_id)).version == len(seen)
        assert (
            index_matches_stream(app.factory.datastore, "Ledger", app.recorder.index_table_name)
            == len(received) + 1
        )
    finally:
        app.close()
