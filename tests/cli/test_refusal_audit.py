"""A flood of refusals stays cheap: 10,000 refused attempts of one key grow system.db by
at most 100 KB, and `graphstore audit` shows them as coalesced entries with their count."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import graphstore
from tests.cli.test_cli import gs

REFUSALS = 10_000
BUDGET = 100 * 1024


def checkpointed_size(path: Path) -> int:
    """The file's size with its write-ahead log folded in (what the refusals cost)."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return path.stat().st_size


def test_ten_thousand_refusals_cost_at_most_100_kb_and_show_with_their_count(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with graphstore.open(data) as store:
        me = store.principal
        store.identity.create_account("ada@example.com", "Ada", actor=me)
        eve = store.identity.create_account("eve@example.com", "Eve", actor=me)
        store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        key = store.identity.create_api_key(eve.id, name="probe", actor=me).secret
    before = checkpointed_size(data / "system.db")
    with graphstore.open(data, api_key=key) as outsider:  # no member of acme
        for _ in range(REFUSALS):
            with pytest.raises(graphstore.AccessDeniedError):
                outsider.tenant("acme")
    grown = checkpointed_size(data / "system.db") - before
    assert grown <= BUDGET, f"{REFUSALS} refusals grew system.db by {grown} bytes"

    done = gs(data, "--json", "audit", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    denied = [e for e in json.loads(done.stdout) if e["action"] == "access.denied"]
    assert 1 <= len(denied) <= 2  # one per minute: the loop may cross a minute's end
    assert sum(e["details"]["count"] for e in denied) == REFUSALS
    assert {e["details"]["operation"] for e in denied} == {"read"}
    shown = gs(data, "audit", "--tenant", "acme")
    assert shown.returncode == 0, shown.stderr
    assert "access.denied" in shown.stdout and '"count": ' in shown.stdout
