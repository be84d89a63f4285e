"""The audit log's entries, read from identity events.

An event class with an ``ACTION`` is an audit entry; its fields (minus the event's
envelope, the actor fields and the key hash) are the entry's details, as JSON values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast
from uuid import UUID

import msgspec

from domain._identity_aggregates import AccessRefused, IdentityEvent, TenantWrite
from domain._identity_values import AuditEntry, CredentialType
from domain.errors import ValidationError

__all__ = ["audit_entry", "json_object"]

_NOT_DETAILS: Final = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor_id",
        "credential_type",
        "credential_id",
        "key_hash",
    }
)


def json_object(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """``details`` as a JSON object (a copy), or ValidationError."""
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise ValidationError(f"invalid details {details!r}: use a JSON object (a dict)")
    try:
        data = msgspec.json.decode(msgspec.json.encode(dict(details)))
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValidationError(
            f"invalid details: {exc}; use JSON values only (str, int, float, bool, None, "
            "lists and dicts with string keys)"
        ) from None
    return cast("dict[str, Any]", data)


def audit_entry(position: int, event: object, org_ids: Mapping[UUID, str]) -> AuditEntry | None:
    """The audit entry of an identity event, or None for bookkeeping events."""
    if not isinstance(event, IdentityEvent) or event.ACTION is None:
        return None
    fields = {k: v for k, v in vars(event).items() if k not in _NOT_DETAILS}
    if isinstance(event, TenantWrite.Recorded | AccessRefused.Recorded):
        org_id: str | None = fields.pop("org_id")
    else:
        org_id = org_ids.get(event.originator_id)
    return AuditEntry(
        position=position,
        at=event.timestamp,
        action=event.ACTION,
        actor_id=event.actor_id,
        credential_type=cast("CredentialType", event.credential_type),
        credential_id=event.credential_id,
        org_id=org_id,
        subject_id=event.originator_id,
        details=msgspec.to_builtins(fields),
    )
