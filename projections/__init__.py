"""What is read: projectors over tenant streams (the relational metagraph tables, later
the flowgraph views). Issue 4. See docs/projections.md.

    from projections import Runner

    with Runner("data") as runner:      # every tenant of the data directory
        ...
        runner.status()                 # position, head, lag, state per (tenant, projector)
"""

from projections.errors import (
    EventNotProjectableError,
    ProjectionError,
    UnknownEventError,
    ViewDivergedError,
)
from projections.metagraph import MetagraphProjection
from projections.projector import (
    DEFAULT_BATCH_SIZE,
    PARKED_TABLE,
    ErrorPolicy,
    Handler,
    ParkedEvent,
    Projection,
    Projector,
    ProjectorState,
    ProjectorStatus,
    Record,
    ReplayResult,
)
from projections.runner import Runner

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PARKED_TABLE",
    "ErrorPolicy",
    "EventNotProjectableError",
    "Handler",
    "MetagraphProjection",
    "ParkedEvent",
    "Projection",
    "ProjectionError",
    "Projector",
    "ProjectorState",
    "ProjectorStatus",
    "Record",
    "ReplayResult",
    "Runner",
    "UnknownEventError",
    "ViewDivergedError",
]
