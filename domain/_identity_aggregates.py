"""Identity's aggregates and events: accounts, organizations, API keys, the tenant
registry, tenant-write audit records and refused tenant operations. They live in ``system.db``.

Every event carries who caused it (``actor_id``, ``credential_type``, ``credential_id``)
and, through eventsourcing, when (``timestamp``). An event class with an ``ACTION`` is an
entry of the audit log; the others (``ACTION = None``) are bookkeeping recorded in the
same transaction as an audited event.

Uniqueness comes from deterministic ids (:mod:`domain._identity_values`): an account's id
is derived from its email, an organization's from its org id (slug), an API key's from
its hash. A second create of the same id is a version conflict in the recorder, so it
can never be written, even by a process that raced past the application's check.
Organization names are unique through the one :class:`TenantRegistry`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final, cast
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from domain._identity_values import (
    ACCOUNT_TRANSITIONS,
    NAMESPACE,
    AccessLevel,
    AccountInfo,
    AccountStatus,
    ApiKeyInfo,
    MembershipLevel,
    OrganizationInfo,
    Principal,
    account_id_for,
    api_key_id_for,
    name_key,
    organization_id_for,
)
from domain.errors import ConflictError, DuplicateError, NotFoundError, StatusTransitionError
from domain.names import register_module

__all__ = [
    "REGISTRY_ID",
    "AccessRefused",
    "Account",
    "ApiKey",
    "IdentityEvent",
    "OperatorAction",
    "Organization",
    "TenantRegistry",
    "TenantWrite",
    "stamp",
]

REGISTRY_ID: Final = uuid5(NAMESPACE, "tenant-registry")
"""The id of the one :class:`TenantRegistry` in ``system.db``."""


def stamp(actor: Principal) -> dict[str, Any]:
    """The audit fields every identity event carries, for ``actor``."""
    return {
        "actor_id": actor.actor_id,
        "credential_type": actor.credential_type,
        "credential_id": actor.credential_id,
    }


class IdentityEvent(Aggregate.Event):
    """Base of identity events: who caused the change (see :func:`stamp`)."""

    ACTION: ClassVar[str | None] = None

    actor_id: str
    credential_type: str
    credential_id: UUID | None


class Account(Aggregate):
    """One account: email (fixed, unique), display name, access level, status, keys."""

    TOPIC = "Account"

    class Event(IdentityEvent):
        pass

    class Created(Event, Aggregate.Created):
        TOPIC = "Account.Created"
        ACTION = "account.created"
        email: str
        display_name: str
        access_level: str

    class Suspended(Event):
        TOPIC = "Account.Suspended"
        ACTION = "account.suspended"
        reason: str

        def apply(self, aggregate: Account) -> None:
            aggregate.status = "suspended"

    class Reactivated(Event):
        TOPIC = "Account.Reactivated"
        ACTION = "account.reactivated"

        def apply(self, aggregate: Account) -> None:
            aggregate.status = "active"

    class Deactivated(Event):
        TOPIC = "Account.Deactivated"
        ACTION = "account.deactivated"
        reason: str

        def apply(self, aggregate: Account) -> None:
            aggregate.status = "deactivated"

    class KeyAttached(Event):
        """Bookkeeping: the key's own ``api_key.created`` event is the audited one."""

        TOPIC = "Account.KeyAttached"

        key_id: UUID

        def apply(self, aggregate: Account) -> None:
            aggregate.key_ids.append(self.key_id)

    def __init__(self, email: str, display_name: str, access_level: AccessLevel) -> None:
        self.email = email
        self.display_name = display_name
        self.access_level: AccessLevel = access_level
        self.status: AccountStatus = "active"
        self.key_ids: list[UUID] = []

    @classmethod
    def open(
        cls, email: str, display_name: str, access_level: AccessLevel, *, actor: Principal
    ) -> Account:
        """A new active account; ``email`` must be normalised (its id derives from it)."""
        return cls._create(
            cls.Created,
            id=account_id_for(email),
            email=email,
            display_name=display_name,
            access_level=access_level,
            **stamp(actor),
        )

    def change_status(self, target: AccountStatus, *, actor: Principal, reason: str) -> None:
        """Move to ``target`` along :data:`ACCOUNT_TRANSITIONS`, else StatusTransitionError."""
        if target not in ACCOUNT_TRANSITIONS[self.status]:
            allowed = sorted(ACCOUNT_TRANSITIONS[self.status]) or ["none: it is final"]
            raise StatusTransitionError(
                f"account {self.email!r} ({self.id}) is {self.status} and cannot become "
                f"{target}; allowed from {self.status}: {', '.join(allowed)}"
            )
        if target == "suspended":
            self.trigger_event(self.Suspended, reason=reason, **stamp(actor))
        elif target == "active":
            self.trigger_event(self.Reactivated, **stamp(actor))
        else:
            self.trigger_event(self.Deactivated, reason=reason, **stamp(actor))

    def attach_key(self, key_id: UUID, *, actor: Principal) -> None:
        self.trigger_event(self.KeyAttached, key_id=key_id, **stamp(actor))

    def info(self) -> AccountInfo:
        return AccountInfo(
            id=self.id,
            email=self.email,
            display_name=self.display_name,
            access_level=self.access_level,
            status=self.status,
            created_at=self.created_on,
            updated_at=self.modified_on,
        )


