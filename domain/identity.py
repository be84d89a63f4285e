"""Identity in ``system.db``: accounts, organizations and their members, API keys, the
tenant registry and an append-only audit log. Design and rules: ``docs/identity.md``.

:class:`Identity` is an eventsourcing application on the data directory's
``system.db`` (persistence chosen by environment: the caller's ``env``). Every
command checks its input and the actor's rights, then records all its events in ONE
save, or raises a :class:`~domain.errors.DomainError` and records nothing. Every
recorded change names its actor, so the identity stream is the audit log
(:meth:`Identity.audit_log`); :meth:`Identity.record_tenant_write` adds entries for
writes made in tenant files.

API keys are ``gsk_`` + 43 URL-safe characters (256 random bits from :mod:`secrets`).
The clear key is returned once, in an :class:`IssuedKey`; ``system.db`` keeps only its
SHA-256 hash, and :meth:`Identity.authenticate` finds the key by that hash and compares
it with :func:`hmac.compare_digest`. No event, log line or error message holds a clear
key.
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, Final, Literal, ParamSpec, TypeVar, cast
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain._identity_aggregates import (
    REGISTRY_ID,
    AccessRefused,
    Account,
    ApiKey,
    OperatorAction,
    Organization,
    TenantRegistry,
    TenantWrite,
)
from domain._identity_audit import audit_entry, json_object
from domain._identity_keys import KEY_PREFIX, check_expiry, hash_key, is_well_formed, new_secret
from domain._identity_values import (
    ACCESS_LEVELS,
    ACCOUNT_TRANSITIONS,
    MEMBERSHIP_LEVELS,
    AccessLevel,
    AccountInfo,
    AccountStatus,
    ApiKeyInfo,
    AuditEntry,
    CredentialType,
    IssuedKey,
    MembershipLevel,
    OrganizationInfo,
    Principal,
    account_id_for,
    api_key_id_for,
    check_email,
    check_org_id,
    check_text,
    organization_id_for,
)
from domain._refusals import RefusalKey, RefusalTally
from domain.access import CredentialState, Standing
from domain.errors import (
    ConcurrencyError,
    ConflictError,
    DuplicateError,
    ExpiredKeyError,
    ForbiddenError,
    InactiveAccountError,
    NotFoundError,
    RevokedKeyError,
    UnknownKeyError,
    ValidationError,
)
from domain.logs import wrap_logger
from domain.names import names_of

__all__ = [
    "ACCOUNT_TRANSITIONS",
    "KEY_PREFIX",
    "USAGE_GRANULARITY",
    "AccessLevel",
    "AccountInfo",
    "AccountStatus",
    "ApiKeyInfo",
    "AuditEntry",
    "CredentialType",
    "Identity",
    "IssuedKey",
    "MembershipLevel",
    "OrganizationInfo",
    "Principal",
    "hash_key",
]

log = wrap_logger(logging.getLogger("domain.identity"))

USAGE_GRANULARITY: Final = timedelta(minutes=1)
"""``last_used_at`` is recorded at most this often per key (each is a write)."""

_ATTEMPTS: Final = 3
_PAGE: Final = 500
_P = ParamSpec("_P")
_R = TypeVar("_R")
_A = TypeVar("_A", bound=Aggregate)

SameLifetime = Literal["same-lifetime"]


_WHY_REFUSED: Final = {
    "revoked": "a key that is not revoked",
    "expired": "a key that has not expired",
    "suspended": "an active account (it is suspended)",
    "deactivated": "an active account (it is deactivated)",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _command(
    method: Callable[Concatenate[Identity, _P], _R],
) -> Callable[Concatenate[Identity, _P], _R]:
    """Run a command under the lock; re-run it on fresh state if another writer won.

    A re-run checks every rule again: a duplicate that slipped past the first check
    (another process created the same email at the same moment) is then refused.
    """

    @functools.wraps(method)
    def run(self: Identity, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    return method(self, *args, **kwargs)
                except IntegrityError as exc:
                    log.info("identity command lost a race", command=method.__name__)
                    if attempt == _ATTEMPTS:
                        raise ConcurrencyError(
                            f"{method.__name__}: other writers changed the same records "
                            f"during each of {_ATTEMPTS} attempts; nothing was written, "
                            "retry later"
                        ) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    return run


def _choice(value: object, allowed: frozenset[str], what: str) -> str:
    if value not in allowed:
        raise ValidationError(f"invalid {what} {value!r}: use one of {sorted(allowed)}")
    return value


def _as_uuid(value: object, what: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError(f"invalid {what} {value!r}: pass the UUID the store returned")


class Identity(Application[UUID]):
    """Accounts, organizations, members, API keys and the audit log, in ``system.db``.

    ``env`` selects the persistence of ``system.db`` (the data directory's
    ``system_env()``). ``create_tenant_file(org_id)`` makes a new organization's tenant
    file complete before it is registered (see :meth:`create_organization`); without it
    this application can read and change everything but found organizations. ``clock``
    gives the current time (UTC-aware) for expiry and usage; tests pass their own.
    """

    name = "identity"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        create_tenant_file: Callable[[str], object] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        super().__init__(dict(env))
        self._create_tenant_file = create_tenant_file
        self.clock = clock
        self._lock = threading.RLock()
        self._refusals = RefusalTally()

    # --- accounts -------------------------------------------------------------------

    @_command
    def create_account(
        self,
        email: str,
        display_name: str,
        *,
        actor: Principal,
        access_level: AccessLevel = "user",
    ) -> AccountInfo:
        """Open an active account; DuplicateError if the email (any case) is taken.

        Only an admin (or the system principal) may create accounts.
        """
        email = check_email(email)
        display_name = check_text(display_name, what="display name", max_length=200)
        level = cast("AccessLevel", _choice(access_level, ACCESS_LEVELS, "access level"))
        self._require_admin(actor, f"create account {email!r}")
        existing = self._find(account_id_for(email), Account)
        if existing is not None:
            raise DuplicateError(
                f"an account with email {email!r} already exists ({existing.id}, "
                f"{existing.status}); emails are unique and are never reused"
            )
        account = Account.open(email, display_name, level, actor=actor)
        self.save(account)
        return account.info()

    def suspend_account(
        self, account_id: UUID | str, *, actor: Principal, reason: str = ""
    ) -> AccountInfo:
        """active -> suspended: its keys are refused until it is reactivated."""
        return self._change_status(account_id, "suspended", actor=actor, reason=reason)

    def reactivate_account(self, account_id: UUID | str, *, actor: Principal) -> AccountInfo:
        """suspended -> active: its keys that are not revoked or expired work again."""
        return self._change_status(account_id, "active", actor=actor, reason="")

    def deactivate_account(
        self, account_id: UUID | str, *, actor: Principal, reason: str = ""
    ) -> AccountInfo:
        """active or suspended -> deactivated, for good: every key of it is revoked."""
        return self._change_status(account_id, "deactivated", actor=actor, reason=reason)

    @_command
    def _change_status(
        self, account_id: UUID | str, target: AccountStatus, *, actor: Principal, reason: str
    ) -> AccountInfo:
        reason = check_text(reason, what="reason", max_length=500, allow_empty=True)
        account = self._account(account_id)
        self._require_admin(actor, f"change the status of account {account.email!r}")
        if actor.account_id == account.id:
            raise ForbiddenError(
                f"account {account.email!r} may not make itself {target}; ask another admin"
            )
        account.change_status(target, actor=actor, reason=reason)
        changed: list[Aggregate] = [account]
        if target == "deactivated":
            now = self._now()
            for key_id in account.key_ids:
                key = self._load(key_id, ApiKey, "API key")
                if key.revoked_at is None:
                    key.revoke(now=now, actor=actor, reason="account deactivated")
                    changed.append(key)
        self.save(*changed)
        return account.info()

    def get_account(self, account_id: UUID | str) -> AccountInfo:
        """An account by id; NotFoundError if unknown."""
        return self._account(account_id).info()

    def find_account(self, email: str) -> AccountInfo:
        """An account by email (any case); NotFoundError if none has it."""
        normalised = check_email(email)
        return self._load(account_id_for(normalised), Account, "account", normalised).info()

    def accounts(self) -> list[AccountInfo]:
        """Every account, in the order they were opened (read from the identity stream)."""
        topics = list(names_of(get_topic(Account.Created)))  # older files: a legacy name
        found: list[AccountInfo] = []
        start = 1
        while True:
            page = self.recorder.select_notifications(start, _PAGE, topics=topics)
            found += [self._account(n.originator_id).info() for n in page]
            if len(page) < _PAGE:
                return found
            start = page[-1].id + 1

    # --- organizations --------------------------------------------------------------

    @_command
    def create_organization(
        self, name: str, slug: str, *, owner_id: UUID | str, actor: Principal
    ) -> OrganizationInfo:
        """Found an organization (a tenant): create its tenant file, then register it.

        ``slug`` is the org id: it must pass :func:`check_org_id` (checked before
        anything else) and, like ``name`` (ignoring case and extra spaces), be unused.
        The owner, an active account, becomes its first member at level ``owner``. A
        user or service account may found organizations it owns; an admin, any.

        Every rule is checked before any file is touched. The tenant file is then
        created in full, and only then are the organization and its registration saved
        (one ``system.db`` transaction): a registered tenant always has a complete file.
        A crash before that save leaves an unregistered file, invisible in
        :meth:`tenants`, which creating the same org id again completes and registers
        (docs/identity.md, "Creating a tenant after a crash").
        """
        org_id = check_org_id(slug)
        name = check_text(name, what="organization name", max_length=200)
        if self._create_tenant_file is None:
            raise ConflictError(
                "this Identity cannot found organizations: it was opened without "
                "create_tenant_file; use the data directory's (graphstore.open(...).identity)"
            )
        owner = self._account(owner_id)
        acting = self._acting(actor)
        if not (self._is_admin(acting) or actor.account_id == owner.id):
            raise ForbiddenError(
                f"{self._who(actor)} may not found an organization owned by "
                f"{owner.email!r}: only admins may; found it with yourself as owner"
            )
        self._require_active(owner, "own an organization")
        registry = self._find(REGISTRY_ID, TenantRegistry) or TenantRegistry.start(actor=actor)
        organization = Organization.found(name, org_id, owner_id=owner.id, actor=actor)
        registry.register(org_id, name, organization.id, actor=actor)
        self._create_tenant_file(org_id)  # complete before it is registered
        self.save(registry, organization)
        return organization.info()

    def get_organization(self, org_id: str) -> OrganizationInfo:
        """An organization by org id (slug) with its members; NotFoundError if unknown."""
        return self._organization(org_id).info()

    def tenants(self) -> list[str]:
        """The org ids of every registered organization, sorted."""
        registry = self._find(REGISTRY_ID, TenantRegistry)
        return [] if registry is None else sorted(registry.tenants)

    @_command
    def add_member(
        self,
        org_id: str,
        account_id: UUID | str,
        *,
        actor: Principal,
        level: MembershipLevel = "member",
    ) -> OrganizationInfo:
        """Add an active account at ``admin`` or ``member`` level (once per org)."""
        level = cast("MembershipLevel", _choice(level, MEMBERSHIP_LEVELS, "membership level"))
        organization = self._organization(org_id)
        self._require_org_manager(organization, actor, "add members to")
        account = self._account(account_id)
        self._require_active(account, "join an organization")
        organization.add_member(account.id, level, actor=actor)
        self.save(organization)
        return organization.info()

    @_command
    def change_member_level(
        self, org_id: str, account_id: UUID | str, level: MembershipLevel, *, actor: Principal
    ) -> OrganizationInfo:
        """Make a member (not the owner) an ``admin`` or a ``member``."""
        level = cast("MembershipLevel", _choice(level, MEMBERSHIP_LEVELS, "membership level"))
        organization = self._organization(org_id)
        self._require_org_manager(organization, actor, "change member levels of")
        organization.change_member_level(_as_uuid(account_id, "account id"), level, actor=actor)
        self.save(organization)
        return organization.info()

    @_command
    def remove_member(
        self, org_id: str, account_id: UUID | str, *, actor: Principal
    ) -> OrganizationInfo:
        """Remove a member (not the owner: transfer the ownership first)."""
        organization = self._organization(org_id)
        self._require_org_manager(organization, actor, "remove members of")
        organization.remove_member(_as_uuid(account_id, "account id"), actor=actor)
        self.save(organization)
        return organization.info()

    @_command
    def transfer_ownership(
        self, org_id: str, new_owner_id: UUID | str, *, actor: Principal
    ) -> OrganizationInfo:
        """Make another active account the owner; the old owner stays as an admin.

        Only the owner or an admin may.
        """
        organization = self._organization(org_id)
        acting = self._acting(actor)
        if not (self._is_admin(acting) or actor.account_id == organization.owner_id):
            raise ForbiddenError(
                f"{self._who(actor)} may not transfer the ownership of {organization.slug!r}: "
                "only its owner or an admin may"
            )
        new_owner = self._account(new_owner_id)
        self._require_active(new_owner, "own an organization")
        organization.transfer_ownership(new_owner.id, actor=actor)
        self.save(organization)
        return organization.info()

    # --- API keys -------------------------------------------------------------------

    @_command
    def create_api_key(
        self,
        account_id: UUID | str,
        *,
        name: str,
        actor: Principal,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        """Issue a key for an active account; the result holds the only clear copy.

        An account may create keys for itself; an admin, for any account.
        ``expires_at`` (timezone-aware, in the future) or None for no expiry.
        """
        name = check_text(name, what="API key name", max_length=100)
        now = self._now()
        expires_at = check_expiry(expires_at, now)
        account = self._account(account_id)
        self._require_self_or_admin(account, actor, "create API keys for")
        self._require_active(account, "hold API keys")
        key, issued = self._issue(account, name, now=now, expires_at=expires_at, actor=actor)
        self.save(account, key)
        return issued

    @_command
    def revoke_api_key(
        self, key_id: UUID | str, *, actor: Principal, reason: str = ""
    ) -> ApiKeyInfo:
        """Revoke a key for good (its owner or an admin may); ConflictError if it was."""
        reason = check_text(reason, what="reason", max_length=500, allow_empty=True)
        key = self._load(_as_uuid(key_id, "API key id"), ApiKey, "API key")
        self._require_self_or_admin(self._account(key.owner_id), actor, "revoke API keys of")
        key.revoke(now=self._now(), actor=actor, reason=reason)
        self.save(key)
        return key.info()

    @_command
    def rotate_api_key(
        self,
        key_id: UUID | str,
        *,
        actor: Principal,
        expires_at: datetime | SameLifetime | None = "same-lifetime",
    ) -> IssuedKey:
        """Replace a usable key by a new one; the old is revoked with ``rotated_to_id``.

        The new key has the old one's owner and name. By default it gets the old key's
        lifetime again, counted from now (no expiry if the old had none).
        """
        key = self._load(_as_uuid(key_id, "API key id"), ApiKey, "API key")
        account = self._account(key.owner_id)
        self._require_self_or_admin(account, actor, "rotate API keys of")
        self._require_active(account, "hold API keys")
        now = self._now()
        key.check_usable(now, "rotate")
        if expires_at == "same-lifetime":
            lifetime = None if key.expires_at is None else key.expires_at - key.issued_at
            new_expiry = None if lifetime is None else now + lifetime
        else:
            new_expiry = check_expiry(expires_at, now)
        new_key, issued = self._issue(
            account, key.name, now=now, expires_at=new_expiry, actor=actor, rotated_from=key.id
        )
        key.rotate_to(new_key.id, now=now, actor=actor)
        self.save(account, new_key, key)
        return issued

    def get_api_key(self, key_id: UUID | str) -> ApiKeyInfo:
        """A key's metadata (never its secret or hash); NotFoundError if unknown."""
        return self._load(_as_uuid(key_id, "API key id"), ApiKey, "API key").info()

    def api_keys(self, account_id: UUID | str) -> list[ApiKeyInfo]:
        """Every key ever issued to an account, oldest first, revoked ones included."""
        account = self._account(account_id)
        return [self._load(key_id, ApiKey, "API key").info() for key_id in account.key_ids]

    def authenticate(self, api_key: str) -> Principal:
        """The principal a key stands for, or an :class:`AuthenticationError`.

        Refused: a key this store did not issue (:class:`UnknownKeyError`), a revoked or
        rotated key (:class:`RevokedKeyError`), an expired key
        (:class:`ExpiredKeyError`), a key of a suspended or deactivated account
        (:class:`InactiveAccountError`). No error holds the key.
        """
        key = self._presented_key(api_key)
        now = self._now()
        if key.revoked_at is not None:
            self._refuse("revoked", key)
            replaced = f"; it was rotated to key {key.rotated_to_id}" if key.rotated_to_id else ""
            raise RevokedKeyError(
                f"API key {key.id} was revoked at {key.revoked_at.isoformat()}{replaced}. "
                "Use a current key, or ask its owner or an admin for a new one",
                key_id=key.id,
            )
        if key.is_expired(now):
            self._refuse("expired", key)
            raise ExpiredKeyError(
                f"API key {key.id} expired at "
                f"{key.expires_at.isoformat() if key.expires_at else ''}. Create a new key "
                "(or rotate one before it expires)",
                key_id=key.id,
            )
        account = self._load(key.owner_id, Account, "account")
        if account.status != "active":
            self._refuse(account.status, key)
            raise InactiveAccountError(
                f"API key {key.id} belongs to account {account.id}, which is "
                f"{account.status}; an admin must reactivate it"
                + (" (deactivation is final)" if account.status == "deactivated" else ""),
                account_id=account.id,
                status=account.status,
            )
        principal = Principal(
            account_id=account.id,
            access_level=account.access_level,
            credential_type="api_key",
            credential_id=key.id,
        )
        self._note_use(key, now, principal)
        return principal

    # --- standing (domain.access decides from it) ------------------------------------

    def standing(self, principal: Principal, org_id: str | None) -> Standing:
        """What ``principal`` is, as recorded now: its credential's and account's state,
        its access level and its membership level in ``org_id`` (None: no tenant).
        The permission model (:func:`domain.access.decide`) works from it; nothing in
        the principal itself is trusted but its ids."""
        if not isinstance(principal, Principal):
            raise ValidationError(
                f"invalid principal {principal!r}: pass a Principal (from authenticate(), "
                "or Principal.system() for the local operator)"
            )
        if principal.account_id is None:
            return Standing(system=True)
        account = self._find(principal.account_id, Account)
        credential, expires_at = self._credential_state(principal)
        membership = None
        if org_id is not None and account is not None:
            organization = self._organization(org_id)
            membership = organization.level_of(account.id)
        return Standing(
            credential=credential,
            account="unknown" if account is None else account.status,
            access_level="user" if account is None else account.access_level,
            membership=membership,
            expires_at=expires_at,
        )

    def _credential_state(self, principal: Principal) -> tuple[CredentialState, datetime | None]:
        if principal.credential_type != "api_key" or principal.credential_id is None:
            return "unknown", None  # an account acts only through one of its keys
        key = self._find(principal.credential_id, ApiKey)
        if key is None or key.owner_id != principal.account_id:
            return "unknown", None
        if key.revoked_at is not None:
            return "revoked", None
        if key.is_expired(self._now()):
            return "expired", key.expires_at
        return "valid", key.expires_at

    @_command
    def record_refusal(
        self,
        principal: Principal,
        *,
        operation: str,
        what: str,
        missing: str,
        org_id: str | None = None,
    ) -> UUID:
        """Add an ``access.denied`` entry: ``principal`` was refused ``what`` (of group
        ``operation``) in tenant ``org_id`` (None: an operation over every tenant, or an
        authentication) for lack of ``missing``. Recorded whatever the principal's state
        (a suspended account's attempts are exactly what an audit wants to see).

        Coalesced: the first such refusal of a minute is written at once, the next ones
        of that minute are counted against it (written as its count now and then, see
        :mod:`domain._refusals`), so a flood of refusals costs a few small writes. The
        id returned is the entry's."""
        if org_id is not None:
            org_id = check_org_id(org_id)
        key = RefusalKey(
            principal.actor_id,
            principal.credential_id,
            org_id,
            check_text(operation, what="operation", max_length=50),
            check_text(what, what="refused operation", max_length=200),
            check_text(missing, what="what was missing", max_length=500),
        )
        minute = int(self._now().timestamp() // 60)
        counted = self._refusals.note(key, minute)
        self._write_refusal_counts(self._refusals.due(minute))
        if counted is not None:
            return counted
        record = AccessRefused.record(org_id, key.operation, key.what, key.missing, actor=principal)
        self.save(record)
        self._refusals.opened(key, minute, record.id)
        return record.id

    def flush_refusals(self) -> None:
        """Write every refusal counted but not written yet (done before the audit log is
        read and when the application closes)."""
        with self._lock:
            self._write_refusal_counts(self._refusals.due())

    def _write_refusal_counts(self, owed: list[tuple[UUID, int]]) -> None:
        """Add counted refusals to their records (bookkeeping, by the store itself)."""
        for record_id, count in owed:
            record = self._find(record_id, AccessRefused)
            if record is not None:
                record.repeat(count, actor=Principal.system())
                self.save(record)

    def close(self) -> None:
        """Write the refusals counted but not written yet, then close ``system.db``."""
        try:
            self.flush_refusals()
        except Exception:  # closing must close, whatever the flush met: say what is lost
            log.warning("refusal counts not written on close", exc_info=True)
        super().close()

    # --- audit ----------------------------------------------------------------------

    @_command
    def record_tenant_write(
        self,
        actor: Principal,
        org_id: str,
        what: str,
        details: Mapping[str, Any] | None = None,
    ) -> UUID:
        """Add an audit entry (action ``tenant.write``) for a write made in a tenant
        file; returns the entry's subject id. ``what`` says what was written, ``details``
        (JSON) anything else worth keeping; neither may hold secrets.

        The org must be registered and the actor active. Whether the actor was allowed
        to make that write is decided where the write is made.
        """
        org_id = check_org_id(org_id)
        what = check_text(what, what="tenant write description", max_length=200)
        data = json_object(details)
        self._acting(actor)
        self._organization(org_id)
        record = TenantWrite.record(org_id, what, data, actor=actor)
        self.save(record)
        return record.id

    @_command
    def record_operation(
        self, actor: Principal, what: str, details: Mapping[str, Any] | None = None
    ) -> UUID:
        """Add an audit entry (action ``store.operation``) for an operation over the
        whole store made by ``actor`` (a backup, a restore); returns its subject id.
        ``details`` (JSON) may not hold secrets. Whether the actor was allowed is
        decided by the caller (:func:`domain.access.require_operator`)."""
        what = check_text(what, what="operation description", max_length=200)
        data = json_object(details)
        self._acting(actor)
        record = OperatorAction.record(what, data, actor=actor)
        self.save(record)
        return record.id

    def audit_log(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        org_id: str | None = None,
        actor_id: str | None = None,
    ) -> list[AuditEntry]:
        """Identity changes in the order they were recorded, optionally only those
        after position ``after``, of one org, or of one actor (``"system"`` or an
        account id). Entries are events: nothing ever changes or removes one; an
        ``access.denied`` entry's details hold its ``count`` (the refusals it stands for,
        coalesced per principal, operation, tenant and minute)."""
        self.flush_refusals()
        registry = self._find(REGISTRY_ID, TenantRegistry)
        org_ids = {} if registry is None else {v: k for k, v in registry.tenants.items()}
        entries: list[AuditEntry] = []
        start = after + 1
        while limit is None or len(entries) < limit:
            page = self.recorder.select_notifications(start, _PAGE)
            for notification in page:
                event = self.mapper.to_domain_event(notification)
                entry = audit_entry(notification.id, event, org_ids)
                if entry is None or (org_id is not None and entry.org_id != org_id):
                    continue
                if actor_id is not None and entry.actor_id != actor_id:
                    continue
                entries.append(entry)
                if limit is not None and len(entries) >= limit:
                    break
            if len(page) < _PAGE:
                break
            start = page[-1].id + 1
        return [self._with_count(entry) for entry in entries]

    def _with_count(self, entry: AuditEntry) -> AuditEntry:
        """An ``access.denied`` entry with the count of refusals it stands for."""
        if entry.action != AccessRefused.Recorded.ACTION:
            return entry
        record = self._find(entry.subject_id, AccessRefused)
        count = 1 if record is None else record.count
        return msgspec.structs.replace(entry, details={**entry.details, "count": count})

    # --- internals: loading ---------------------------------------------------------

    def _find(self, aggregate_id: UUID, cls: type[_A]) -> _A | None:
        try:
            found: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, cls) else None

    def _load(self, aggregate_id: UUID, cls: type[_A], kind: str, name: str = "") -> _A:
        found = self._find(aggregate_id, cls)
        if found is None:
            shown = name or str(aggregate_id)
            raise NotFoundError(
                f"no {kind} {shown!r}; check the {'value' if name else 'id'}",
                kind=kind,
                name=shown,
            )
        return found

    def _account(self, account_id: UUID | str) -> Account:
        return self._load(_as_uuid(account_id, "account id"), Account, "account")

    def _organization(self, org_id: str) -> Organization:
        org_id = check_org_id(org_id)
        return self._load(organization_id_for(org_id), Organization, "organization", org_id)

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("Identity's clock must return timezone-aware datetimes")
        return now

    # --- internals: rights ----------------------------------------------------------

    def _acting(self, actor: Principal) -> Account | None:
        """The actor's account as recorded now (None for the system principal);
        ForbiddenError unless it is active."""
        if not isinstance(actor, Principal):
            raise ValidationError(
                f"invalid actor {actor!r}: pass a Principal (from authenticate(), or "
                "Principal.system() for the local operator)"
            )
        if actor.account_id is None:
            return None
        account = self._find(actor.account_id, Account)
        if account is None or account.status != "active":
            status = "unknown" if account is None else account.status
            raise ForbiddenError(
                f"actor {actor.actor_id} is not an active account ({status}); it may not "
                "change identity records"
            )
        return account

    @staticmethod
    def _is_admin(acting: Account | None) -> bool:
        return acting is None or acting.access_level == "admin"

    @staticmethod
    def _who(actor: Principal) -> str:
        return "the system" if actor.account_id is None else f"account {actor.account_id}"

    def _require_admin(self, actor: Principal, action: str) -> None:
        if not self._is_admin(self._acting(actor)):
            raise ForbiddenError(f"{self._who(actor)} may not {action}: only admins may")

    def _require_self_or_admin(self, account: Account, actor: Principal, action: str) -> None:
        acting = self._acting(actor)
        if not (self._is_admin(acting) or actor.account_id == account.id):
            raise ForbiddenError(
                f"{self._who(actor)} may not {action} account {account.email!r}: only the "
                "account itself or an admin may"
            )

    def _require_org_manager(
        self, organization: Organization, actor: Principal, action: str
    ) -> None:
        acting = self._acting(actor)
        if self._is_admin(acting) or organization.level_of(actor.account_id) in {"owner", "admin"}:
            return
        raise ForbiddenError(
            f"{self._who(actor)} may not {action} {organization.slug!r}: only its owner, "
            "its admins or an admin account may"
        )

    @staticmethod
    def _require_active(account: Account, action: str) -> None:
        if account.status != "active":
            raise ConflictError(
                f"account {account.email!r} is {account.status} and may not {action}; "
                "reactivate it first (a deactivated account stays deactivated)"
            )

    # --- internals: keys ------------------------------------------------------------

    @staticmethod
    def _issue(
        account: Account,
        name: str,
        *,
        now: datetime,
        expires_at: datetime | None,
        actor: Principal,
        rotated_from: UUID | None = None,
    ) -> tuple[ApiKey, IssuedKey]:
        secret = new_secret()
        key = ApiKey.issue(
            account.id,
            name,
            hash_key(secret),
            issued_at=now,
            expires_at=expires_at,
            actor=actor,
            rotated_from_id=rotated_from,
        )
        account.attach_key(key.id, actor=actor)
        issued = IssuedKey(
            id=key.id, owner_id=account.id, name=name, expires_at=expires_at, secret=secret
        )
        return key, issued

    def _presented_key(self, api_key: object) -> ApiKey:
        """The key record matching ``api_key``, compared in constant time."""
        if is_well_formed(api_key):
            presented = hash_key(api_key)
            key = self._find(api_key_id_for(presented), ApiKey)
            if key is not None and hmac.compare_digest(key.key_hash, presented):
                return key
        log.info("authentication refused", reason="unknown key")
        raise UnknownKeyError(
            f"API key refused: it is not a key this store issued (expected '{KEY_PREFIX}' "
            "and 43 characters). Check that it was copied whole, or create a new key"
        )

    def _refuse(self, reason: str, key: ApiKey) -> None:
        """Log and audit the refusal of a key this store issued (an unknown key names
        no one, so it is only logged)."""
        log.info("authentication refused", reason=reason, key_id=str(key.id))
        who = Principal(
            account_id=key.owner_id,
            access_level="user",  # not recorded: the audit names ids only
            credential_type="api_key",
            credential_id=key.id,
        )
        self.record_refusal(
            who, operation="authenticate", what="authenticate", missing=_WHY_REFUSED[reason]
        )

    def _note_use(self, key: ApiKey, now: datetime, principal: Principal) -> None:
        """Record ``last_used_at`` if the last record is older than USAGE_GRANULARITY."""
        if key.last_used_at is not None and now - key.last_used_at < USAGE_GRANULARITY:
            return
        key.mark_used(now, actor=principal)
        try:
            with self._lock:
                self.save(key)
        except IntegrityError:  # another process recorded a use (or a change) just now
            log.debug("key use not recorded: key changed meanwhile", key_id=str(key.id))
