"""A damaged or foreign backup makes restore refuse with one clear line and an exit
code, and write nothing: a flipped byte, a truncated file, a missing file, a manifest
that does not match, a backup from a newer format (docs/backup.md, "When restore
refuses")."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from graphstore.backup import check_backup, read_manifest
from streams.snapshot import FORMAT_VERSION
from tests.backup.conftest import build_source, gs


@pytest.fixture(scope="module")
def good_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    source = build_source(root / "data", runs=20)
    done = gs("--data-dir", str(source.data), "backup", str(root / "backup"))
    assert done.returncode == 0, done.stderr
    return root / "backup"


def _copy(good: Path, tmp_path: Path) -> Path:
    backup = tmp_path / "backup"
    shutil.copytree(good, backup)
    subprocess.run(["chmod", "-R", "u+w", str(backup)], check=True)
    return backup


def _flip_byte(backup: Path) -> None:
    path = backup / "tenant-acme.db"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(backup: Path) -> None:
    path = backup / "tenant-acme.db"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _remove_file(backup: Path) -> None:
    (backup / "tenant-beta.db").unlink()


def _edit_manifest(change: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def edit(backup: Path) -> None:
        path = backup / "manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return edit


def _wrong_head(manifest: dict[str, object]) -> None:
    files = manifest["files"]
    assert isinstance(files, list)
    files[1]["head"] += 1


def _wrong_sha(manifest: dict[str, object]) -> None:
    files = manifest["files"]
    assert isinstance(files, list)
    files[2]["sha256"] = "0" * 64


def _newer_format(manifest: dict[str, object]) -> None:
    manifest["formatVersion"] = FORMAT_VERSION + 1


def _not_json(backup: Path) -> None:
    (backup / "manifest.json").write_text('{"formatVersion": 1, "files": [')


CASES = {
    "flipped byte": (_flip_byte, "tenant-acme.db: SHA-256 differs from the manifest's"),
    "truncated file": (_truncate, "tenant-acme.db: is "),
    "missing file": (_remove_file, "tenant-beta.db: missing from the backup directory"),
    "manifest head": (_edit_manifest(_wrong_head), "the manifest says"),
    "manifest hash": (_edit_manifest(_wrong_sha), "tenant-beta.db: SHA-256 differs"),
    "newer format": (_edit_manifest(_newer_format), "made by a newer graphstore"),
    "manifest not json": (_not_json, "is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_refuses_a_bad_backup_and_writes_nothing(
    case: str, good_backup: Path, tmp_path: Path
) -> None:
    damage, message = CASES[case]
    backup = _copy(good_backup, tmp_path)
    damage(backup)
    target = tmp_path / "restored"
    done = gs("restore", str(backup), "--data-dir", str(target))
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup"]  # no staging left
    # The same finding through the API (what `graphstore verify --backup` reads).
    assert check_backup(backup), "check_backup found nothing wrong"


def test_a_good_copy_of_the_backup_passes_every_check(good_backup: Path, tmp_path: Path) -> None:
    backup = _copy(good_backup, tmp_path)
    assert check_backup(backup) == []
    assert read_manifest(backup).tenants == ["acme", "beta"]


def test_a_bad_backup_replaces_nothing(good_backup: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = build_source(data, runs=3)
    backup = _copy(good_backup, tmp_path)
    _flip_byte(backup)
    before = {p.name: p.read_bytes() for p in source.data.iterdir()}
    done = gs("restore", str(backup), "--data-dir", str(data), "--tenant", "acme", "--replace")
    assert done.returncode == 1 and "SHA-256 differs" in done.stderr
    assert {p.name: p.read_bytes() for p in source.data.iterdir()} == before


def test_a_missing_backup_directory_is_not_found(tmp_path: Path) -> None:
    done = gs("restore", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "new"))
    assert done.returncode == 3 and "no backup directory at" in done.stderr
    assert not (tmp_path / "new").exists()


def test_an_incremental_backup_refuses_a_damaged_previous_one(tmp_path: Path) -> None:
    source = build_source(tmp_path / "data", runs=3)
    previous = tmp_path / "previous"
    assert gs("--data-dir", str(source.data), "backup", str(previous)).returncode == 0
    subprocess.run(["chmod", "-R", "u+w", str(previous)], check=True)
    beta = previous / "tenant-beta.db"  # unchanged in the source: it would be reused
    data = bytearray(beta.read_bytes())
    data[len(data) // 2] ^= 0x01
    beta.write_bytes(bytes(data))
    dest = tmp_path / "next"
    done = gs("--data-dir", str(source.data), "backup", str(dest), "--since", str(previous))
    assert done.returncode == 1 and "no longer matches its manifest" in done.stderr
    assert not dest.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    _truncate(previous)
    done = gs("--data-dir", str(source.data), "backup", str(dest), "--since", str(previous))
    assert done.returncode == 1 and "is damaged" in done.stderr
    assert not dest.exists()