class Organization(Aggregate):
    """One organization (one tenant): name, slug (= org id), owner, members."""

    TOPIC = "Organization"

    class Event(IdentityEvent):
        pass

    class Created(Event, Aggregate.Created):
        TOPIC = "Organization.Created"
        ACTION = "organization.created"
        name: str
        slug: str
        owner_id: UUID

    class MemberAdded(Event):
        TOPIC = "Organization.MemberAdded"
        ACTION = "organization.member_added"
        account_id: UUID
        level: str

        def apply(self, aggregate: Organization) -> None:
            aggregate.members[self.account_id] = cast("MembershipLevel", self.level)

    class MemberLevelChanged(Event):
        TOPIC = "Organization.MemberLevelChanged"
        ACTION = "organization.member_level_changed"
        account_id: UUID
        level: str

        def apply(self, aggregate: Organization) -> None:
            aggregate.members[self.account_id] = cast("MembershipLevel", self.level)

    class MemberRemoved(Event):
        TOPIC = "Organization.MemberRemoved"
        ACTION = "organization.member_removed"
        account_id: UUID

        def apply(self, aggregate: Organization) -> None:
            del aggregate.members[self.account_id]

    class OwnershipTransferred(Event):
        TOPIC = "Organization.OwnershipTransferred"
        ACTION = "organization.ownership_transferred"
        new_owner_id: UUID
        previous_owner_level: str

        def apply(self, aggregate: Organization) -> None:
            aggregate.members[aggregate.owner_id] = cast(
                "MembershipLevel", self.previous_owner_level
            )
            aggregate.members[self.new_owner_id] = "owner"
            aggregate.owner_id = self.new_owner_id

    def __init__(self, name: str, slug: str, owner_id: UUID) -> None:
        self.name = name
        self.slug = slug
        self.owner_id = owner_id
        self.members: dict[UUID, MembershipLevel] = {owner_id: "owner"}

    @classmethod
    def found(cls, name: str, slug: str, *, owner_id: UUID, actor: Principal) -> Organization:
        """A new organization whose first member is its owner; ``slug`` must be valid."""
        return cls._create(
            cls.Created,
            id=organization_id_for(slug),
            name=name,
            slug=slug,
            owner_id=owner_id,
            **stamp(actor),
        )

    def level_of(self, account_id: UUID | None) -> MembershipLevel | None:
        return None if account_id is None else self.members.get(account_id)

    def add_member(self, account_id: UUID, level: MembershipLevel, *, actor: Principal) -> None:
        if account_id in self.members:
            raise DuplicateError(
                f"account {account_id} is already a member of {self.slug!r} "
                f"(level {self.members[account_id]}); change its level instead"
            )
        self._check_not_owner_level(level)
        self.trigger_event(self.MemberAdded, account_id=account_id, level=level, **stamp(actor))

    def change_member_level(
        self, account_id: UUID, level: MembershipLevel, *, actor: Principal
    ) -> None:
        self._check_member_not_owner(account_id, "change the level of")
        self._check_not_owner_level(level)
        self.trigger_event(
            self.MemberLevelChanged, account_id=account_id, level=level, **stamp(actor)
        )

    def remove_member(self, account_id: UUID, *, actor: Principal) -> None:
        self._check_member_not_owner(account_id, "remove")
        self.trigger_event(self.MemberRemoved, account_id=account_id, **stamp(actor))

    def transfer_ownership(self, new_owner_id: UUID, *, actor: Principal) -> None:
        """Make ``new_owner_id`` the owner (a member if it was not); the old owner
        stays as an ``admin``."""
        if new_owner_id == self.owner_id:
            raise ConflictError(f"account {new_owner_id} already owns {self.slug!r}")
        self.trigger_event(
            self.OwnershipTransferred,
            new_owner_id=new_owner_id,
            previous_owner_level="admin",
            **stamp(actor),
        )

    def _check_member_not_owner(self, account_id: UUID, action: str) -> None:
        if account_id not in self.members:
            raise NotFoundError(
                f"account {account_id} is not a member of {self.slug!r}; add it first",
                kind="member",
                name=str(account_id),
            )
        if account_id == self.owner_id:
            raise ConflictError(
                f"cannot {action} the owner of {self.slug!r} ({account_id}); transfer the "
                "ownership to another account first"
            )

    def _check_not_owner_level(self, level: MembershipLevel) -> None:
        if level == "owner":
            raise ConflictError(
                f"{self.slug!r} has one owner ({self.owner_id}); use transfer_ownership to "
                "make another account the owner, or choose level 'admin' or 'member'"
            )

    def info(self) -> OrganizationInfo:
        return OrganizationInfo(
            id=self.id,
            org_id=self.slug,
            name=self.name,
            slug=self.slug,
            owner_id=self.owner_id,
            members=dict(self.members),
            created_at=self.created_on,
            updated_at=self.modified_on,
        )


