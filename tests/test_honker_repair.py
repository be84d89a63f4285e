"""The repair of Honker's bundled SQLite for glibc < 2.38 (bootstrap/honker_repair.py)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bootstrap import honker_repair

SITE = Path(sysconfig.get_paths()["purelib"])
LIBRARIES = honker_repair.find_bundled_sqlite(SITE)
old_glibc = honker_repair.needs_repair()

LOAD = "import ctypes, sys; ctypes.CDLL(sys.argv[1]); print('loaded')"


def _load(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOAD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_only_glibc_older_than_2_38_needs_the_repair() -> None:
    assert honker_repair.needs_repair((2, 36))
    assert honker_repair.needs_repair((2, 37))
    assert not honker_repair.needs_repair((2, 38))
    assert not honker_repair.needs_repair((3, 0))


def _unrepaired_copy(tmp_path: Path) -> Path:
    """Undo the two edits on a copy of the installed (repaired) library."""
    copy = tmp_path / LIBRARIES[0].name
    shutil.copy(LIBRARIES[0], copy)
    patch = honker_repair.plan_patch(copy)
    assert patch.vernaux_flags_offset is not None and patch.required_index is not None
    with copy.open("r+b") as f:
        f.seek(patch.vernaux_flags_offset)
        f.write(struct.pack("<H", patch.vernaux_flags & ~0x2))
        for offset in patch.versym_offsets:
            f.seek(offset)
            f.write(struct.pack("<H", patch.required_index))
    return copy


@pytest.mark.skipif(not LIBRARIES, reason="honker wheel bundles no libsqlite3 here")
def test_installed_library_is_repaired_where_needed_and_untouched_elsewhere() -> None:
    patch = honker_repair.plan_patch(LIBRARIES[0])
    assert patch.applied is old_glibc


@pytest.mark.skipif(not old_glibc, reason="this host's glibc is >= 2.38: no repair applies")
def test_repair_makes_the_unrepaired_library_load_and_is_idempotent(tmp_path: Path) -> None:
    copy = _unrepaired_copy(tmp_path)
    assert not honker_repair.plan_patch(copy).applied
    refused = _load(copy)
    assert refused.returncode != 0 and "GLIBC_2.38" in refused.stderr

    assert honker_repair.repair(copy) is True
    assert honker_repair.plan_patch(copy).applied
    assert _load(copy).stdout.strip() == "loaded"
    before = copy.read_bytes()
    assert honker_repair.repair(copy) is False
    assert copy.read_bytes() == before


@pytest.mark.skipif(not LIBRARIES, reason="honker wheel bundles no libsqlite3 here")
def test_repair_changes_only_the_two_version_fields(tmp_path: Path) -> None:
    copy = _unrepaired_copy(tmp_path)
    original = copy.read_bytes()
    honker_repair.repair(copy)
    repaired = copy.read_bytes()
    changed = [i for i, (a, b) in enumerate(zip(original, repaired, strict=True)) if a != b]
    patch = honker_repair.plan_patch(copy)
    allowed = {patch.vernaux_flags_offset, patch.vernaux_flags_offset + 1}  # type: ignore[operator]
    for offset in patch.versym_offsets:
        allowed |= {offset, offset + 1}
    assert changed and set(changed) <= allowed


def test_a_library_without_the_requirement_is_refused_with_a_reason(tmp_path: Path) -> None:
    other = Path(sys.executable).resolve()
    with pytest.raises(honker_repair.RepairError, match=r"nothing to repair|GLIBC_2\.38"):
        honker_repair.plan_patch(other)
