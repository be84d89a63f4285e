"""Who may do what in a tenant: the permission model (docs/identity.md, "Who may do what
in a tenant").

Every tenant operation belongs to one of four groups (:data:`OPERATIONS`): ``read``,
``write``, ``define`` (graph-type changes) and ``operate`` (projector rebuilds, the
tenant's audit log). What a principal may do follows from its :class:`Standing`, read
from ``system.db`` when it acts: its credential's state, its account's state and access
level, and its membership level in the organization. :func:`decide` is the whole matrix,
a pure function; :class:`TenantAccess` applies it to one principal and one tenant,
records every refusal in the audit log and gives the :class:`~domain.values.Actor` whose
scope the graph-type rules check. Scope therefore comes from the principal, never from
the caller.

Nothing here caches a decision past a change: :class:`TenantAccess` keeps its last grant
only while ``system.db``'s identity stream has not moved (every suspension, revocation
and membership change is an event there) and the key has not expired.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, Literal, Protocol
from uuid import UUID

import msgspec

from domain._identity_values import AccessLevel, MembershipLevel, Principal
from domain.audit import Auditor
from domain.errors import AccessDeniedError, ForbiddenError
from domain.values import Actor, Scope

__all__ = [
    "OPERATIONS",
    "AccountState",
    "CredentialState",
    "Gate",
    "Grant",
    "Operation",
    "Registry",
    "Standing",
    "TenantAccess",
    "decide",
    "require_operator",
]

Operation = Literal["read", "write", "define", "operate"]

OPERATIONS: Final[Mapping[Operation, str]] = {
    "read": "read graph types, graphs, nodes, edges and calls; runs queries, replay, "
    "export, change subscriptions and tail",
    "write": "create, change and delete graphs, nodes and edges; ingest call events; "
    "abort in-flight runs",
    "define": "define, extend, evolve and delete graph types (of the scope granted)",
    "operate": "rebuild projections, replay parked events, read the tenant's audit log",
}
"""The tenant operations, by group, with what each group covers."""

CredentialState = Literal["valid", "revoked", "expired", "unknown"]
AccountState = Literal["active", "suspended", "deactivated", "unknown"]

_ALL: Final[frozenset[Operation]] = frozenset(OPERATIONS)
_MEMBER: Final[frozenset[Operation]] = frozenset({"read", "write", "define"})
_SERVICE: Final[frozenset[Operation]] = frozenset({"read", "write"})


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """What the permission model looks at, as recorded in ``system.db`` now.

    ``system`` is the local operator (:meth:`Principal.system`). ``expires_at`` is the
    credential's expiry, if any: a decision holds until then at most.
    """

    system: bool = False
    credential: CredentialState = "valid"
    account: AccountState = "active"
    access_level: AccessLevel = "user"
    membership: MembershipLevel | None = None
    expires_at: datetime | None = None


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """What a standing allows: the ``operations``, the highest graph-type ``scope`` it
    may change (``None`` when it may change none), ``role`` (who it is, in words) and,
    for each operation it may not make, what it lacks (``missing``)."""

    operations: frozenset[Operation]
    scope: Scope | None
    role: str
    missing: dict[str, str] = {}

    def allows(self, operation: Operation) -> bool:
        return operation in self.operations


def _grant(operations: frozenset[Operation], scope: Scope | None, role: str, missing: str) -> Grant:
    lacking: dict[str, str] = {op: missing for op in OPERATIONS if op not in operations}
    return Grant(operations=operations, scope=scope, role=role, missing=lacking)


def decide(standing: Standing) -> Grant:
    """The permission matrix (docs/identity.md has it as a table).

    - the local operator, and an active ``admin`` account with a valid credential: every
      operation, on every tenant, up to system-scope graph types;
    - a revoked, expired or unknown credential, or an account that is not active:
      nothing;
    - otherwise by membership: not a member, nothing; a ``service`` account, ``read``
      and ``write`` whatever its level (machines ingest and read, people administer);
      an ``owner`` or ``admin`` member, every operation, up to tenant-scope types; a
      ``member``, ``read``, ``write`` and ``define`` of user-scope types only.
    """
    if standing.system:
        return _grant(_ALL, "system", "the local operator", "")
    if standing.credential != "valid":
        return _grant(
            frozenset(),
            None,
            f"a {standing.credential} credential",
            f"a valid credential (its API key is {standing.credential}: use a current key)",
        )
    if standing.account != "active":
        return _grant(
            frozenset(),
            None,
            f"a {standing.account} account",
            f"an active account (it is {standing.account}; an admin must reactivate it)",
        )
    if standing.access_level == "admin":
        return _grant(_ALL, "system", "an admin account", "")
    if standing.membership is None:
        return _grant(
            frozenset(),
            None,
            "not a member",
            "membership of the organization (ask its owner or an admin to add the account)",
        )
    if standing.access_level == "service":
        return _grant(
            _SERVICE,
            None,
            f"a service account ({standing.membership})",
            "a user or admin account (service accounts read and write only)",
        )
    if standing.membership in ("owner", "admin"):
        return _grant(_ALL, "tenant", f"an organization {standing.membership}", "")
    return _grant(
        _MEMBER,
        "user",
        "an organization member",
        "membership level owner or admin (it is member)",
    )


class Gate(Protocol):
    """What a :class:`~domain.Metagraph` asks before each operation (see
    :class:`TenantAccess`): ``require`` raises if the operation is refused and gives
    the actor otherwise; ``refused`` records a refusal made by a domain rule (a scope
    the actor does not hold); ``auditor`` names who writes."""

    @property
    def auditor(self) -> Auditor: ...

    def require(self, operation: Operation, what: str) -> Actor: ...

    def refused(self, operation: Operation, what: str, error: ForbiddenError) -> None: ...


class _Positioned(Protocol):
    def max_notification_id(self) -> int | None: ...


class Registry(Protocol):
    """Where standings are read and refusals recorded: what :class:`TenantAccess` and
    :func:`require_operator` need of :class:`domain.identity.Identity` (``system.db``).

    A protocol, so that this module, which the identity registry imports for
    :class:`Standing`, does not import it back.
    """

    @property
    def recorder(self) -> _Positioned:
        """The registry's recorder: its head position says whether anything changed."""
        ...

    @property
    def clock(self) -> Callable[[], datetime]:
        """The registry's clock (UTC), against which keys expire."""
        ...

    def standing(self, principal: Principal, org_id: str | None) -> Standing:
        """What ``principal`` is, as recorded now, in tenant ``org_id`` (None: none)."""
        ...

    def record_refusal(
        self,
        principal: Principal,
        *,
        operation: str,
        what: str,
        missing: str,
        org_id: str | None = None,
    ) -> UUID:
        """Add an ``access.denied`` entry to the audit log; its id."""
        ...


