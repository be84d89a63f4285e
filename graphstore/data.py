"""A store's data directory: the file layout of :mod:`streams.directory`, the identity
application on its ``system.db`` and the registry of its tenants.

:class:`DataDirectory` is where the domain meets the files: it gives the domain's
applications their environments (the domain itself names no file and no setting), and
every tenant path goes through :func:`domain.check_org_id` first, so an org id that could
escape the directory (a separator, ``..``) or name an odd file is refused before any
file is touched. Which tenants exist is read from the registry in ``system.db``
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

import domain
from domain import Identity, check_org_id
from streams.directory import PERSISTENCE_MODULE, Directory

__all__ = ["DataDirectory"]


class DataDirectory(Directory):
    """A directory of store files (created if missing), with its identity application.

    ``settings`` are extra persistence settings given to every file's application (e.g.
    ``{"HONKER_SYNCHRONOUS": "FULL"}``). Close it (or use ``with``) to close the identity
    application.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settings: Mapping[str, str] | None = None,
        persistence_module: str = PERSISTENCE_MODULE,
        create: bool = True,
    ) -> None:
        super().__init__(
            path, settings=settings, persistence_module=persistence_module, create=create
        )
        self._identity: Identity | None = None
        self._lock = threading.Lock()

    def tenant_path(self, name: str) -> Path:
        """``<dir>/tenant-<org id>.db``; :class:`InvalidOrgIdError` for a bad org id."""
        return super().tenant_path(check_org_id(name))

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
        with domain.Metagraph(env=self.tenant_env(org_id)):
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
                self._identity = Identity(
                    self.system_env(), create_tenant_file=self.create_tenant_file
                )
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
