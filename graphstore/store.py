"""The public entry point: a data directory of tenant files, opened once.

    import graphstore

    with graphstore.open("data") as store:
        store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        acme = store.tenant("acme")            # a domain.Metagraph on tenant-acme.db
        ...

A :class:`Store` opens each tenant's metagraph lazily, keeps it open for the life of the
store (one writer connection and one watcher per file per process) and closes every one
of them, then ``system.db``, on :meth:`Store.close`.

Opened with a ``principal`` (a :class:`~domain.Principal`, e.g. from
``store.identity.authenticate(api_key)``), every tenant operation is authorized against
the permission model (:mod:`domain.access`) and every commit to a tenant carries its
audit record (who, what, when) in the same transaction, in the tenant file
(:mod:`domain.audit`); :meth:`Store.audit_log` merges them with ``system.db``'s
identity changes and refusals.

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

from domain import Principal
from domain.access import Operation, TenantAccess, require_operator
from domain.audit import tenant_audit_log
from domain.errors import NotFoundError
from domain.identity import AuditEntry
from graphstore.data import DataDirectory

if TYPE_CHECKING:
    from domain import Identity, Metagraph
    from projections import Flowgraph, Projection, Replay, Runner, Subscription

__all__ = ["Store", "open_store"]


class Store:
    """A data directory: ``system.db`` (identity, tenant registry) and the tenant files,
    used by one principal.

    ``principal`` is who acts: a :class:`~domain.Principal` from
    ``store.identity.authenticate(api_key)`` (or give ``api_key`` and the store
    authenticates it), or :meth:`~domain.Principal.system` for the local operator. With
    one, every tenant operation is authorized against the permission model
    (:mod:`domain.access`, docs/identity.md "Who may do what in a tenant") and every
    tenant write carries its audit record; a refusal raises
    :class:`~domain.errors.AccessDeniedError` and writes nothing to the tenant. Without
    one, the store acts for the local operator, unchecked and unaudited: whoever opens
    the files may do anything anyway.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settings: dict[str, str] | None = None,
        principal: Principal | None = None,
        api_key: str | None = None,
    ):
        self.data = DataDirectory(path, settings=settings)
        if api_key is not None:
            if principal is not None:
                raise ValueError("give a principal or an api_key, not both")
            try:
                principal = self.data.identity.authenticate(api_key)
            except BaseException:
                self.data.close()
                raise
        self._principal = principal
        self._tenants: dict[str, Metagraph] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.data.path

    @property
    def principal(self) -> Principal:
        """Who acts: the principal given, or the local operator's (system) one."""
        return self._principal if self._principal is not None else Principal.system()

    @property
    def identity(self) -> Identity:
        """Accounts, organizations, API keys and the audit log (``system.db``); its
        commands take their actor explicitly (``actor=store.principal``)."""
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
        """Register an organization owned by an existing account (as ``actor``, default
        this store's principal); its tenant's metagraph.

        The tenant file is created in full before the registration is saved, so after a
        crash at any point the tenant is either registered with a complete file, or not
        registered and ``create_tenant`` with the same org id completes it
        (docs/identity.md, "Creating a tenant after a crash").
        """
        owner = self.identity.find_account(owner_email)
        self.identity.create_organization(
            name, org_id, owner_id=owner.id, actor=actor or self.principal
        )
        return self.tenant(org_id)

    def tenant(self, org_id: str) -> Metagraph:
        """The metagraph of a registered tenant, acting for this store's principal
        (opened on first use, then shared). Each of its reads, commands and units of
        work is authorized when it runs.

        An invalid org id raises ``InvalidOrgIdError`` before any file is touched; an
        unregistered one, ``NotFoundError`` saying how to create it; a principal that
        may not even read it, ``AccessDeniedError``.
        """
        self.data.tenant_path(org_id)  # validates the org id before anything else
        with self._lock:
            found = self._tenants.get(org_id)
        if found is None:
            found = self._open_tenant(org_id)
        found.require("read", "open the tenant")
        return found

    def _open_tenant(self, org_id: str) -> Metagraph:
        with self._lock:
            found = self._tenants.get(org_id)
            if found is not None:
                return found
            self._require_registered(org_id)
            gate = (
                None
                if self._principal is None
                else TenantAccess(self.identity, org_id, self._principal)
            )
            from domain import Metagraph  # noqa: PLC0415 - a read command needs none of it

            metagraph = Metagraph(env=self.data.tenant_env(org_id), gate=gate)
            self._tenants[org_id] = metagraph
            return metagraph

    def _require_registered(self, org_id: str) -> None:
        if org_id not in self.data.tenants():
            raise NotFoundError(
                f"no tenant {org_id!r} in {self.path}: `graphstore tenant list` shows the "
                "tenants; create one with `graphstore tenant create` or "
                "Store.create_tenant()",
                kind="tenant",
                name=org_id,
            )

    def authorize(self, org_id: str, operation: Operation, what: str) -> None:
        """Refuse ``what`` (an operation of group ``operation`` on tenant ``org_id``) with
        :class:`~domain.errors.AccessDeniedError`, audited, unless this store's principal
        may make it. For code that reaches a tenant without its metagraph (the CLI's
        projector commands); the methods of this class authorize themselves.

        The local operator (no principal, or the system one) may do everything, so only
        the tenant's registration is checked: its metagraph is not opened for a read."""
        if self.principal.is_system:
            if org_id not in self._tenants:
                self._require_registered(org_id)
            return
        self._open_tenant(org_id).require(operation, what)

    def authorize_operator(self, what: str) -> None:
        """Refuse ``what`` (an operation over every tenant) unless this store's principal
        is the local operator or an admin account (audited)."""
        if self._principal is not None:
            require_operator(self.identity, self._principal, what)

    def audit_log(self, *, org_id: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The audit log: identity changes (``system.db``) and every tenant's writes (each
        recorded in its tenant file with the write itself), oldest first; ``org_id``
        keeps one tenant's entries. Positions are per stream: ``system.db``'s for
        identity changes, the tenant file's for its writes. One tenant's log needs
        ``operate`` on it; the whole log, an admin."""
        if org_id is None:
            self.authorize_operator("read the audit log of every tenant")
        else:
            self.authorize(org_id, "operate", "read the audit log")
        entries = self.identity.audit_log(org_id=org_id)
        for tenant in [org_id] if org_id is not None else self.tenants():
            entries += tenant_audit_log(self._open_tenant(tenant), tenant)
        entries.sort(key=lambda e: e.at)
        return entries if limit is None else entries[-limit:]

    # --- the read side ------------------------------------------------------------------

    def views(self, org_id: str) -> Flowgraph:
        """The flowgraph views of a tenant (runs and calls; close it when done)."""
        from projections import Flowgraph  # noqa: PLC0415 - the write side needs none of it

        return Flowgraph.open(self._read_env(org_id, "query runs"))

    def replay(self, org_id: str) -> Replay:
        """A tenant's replay: a run's history, a run or graph as of an offset, export."""
        from projections import Replay  # noqa: PLC0415

        return Replay.open(self._read_env(org_id, "replay its history"))

    def subscribe(
        self,
        org_id: str,
        projection: Projection | type[Projection] | None = None,
        **options: Any,
    ) -> Subscription:
        """Changes of a tenant's projection (default: the flowgraph) as they commit;
        ``options`` as :meth:`projections.Subscription.open` (``name``, ``run``,
        ``graph``, ``from_start``, ``after``, ``auto_commit``, ...). A projection class
        (or the default) follows its live version in the file, after a rebuild's swap;
        an instance is taken as it is. Authorized when opened; the subscription owns its
        reader of the file (close it when done)."""
        from projections import FlowgraphProjection, Subscription  # noqa: PLC0415

        chosen = FlowgraphProjection if projection is None else projection
        return Subscription.open(self._read_env(org_id, "subscribe to changes"), chosen, **options)

    def runner(self, **options: Any) -> Runner:
        """The projectors of every tenant of this data directory, in this process
        (``options`` as :class:`projections.Runner`); stop it (or use ``with``). An
        operation over every tenant: the local operator's or an admin's."""
        from projections import Runner  # noqa: PLC0415

        self.authorize_operator("run the projectors of every tenant")
        return Runner(self.path, **options)

    def _read_env(self, org_id: str, what: str) -> dict[str, str]:
        self.authorize(org_id, "read", what)  # registered (NotFoundError) and readable
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
    principal: Principal | None = None,
    api_key: str | None = None,
    settings: dict[str, str] | None = None,
) -> Store:
    """Open (creating if needed) the data directory at ``path``, acting as ``principal``
    or as the account of ``api_key`` (default: the local operator, unchecked); see
    :class:`Store`. A refused key raises its :class:`~domain.errors.AuthenticationError`."""
    return Store(path, settings=settings, principal=principal, api_key=api_key)