class TenantAccess:
    """One principal's access to one tenant, decided against ``system.db`` at each
    operation; a :class:`Gate`.

    A refusal raises :class:`~domain.errors.AccessDeniedError` naming what is missing
    and records an ``access.denied`` entry in the audit log (``system.db``), so the
    tenant file is never written by a refused principal.
    """

    def __init__(self, identity: Registry, org_id: str, principal: Principal) -> None:
        self.identity = identity
        self.org_id = org_id
        self.principal = principal
        self._auditor = Auditor(
            actor_id=principal.actor_id,
            credential_type=principal.credential_type,
            credential_id=principal.credential_id,
        )
        self._lock = threading.Lock()
        self._cached: tuple[int, Grant, datetime | None] | None = None

    def __repr__(self) -> str:
        return f"TenantAccess({self.org_id!r}, {self.principal.actor_id!r})"

    @property
    def auditor(self) -> Auditor:
        return self._auditor

    def grant(self) -> Grant:
        """What the principal may do in the tenant now."""
        head = self.identity.recorder.max_notification_id() or 0
        now = self.identity.clock()
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == head and (cached[2] is None or now < cached[2]):
                return cached[1]
        standing = self.identity.standing(self.principal, self.org_id)
        grant = decide(standing)
        with self._lock:
            self._cached = (head, grant, standing.expires_at)
        return grant

    def require(self, operation: Operation, what: str) -> Actor:
        """The actor for ``what`` (an operation of group ``operation``), or
        :class:`~domain.errors.AccessDeniedError`, audited."""
        grant = self.grant()
        if grant.allows(operation):
            return Actor(scope=grant.scope or "user", id=self.principal.actor_id)
        missing = grant.missing[operation]
        self._record(operation, what, missing)
        raise AccessDeniedError(
            f"{self._who()} ({grant.role}) may not {what} in tenant {self.org_id!r}: "
            f"{operation!r} needs {missing}. Nothing was written",
            operation=operation,
            org_id=self.org_id,
            missing=missing,
        )

    def refused(self, operation: Operation, what: str, error: ForbiddenError) -> None:
        """Record a refusal a domain rule made (e.g. the scope rule) in the audit log."""
        self._record(operation, what, str(error))

    def _record(self, operation: Operation, what: str, missing: str) -> None:
        self.identity.record_refusal(
            self.principal, operation=operation, what=what, missing=missing, org_id=self.org_id
        )

    def _who(self) -> str:
        return "the local operator" if self.principal.is_system else self.principal.actor_id


def require_operator(identity: Registry, principal: Principal, what: str) -> None:
    """Refuse ``what`` (an operation over every tenant: the runner, the whole audit log)
    unless ``principal`` is the local operator or an active admin account with a valid
    credential; :class:`~domain.errors.AccessDeniedError`, audited, otherwise."""
    standing = identity.standing(principal, None)
    grant = decide(standing)
    if grant.scope == "system":
        return
    missing = (
        grant.missing.get("operate")
        if standing.credential != "valid" or standing.account != "active"
        else None
    ) or "an admin account (operations over every tenant are for admins)"
    identity.record_refusal(principal, operation="operate", what=what, missing=missing)
    raise AccessDeniedError(
        f"{principal.actor_id} ({grant.role}) may not {what}: it needs {missing}. "
        "Nothing was written",
        operation="operate",
        org_id="",
        missing=missing,
    )
