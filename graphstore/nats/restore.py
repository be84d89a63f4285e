"""Point-in-time restore of a tenant from its relayed JetStream subject (docs/backup.md).

The contract the ``graphstore restore --nats`` command calls; its implementation lands
with the point-in-time restore work (issue 15). Until then it refuses clearly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["NatsRestoreReport", "restore_from_nats"]


@dataclass(frozen=True)
class NatsRestoreReport:
    """What a restore from JetStream did, for the command line (text and ``--json``)."""

    org: str
    base_head: int
    """The base backup's stream head for this tenant (0 without a base)."""
    restored_to: int
    """The last stream offset the restored tenant holds."""
    events_replayed: int
    notes: list[str] = field(default_factory=list)
    """Lines for the operator (projections rebuilt, the recovery point, ...)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "baseHead": self.base_head,
            "restoredTo": self.restored_to,
            "eventsReplayed": self.events_replayed,
            "notes": list(self.notes),
        }


def restore_from_nats(
    url: str,
    org: str,
    data_dir: Path,
    *,
    base: Path | None = None,
    until_offset: int | None = None,
    until_time_ms: int | None = None,
) -> NatsRestoreReport:
    """Restore tenant ``org`` into ``data_dir`` from ``base`` (a backup directory, or
    nothing) plus the entries relayed to JetStream at ``url`` after the base's head, up
    to ``until_offset`` or ``until_time_ms`` (both ``None``: everything relayed)."""
    raise NotImplementedError("restore from JetStream is not built yet")
