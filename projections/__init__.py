"""What is read: projectors over tenant streams (the relational metagraph tables and the
flowgraph views of workflow runs), replay and time travel. See docs/projections.md and
docs/flowgraph.md.

    from projections import Runner

    with Runner("data") as runner:      # every tenant of the data directory
        ...
        runner.status()                 # position, head, lag, state per (tenant, projector)
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.call_fold import DeadLetter
    from projections.call_intake import (
        DEFAULT_CONSUMER,
        CallIntake,
        CallIntakeError,
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
    from projections.metagraph_queries import MetagraphTables
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

# Each name is imported when first used (PEP 562): a command that needs one part of
# the package does not pay for the rest (issue 17, command line start).
_WHERE: dict[str, str] = {
    "CallIntake": "projections.call_intake",
    "CallIntakeError": "projections.call_intake",
    "Change": "projections.changes",
    "DEFAULT_BATCH_SIZE": "projections.projector",
    "DEFAULT_CONSUMER": "projections.call_intake",
    "DeadLetter": "projections.call_fold",
    "ErrorPolicy": "projections.projector",
    "EventNotProjectableError": "projections.errors",
    "FlowCall": "projections.flowgraph",
    "FlowRun": "projections.flowgraph",
    "Flowgraph": "projections.flowgraph",
    "FlowgraphProjection": "projections.flowgraph",
    "GraphSnapshot": "projections.replay",
    "Handler": "projections.projector",
    "HistoryEntry": "projections.replay",
    "MetagraphProjection": "projections.metagraph",
    "MetagraphTables": "projections.metagraph_queries",
    "Mirror": "projections.mirror",
    "MirrorError": "projections.mirror",
    "MirrorStatus": "projections.mirror",
    "MirrorSubscription": "projections.mirror",
    "PARKED_TABLE": "projections.projector",
    "ParkedEvent": "projections.projector",
    "Projection": "projections.projector",
    "ProjectionError": "projections.errors",
    "Projector": "projections.projector",
    "ProjectorState": "projections.projector",
    "ProjectorStatus": "projections.projector",
    "Record": "projections.projector",
    "Replay": "projections.replay",
    "ReplayResult": "projections.projector",
    "RunExport": "projections.replay",
    "RunPage": "projections.flowgraph",
    "RunSnapshot": "projections.replay",
    "Runner": "projections.runner",
    "RunnerCounters": "projections.runner",
    "Subscription": "projections.changes",
    "UnknownEventError": "projections.errors",
    "ViewDivergedError": "projections.errors",
    "call_event_of": "projections.call_intake",
    "call_topic": "projections.call_intake",
    "publish_call": "projections.call_intake",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "MetagraphTables",
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
