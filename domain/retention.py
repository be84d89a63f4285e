"""A tenant's retention policy and its retirement records, as events of one aggregate.

:class:`Retention` (one per tenant, a fixed id) records the policy the operator set
(:class:`Retention.PolicySet`) and every retirement (:class:`Retention.RunsRetired`):
which finished runs left the file, the stream offsets their events had, the archive
reference and a digest of what was removed. The retirement event's stable name,
``Retention.RunsRetired``, is part of the stream contract (:mod:`streams.retirement`):
readers below the domain recognise it without importing this module.

One aggregate for both on purpose: every pass appends to it, so two passes (or a pass
and an erasure) racing on one tenant conflict on its version, and one of them re-runs on
fresh state instead of both deleting.

What the domain knows is only the record; removing the runs' events from the file is
the unit of work's ``retire`` side write (:meth:`domain.UnitOfWork.retire`), which the
façade (:mod:`graphstore.retention`) fills from the stream's index.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import NAMESPACE_URL, uuid5

import msgspec
from eventsourcing.domain import Aggregate

from domain.errors import ValidationError

__all__ = [
    "MAX_DURATION_S",
    "REASONS",
    "RETENTION_ID",
    "Retention",
    "RetentionPolicy",
    "parse_duration",
]

RETENTION_ID: Final = uuid5(NAMESPACE_URL, "https://graphstore.invalid/retention")
"""The id of a tenant's :class:`Retention` aggregate (each tenant file has its own)."""

REASONS: Final = ("policy", "forget")
MAX_DURATION_S: Final = 100 * 365 * 86_400
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str, option: str = "duration") -> int:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (a positive whole number and
    a unit); a clear :class:`~domain.errors.ValidationError` otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    if unit is None or not value[:-1].isdigit() or int(value[:-1]) < 1:
        raise ValidationError(
            f"invalid {option} {text!r}: use a positive whole number and a unit, "
            "e.g. 30d, 12h, 90m, 45s or 2w"
        )
    seconds = int(value[:-1]) * unit
    if seconds > MAX_DURATION_S:
        raise ValidationError(f"invalid {option} {text!r}: at most 100 years")
    return seconds


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which finished runs a pass retires.

    ``finished_older_than_s``: a completed run goes once it finished that many seconds
    ago; ``failed_older_than_s``: the period for failed or aborted runs (default: the
    same); ``keep_at_most``: beyond this many finished runs, the oldest go whatever their
    age; ``archive``: a directory the runs are written to before they are deleted.
    A run in flight is never retired.
    """

    finished_older_than_s: int
    failed_older_than_s: int | None = None
    keep_at_most: int | None = None
    archive: str | None = None

    def checked(self) -> RetentionPolicy:
        """This policy, or a :class:`~domain.errors.ValidationError` saying what is wrong."""
        for name in ("finished_older_than_s", "failed_older_than_s"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= MAX_DURATION_S:
                raise ValidationError(f"{name} must be 1 to {MAX_DURATION_S} seconds, got {value}")
        if self.keep_at_most is not None and self.keep_at_most < 0:
            raise ValidationError(f"keep_at_most must be 0 or more, got {self.keep_at_most}")
        if self.archive is not None and not self.archive.strip():
            raise ValidationError("archive must name a directory, or be left out")
        return self

    def period_of(self, status: str) -> int:
        """Seconds a finished run with this root ``status`` is kept after it finished."""
        if status == "completed" or self.failed_older_than_s is None:
            return self.finished_older_than_s
        return self.failed_older_than_s


class Retention(Aggregate):
    """A tenant's retention policy and the record of every retirement."""

    TOPIC = "Retention"

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "Retention.Started"

    Created = Started

    class PolicySet(Event):
        """The policy from now on (``policy`` None: no policy, nothing is retired)."""

        TOPIC = "Retention.PolicySet"
        policy: dict[str, Any] | None

        def apply(self, aggregate: Retention) -> None:
            aggregate.policy = (
                None if self.policy is None else msgspec.convert(self.policy, RetentionPolicy)
            )

    class RunsRetired(Event):
        """Runs removed from the file (see :mod:`streams.retirement` for the fields)."""

        TOPIC = "Retention.RunsRetired"
        runs: list[str]
        ranges: list[list[int]]
        archive: str | None
        digest: str
        reason: str

        def apply(self, aggregate: Retention) -> None:
            aggregate.retired += len(self.runs)

    def __init__(self) -> None:
        self.policy: RetentionPolicy | None = None
        self.retired = 0

    @classmethod
    def start(cls) -> Retention:
        """The tenant's retention aggregate, with no policy yet."""
        return cls._create(cls.Started, id=RETENTION_ID)

    def set_policy(self, policy: RetentionPolicy | None) -> None:
        """Record ``policy`` (checked) as the tenant's policy; None clears it."""
        data = None if policy is None else msgspec.to_builtins(policy.checked())
        self.trigger_event(self.PolicySet, policy=data)

    def record_retirement(
        self,
        *,
        runs: list[str],
        ranges: list[tuple[int, int]],
        archive: str | None,
        digest: str,
        reason: str,
    ) -> None:
        """Record that ``runs`` (root call ids) left the file, with the offsets removed."""
        if reason not in REASONS:
            raise ValidationError(f"invalid retirement reason {reason!r}: use policy or forget")
        if not runs:
            raise ValidationError("a retirement names at least one run")
        self.trigger_event(
            self.RunsRetired,
            runs=list(runs),
            ranges=[[first, last] for first, last in ranges],
            archive=archive,
            digest=digest,
            reason=reason,
        )
