"""Audit records of tenant writes, committed in the same transaction as the write.

A :class:`~domain.Metagraph` given an :class:`Auditor` (who acts: the principal's actor
id and credential) appends one :class:`AuditRecord` to every commit it makes, a single
command or a whole unit of work, in the SAME recorder call as the events it describes:
a kill -9 can never separate a write from its record, a failed audit can never follow
a committed write, and a record never exists for a write that did not commit. The
record says who, when (its event's time), what (``what``: the unit's own description
if it gave one with :meth:`~domain.UnitOfWork.describe`, else the kinds of events) and
how many of the events recorded just before it, in the same commit, it covers.

The tenant's audit log is read from its own stream (:func:`tenant_audit_log`); the
façade merges it with the identity log of ``system.db``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID, uuid4

import msgspec
from eventsourcing.domain import Aggregate, DomainEventProtocol

from domain._identity_values import AuditEntry, CredentialType

__all__ = ["AUDIT_ACTION", "AuditRecord", "Auditor", "tenant_audit_log"]

AUDIT_ACTION: Final = "tenant.write"
_PAGE: Final = 1000


class Auditor(msgspec.Struct, frozen=True, kw_only=True):
    """Who the writes of an application are recorded as made by."""

    actor_id: str
    credential_type: CredentialType
    credential_id: UUID | None = None


class AuditRecord(Aggregate):
    """One commit's audit record (its own aggregate: records never conflict)."""

    TOPIC = "AuditRecord"

    class Event(Aggregate.Event):
        pass

    class Recorded(Event, Aggregate.Created):
        """``events``: how many events of the same commit, recorded just before this
        one, the record covers; ``aggregates`` their aggregates."""

        TOPIC = "AuditRecord.Recorded"
        actor_id: str
        credential_type: str
        credential_id: UUID | None
        what: str
        details: dict[str, Any]
        events: int
        aggregates: list[str]

    Created = Recorded

    def __init__(
        self,
        *,
        actor_id: str,
        credential_type: str,
        credential_id: UUID | None,
        what: str,
        details: dict[str, Any],
        events: int,
        aggregates: list[str],
    ) -> None:
        self.actor_id = actor_id
        self.what = what

    @classmethod
    def of(
        cls,
        auditor: Auditor,
        events: Sequence[DomainEventProtocol[UUID]],
        *,
        what: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """The record of a commit of ``events``."""
        kinds = Counter(type(e).__qualname__ for e in events)
        summary = ", ".join(f"{name} x{count}" for name, count in sorted(kinds.items()))
        return cls._create(
            cls.Recorded,
            id=uuid4(),
            actor_id=auditor.actor_id,
            credential_type=auditor.credential_type,
            credential_id=auditor.credential_id,
            what=what or summary,
            details={**(details or {}), **({"events": summary} if what else {})},
            events=len(events),
            aggregates=sorted({str(e.originator_id) for e in events}),
        )


def tenant_audit_log(
    app: Any, org_id: str, *, after: int = 0, limit: int | None = None
) -> list[AuditEntry]:
    """The audit records of a tenant's writes, in the order they were recorded (read
    from the tenant's stream: ``position`` is a stream offset of that tenant)."""
    entries: list[AuditEntry] = []
    start = after
    while limit is None or len(entries) < limit:
        page = app.recorder.select_notifications(
            start, _PAGE, topics=["AuditRecord.Recorded"], inclusive_of_start=False
        )
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if not isinstance(event, AuditRecord.Recorded):
                continue
            entries.append(
                AuditEntry(
                    position=notification.id,
                    at=event.timestamp,
                    action=AUDIT_ACTION,
                    actor_id=event.actor_id,
                    credential_type=event.credential_type,  # type: ignore[arg-type]
                    credential_id=event.credential_id,
                    org_id=org_id,
                    subject_id=event.originator_id,
                    details={"what": event.what, **event.details, "covers": event.events},
                )
            )
            if limit is not None and len(entries) >= limit:
                break
        if len(page) < _PAGE:
            break
        start = page[-1].id
    return entries
