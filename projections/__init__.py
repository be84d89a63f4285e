"""What is read: projectors over tenant streams (the relational metagraph tables and the
flowgraph views of workflow runs), replay and time travel. See docs/projections.md and
docs/flowgraph.md.

    from projections import Runner

    with Runner("data") as runner:      # every tenant of the data directory
        ...
        runner.status()                 # position, head, lag, state per (tenant, projector)
"""

import logging

from projections.call_intake import (
    DEFAULT_CONSUMER,
    CallIntake,
    CallIntakeError,
    DeadLetter,
    call_event_of,
    call_topic,
    publish_call,
)
from projections.changes import Change, Subscription
from projections.errors import (
    EventNotProjectableError,
    ProjectionError,
    UnknownEventError,
    ViewDivergedError,
)
from projections.flowgraph import FlowCall, Flowgraph, FlowgraphProjection, FlowRun, RunPage
from projections.metagraph import MetagraphProjection
from projections.mirror import Mirror, MirrorError, MirrorStatus, MirrorSubscription
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
from projections.replay import GraphSnapshot, HistoryEntry, Replay, RunExport, RunSnapshot
from projections.runner import Runner, RunnerCounters

# Quiet unless the application configures logging (README, "Logs"). The runner's file
# watcher (watchdog) follows the same rule: it logs an error on most stops (a race in its
# inotify emitter's shutdown, harmless) that would otherwise reach stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
logging.getLogger("watchdog").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONSUMER",
    "PARKED_TABLE",
    "CallIntake",
    "CallIntakeError",
    "Change",
    "DeadLetter",
    "ErrorPolicy",
    "EventNotProjectableError",
    "FlowCall",
    "FlowRun",
    "Flowgraph",
    "FlowgraphProjection",
    "GraphSnapshot",
    "Handler",
    "HistoryEntry",
    "MetagraphProjection",
    "Mirror",
    "MirrorError",
    "MirrorStatus",
    "MirrorSubscription",
    "ParkedEvent",
    "Projection",
    "ProjectionError",
    "Projector",
    "ProjectorState",
    "ProjectorStatus",
    "Record",
    "Replay",
    "ReplayResult",
    "RunExport",
    "RunPage",
    "RunSnapshot",
    "Runner",
    "RunnerCounters",
    "Subscription",
    "UnknownEventError",
    "ViewDivergedError",
    "call_event_of",
    "call_topic",
    "publish_call",
]
