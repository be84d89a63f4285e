"""How events are kept: an eventsourcing persistence module on Honker.

Select it with ``PERSISTENCE_MODULE=streams.persistence`` and
``HONKER_DBNAME=<file>``. See :mod:`streams.persistence` for every setting and
:mod:`streams.envelope` for the stream payload other clients read.
"""

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
from streams.transcoder import MsgspecTranscoder, TupleAsList

__all__ = [
    "ConfigurationError",
    "Envelope",
    "HonkerAggregateRecorder",
    "HonkerApplicationRecorder",
    "HonkerDatastore",
    "HonkerFactory",
    "HonkerProcessRecorder",
    "HonkerSubscription",
    "HonkerTrackingRecorder",
    "MsgspecTranscoder",
    "StreamsError",
    "TupleAsList",
]
