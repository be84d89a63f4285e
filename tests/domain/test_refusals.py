"""Refusals are audited coalesced: one ``access.denied`` entry per principal, operation,
tenant and minute, with a count; the first refusal is on disk at once, the count is
written as it doubles, at the next minute, on a read of the log and on close."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from domain._refusals import RefusalKey, RefusalTally
from domain.identity import AuditEntry, Identity, Principal
from graphstore.data import DataDirectory

SYSTEM = Principal.system()
START = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)
KEY = RefusalKey("ann", None, "acme", "read", "open the tenant", "membership")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_the_tally_writes_the_first_then_counts_doubling_then_closes_the_minute() -> None:
    tally = RefusalTally()
    assert tally.note(KEY, 10) is None  # the first of its minute: write a record
    record = uuid4()
    tally.opened(KEY, 10, record)
    written = 1
    flushed = []
    for _ in range(99):
        assert tally.note(KEY, 10) == record
        for found, count in tally.due(10):
            assert found == record
            written += count
            flushed.append(written)
    assert flushed == [2, 4, 8, 16, 32, 64]  # about log2(N) writes, never under half
    assert tally.due(11) == [(record, 100 - 64)]  # the minute is over: the rest
    assert tally.note(KEY, 11) is None  # a new minute, a new record
    assert tally.due() == []


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


def opened(data: DataDirectory, clock: Clock) -> Identity:
    return Identity(data.system_env(), create_tenant_file=data.create_tenant_file, clock=clock)


def refusals(identity: Identity) -> list[AuditEntry]:
    return [e for e in identity.audit_log() if e.action == "access.denied"]


def refuse(identity: Identity, ann: Principal, times: int, *, org_id: str = "acme") -> None:
    for _ in range(times):
        identity.record_refusal(
            ann, operation="read", what="open the tenant", missing="membership", org_id=org_id
        )


def test_refusals_are_one_entry_per_principal_operation_tenant_and_minute(
    data: DataDirectory,
) -> None:
    clock = Clock()
    with opened(data, clock) as identity:
        account = identity.create_account("ann@example.com", "Ann", actor=SYSTEM)
        ann = Principal(account_id=account.id, access_level="user", credential_type="api_key")
        refuse(identity, ann, 5)
        refuse(identity, ann, 2, org_id="beta")  # another tenant: another entry
        identity.record_refusal(ann, operation="write", what="ingest", missing="membership")
        clock.now += timedelta(minutes=1)
        refuse(identity, ann, 3)  # the next minute: another entry
        found = [(e.org_id, e.details["operation"], e.details["count"]) for e in refusals(identity)]
    assert found == [
        ("acme", "read", 5),
        ("beta", "read", 2),
        (None, "write", 1),
        ("acme", "read", 3),
    ]


def test_the_first_refusal_is_on_disk_at_once_and_a_crash_loses_less_than_half(
    data: DataDirectory,
) -> None:
    clock = Clock()
    writer = opened(data, clock)  # never closed: what another process sees is the disk
    account = writer.create_account("ann@example.com", "Ann", actor=SYSTEM)
    ann = Principal(account_id=account.id, access_level="user", credential_type="api_key")
    with opened(data, clock) as reader:
        refuse(writer, ann, 1)
        assert [e.details["count"] for e in refusals(reader)] == [1]  # at once
        refuse(writer, ann, 99)
        (entry,) = refusals(reader)
        assert 50 < entry.details["count"] <= 100  # the rest only in the writer's memory
        assert entry.details == {
            "operation": "read",
            "what": "open the tenant",
            "missing": "membership",
            "count": entry.details["count"],
        }
        writer.flush_refusals()  # as a read of the writer's log or its close does
        assert [e.details["count"] for e in refusals(reader)] == [100]
    writer.close()
