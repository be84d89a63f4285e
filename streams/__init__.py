"""How events are kept: an eventsourcing persistence module on Honker.

Select it with ``PERSISTENCE_MODULE=streams.persistence`` and
``HONKER_DBNAME=<file>``. See :mod:`streams.persistence` for every setting,
:mod:`streams.envelope` for the stream payload other clients read,
:class:`~streams.reader.TenantReader` for opening a tenant file to read it (every reader
does it that way), :mod:`streams.reading` and :mod:`streams.positions` for reading a
stream and keeping a consumer's position outside eventsourcing (the only public access
to Honker's tables), :mod:`streams.target` for publishing and subscribing by event type
(the event target), :mod:`streams.check` for checking a file's stream (``graphstore
verify``) and :mod:`streams.replication` for writing relayed entries back at their
offsets (a restore).
"""

import logging

from streams.envelope import Envelope
from streams.errors import ConfigurationError, StreamsError
from streams.persistence import (
    HonkerAggregateRecorder,
    HonkerApplicationRecorder,
    HonkerDatastore,
    HonkerFactory,
    HonkerProcessRecorder,
    HonkerSubscription,
    HonkerTrackingRecorder,
)
from streams.positions import positions_table, save_position, saved_position
from streams.reader import TenantReader
from streams.reading import (
    Entry,
    Head,
    VersionOffset,
    aggregate_offsets,
    count_between,
    read_after,
    read_at,
    stream_head,
    stream_table,
    time_at,
)
from streams.target import (
    Batch,
    EventTarget,
    Outbox,
    Subscription,
    TargetClosedError,
    TargetError,
    TargetEvent,
)
from streams.transaction import Source, Transaction
from streams.transcoder import MsgspecTranscoder, TupleAsList

# Quiet unless the application configures logging (README, "Logs").
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Batch",
    "ConfigurationError",
    "Entry",
    "Envelope",
    "EventTarget",
    "Head",
    "HonkerAggregateRecorder",
    "HonkerApplicationRecorder",
    "HonkerDatastore",
    "HonkerFactory",
    "HonkerProcessRecorder",
    "HonkerSubscription",
    "HonkerTrackingRecorder",
    "MsgspecTranscoder",
    "Outbox",
    "Source",
    "StreamsError",
    "Subscription",
    "TargetClosedError",
    "TargetError",
    "TargetEvent",
    "TenantReader",
    "Transaction",
    "TupleAsList",
    "VersionOffset",
    "aggregate_offsets",
    "count_between",
    "positions_table",
    "read_after",
    "read_at",
    "save_position",
    "saved_position",
    "stream_head",
    "stream_table",
    "time_at",
]
