"""``graphstore archive list|verify|restore`` and ``runs show/export`` of an archived run,
as an operator types them (real processes, real files)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

import graphstore
from graphstore.archive import Archive
from tests.archive.conftest import Sample, make_tenant
from tests.cli.test_cli import gs


@pytest.fixture
def data(sample: Sample, tmp_path: Path) -> Path:
    """Tenant acme without its runs (as after retention) and beta; the runs archived in
    the data directory's default archive."""
    path = tmp_path / "data"
    make_tenant(path, ingest=False)
    done = gs(path, "tenant", "create", "beta", "--name", "Beta", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    Archive(path / "archive").write("acme", sample.runs)
    return path


def _head(data: Path, tenant: str) -> int:
    with graphstore.open(data) as store:
        return int(store.tenant(tenant).recorder.max_notification_id() or 0)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_list_and_verify_show_the_files(data: Path) -> None:
    listed = gs(data, "--json", "archive", "list")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["path"], entry["runs"]) == ("acme/2026-11.sqlite", 40)
    assert json.loads(gs(data, "--json", "archive", "list", "--tenant", "beta").stdout) == []
    human = gs(data, "archive", "list", "--tenant", "acme")
    assert "acme/2026-11.sqlite" in human.stdout and entry["digest"] in human.stdout
    verified = gs(data, "archive", "verify")
    assert verified.returncode == 0 and "40 runs, all verified" in verified.stdout


def test_restore_puts_the_run_back_audited_and_refuses_it_once_live(data: Path) -> None:
    done = gs(data, "archive", "restore", "run-004", "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert "restored run run-004 (failed) into acme" in done.stdout
    shown = gs(data, "runs", "show", "run-004", "--tenant", "acme")
    assert shown.returncode == 0 and "archived" not in shown.stdout + shown.stderr
    head = _head(data, "acme")
    again = gs(data, "archive", "restore", "run-004", "--tenant", "acme")
    assert again.returncode == 1
    assert "is live in acme" in _one_line(again.stderr)
    assert _head(data, "acme") == head
    audit = json.loads(gs(data, "--json", "audit", "--tenant", "acme").stdout)
    [record] = [a for a in audit if a["details"].get("what") == "call events ingested"]
    assert record["details"]["source"].startswith("archive ")
    assert "run run-004 (acme/2026-11.sqlite)" in record["details"]["source"]


def test_an_unknown_run_or_the_wrong_tenant_is_one_line_and_nothing_is_written(
    data: Path,
) -> None:
    heads = {tenant: _head(data, tenant) for tenant in ("acme", "beta")}
    unknown = gs(data, "archive", "restore", "run-999", "--tenant", "acme")
    assert unknown.returncode == 3
    assert "no run 'run-999' in tenant acme's archive" in _one_line(unknown.stderr)
    wrong = gs(data, "archive", "restore", "run-004", "--tenant", "beta")
    assert wrong.returncode == 3
    assert "beta's archive" in _one_line(wrong.stderr)
    absent = gs(data, "archive", "restore", "run-004", "--tenant", "gamma")
    assert absent.returncode == 3 and "no tenant 'gamma'" in _one_line(absent.stderr)
    assert {tenant: _head(data, tenant) for tenant in heads} == heads


@pytest.mark.parametrize("damage", ["flip-run", "flip-file", "truncate"])
def test_a_damaged_archive_file_is_one_line_and_nothing_is_written(data: Path, damage: str) -> None:
    path = data / "archive" / "acme" / "2026-11.sqlite"
    content = path.read_bytes()
    db = sqlite3.connect(path)
    [(body,)] = db.execute("SELECT body FROM runs WHERE run_id = 'run-040'").fetchall()
    db.close()
    at = {"flip-run": content.index(body) + 10, "flip-file": 100}.get(damage)
    if at is not None:  # a byte of run-040's body, or of the file's header
        path.write_bytes(content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :])
    else:
        path.write_bytes(content[:4096])
    head = _head(data, "acme")
    verified = gs(data, "archive", "verify")
    assert verified.returncode == 1
    assert "acme/2026-11.sqlite" in _one_line(verified.stderr)
    restored = gs(data, "archive", "restore", "run-040", "--tenant", "acme")
    assert restored.returncode == 1
    assert "is damaged" in _one_line(restored.stderr)
    if damage != "flip-file":  # a lookup checks the size and the run's own hash
        shown = gs(data, "runs", "show", "run-040", "--tenant", "acme")
        assert shown.returncode == 1 and "is damaged" in _one_line(shown.stderr)
    assert _head(data, "acme") == head
    assert path.read_bytes() != content  # still damaged: nothing repaired behind our back


