"""Where a store's files live: one data directory holding ``system.db`` and one
``tenant-<org id>.db`` per organization.

:class:`DataDirectory` owns the paths and the environments that select the persistence
module for each file (``PERSISTENCE_MODULE``, ``HONKER_DBNAME``): this package names
the module but never imports it. Every tenant path goes through
:func:`~domain._identity_values.check_org_id` first, so an org id that could escape the
directory (a separator, ``..``) or name an odd file is refused before any file is
touched. Which tenants exist is read from the registry in ``system.db``
(:meth:`DataDirectory.tenants`), never from the file names present.

    with DataDirectory("data") as data:
        identity = data.identity            # accounts, organizations, keys, audit
        admin = identity.create_account("ada@example.com", "Ada",
                                        actor=Principal.system(), access_level="admin")
        identity.create_organization("Acme", "acme", owner_id=admin.id,
                                     actor=Principal.system())
        data.tenants()                      # ['acme']; data/tenant-acme.db exists
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

from domain._identity_values import check_org_id
from domain.application import Metagraph
from domain.identity import Identity

__all__ = [
    "DEFAULT_SETTINGS",
    "PERSISTENCE_MODULE",
    "SYSTEM_FILE",
    "TENANT_FILE_PREFIX",
    "TENANT_FILE_SUFFIX",
    "DataDirectory",
    "check_org_id",
]

SYSTEM_FILE: Final = "system.db"
TENANT_FILE_PREFIX: Final = "tenant-"
TENANT_FILE_SUFFIX: Final = ".db"
PERSISTENCE_MODULE: Final = "streams.persistence"
"""The eventsourcing persistence module the environments select (named, not imported)."""

DEFAULT_SETTINGS: Final = {"HONKER_SNAPSHOTS": "latest"}
"""Persistence settings every file gets unless ``settings`` says otherwise: a graph's
snapshot holds its whole index, so only each aggregate's newest is kept."""


class DataDirectory:
    """A directory of store files, created if missing.

    ``settings`` are extra persistence settings given to every file's application (e.g.
    ``{"HONKER_SYNCHRONOUS": "FULL"}``); the file and the module are always this
    directory's. Close it (or use ``with``) to close the identity application.
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
        self._identity: Identity | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DataDirectory({str(self.path)!r})"

    # --- paths and environments -----------------------------------------------------

    @property
    def system_path(self) -> Path:
        """``<dir>/system.db``: identity, the tenant registry, system-scope types."""
        return self.path / SYSTEM_FILE

    def tenant_path(self, org_id: str) -> Path:
        """``<dir>/tenant-<org id>.db``; :class:`InvalidOrgIdError` for a bad org id."""
        org_id = check_org_id(org_id)
        path = self.path / f"{TENANT_FILE_PREFIX}{org_id}{TENANT_FILE_SUFFIX}"
        if path.parent != self.path:  # pragma: no cover - check_org_id makes it impossible
            raise AssertionError(f"tenant path {path} escapes {self.path}")
        return path

    def system_env(self) -> dict[str, str]:
        """The environment of an application on ``system.db``."""
        return self._env(self.system_path)

    def tenant_env(self, org_id: str) -> dict[str, str]:
        """The environment of an application on the tenant file of ``org_id``."""
        return self._env(self.tenant_path(org_id))

    def _env(self, path: Path) -> dict[str, str]:
        return {
            **self.settings,
            "PERSISTENCE_MODULE": self.persistence_module,
            "HONKER_DBNAME": str(path),
        }

    # --- tenant files ---------------------------------------------------------------

    def create_tenant_file(self, org_id: str) -> Path:
        """Create the tenant file of ``org_id`` with its tables (no events); idempotent.

        Called by :meth:`Identity.create_organization` before the organization is
        registered, so a registered tenant always has a complete file. A file left by a
        creation that crashed (some tables, or all of them, and no registration) is
        completed by calling this again: every table is created if missing, and nothing
        in the file is removed.
        """
        path = self.tenant_path(org_id)
        with Metagraph(env=self.tenant_env(org_id)):
            pass
        return path

    def tenants(self) -> list[str]:
        """The org ids of the registered tenants, sorted (from ``system.db``'s registry)."""
        return self.identity.tenants()

    # --- the identity application ---------------------------------------------------

    @property
    def identity(self) -> Identity:
        """The identity application on ``system.db``, opened on first use."""
        with self._lock:
            if self._identity is None:
                self._identity = Identity(self)
            return self._identity

    def close(self) -> None:
        """Close the identity application, if it was opened."""
        with self._lock:
            identity, self._identity = self._identity, None
        if identity is not None:
            identity.close()

    def __enter__(self) -> DataDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