class TenantRegistry(Aggregate):
    """Every tenant (org id) with its organization, and the names in use.

    One per ``system.db`` at :data:`REGISTRY_ID`: registering changes it, so two
    processes registering at once conflict on its version and one retries.
    """

    TOPIC = "TenantRegistry"

    class Event(IdentityEvent):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "TenantRegistry.Started"

    Created = Started  # an alias, else eventsourcing adds a Created without TOPIC

    class TenantRegistered(Event):
        """Bookkeeping: the organization's ``organization.created`` is the audited one."""

        TOPIC = "TenantRegistry.TenantRegistered"

        org_id: str
        organization_id: UUID
        name_key: str

        def apply(self, aggregate: TenantRegistry) -> None:
            aggregate.tenants[self.org_id] = self.organization_id
            aggregate.names[self.name_key] = self.org_id

    def __init__(self) -> None:
        self.tenants: dict[str, UUID] = {}
        self.names: dict[str, str] = {}

    @classmethod
    def start(cls, *, actor: Principal) -> TenantRegistry:
        return cls._create(cls.Started, id=REGISTRY_ID, **stamp(actor))

    def register(self, org_id: str, name: str, organization_id: UUID, *, actor: Principal) -> None:
        """Reserve ``org_id`` and ``name``; DuplicateError if either is taken."""
        if org_id in self.tenants:
            raise DuplicateError(
                f"an organization with slug (org id) {org_id!r} already exists; choose another slug"
            )
        key = name_key(name)
        if key in self.names:
            raise DuplicateError(
                f"an organization named {name!r} already exists (org id "
                f"{self.names[key]!r}; names compare ignoring case and extra spaces); "
                "choose another name"
            )
        self.trigger_event(
            self.TenantRegistered,
            org_id=org_id,
            organization_id=organization_id,
            name_key=key,
            **stamp(actor),
        )


