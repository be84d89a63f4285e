"""kill -9 cannot separate a tenant write from its audit record (issue 9, item 3).

A worker process ingests call batches through a store opened with an actor, so every
commit carries an ``AuditRecord`` in the same transaction; the test kills it with
SIGKILL while a batch is in flight (asserted from its side file), at random moments.
After each kill the tenant's stream must be a sequence of whole commits, each ending
with its record: every record covers exactly the events recorded since the previous
one, no event follows the last record (a write without its record), and every
acknowledged batch has its record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pytest

import graphstore
from domain import Principal
from tests.crash.test_kill9 import Landing, Worker, kill_points, seeded
from tests.projections.rebuild_check import opened

TENANT: Final = "acme"
SERIES: Final = 2
ROUNDS: Final = 4


def commits(path: Path) -> list[int]:
    """The tenant stream as commits: each record's covered event count, checked against
    the events before it; fails on an event that has no record."""
    with opened(path) as db:
        rows = db.query(
            'SELECT payload FROM _honker_stream WHERE topic = ? ORDER BY "offset"', ["metagraph"]
        )
    covered: list[int] = []
    since = 0
    for row in rows:
        envelope = json.loads(row["payload"])
        if envelope["type"] == "AuditRecord.Recorded":
            assert envelope["data"]["events"] == since, (
                f"a record covers {envelope['data']['events']} events, {since} came before it"
            )
            covered.append(since)
            since = 0
        else:
            since += 1
    assert since == 0, f"{since} events at the end of the stream have no audit record"
    return covered


def test_kill9_never_separates_a_write_from_its_audit_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with graphstore.open(data) as store:
        store.identity.create_account("op@example.com", "Op", actor=Principal.system())
        store.create_tenant(TENANT, name="Acme", owner_email="op@example.com")
        path = store.data.tenant_path(TENANT)
    acked: set[int] = set()
    for series in range(SERIES):
        with seeded("audit", series) as rng:

            def start() -> Worker:
                return Worker(tmp_path, "audited", data, str(max(acked, default=-1) + 1))

            def check(landing: Landing) -> None:
                acked.update(int(i) for i in landing.acked)
                records = commits(path)
                # One record per committed batch (after the call graph's first one).
                assert len(records) >= len(acked), (len(records), len(acked))

            for _ in range(ROUNDS):
                landing, _attempts = kill_points(start, check, rng, delay=0.2)
                assert landing.in_flight is not None and int(landing.in_flight) not in acked


def test_the_check_catches_a_write_without_its_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with graphstore.open(data, principal=Principal.system()) as store:
        store.identity.create_account("op@example.com", "Op", actor=Principal.system())
        store.create_tenant(TENANT, name="Acme", owner_email="op@example.com")
        path = store.data.tenant_path(TENANT)
        assert commits(path) == []
        audited = store.tenant(TENANT)
        audited.define_graph_type("g")
        assert commits(path) == [3]  # catalog started, name claimed, type defined
        audited.auditor = None  # as a writer that records no audit would
        audited.add_node_type("g", "n")
    with pytest.raises(AssertionError, match="have no audit record"):
        commits(path)
