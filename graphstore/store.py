"""The public entry point: a data directory of tenant files, opened once.

    import graphstore

    with graphstore.open("data") as store:
        store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        acme = store.tenant("acme")            # a domain.Metagraph on tenant-acme.db
        ...

A :class:`Store` opens each tenant's metagraph lazily, keeps it open for the life of the
store (one writer connection and one watcher per file per process) and closes every one
of them, then ``system.db``, on :meth:`Store.close`.

Opened with an ``actor`` (a :class:`~domain.Principal`, e.g. from
``store.identity.authenticate(api_key)``), every commit to a tenant carries its audit
record (who, what, when) in the same transaction, in the tenant file
(:mod:`domain.audit`); :meth:`Store.audit_log` merges them with ``system.db``'s
identity changes.

The read side of a tenant comes from the same object, with no settings to pass:
:meth:`Store.views` (the flowgraph views), :meth:`Store.replay` (history, time travel,
export), :meth:`Store.subscribe` (changes of a projection) and :meth:`Store.runner`
(the projectors of every tenant).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from domain import DataDirectory, Identity, Metagraph, Principal
from domain.audit import Auditor, tenant_audit_log
from domain.errors import NotFoundError
from domain.identity import AuditEntry

if TYPE_CHECKING:
    from projections import Flowgraph, Projection, Replay, Runner, Subscription

__all__ = ["Store", "open_store"]


class Store:
    """A data directory: ``system.db`` (identity, tenant registry) and the tenant files."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settings: dict[str, str] | None = None,
        actor: Principal | None = None,
    ):
        self.data = DataDirectory(path, settings=settings)
        self.actor = actor
        self._tenants: dict[str, Metagraph] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.data.path

    @property
    def identity(self) -> Identity:
        """Accounts, organizations, API keys and the audit log (``system.db``)."""
        return self.data.identity

    def tenants(self) -> list[str]:
        """The registered tenants' org ids."""
        return self.data.tenants()

    def create_tenant(
        self,
        org_id: str,
        *,
        name: str,
        owner_email: str,
        actor: Principal | None = None,
    ) -> Metagraph:
        """Register an organization owned by an existing account; its tenant's metagraph.

        The tenant file is created in full before the registration is saved, so after a
        crash at any point the tenant is either registered with a complete file, or not
        registered and ``create_tenant`` with the same org id completes it
        (docs/identity.md, "Creating a tenant after a crash").
        """
        owner = self.identity.find_account(owner_email)
        self.identity.create_organization(
            name, org_id, owner_id=owner.id, actor=actor or Principal.system()
        )
        return self.tenant(org_id)

    def tenant(self, org_id: str) -> Metagraph:
        """The metagraph of a registered tenant (opened on first use, then shared).

        An invalid org id raises ``InvalidOrgIdError`` before any file is touched; an
        unregistered one, ``NotFoundError`` saying how to create it.
        """
        self.data.tenant_path(org_id)  # validates the org id before anything else
        with self._lock:
            found = self._tenants.get(org_id)
            if found is not None:
                return found
            if org_id not in self.data.tenants():
                raise NotFoundError(
                    f"no tenant {org_id!r} in {self.path}: `graphstore tenant list` shows the "
                    "tenants; create one with `graphstore tenant create` or "
                    "Store.create_tenant()",
                    kind="tenant",
                    name=org_id,
                )
            metagraph = Metagraph(env=self.data.tenant_env(org_id))
            if self.actor is not None:  # every commit carries its audit record
                metagraph.auditor = Auditor(
                    actor_id=self.actor.actor_id,
                    credential_type=self.actor.credential_type,
                    credential_id=self.actor.credential_id,
                )
            self._tenants[org_id] = metagraph
            return metagraph

    def audit_log(self, *, org_id: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The audit log: identity changes (``system.db``) and every tenant's writes (each
        recorded in its tenant file with the write itself), oldest first; ``org_id``
        keeps one tenant's entries. Positions are per stream: ``system.db``'s for
        identity changes, the tenant file's for its writes."""
        entries = self.identity.audit_log(org_id=org_id)
        for tenant in [org_id] if org_id is not None else self.tenants():
            entries += tenant_audit_log(self.tenant(tenant), tenant)
        entries.sort(key=lambda e: e.at)
        return entries if limit is None else entries[-limit:]

    # --- the read side ------------------------------------------------------------------

    def views(self, org_id: str) -> Flowgraph:
        """The flowgraph views of a tenant (runs and calls; close it when done)."""
        from projections import Flowgraph  # noqa: PLC0415 - the write side needs none of it

        return Flowgraph.open(self._tenant_env(org_id))

    def replay(self, org_id: str) -> Replay:
        """A tenant's replay: a run's history, a run or graph as of an offset, export."""
        from projections import Replay  # noqa: PLC0415

        return Replay.open(self._tenant_env(org_id))

    def subscribe(
        self, org_id: str, projection: Projection | None = None, **options: Any
    ) -> Subscription:
        """Changes of a tenant's projection (default: the flowgraph) as they commit;
        ``options`` as :meth:`projections.Subscription.open` (``name``, ``run``,
        ``graph``, ``from_start``, ...)."""
        from projections import FlowgraphProjection, Subscription  # noqa: PLC0415

        chosen = FlowgraphProjection() if projection is None else projection
        return Subscription.open(self._tenant_env(org_id), chosen, **options)

    def runner(self, **options: Any) -> Runner:
        """The projectors of every tenant of this data directory, in this process
        (``options`` as :class:`projections.Runner`); close it (or use ``with``)."""
        from projections import Runner  # noqa: PLC0415

        return Runner(self.path, **options)

    def _tenant_env(self, org_id: str) -> dict[str, str]:
        self.tenant(org_id)  # a registered tenant, or NotFoundError saying how to create it
        return self.data.tenant_env(org_id)

    def close(self) -> None:
        """Close every open tenant, then ``system.db``."""
        with self._lock:
            tenants, self._tenants = list(self._tenants.values()), {}
        for metagraph in tenants:
            metagraph.close()
        self.data.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(
    path: str | os.PathLike[str],
    *,
    settings: dict[str, str] | None = None,
    actor: Principal | None = None,
) -> Store:
    """Open (creating if needed) the data directory at ``path``; see :class:`Store`."""
    return Store(path, settings=settings, actor=actor)
