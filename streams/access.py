"""Reaching an application's Honker recorder from above, typed.

An ``eventsourcing`` application's ``recorder`` is typed as the library's
``ApplicationRecorder``; the code one floor up (``graphstore``: retention, the NATS
ingester) needs the Honker recorder's datastore and stream. :func:`honker_recorder`
gives it, checked, instead of a ``cast`` at every use.
"""

from __future__ import annotations

from streams.errors import ConfigurationError
from streams.persistence import HonkerApplicationRecorder

__all__ = ["honker_recorder"]


def honker_recorder(recorder: object) -> HonkerApplicationRecorder:
    """``recorder`` as the Honker application recorder it is.

    Raises :class:`~streams.errors.ConfigurationError` when the application was built
    on another persistence module (set ``PERSISTENCE_MODULE=streams.persistence``).
    """
    if not isinstance(recorder, HonkerApplicationRecorder):
        raise ConfigurationError(
            f"the application's recorder is a {type(recorder).__name__}, not a Honker "
            "recorder: set PERSISTENCE_MODULE=streams.persistence"
        )
    return recorder