class ApiKey(Aggregate):
    """One API key: owner, name, SHA-256 hash of the secret, expiry, revocation, rotation."""

    TOPIC = "ApiKey"

    class Event(IdentityEvent):
        pass

    class Issued(Event, Aggregate.Created):
        TOPIC = "ApiKey.Issued"
        ACTION = "api_key.created"
        owner_id: UUID
        name: str
        key_hash: str
        issued_at: datetime
        expires_at: datetime | None
        rotated_from_id: UUID | None

    Created = Issued  # an alias, else eventsourcing adds a Created without TOPIC

    class Revoked(Event):
        TOPIC = "ApiKey.Revoked"
        ACTION = "api_key.revoked"
        revoked_at: datetime
        reason: str

        def apply(self, aggregate: ApiKey) -> None:
            aggregate.revoked_at = self.revoked_at

    class Rotated(Event):
        TOPIC = "ApiKey.Rotated"
        ACTION = "api_key.rotated"
        revoked_at: datetime
        rotated_to_id: UUID

        def apply(self, aggregate: ApiKey) -> None:
            aggregate.revoked_at = self.revoked_at
            aggregate.rotated_to_id = self.rotated_to_id

    class Used(Event):
        """Bookkeeping (not audited): ``last_used_at``, recorded at most once a minute."""

        TOPIC = "ApiKey.Used"

        used_at: datetime

        def apply(self, aggregate: ApiKey) -> None:
            aggregate.last_used_at = self.used_at

    def __init__(
        self,
        owner_id: UUID,
        name: str,
        key_hash: str,
        *,
        issued_at: datetime,
        expires_at: datetime | None,
        rotated_from_id: UUID | None,
    ) -> None:
        self.owner_id = owner_id
        self.name = name
        self.key_hash = key_hash
        self.issued_at = issued_at
        self.expires_at = expires_at
        self.rotated_from_id = rotated_from_id
        self.revoked_at: datetime | None = None
        self.rotated_to_id: UUID | None = None
        self.last_used_at: datetime | None = None

    @classmethod
    def issue(
        cls,
        owner_id: UUID,
        name: str,
        key_hash: str,
        *,
        issued_at: datetime,
        expires_at: datetime | None,
        actor: Principal,
        rotated_from_id: UUID | None = None,
    ) -> ApiKey:
        return cls._create(
            cls.Issued,
            id=api_key_id_for(key_hash),
            owner_id=owner_id,
            name=name,
            key_hash=key_hash,
            issued_at=issued_at,
            expires_at=expires_at,
            rotated_from_id=rotated_from_id,
            **stamp(actor),
        )

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def check_usable(self, now: datetime, action: str) -> None:
        """ConflictError unless the key is neither revoked nor expired."""
        if self.revoked_at is not None:
            raise ConflictError(
                f"cannot {action} API key {self.id}: it was revoked at "
                f"{self.revoked_at.isoformat()}; create a new key"
            )
        if self.is_expired(now):
            raise ConflictError(
                f"cannot {action} API key {self.id}: it expired at "
                f"{self.expires_at.isoformat() if self.expires_at else ''}; create a new key"
            )

    def revoke(self, *, now: datetime, actor: Principal, reason: str) -> None:
        if self.revoked_at is not None:
            raise ConflictError(
                f"API key {self.id} was already revoked at {self.revoked_at.isoformat()}"
            )
        self.trigger_event(self.Revoked, revoked_at=now, reason=reason, **stamp(actor))

    def rotate_to(self, new_key_id: UUID, *, now: datetime, actor: Principal) -> None:
        self.check_usable(now, "rotate")
        self.trigger_event(self.Rotated, revoked_at=now, rotated_to_id=new_key_id, **stamp(actor))

    def mark_used(self, now: datetime, *, actor: Principal) -> None:
        self.trigger_event(self.Used, used_at=now, **stamp(actor))

    def info(self) -> ApiKeyInfo:
        return ApiKeyInfo(
            id=self.id,
            owner_id=self.owner_id,
            name=self.name,
            enabled=self.revoked_at is None,
            created_at=self.issued_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            rotated_to_id=self.rotated_to_id,
            rotated_from_id=self.rotated_from_id,
            last_used_at=self.last_used_at,
        )


