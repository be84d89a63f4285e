"""``graphstore verify`` on real files: it passes on a healthy live directory (a writer
running), and finds each kind of damage with a clear message and a non-zero exit."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from graphstore.verify import verify
from streams.check import Gap, explained_by_ranges

ROOT = Path(__file__).resolve().parents[2]
GRAPHSTORE = str(Path(sys.executable).with_name("graphstore"))


def _verify_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRAPHSTORE, "--data-dir", str(data), "verify", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def _damage(data: Path, *statements: str) -> None:
    """Change the (closed) tenant file behind the store's back, as a disk or a hand would."""
    connection = sqlite3.connect(data / "tenant-acme.db")
    try:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()


def _problems(data: Path) -> list[dict[str, Any]]:
    done = _verify_cli(data, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    problems: list[dict[str, Any]] = report["problems"]
    assert all(p["what"] and p["where"] and p["todo"] for p in problems)
    return problems


_WRITER = """
import sys, time
from tests.nats._relay_worker import write
from graphstore.data import DataDirectory
with DataDirectory(sys.argv[1]) as data:
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        write(data, "acme", 50)
        print("wrote", flush=True)
"""


def test_verify_passes_on_a_healthy_directory_while_a_writer_writes(demo: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(demo), "60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        writer.stdout.readline()  # it is writing
        done = _verify_cli(demo)
        assert writer.poll() is None, "the writer must still be writing during verify"
    finally:
        writer.kill()
        writer.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify: OK" in done.stdout
    assert "tenant acme: head" in done.stdout and "metagraph@v1 at" in done.stdout


def test_a_payload_naming_another_tenant_is_found(demo: Path) -> None:
    _damage(
        demo,
        'UPDATE _honker_stream SET payload = replace(payload, \'"tenant":"acme"\', '
        '\'"tenant":"acmf"\') WHERE "offset" = 7',
    )
    problems = _problems(demo)
    assert any(p["check"] == "envelope" and "offsets 7" in p["where"] for p in problems)


def test_a_flipped_byte_in_an_event_s_data_is_found_by_the_projection_digest(demo: Path) -> None:
    # The call graph's description: "call protocol" -> "call protoco\x6d" (one bit).
    _damage(
        demo,
        "UPDATE _honker_stream SET payload = replace(payload, 'call protocol history', "
        "'call protocom history') WHERE payload ->> '$.type' = 'Graph.Created'",
    )
    problems = _problems(demo)
    assert any(p["check"] == "projection" and "metagraph@v1" in p["where"] for p in problems)


def test_a_deleted_index_row_is_found(demo: Path) -> None:
    _damage(demo, 'DELETE FROM es_metagraph_index WHERE "offset" = 10')
    problems = _problems(demo)
    assert any(
        p["check"] == "index" and "no row in its index" in p["what"] and "offsets 10" in p["where"]
        for p in problems
    )


def test_a_deleted_stream_entry_is_a_hole(demo: Path) -> None:
    _damage(demo, 'DELETE FROM _honker_stream WHERE "offset" = 20')
    problems = _problems(demo)
    assert any(p["check"] == "gap" and "offsets 20" in p["where"] for p in problems)
    assert any(p["check"] == "index" and "no entry" in p["what"] for p in problems)


def test_an_explained_gap_is_not_a_problem(demo: Path) -> None:
    _damage(demo, 'DELETE FROM es_metagraph_index WHERE "offset" = 20')
    _damage(demo, 'DELETE FROM _honker_stream WHERE "offset" = 20')
    explained = explained_by_ranges([(20, 20)])
    assert explained(Gap(20, 20)) and not explained(Gap(19, 20))
    report = verify(demo, tenants=["acme"], explained=explained)
    assert [p.check for p in report.problems if p.check == "gap"] == []


def test_a_tampered_projection_row_is_found(demo: Path) -> None:
    _damage(demo, "UPDATE flow_runs SET status = 'completed' WHERE id = 'run-004'")
    problems = _problems(demo)
    assert any(
        p["check"] == "projection" and "flowgraph@v1" in p["where"] and "flow_runs" in p["where"]
        for p in problems
    )


def test_a_corrupted_page_fails_the_integrity_check(demo: Path) -> None:
    path = demo / "tenant-acme.db"
    connection = sqlite3.connect(path)
    root, page_size = (
        connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = '_honker_stream_topic'"
        ).fetchone()[0],
        connection.execute("PRAGMA page_size").fetchone()[0],
    )
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    with path.open("r+b") as handle:  # garbage over the index root page's b-tree header
        handle.seek((root - 1) * page_size)
        handle.write(b"\x0a\xff\xff\xff\xff\xff\xff\xff")
    done = _verify_cli(demo)
    assert done.returncode == 1
    assert "[integrity]" in done.stdout or "[open]" in done.stdout, done.stdout
    assert "restore" in done.stdout


def test_verify_of_a_missing_directory_says_so(tmp_path: Path) -> None:
    done = _verify_cli(tmp_path / "nowhere")
    assert done.returncode == 3 and "no data directory" in done.stderr


def test_verify_of_the_demo_checks_every_file_and_finds_it_sound(demo: Path) -> None:
    report = verify(demo)  # how long it takes is a benchmark's business, not a test's
    assert report.ok, report.problems
    assert [f.name for f in report.files] == ["system.db", "tenant acme"]


def test_verify_backup_checks_the_manifest_s_hashes_and_the_backed_up_files(
    demo: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    done = subprocess.run(
        [GRAPHSTORE, "--data-dir", str(demo), "backup", str(backup)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    done = _verify_cli(demo, "--backup", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tenant acme: head 700" in done.stdout and "verify: OK (2 files" in done.stdout
    tenant_file = backup / "tenant-acme.db"
    data = bytearray(tenant_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    tenant_file.write_bytes(bytes(data))
    done = _verify_cli(demo, "--backup", str(backup))
    assert done.returncode == 1
    assert "[backup]" in done.stdout and "tenant-acme.db" in done.stdout


def test_with_an_api_key_only_an_admin_may_verify(demo: Path) -> None:
    from domain import Principal  # noqa: PLC0415
    from graphstore.data import DataDirectory  # noqa: PLC0415

    with DataDirectory(demo) as data:
        identity = data.identity
        admin = identity.create_account(
            "root@example.com", "Root", actor=Principal.system(), access_level="admin"
        )
        user = identity.create_account("joe@example.com", "Joe", actor=Principal.system())
        admin_key = identity.create_api_key(admin.id, name="cron", actor=Principal.system())
        user_key = identity.create_api_key(user.id, name="joe", actor=Principal.system())
    for secret, expected in ((admin_key.secret, 0), (user_key.secret, 4)):
        done = subprocess.run(
            [GRAPHSTORE, "--data-dir", str(demo), "--api-key", secret, "verify"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == expected, done.stdout + done.stderr
