"""Typed values of identity: what commands take, aggregates hold and reads return.

Also the naming rules of identity values (emails, names, org ids) and the deterministic
ids that make them unique. An org id is the organization's slug and becomes part of a
file name (``tenant-<org id>.db``), so :func:`check_org_id` is the one gate every path
goes through before any file is touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID, uuid5

import msgspec

from domain.errors import InvalidOrgIdError, ValidationError

__all__ = [
    "ACCESS_LEVELS",
    "ACCOUNT_TRANSITIONS",
    "MEMBERSHIP_LEVELS",
    "NAMESPACE",
    "ORG_ID_MAX_LENGTH",
    "AccessLevel",
    "AccountInfo",
    "AccountStatus",
    "ApiKeyInfo",
    "AuditEntry",
    "CredentialType",
    "IssuedKey",
    "MembershipLevel",
    "OrganizationInfo",
    "Principal",
    "account_id_for",
    "api_key_id_for",
    "check_email",
    "check_org_id",
    "check_text",
    "name_key",
    "organization_id_for",
]

AccessLevel = Literal["admin", "user", "service"]
"""What an account may do across the store: ``admin`` manages accounts and every
organization; ``user`` and ``service`` manage themselves and the organizations they lead."""

AccountStatus = Literal["active", "suspended", "deactivated"]
"""An account's life cycle; see :data:`ACCOUNT_TRANSITIONS`."""

MembershipLevel = Literal["owner", "admin", "member"]
"""A member's level in one organization; exactly one member (the owner) has ``owner``."""

CredentialType = Literal["api_key", "system"]
"""How a principal proved who it is: an API key, or local access to the data directory."""

ACCESS_LEVELS: Final = frozenset({"admin", "user", "service"})
MEMBERSHIP_LEVELS: Final = frozenset({"owner", "admin", "member"})

ACCOUNT_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "active": frozenset({"suspended", "deactivated"}),
    "suspended": frozenset({"active", "deactivated"}),
    "deactivated": frozenset(),
}
"""Allowed account status changes: suspend (active -> suspended) is reversible by
reactivate (suspended -> active); deactivate (from either) is final."""

NAMESPACE: Final = UUID("1b877c2b-2921-4d2c-a0e0-4496f9d5676d")
"""Namespace of identity's deterministic ids (``uuid5``). Part of the stored format."""

ORG_ID_MAX_LENGTH: Final = 63
_ORG_ID_CHARS: Final = re.compile(r"[a-z0-9-]+")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_EMAIL_MAX_LENGTH: Final = 254


def _shown(value: object) -> str:
    """``repr(value)``, shortened so an error message stays readable."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_org_id(value: object) -> str:
    """``value`` if it is a valid org id, else :class:`InvalidOrgIdError` naming the rule.

    An org id is 1-63 characters from ``a-z``, ``0-9`` and ``-``, neither starting nor
    ending with ``-`` (a DNS label), so it can never hold a path separator, ``..``, a
    NUL byte or anything a file system treats specially.
    """

    def refuse(rule: str) -> InvalidOrgIdError:
        return InvalidOrgIdError(
            f"invalid org id {_shown(value)}: {rule}. An org id names the tenant and its "
            f"file: use 1-{ORG_ID_MAX_LENGTH} characters from a-z, 0-9 and "
            "'-', not starting or ending with '-', e.g. 'acme' or 'acme-labs'",
            value=value,
            rule=rule,
        )

    if not isinstance(value, str):
        raise refuse("it must be a string")
    if "/" in value or "\\" in value:
        raise refuse("it must not contain a path separator ('/' or '\\')")
    if ".." in value:
        raise refuse("it must not contain '..'")
    if not 1 <= len(value) <= ORG_ID_MAX_LENGTH:
        raise refuse(f"its length must be 1-{ORG_ID_MAX_LENGTH}, not {len(value)}")
    if not _ORG_ID_CHARS.fullmatch(value):
        raise refuse("it may only contain lowercase a-z, digits 0-9 and '-'")
    if value.startswith("-") or value.endswith("-"):
        raise refuse("it must not start or end with '-'")
    return value


def check_text(value: object, *, what: str, max_length: int, allow_empty: bool = False) -> str:
    """``value`` stripped, if it is a string of an allowed length; else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(f"invalid {what} {_shown(value)}: use a string")
    text = value.strip()
    if (not text and not allow_empty) or len(text) > max_length:
        raise ValidationError(
            f"invalid {what} {_shown(value)}: use "
            f"{'0' if allow_empty else '1'}-{max_length} characters (surrounding spaces "
            "are dropped)"
        )
    return text


