"""Where a store's files live: one directory holding ``system.db`` and one
``tenant-<name>.db`` per tenant, and the environment that opens each of them with this
package's persistence module.

The layout lives here, with the files, so that everything above (the domain's
applications, the projectors, the façade) asks :class:`Directory` for a file's
environment instead of naming files and settings itself. Which tenants exist is not a
question of files: it is the registry in ``system.db`` (the domain's), never the names
of the files present.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from streams.errors import ConfigurationError

__all__ = [
    "DEFAULT_SETTINGS",
    "PERSISTENCE_MODULE",
    "SYSTEM_FILE",
    "TENANT_FILE_PREFIX",
    "TENANT_FILE_SUFFIX",
    "Directory",
]

SYSTEM_FILE: Final = "system.db"
TENANT_FILE_PREFIX: Final = "tenant-"
TENANT_FILE_SUFFIX: Final = ".db"
PERSISTENCE_MODULE: Final = "streams.persistence"
"""The eventsourcing persistence module the environments select."""

DEFAULT_SETTINGS: Final = {"HONKER_SNAPSHOTS": "latest"}
"""Persistence settings every file gets unless ``settings`` says otherwise: a graph's
snapshot holds its whole index, so only each aggregate's newest is kept."""


class Directory:
    """A directory of store files, created if missing.

    ``settings`` are extra persistence settings given to every file's application (e.g.
    ``{"HONKER_SYNCHRONOUS": "FULL"}``); the file and the module are always this
    directory's.
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
        """The environment of an application on the tenant file of ``name``."""
        return self.env_of(self.tenant_path(name))

    def env_of(self, path: Path) -> dict[str, str]:
        """The environment of an application on ``path`` (a file of this directory)."""
        return {
            **self.settings,
            "PERSISTENCE_MODULE": self.persistence_module,
            "HONKER_DBNAME": str(path),
        }
