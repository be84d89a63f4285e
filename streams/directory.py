"""Where a store's files live: one directory holding ``system.db`` and one
``tenant-<name>.db`` per tenant, and the environment that opens each of them with this
package's persistence module.

The layout lives here, with the files, so that everything above (the domain's
applications, the projectors, the façade) asks :class:`Directory` for a file's
environment instead of naming files and settings itself. Which tenants exist is not a
question of files: it is the registry in ``system.db`` (the domain's), never the names
of the files present.

A tenant's cipher and compressor are settings of this kind, so they are decided here,
once, for every writer and reader of the process: :data:`CIPHER_KEY_VARIABLE` and
:data:`COMPRESSOR_VARIABLE` in the process environment become eventsourcing's
``CIPHER_KEY`` and ``COMPRESSOR_TOPIC`` in every :meth:`Directory.tenant_env`
(:func:`tenant_settings_of`). The key lives only in the environment and in memory: no
file, log line, error or event carries it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from streams.errors import ConfigurationError

__all__ = [
    "CIPHER_KEY_VARIABLE",
    "COMPRESSOR_VARIABLE",
    "DEFAULT_SETTINGS",
    "PERSISTENCE_MODULE",
    "SYSTEM_FILE",
    "TENANT_FILE_PREFIX",
    "TENANT_FILE_SUFFIX",
    "Directory",
    "tenant_settings_of",
]

SYSTEM_FILE: Final = "system.db"
TENANT_FILE_PREFIX: Final = "tenant-"
TENANT_FILE_SUFFIX: Final = ".db"
PERSISTENCE_MODULE: Final = "streams.persistence"
"""The eventsourcing persistence module the environments select."""

DEFAULT_SETTINGS: Final = {"HONKER_SNAPSHOTS": "latest"}
"""Persistence settings every file gets unless ``settings`` says otherwise: a graph's
snapshot holds its whole index, so only each aggregate's newest is kept."""

CIPHER_KEY_VARIABLE: Final = "GRAPHSTORE_CIPHER_KEY"
"""The process environment variable holding the tenants' AES key (standard base64 of 16,
24 or 32 bytes, as ``eventsourcing.cipher.AESCipher.create_key`` makes): every tenant
file's events are then encrypted (eventsourcing's ``CIPHER_KEY``)."""

COMPRESSOR_VARIABLE: Final = "GRAPHSTORE_COMPRESSOR_TOPIC"
"""The process environment variable naming the tenants' compressor (eventsourcing's
``COMPRESSOR_TOPIC``, e.g. ``eventsourcing.compressor:ZlibCompressor``)."""


def tenant_settings_of(environ: Mapping[str, str]) -> dict[str, str]:
    """The cipher and compressor settings of tenant files that ``environ`` (a process
    environment) asks for: ``CIPHER_KEY`` and ``COMPRESSOR_TOPIC``, each present only
    when its variable is set and not empty.

    A key that is not base64 of 16, 24 or 32 bytes is refused here with a
    :class:`ConfigurationError` that names the variable, never its value.
    """
    settings: dict[str, str] = {}
    key = environ.get(CIPHER_KEY_VARIABLE, "").strip()
    if key:
        try:
            size = len(base64.b64decode(key, validate=True))
        except (binascii.Error, ValueError):
            size = -1
        if size not in (16, 24, 32):
            raise ConfigurationError(
                f"{CIPHER_KEY_VARIABLE} is not an AES key (standard base64 of 16, 24 or 32 "
                "bytes): make one with `python -c 'from eventsourcing.cipher import "
                "AESCipher; print(AESCipher.create_key(32))'` and keep it out of files"
            )
        settings["CIPHER_KEY"] = key
    compressor = environ.get(COMPRESSOR_VARIABLE, "").strip()
    if compressor:
        settings["COMPRESSOR_TOPIC"] = compressor
    return settings


class Directory:
    """A directory of store files, created if missing.

    ``settings`` are extra persistence settings given to every file's application (e.g.
    ``{"HONKER_SYNCHRONOUS": "FULL"}``); the file and the module are always this
    directory's. Tenant files also get the cipher and compressor the process environment
    names (:func:`tenant_settings_of`, read when the directory is made), unless
    ``settings`` sets them itself; ``system.db`` never does.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settings: Mapping[str, str] | None = None,
        persistence_module: str = PERSISTENCE_MODULE,
        create: bool = True,
    ) -> None:
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(
                f"data directory {str(directory)!r} is not a directory; pass a directory "
                "(it is created if missing)"
            )
        if not directory.exists():
            if not create:
                raise FileNotFoundError(
                    f"data directory {str(directory)!r} does not exist; create it, or pass "
                    "create=True"
                )
            directory.mkdir(parents=True, exist_ok=True)
        self.path = directory.resolve()
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.tenant_settings = tenant_settings_of(os.environ)
        """The tenants' cipher and compressor settings (:func:`tenant_settings_of`)."""
        self.persistence_module = persistence_module

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def system_path(self) -> Path:
        """``<dir>/system.db``: identity, the tenant registry, system-scope types."""
        return self.path / SYSTEM_FILE

    def tenant_path(self, name: str) -> Path:
        """``<dir>/tenant-<name>.db``. ``name`` must be one plain file-name part (the
        domain's org-id rule is stricter; this is the last guard against a path that
        leaves the directory)."""
        if (
            not isinstance(name, str)
            or not name
            or name in (".", "..")
            or any(c in name for c in "/\\\0")
        ):
            raise ConfigurationError(
                f"invalid tenant name {name!r}: use one plain file-name part (no separator, "
                "no '..', not empty)"
            )
        path = self.path / f"{TENANT_FILE_PREFIX}{name}{TENANT_FILE_SUFFIX}"
        if path.parent != self.path:  # pragma: no cover - the check above makes it impossible
            raise AssertionError(f"tenant path {path} escapes {self.path}")
        return path

    def tenant_name(self, file_name: str) -> str | None:
        """The tenant name of a file name of this layout, or None for any other file."""
        if file_name.startswith(TENANT_FILE_PREFIX) and file_name.endswith(TENANT_FILE_SUFFIX):
            return file_name[len(TENANT_FILE_PREFIX) : -len(TENANT_FILE_SUFFIX)] or None
        return None

    def system_env(self) -> dict[str, str]:
        """The environment of an application on ``system.db``."""
        return self.env_of(self.system_path)

    def tenant_env(self, name: str) -> dict[str, str]:
        """The environment of an application (or a reader) on the tenant file of
        ``name``, with the tenants' cipher and compressor settings."""
        return {**self.tenant_settings, **self.env_of(self.tenant_path(name))}

    def env_of(self, path: Path) -> dict[str, str]:
        """The environment of an application on ``path`` (a file of this directory)."""
        return {
            **self.settings,
            "PERSISTENCE_MODULE": self.persistence_module,
            "HONKER_DBNAME": str(path),
        }