def check_email(value: object) -> str:
    """The normalised email (stripped, lowercase), or ValidationError.

    Lowercasing the whole address is a deliberate simplification: two addresses that
    differ only in case are one account.
    """
    if not isinstance(value, str):
        raise ValidationError(f"invalid email {_shown(value)}: use a string")
    email = value.strip().lower()
    if len(email) > _EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(email):
        raise ValidationError(
            f"invalid email {_shown(value)}: use an address like 'ada@example.com' (at most "
            f"{_EMAIL_MAX_LENGTH} characters, one '@', a dotted domain, no spaces)"
        )
    return email


def name_key(name: str) -> str:
    """What makes two organization names the same: case and runs of spaces ignored."""
    return " ".join(name.split()).casefold()


def account_id_for(email: str) -> UUID:
    """The id of the account with this (normalised) email: equal emails, equal ids."""
    return uuid5(NAMESPACE, f"account:{email}")


def organization_id_for(org_id: str) -> UUID:
    """The aggregate id of the organization with this (validated) org id."""
    return uuid5(NAMESPACE, f"organization:{org_id}")


def api_key_id_for(key_hash: str) -> UUID:
    """The id of the API key with this hash: the lookup from a presented key."""
    return uuid5(NAMESPACE, f"api-key:{key_hash}")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who acts: an account that authenticated, or the local operator (``system()``).

    A Principal is an in-process value: build one only with :meth:`Identity.authenticate`
    (or :meth:`system` for code that already has the data directory in hand), never from
    what a client sends. Commands re-read the account's status and access level, so a
    principal of an account suspended since it authenticated can no longer act.
    """

    account_id: UUID | None
    access_level: AccessLevel
    credential_type: CredentialType
    credential_id: UUID | None = None

    @classmethod
    def system(cls) -> Principal:
        """The local operator: may do everything; audited as actor ``"system"``."""
        return cls(account_id=None, access_level="admin", credential_type="system")

    @property
    def is_system(self) -> bool:
        return self.account_id is None

    @property
    def actor_id(self) -> str:
        """How the audit log names this principal: the account id, or ``"system"``."""
        return "system" if self.account_id is None else str(self.account_id)


class AccountInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An account as read."""

    id: UUID
    email: str
    display_name: str
    access_level: AccessLevel
    status: AccountStatus
    created_at: datetime
    updated_at: datetime


class OrganizationInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An organization as read. ``org_id`` is its slug: the tenant's id and file name part."""

    id: UUID
    org_id: str
    name: str
    slug: str
    owner_id: UUID
    members: dict[UUID, MembershipLevel]
    created_at: datetime
    updated_at: datetime


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as read: never its secret, nor even its hash.

    ``enabled`` is false once the key is revoked (or rotated); an expired key stays
    ``enabled`` but is refused after ``expires_at``.
    """

    id: UUID
    owner_id: UUID
    name: str
    enabled: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to_id: UUID | None
    rotated_from_id: UUID | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: the only time its secret is available.

    Hand ``secret`` to its holder and drop it: the store keeps only its SHA-256 hash.
    ``repr()`` leaves the secret out, so logging this value does not leak it.
    """

    id: UUID
    owner_id: UUID
    name: str
    expires_at: datetime | None
    secret: str = field(repr=False)


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One identity change: who (actor and credential), what (action, subject, details),
    when (``at``, the time it was recorded), and its position in the identity stream."""

    position: int
    at: datetime
    action: str
    actor_id: str
    credential_type: CredentialType
    credential_id: UUID | None
    org_id: str | None
    subject_id: UUID
    details: dict[str, Any]
