"""Make Honker 0.5.0's bundled SQLite load on glibc older than 2.38.

Honker 0.5.0 ships only ``manylinux_2_38`` wheels. Its native module needs glibc
2.34, but the bundled ``libsqlite3-*.so.0`` asks for ``GLIBC_2.38`` for one symbol,
``fmod`` (glibc 2.38 added a new ``fmod@GLIBC_2.38`` version; older glibc exports the
same function as the default ``fmod``). The loader refuses the library twice over:

1. the ``.gnu.version_r`` entry requiring ``GLIBC_2.38`` from ``libm.so.6``, and
2. the versioned ``fmod@GLIBC_2.38`` reference in ``.dynsym``.

The repair fixes both, in place, with byte edits located by ``pyelftools``:

1. set ``VER_FLG_WEAK`` on that version requirement, so a missing version is a
   warning, not a fatal error;
2. set the ``fmod`` symbol's ``.gnu.version`` entry to 1 (``VER_NDX_GLOBAL``), so it
   binds to the unversioned default ``fmod`` that every glibc exports.

SQLite 3.45.1, as Honker built it, is kept. The repair is idempotent, runs only where
``gnu_get_libc_version()`` is below 2.38, and is a no-op elsewhere.

Run it as ``python bootstrap/honker_repair.py [site-packages dir]``; exit code 0 means
Honker imports, 1 means it could not be repaired (the message says what to do).
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

__all__ = [
    "BYTES_PATCHED",
    "LibraryPatch",
    "RepairError",
    "find_bundled_sqlite",
    "glibc_version",
    "needs_repair",
    "plan_patch",
    "repair",
]

_VER_FLG_WEAK = 0x2
_VER_NDX_GLOBAL = 1
_REQUIRED = "GLIBC_2.38"
_SYMBOL = "fmod"
BYTES_PATCHED = 2  # both edits write a 2-byte little-endian half-word


class RepairError(Exception):
    """The bundled SQLite could not be repaired; the message says what to do."""


@dataclass(frozen=True)
class LibraryPatch:
    """Where the two edits go, and whether each is already in place."""

    path: Path
    vernaux_flags_offset: int | None  # file offset of vna_flags for GLIBC_2.38
    vernaux_flags: int
    versym_offsets: tuple[int, ...]  # file offsets of .gnu.version entries of fmod
    versym_values: tuple[int, ...]
    required_index: int | None  # the version index GLIBC_2.38 has in this library

    @property
    def applied(self) -> bool:
        weak = self.vernaux_flags_offset is None or bool(self.vernaux_flags & _VER_FLG_WEAK)
        unversioned = all(v == _VER_NDX_GLOBAL for v in self.versym_values)
        return weak and unversioned


def glibc_version() -> tuple[int, int] | None:
    """The running glibc's (major, minor), or None on a libc that is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_char_p
    raw = fn().decode()
    major, minor = raw.split(".")[:2]
    return int(major), int(minor)


def needs_repair(version: tuple[int, int] | None = None) -> bool:
    """True only on glibc older than 2.38; musl and newer glibc need nothing."""
    version = glibc_version() if version is None else version
    return version is not None and version < (2, 38)


def find_bundled_sqlite(site_packages: Path) -> list[Path]:
    """Every SQLite library the Honker wheel bundles under ``honker.libs``."""
    return sorted((site_packages / "honker.libs").glob("libsqlite3*.so*"))


def _symbol_indexes(elf: object, name: str) -> Iterator[int]:
    dynsym = elf.get_section_by_name(".dynsym")  # type: ignore[attr-defined]
    for index, symbol in enumerate(dynsym.iter_symbols()):
        if symbol.name == name:
            yield index


def plan_patch(path: Path) -> LibraryPatch:
    """Locate the version requirement and the symbol-version entries to edit."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        if elf.little_endian is not True:
            raise RepairError(f"{path}: expected a little-endian ELF library")
        verneed = elf.get_section_by_name(".gnu.version_r")
        versym = elf.get_section_by_name(".gnu.version")
        if verneed is None or versym is None:
            raise RepairError(f"{path}: no symbol versioning sections; nothing to repair")

        flags_offset: int | None = None
        flags = 0
        required_index: int | None = None
        # Walk the raw Elf64_Verneed / Elf64_Vernaux chains to get file offsets.
        base = verneed["sh_offset"]
        data = verneed.data()
        need = 0
        strtab = elf.get_section(verneed["sh_link"])
        while True:
            _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", data, need)
            at = need + aux
            for _ in range(cnt):
                _hash, vflags, other, name, aux_next = struct.unpack_from("<IHHII", data, at)
                if strtab.get_string(name) == _REQUIRED:
                    flags_offset, flags, required_index = base + at + 4, vflags, other
                at += aux_next
            if nxt == 0:
                break
            need += nxt

        offsets: list[int] = []
        values: list[int] = []
        for index in _symbol_indexes(elf, _SYMBOL):
            offset = versym["sh_offset"] + 2 * index
            f.seek(offset)
            (value,) = struct.unpack("<H", f.read(2))
            # Only touch the reference that asks for GLIBC_2.38 (or one already patched).
            if value & 0x7FFF in {required_index, _VER_NDX_GLOBAL}:
                offsets.append(offset)
                values.append(value)
    if flags_offset is None and not offsets:
        raise RepairError(f"{path}: does not require {_REQUIRED}; nothing to repair")
    return LibraryPatch(path, flags_offset, flags, tuple(offsets), tuple(values), required_index)


def _write_half(f: object, offset: int, value: int) -> None:
    f.seek(offset)  # type: ignore[attr-defined]
    f.write(struct.pack("<H", value))  # type: ignore[attr-defined]


def repair(path: Path) -> bool:
    """Patch one library in place; return True if it changed, False if already done."""
    patch = plan_patch(path)
    if patch.applied:
        return False
    tmp = path.with_name(path.name + ".repairing")
    tmp.write_bytes(path.read_bytes())
    with tmp.open("r+b") as f:
        if patch.vernaux_flags_offset is not None:
            _write_half(f, patch.vernaux_flags_offset, patch.vernaux_flags | _VER_FLG_WEAK)
        for offset in patch.versym_offsets:
            _write_half(f, offset, _VER_NDX_GLOBAL)
    os.chmod(tmp, path.stat().st_mode)
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new file, never half
    return True


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def main(argv: list[str]) -> int:
    site = Path(argv[1]) if len(argv) > 1 else _site_packages()
    if not needs_repair():
        print(f"honker-repair: glibc {glibc_version()} needs no repair")
        return 0
    libraries = find_bundled_sqlite(site)
    if not libraries:
        print(
            f"honker-repair: no honker.libs/libsqlite3*.so* under {site}. Install the "
            "honker 0.5.0 wheel first (see bootstrap/setup.sh), then run this again.",
            file=sys.stderr,
        )
        return 1
    try:
        for library in libraries:
            changed = repair(library)
            print(f"honker-repair: {library.name}: {'patched' if changed else 'already patched'}")
    except (RepairError, OSError) as exc:
        print(
            f"honker-repair: {exc}. Reinstall honker==0.5.0 and retry, or replace the "
            "library with the system libsqlite3.so.0 (see README, 'Honker on old glibc').",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
