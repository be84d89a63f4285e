"""Retention on a tenant whose events are encrypted or compressed (issue 16): the CLI
and the projector runner learn the tenant's settings from ``GRAPHSTORE_CIPHER_KEY`` /
``GRAPHSTORE_COMPRESSOR_TOPIC``, a pass retires runs through the real CLI, the runner
(``graphstore projector run``, a real process) applies the encrypted retirement record,
``verify`` reads it (a retired gap is no hole, a real hole still is one) and without the
settings says so plainly instead of skipping it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.cipher import AESCipher

from graphstore.cli import ExitCode
from streams import TenantReader
from streams.directory import CIPHER_KEY_VARIABLE, COMPRESSOR_VARIABLE
from streams.envelope import decode
from streams.retirement import RETIREMENT_TYPE, Retirement, retirement_of
from tests.retention.test_retention import MARK, _events

KEY = AESCipher.create_key(32)
ZLIB = "eventsourcing.compressor:ZlibCompressor"
SETTINGS = {
    "encrypted": {CIPHER_KEY_VARIABLE: KEY},
    "compressed": {COMPRESSOR_VARIABLE: ZLIB},
    "both": {CIPHER_KEY_VARIABLE: KEY, COMPRESSOR_VARIABLE: ZLIB},
}
RETIRED = {"done-1", "done-2", "secret"}


def _plain_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in (CIPHER_KEY_VARIABLE, COMPRESSOR_VARIABLE)
    }


def gs(data: Path, settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**_plain_env(), **settings},
    )


def ok(data: Path, settings: dict[str, str], *args: str) -> Any:
    done = gs(data, settings, "--json", *args)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture(params=sorted(SETTINGS))
def tenant(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A data directory whose tenant `acme` was written with the settings from its first
    event on, holding three finished runs and one in flight."""
    settings = SETTINGS[request.param]
    return written_with(tmp_path, settings), settings