class TenantWrite(Aggregate):
    """An audit record of a write made in a tenant file (one aggregate per record, so
    recording never contends and never loads earlier records)."""

    TOPIC = "TenantWrite"

    class Event(IdentityEvent):
        pass

    class Recorded(Event, Aggregate.Created):
        TOPIC = "TenantWrite.Recorded"
        ACTION = "tenant.write"
        org_id: str
        what: str
        details: dict[str, Any]

    Created = Recorded  # an alias, else eventsourcing adds a Created without TOPIC

    def __init__(self, org_id: str, what: str, details: dict[str, Any]) -> None:
        self.org_id = org_id
        self.what = what
        self.details = details

    @classmethod
    def record(
        cls, org_id: str, what: str, details: dict[str, Any], *, actor: Principal
    ) -> TenantWrite:
        return cls._create(
            cls.Recorded, id=uuid4(), org_id=org_id, what=what, details=details, **stamp(actor)
        )


class AccessRefused(Aggregate):
    """An audit record of a refused tenant operation (one aggregate per record, like
    :class:`TenantWrite`). Kept in ``system.db``: the refusal wrote nothing to the
    tenant, and its file is not the place for those who may not write to it.

    One record stands for every refusal of its principal, operation and tenant in the
    minute it was recorded: ``count`` of them, the first being the record itself and the
    others added by ``Repeated`` events (:mod:`domain._refusals` says when)."""

    TOPIC = "AccessRefused"

    class Event(IdentityEvent):
        pass

    class Recorded(Event, Aggregate.Created):
        TOPIC = "AccessRefused.Recorded"
        ACTION = "access.denied"
        org_id: str | None
        operation: str
        what: str
        missing: str

    Created = Recorded  # an alias, else eventsourcing adds a Created without TOPIC

    class Repeated(Event):
        """``count`` more refusals of the same kind in the record's minute (bookkeeping:
        the audit log shows them as the record's count, not as entries of their own)."""

        TOPIC = "AccessRefused.Repeated"
        count: int

        def apply(self, aggregate: AccessRefused) -> None:
            aggregate.count += self.count

    def __init__(self, org_id: str | None, operation: str, what: str, missing: str) -> None:
        self.org_id = org_id
        self.operation = operation
        self.what = what
        self.missing = missing
        self.count = 1

    def repeat(self, count: int, *, actor: Principal) -> None:
        """Count ``count`` more refusals against this record."""
        self.trigger_event(self.Repeated, count=count, **stamp(actor))

    @classmethod
    def record(
        cls, org_id: str | None, operation: str, what: str, missing: str, *, actor: Principal
    ) -> AccessRefused:
        return cls._create(
            cls.Recorded,
            id=uuid4(),
            org_id=org_id,
            operation=operation,
            what=what,
            missing=missing,
            **stamp(actor),
        )


class OperatorAction(Aggregate):
    """An audit record of an operation over the whole store (a backup, a restore): who,
    what, and details (one aggregate per record, like :class:`TenantWrite`)."""

    TOPIC = "OperatorAction"

    class Event(IdentityEvent):
        pass

    class Recorded(Event, Aggregate.Created):
        TOPIC = "OperatorAction.Recorded"
        ACTION = "store.operation"
        what: str
        details: dict[str, Any]

    Created = Recorded  # an alias, else eventsourcing adds a Created without TOPIC

    def __init__(self, what: str, details: dict[str, Any]) -> None:
        self.what = what
        self.details = details

    @classmethod
    def record(cls, what: str, details: dict[str, Any], *, actor: Principal) -> OperatorAction:
        return cls._create(cls.Recorded, id=uuid4(), what=what, details=details, **stamp(actor))


register_module(__name__, globals())  # its legacy event names (domain/names.py)
