"""The ``graphstore.calls.ingest`` operation's work, in one place for every way in.

One batch of call events is folded into the tenant's call graph and its audit record
(``call events ingested``, with where it came from and what it did) is written in the
SAME transaction: all or nothing. The executor runs it for
``invoke("graphstore.calls.ingest", ...)`` (the Python API, HTTP's object body) and for
:meth:`graphstore.operations.Executor.ingest_calls` (HTTP's JSON arrays and JSON Lines,
whose events are parsed already and whose refusals name their line); the command line's
``graphstore ingest`` takes the same options (``operation_types``, ``abort_policy``) and
reports the same :class:`~domain.calls.IngestReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from domain import Metagraph
from domain.calls import (
    DEFAULT_ABORT_POLICY,
    AbortPolicy,
    CallEvent,
    IngestReport,
    OperationTypes,
    call_ledger,
)
from domain.unit_of_work import UnitOfWork

__all__ = ["AUDIT_DESCRIPTION", "INGEST_OPERATION", "ingest_calls"]

INGEST_OPERATION: Final = "graphstore.calls.ingest"
AUDIT_DESCRIPTION: Final = "call events ingested"
"""What the audit record of an ingested batch says, whichever way it came in."""


def ingest_calls(
    metagraph: Metagraph,
    events: Sequence[CallEvent | Mapping[str, Any]],
    *,
    source: str,
    operation_types: OperationTypes | None = None,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
    lines: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[IngestReport, int]:
    """Fold ``events`` as ONE transaction with its audit record (``source`` says where
    they came from: ``http``, ``operation``, a file name); the report and the tenant
    stream's head after it (a ``minPosition`` for reading one's own write).

    ``lines`` numbers the events for a refusal's message (``line 7: ...``; default
    ``event <position>``); ``progress(done, total)`` is called as each is applied. A
    refused event raises its :class:`~domain.errors.CallEventError` and nothing is
    written.
    """

    def fold(unit: UnitOfWork) -> IngestReport:
        done = call_ledger(metagraph).ingest(
            events,
            abort_policy=abort_policy,
            operation_types=operation_types or None,
            lines=lines,
            progress=progress,
        )
        unit.describe(
            AUDIT_DESCRIPTION,
            {"source": source, "events": done.events, "applied": done.applied},
        )
        return done

    report = metagraph.atomic(fold)
    return report, int(metagraph.recorder.max_notification_id() or 0)