def written_with(tmp_path: Path, settings: dict[str, str]) -> Path:
    """``tmp_path / "data"`` with tenant `acme` (owner ada, an admin) written through the
    CLI with ``settings`` from its first event on: three finished runs, one in flight."""
    data = tmp_path / "data"
    for command in (
        ["init"],
        ["account", "create", "ada@example.com", "--name", "Ada", "--level", "admin"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"],
    ):
        done = gs(data, settings, *command)
        assert done.returncode == 0, done.stderr
    source = tmp_path / "events.jsonl"
    source.write_text(_events())
    ok(data, settings, "ingest", str(source), "--tenant", "acme")
    return data


def _rows(data: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(data / "tenant-acme.db")
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def _stream_offsets(data: Path) -> set[int]:
    rows = _rows(data, "SELECT \"offset\" FROM _honker_stream WHERE topic = 'metagraph'")
    return {int(r[0]) for r in rows}


def _record(data: Path, settings: dict[str, str]) -> tuple[str, Retirement]:
    """The (only) retirement record: its raw payload, and its data read with the key."""
    ((payload,),) = _rows(
        data,
        "SELECT payload FROM _honker_stream WHERE topic = 'metagraph' AND payload ->> '$.type' = ?",
        RETIREMENT_TYPE,
    )
    env = {"HONKER_DBNAME": str(data / "tenant-acme.db")}
    env |= {"CIPHER_KEY": settings[CIPHER_KEY_VARIABLE]} if CIPHER_KEY_VARIABLE in settings else {}
    env |= {"COMPRESSOR_TOPIC": ZLIB} if COMPRESSOR_VARIABLE in settings else {}
    with TenantReader(env) as reader:
        record = retirement_of(decode(payload), reader.plain_state)
    assert record is not None
    return payload, record


def _runner(data: Path, settings: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), "--json", "projector", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_plain_env(), **settings},
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "projecting" in line, line + process.stderr.read()
    return process


def _stop(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    statuses: list[dict[str, Any]] = json.loads(out)
    return statuses


def _caught_up(data: Path, settings: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = ok(data, settings, "projector", "status", "--tenant", "acme")
        if all(s["position"] == s["head"] for s in statuses):
            return
        assert time.monotonic() < deadline, statuses
        time.sleep(0.3)


def test_a_pass_on_an_encrypted_or_compressed_tenant_is_followed_and_verified(
    tenant: tuple[Path, dict[str, str]],
) -> None:
    data, settings = tenant
    # every event is carried as data_b64: nothing of the runs' inputs in the stream
    plain = "SELECT count(*) FROM _honker_stream WHERE payload ->> '$.data' IS NOT NULL"
    assert _rows(data, plain) == [(0,)]
    runner = _runner(data, settings)  # the projections are the runner's, not the pass's
    try:
        _caught_up(data, settings)
        runs = ok(data, settings, "runs", "list", "--tenant", "acme", "--limit", "100")
        assert {r["run_id"] for r in runs} == RETIRED | {"flying"}
        assert MARK.encode() in (data / "tenant-acme.db").read_bytes() + _wal(data)  # the views
        before = _stream_offsets(data)

        ok(data, settings, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        done = ok(data, settings, "retention", "run", "--tenant", "acme")
        assert {r["run_id"] for r in done["runs"]} == RETIRED
        _caught_up(data, settings)
        runs = ok(data, settings, "runs", "list", "--tenant", "acme", "--limit", "100")
        assert {r["run_id"] for r in runs} == {"flying"}  # the runner dropped them
    finally:
        statuses = _stop(runner)
    assert all(s["state"] != "failed" and not s["parked"] for s in statuses), statuses

    # the record is encrypted/compressed like every event, and names what went
    payload, record = _record(data, settings)
    assert "data_b64" in payload and '"data"' not in payload
    assert "secret" not in payload and "done-1" not in payload
    assert set(record.runs) == RETIRED and record.reason == "policy"
    removed = {o for first, last in record.ranges for o in range(first, last + 1)}
    after = _stream_offsets(data)
    assert removed and removed <= before and not removed & after  # those rows are gone
    assert before - after == removed
    assert MARK.encode() not in (data / "tenant-acme.db").read_bytes() + _wal(data)

    # verify reads the record with the settings: the retired gap is no hole, the
    # projections equal a clean rebuild
    verified = gs(data, settings, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "projections equal a clean rebuild" in verified.stdout


def _wal(data: Path) -> bytes:
    wal = data / "tenant-acme.db-wal"
    return wal.read_bytes() if wal.exists() else b""


def _retire(data: Path, settings: dict[str, str]) -> None:
    ok(data, settings, "projector", "catch-up", "--tenant", "acme")
    ok(data, settings, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    done = ok(data, settings, "retention", "run", "--tenant", "acme")
    assert {r["run_id"] for r in done["runs"]} == RETIRED


def test_verify_without_the_settings_says_so_and_never_skips_the_record(
    tenant: tuple[Path, dict[str, str]],
) -> None:
    data, settings = tenant
    _retire(data, settings)
    blind = gs(data, {}, "--json", "verify", "--tenant", "acme")
    assert blind.returncode == 1, blind.stdout + blind.stderr
    problems = json.loads(blind.stdout)["problems"]
    assert [p["check"] for p in problems] == ["cipher"], problems
    assert "GRAPHSTORE_CIPHER_KEY" in problems[0]["todo"]
    assert "Traceback" not in blind.stderr and KEY not in blind.stdout + blind.stderr
    # a pass or an erasure without the settings: one line, exit 5, nothing written
    before = _stream_offsets(data)
    for command in (["retention", "run"], ["runs", "forget", "flying", "--abort"]):
        refused = gs(data, {}, *command, "--tenant", "acme")
        assert refused.returncode == ExitCode.STORAGE, refused.stdout + refused.stderr
        assert "GRAPHSTORE_CIPHER_KEY" in refused.stderr and "Traceback" not in refused.stderr
    assert _stream_offsets(data) == before
    if CIPHER_KEY_VARIABLE in settings:  # another key: said as such, the key never shown
        other = {**settings, CIPHER_KEY_VARIABLE: AESCipher.create_key(32)}
        wrong = gs(data, other, "--json", "verify", "--tenant", "acme")
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        problems = json.loads(wrong.stdout)["problems"]
        assert [p["check"] for p in problems] == ["cipher"], problems
        assert "another key" in problems[0]["what"]
        assert other[CIPHER_KEY_VARIABLE] not in wrong.stdout + wrong.stderr


def test_a_real_hole_on_an_encrypted_tenant_is_still_a_hole(
    tenant: tuple[Path, dict[str, str]],
) -> None:
    data, settings = tenant
    _retire(data, settings)
    _, record = _record(data, settings)
    assert record.ranges  # the retired gap, explained by the (encrypted) record
    present = _stream_offsets(data)
    # an entry no record removed, between two kept ones (the gap is the hole alone)
    hole = next(o for o in sorted(present) if {o - 1, o + 1} <= present)
    connection = sqlite3.connect(data / "tenant-acme.db")
    try:
        connection.execute('DELETE FROM _honker_stream WHERE "offset" = ?', [hole])
        connection.commit()
    finally:
        connection.close()
    damaged = gs(data, settings, "--json", "verify", "--tenant", "acme")
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    gaps = [p for p in json.loads(damaged.stdout)["problems"] if p["check"] == "gap"]
    assert len(gaps) == 1 and f"offsets {hole}" in gaps[0]["where"], gaps


def test_a_bad_key_is_refused_in_one_line_without_showing_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert gs(data, {}, "init").returncode == 0
    bad = "not-a-key-" + "x" * 20
    done = gs(data, {CIPHER_KEY_VARIABLE: bad}, "retention", "show", "--tenant", "acme")
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert CIPHER_KEY_VARIABLE in done.stderr and bad not in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_archive_of_an_encrypted_tenant_brings_a_run_back(
    tenant: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data, settings = tenant
    archive = tmp_path / "cold"
    ok(data, settings, "projector", "catch-up", "--tenant", "acme")
    exported = gs(data, settings, "runs", "export", "done-1", "--tenant", "acme").stdout
    assert exported.strip()
    ok(data, settings, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d",
       "--archive", str(archive))  # fmt: skip
    done = ok(data, settings, "retention", "run", "--tenant", "acme")
    assert {r["run_id"] for r in done["runs"]} == RETIRED
    _, record = _record(data, settings)
    assert record.archive  # the record names the archive it wrote first
    ok(data, settings, "archive", "verify", "--archive", str(archive))
    again = gs(data, settings, "runs", "export", "done-1", "--tenant", "acme")
    assert again.returncode == 0 and again.stdout == exported, again.stderr
    ok(
        data,
        settings,
        "archive",
        "restore",
        "done-1",
        "--tenant",
        "acme",
        "--archive",
        str(archive),
    )
    ok(data, settings, "projector", "catch-up", "--tenant", "acme")
    runs = ok(data, settings, "runs", "list", "--tenant", "acme", "--limit", "100")
    assert {r["run_id"] for r in runs} == {"done-1", "flying"}
    verified = gs(data, settings, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