def test_runs_show_and_export_answer_from_the_archive_and_say_so(
    data: Path, sample: Sample
) -> None:
    shown = gs(data, "runs", "show", "run-005", "--tenant", "acme")
    assert shown.returncode == 0, shown.stderr
    assert "run run-005 (archived)" in shown.stdout
    assert "is archived" in _one_line(shown.stderr)
    live = gs(sample.data, "runs", "show", "run-005", "--tenant", "acme")
    # The same call tree as when the run was live: every line after the title.
    assert shown.stdout.splitlines()[1:] == live.stdout.splitlines()[1:] and live.stdout
    as_json = json.loads(gs(data, "--json", "runs", "show", "run-005", "--tenant", "acme").stdout)
    assert as_json["archived"] is True and as_json["run"]["status"] == "completed"
    live_json = json.loads(
        gs(sample.data, "--json", "runs", "show", "run-005", "--tenant", "acme").stdout
    )

    def calls(shown: Any) -> list[dict[str, Any]]:  # less when the views wrote the rows
        return [
            {k: v for k, v in c.items() if k not in ("created_at", "updated_at")}
            for c in shown["calls"]
        ]

    assert calls(as_json) == calls(live_json) and as_json["calls"]
    exported = gs(data, "runs", "export", "run-005", "--tenant", "acme")
    assert exported.returncode == 0 and "archived" in exported.stderr
    original = gs(sample.data, "runs", "export", "run-005", "--tenant", "acme")
    assert exported.stdout == original.stdout and original.stdout
    [run] = [r for r in sample.runs if r.run_id == "run-005"]
    assert exported.stdout.encode() == b"".join(msgspec.json.encode(e) + b"\n" for e in run.events)
    missing = gs(data, "runs", "show", "run-999", "--tenant", "acme")
    assert missing.returncode == 3 and "no run 'run-999'" in _one_line(missing.stderr)


def test_archive_elsewhere_and_without_a_store(data: Path, tmp_path: Path) -> None:
    (data / "archive").rename(tmp_path / "cold")
    listed = gs(
        tmp_path / "nowhere", "--json", "archive", "list", "--archive", str(tmp_path / "cold")
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["runs"] == 40
    done = gs(
        data,
        "archive",
        "restore",
        "run-001",
        "--tenant",
        "acme",
        "--archive",
        str(tmp_path / "cold"),
    )
    assert done.returncode == 0, done.stderr


def test_a_key_that_may_not_operate_is_refused_and_nothing_is_written(data: Path) -> None:
    assert gs(data, "account", "create", "eve@example.com", "--name", "Eve").returncode == 0
    created = gs(data, "--json", "key", "create", "--account", "eve@example.com", "--name", "x")
    key = json.loads(created.stdout)["key"]
    head = _head(data, "acme")
    listed = gs(data, "--api-key", key, "archive", "list")
    assert listed.returncode == 4, listed.stderr
    _one_line(listed.stderr)
    restored = gs(data, "--api-key", key, "archive", "restore", "run-004", "--tenant", "acme")
    assert restored.returncode == 4, restored.stderr
    _one_line(restored.stderr)
    assert _head(data, "acme") == head
