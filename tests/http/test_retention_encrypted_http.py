"""`graphstore serve` on an encrypted tenant (issue 16): the server process and its
projector runner take the tenant's key from ``GRAPHSTORE_CIPHER_KEY`` like every
command, so calls ingested through HTTP are stored encrypted, a retention pass through
the API retires runs, the server's own runner applies the encrypted retirement record,
and ``verify`` with the key passes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from graphstore.verify import verify
from streams.directory import CIPHER_KEY_VARIABLE
from tests.http.conftest import Server, call, responded, serving

T0 = 1_700_000_000_000


@pytest.fixture
def sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A data directory whose tenant is encrypted from its first event, served by a
    process that inherits the key from the environment."""
    monkeypatch.setenv(CIPHER_KEY_VARIABLE, AESCipher.create_key(32))
    yield from serving(tmp_path)


def _plain_payloads(data: Path) -> int:
    connection = sqlite3.connect(data / "tenant-acme.db")
    try:
        return int(
            connection.execute(
                "SELECT count(*) FROM _honker_stream WHERE topic = 'metagraph' "
                "AND payload ->> '$.data' IS NOT NULL"
            ).fetchone()[0]
        )
    finally:
        connection.close()


def test_a_pass_through_the_api_on_an_encrypted_tenant(sealed: Server) -> None:
    events = []
    for i, run in enumerate(["old-1", "old-2"]):
        events += [call(run, T0 + i), responded(run, T0 + i + 1)]
    events.append(call("flying", T0))
    sealed.op("graphstore.calls.ingest", {"events": events})
    runs = sealed.op("graphstore.runs.list", {"minPosition": sealed.head()})["runs"]
    assert {r["runId"] for r in runs} == {"old-1", "old-2", "flying"}
    sealed.op("graphstore.retention.setPolicy", {"finishedOlderThanS": 86_400})
    done = sealed.op("graphstore.retention.run", {})
    assert sorted(r["run_id"] for r in done["runs"]) == ["old-1", "old-2"]
    runs = sealed.op("graphstore.runs.list", {"minPosition": sealed.head()})["runs"]
    assert {r["runId"] for r in runs} == {"flying"}  # the server's runner applied it
    assert _plain_payloads(sealed.data) == 0  # every event, the record too, encrypted
    sealed.stop()
    checked = verify(sealed.data, tenants=["acme"])
    assert checked.ok, checked.problems
