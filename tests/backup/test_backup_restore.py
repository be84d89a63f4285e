"""`graphstore backup` and `graphstore restore` as a user types them (docs/backup.md):
real processes on real files, the manifest checked against the files, and the restored
store working (keys, projections, the server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from graphstore.backup import RELAY_CONSUMER, check_backup, read_manifest
from graphstore.nats.relay import DEFAULT_CONSUMER
from streams.snapshot import FORMAT_VERSION, file_sha256
from tests.backup.conftest import Source, gs, helper, store_files, stream_rows
from tests.http.conftest import free_port


def test_the_backup_names_the_relay_consumer_the_relay_uses() -> None:
    assert RELAY_CONSUMER == DEFAULT_CONSUMER


def test_a_backup_holds_every_file_as_of_its_manifest(source: Source, tmp_path: Path) -> None:
    dest = tmp_path / "backup-1"
    done = gs("--data-dir", str(source.data), "--json", "backup", str(dest))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["path"] == str(dest)

    manifest = read_manifest(dest)
    assert manifest.format_version == FORMAT_VERSION
    assert manifest.seconds > 0 and manifest.created.endswith("+00:00")
    assert [(f.org, f.file) for f in manifest.files] == [
        (None, "system.db"),
        ("acme", "tenant-acme.db"),
        ("beta", "tenant-beta.db"),
    ]
    assert sorted(p.name for p in dest.iterdir()) == [
        "manifest.json",
        "system.db",
        "tenant-acme.db",
        "tenant-beta.db",
    ]
    for entry in manifest.files:
        assert entry.path == dest / entry.file
        assert entry.size == entry.path.stat().st_size
        assert entry.sha256 == file_sha256(entry.path)
        assert entry.relay_position is None  # never relayed
        rows = stream_rows(entry.path)
        main = "identity" if entry.org is None else "metagraph"
        assert entry.head == max(o for o, topic, _ in rows if topic == main)
        # The source holds the same entries up to the head (then the backup's audit).
        assert rows == stream_rows(source.data / entry.file, upto=entry.head)
    assert check_backup(dest) == []
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_restore_gives_a_store_where_keys_projections_and_the_server_work(
    source: Source, tmp_path: Path
) -> None:
    backup, new = tmp_path / "backup", tmp_path / "restored"
    assert gs("--data-dir", str(source.data), "projector", "catch-up").returncode == 0
    assert gs("--data-dir", str(source.data), "backup", str(backup)).returncode == 0
    done = gs("restore", str(backup), "--data-dir", str(new))
    assert done.returncode == 0, done.stderr
    assert "restored tenant acme: head" in done.stdout
    assert "projections are restored with their tables and positions" in done.stdout
    assert store_files(new) == ["system.db", "tenant-acme.db", "tenant-beta.db"]
    for name in store_files(new):
        assert stream_rows(new / name) == stream_rows(backup / name)

    # API keys authenticate; the owner reads runs, the outsider is refused.
    listing = ("runs", "list", "--tenant", "acme", "--limit", "100")
    runs = gs("--data-dir", str(new), "--json", *listing, key=source.ada)
    assert runs.returncode == 0, runs.stderr
    assert len(json.loads(runs.stdout)) == 60
    refused = gs("--data-dir", str(new), "runs", "list", "--tenant", "acme", key=source.eve)
    assert refused.returncode == 4
    # Projections: restored at the head, with the data they were made from.
    status = gs("--data-dir", str(new), "--json", "projector", "status", "--tenant", "acme")
    positions = {s["projector"]: (s["position"], s["head"]) for s in json.loads(status.stdout)}
    assert positions and all(pos == head for pos, head in positions.values()), positions

    # graphstore serve answers with the restored keys.
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "graphstore", "--data-dir", str(new), "serve", "--port", str(port)],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/tenants/acme/ops/graphstore.runs.list"
        query = {"limit": 100}
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(
                    url, json=query, headers={"Authorization": f"Bearer {source.ada}"}, timeout=5
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["runs"]) == 60
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
        log.close()


def test_only_the_operator_or_an_admin_may_back_up_and_it_is_audited(
    source: Source, tmp_path: Path
) -> None:
    refused = gs("--data-dir", str(source.data), "backup", str(tmp_path / "b0"), key=source.eve)
    assert refused.returncode == 4, refused.stderr
    assert "may not back up the store" in refused.stderr
    assert not (tmp_path / "b0").exists()

    done = gs("--data-dir", str(source.data), "backup", str(tmp_path / "b1"), key=source.ada)
    assert done.returncode == 0, done.stderr
    audit = gs("--data-dir", str(source.data), "--json", "audit")
    entries = json.loads(audit.stdout)
    actions = [e["action"] for e in entries]
    assert "access.denied" in actions
    taken = [e for e in entries if e["action"] == "store.operation"]
    assert len(taken) == 1 and taken[0]["details"]["what"] == "backup"
    assert taken[0]["details"]["details"]["dest"] == str(tmp_path / "b1")


def test_an_incremental_backup_reuses_unmoved_tenants_and_restores_on_its_own(
    source: Source, tmp_path: Path
) -> None:
    first, second, third = tmp_path / "b1", tmp_path / "b2", tmp_path / "b3"
    assert gs("--data-dir", str(source.data), "backup", str(first)).returncode == 0
    helper("build-more", str(source.data), "acme", "3")
    done = gs("--data-dir", str(source.data), "backup", str(second), "--since", str(first))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(second)
    reused = {f.org: f.reused for f in manifest.files}
    assert reused == {None: False, "acme": False, "beta": True}
    beta_before, beta_after = first / "tenant-beta.db", second / "tenant-beta.db"
    assert beta_after.stat().st_ino == beta_before.stat().st_ino  # same filesystem: a link
    assert read_manifest(second).file_of("acme").head > read_manifest(first).file_of("acme").head

    # Nothing moved: every tenant is reused.
    assert gs("--data-dir", str(source.data), "backup", str(third), "--since", str(second))
    assert {f.org: f.reused for f in read_manifest(third).files} == {
        None: False,
        "acme": True,
        "beta": True,
    }
    # Each directory restores on its own, the earlier ones gone.
    for gone in (first, second):
        subprocess.run(["chmod", "-R", "u+w", str(gone)], check=True)
        subprocess.run(["rm", "-rf", str(gone)], check=True)
    assert check_backup(third) == []
    new = tmp_path / "restored"
    assert gs("restore", str(third), "--data-dir", str(new)).returncode == 0
    for name in ("tenant-acme.db", "tenant-beta.db"):
        assert stream_rows(new / name) == stream_rows(source.data / name)


def test_a_backup_is_never_written_over_a_directory_and_a_partial_one_is_no_backup(
    source: Source, tmp_path: Path
) -> None:
    dest = tmp_path / "exists"
    dest.mkdir()
    refused = gs("--data-dir", str(source.data), "backup", str(dest))
    assert refused.returncode == 1 and "exists" in refused.stderr
    assert list(dest.iterdir()) == []
    # A partial directory (a run that was killed) is refused as a source.
    assert gs("--data-dir", str(source.data), "backup", str(tmp_path / "good")).returncode == 0
    partial = tmp_path / ".good.partial-0000"
    subprocess.run(["cp", "-a", str(tmp_path / "good"), str(partial)], check=True)
    done = gs("restore", str(partial), "--data-dir", str(tmp_path / "new"))
    assert done.returncode == 1 and "unfinished backup" in done.stderr
    assert not (tmp_path / "new").exists()


def test_restore_refuses_a_directory_that_holds_a_store(source: Source, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    assert gs("--data-dir", str(source.data), "backup", str(backup)).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in source.data.iterdir()}
    done = gs("restore", str(backup), "--data-dir", str(source.data))
    assert done.returncode == 1
    assert "holds a store" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in source.data.iterdir()} == before


def test_replacing_one_tenant_waits_for_its_writers_to_stop_and_says_what_it_replaced(
    source: Source, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    assert gs("--data-dir", str(source.data), "backup", str(backup)).returncode == 0
    old_head = read_manifest(backup).file_of("acme").head
    helper("build-more", str(source.data), "acme", "2")
    acme = source.data / "tenant-acme.db"
    newer = stream_rows(acme)
    assert newer[-1][0] > old_head

    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.backup._store", "hold", str(acme)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        args = ("restore", str(backup), "--data-dir", str(source.data), "--tenant", "acme")
        busy = gs(*args, "--replace")
        assert busy.returncode == 1 and "open in another process" in busy.stderr
        assert stream_rows(acme) == newer
    finally:
        holder.kill()
        holder.wait()
    not_admin = gs(*args, "--replace", key=source.eve)
    assert not_admin.returncode == 4 and "may not replace tenant files" in not_admin.stderr
    assert stream_rows(acme) == newer
    done = gs(*args, "--replace", key=source.ada)
    assert done.returncode == 0, done.stderr
    assert f"replaced tenant acme: it was at head {newer[-1][0]}" in done.stdout
    kept = [p for p in source.data.iterdir() if p.name.startswith("tenant-acme.db.replaced-")]
    assert len(kept) == 1 and stream_rows(kept[0]) == newer
    assert stream_rows(acme) == stream_rows(backup / "tenant-acme.db")
    assert not (source.data / "tenant-acme.db-wal").exists()
    audit = json.loads(gs("--data-dir", str(source.data), "--json", "audit").stdout)
    replaced = [e for e in audit if e["action"] == "store.operation"]
    assert [e["details"]["what"] for e in replaced] == ["backup", "restore --replace"]
    # The store opens and the replaced tenant reads as of the backup.
    caught_up = gs("--data-dir", str(source.data), "projector", "catch-up", "--tenant", "acme")
    assert caught_up.returncode == 0, caught_up.stderr
    listing = ("runs", "list", "--tenant", "acme", "--limit", "100")
    runs = gs("--data-dir", str(source.data), "--json", *listing)
    assert runs.returncode == 0, runs.stderr
    assert len(json.loads(runs.stdout)) == 60  # 62 before the replace
    # Without --replace, or into a store without the tenant, it is refused.
    no_replace = gs(*args)
    assert no_replace.returncode == 1 and "holds a store" in no_replace.stderr


def test_restoring_some_tenants_names_the_ones_left_out(source: Source, tmp_path: Path) -> None:
    backup, new = tmp_path / "backup", tmp_path / "restored"
    assert gs("--data-dir", str(source.data), "backup", str(backup)).returncode == 0
    done = gs("restore", str(backup), "--data-dir", str(new), "--tenant", "beta")
    assert done.returncode == 0, done.stderr
    assert store_files(new) == ["system.db", "tenant-beta.db"]
    assert "tenants registered but not restored: acme" in done.stdout
    # The one left out comes back on its own, into the running store's directory.
    again = gs("restore", str(backup), "--data-dir", str(new), "--tenant", "acme", "--replace")
    assert again.returncode == 0, again.stderr
    assert stream_rows(new / "tenant-acme.db") == stream_rows(backup / "tenant-acme.db")


def test_restore_options_that_do_not_go_together_are_a_usage_error(tmp_path: Path) -> None:
    new = str(tmp_path / "new")
    assert gs("restore", "--data-dir", new).returncode == 2  # no backup, no --nats
    assert gs("restore", "b", "--data-dir", new, "--until-offset", "5").returncode == 2
    both = ("--until-offset", "5", "--until-time", "2026-12-06T00:00:00")
    assert gs("restore", "--nats", "nats://127.0.0.1:1", "--tenant", "a", *both).returncode == 2
    assert gs("restore", "--nats", "nats://127.0.0.1:1", "--data-dir", new).returncode == 2
    bad_time = gs("restore", "--nats", "nats://x", "--tenant", "a", "--until-time", "soon")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
    assert not (tmp_path / "new").exists()


def test_a_vacuum_into_backup_restores_the_same_streams(source: Source, tmp_path: Path) -> None:
    backup, new = tmp_path / "backup", tmp_path / "restored"
    done = gs("--data-dir", str(source.data), "backup", str(backup), "--method", "vacuum")
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(backup)
    assert manifest.method == "vacuum" and check_backup(backup) == []
    assert gs("restore", str(backup), "--data-dir", str(new)).returncode == 0
    for entry in manifest.files:
        assert stream_rows(new / entry.file) == stream_rows(
            source.data / entry.file, upto=entry.head
        )
    assert gs("--data-dir", str(source.data), "backup", "b2", "--method", "copy").returncode == 2


def test_backing_up_a_directory_without_a_store_is_not_found(tmp_path: Path) -> None:
    done = gs("--data-dir", str(tmp_path / "nothing"), "backup", str(tmp_path / "b"))
    assert done.returncode == 3 and "no store in" in done.stderr
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "b").exists()
