"""After a crash: ending the calls that will never end, through the normal path.

A writer that dies in the middle of a workflow (or whose producer died) leaves calls
``pending`` or ``running`` for ever: nothing will send their ``call.completed``.
:func:`abort_calls` ends them as a producer would: it ingests one ``call.aborted`` per
call under the ``abort-dependents`` policy, so the rules, the abort cascade and every
projection follow exactly as for an abort sent by a producer. Which runs are in flight
is a question for the read side (``projections.recovery.in_flight_runs``, over the
flowgraph views): answering it here would mean loading every call of the tenant.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from domain.application import Metagraph
from domain.calls.ledger import IngestReport, ingest

__all__ = ["abort_calls", "abort_events"]


def abort_events(heads: Iterable[str], *, at: int) -> list[dict[str, Any]]:
    """One ``call.aborted`` event per call of ``heads``, at ``at`` (ms since the epoch).

    Ids are ``recovery:<requestId>:<at>``: a second abort at the same time is recognised
    as the same event.
    """
    return [
        {
            "id": f"recovery:{head}:{at}",
            "type": "call.aborted",
            "at": at,
            "payload": {"requestId": head},
        }
        for head in heads
    ]


def abort_calls(app: Metagraph, heads: Iterable[str], *, at: int | None = None) -> IngestReport:
    """Abort ``heads`` and, by the cascade, their active descendants; one transaction.

    ``at`` (default: now) is the abort's time. A head that already ended is left as it
    is (the abort race rule); an unknown one refuses the whole batch.
    """
    when = int(time.time() * 1000) if at is None else at
    return ingest(app, abort_events(heads, at=when), abort_policy="abort-dependents")
