"""Errors raised by ``projections`` itself. Factored out to avoid import loops.

Database errors stay eventsourcing's PEP 249 classes (``OperationalError`` for a busy
or full file, ...), as ``streams`` raises them.
"""

from __future__ import annotations

__all__ = [
    "EventNotProjectableError",
    "ProjectionError",
    "UnknownEventError",
    "ViewDivergedError",
]


class ProjectionError(Exception):
    """Base of the errors ``projections`` raises itself."""


class EventNotProjectableError(ProjectionError):
    """One event cannot be applied: malformed, of an unsupported version, or encrypted
    without a way to decrypt it. The projector's error policy decides what happens."""


class UnknownEventError(EventNotProjectableError):
    """An event of an aggregate the projection follows, of a type it does not know.

    Skipping it silently would let the view drift from the aggregates, so it is an error
    (the policy decides): upgrade the projection, as a new version, to handle it.
    """


class ViewDivergedError(ProjectionError):
    """An event addresses a row the view does not have (or already has).

    The view no longer matches the stream: an earlier event was parked, or the tables
    were changed by hand. Replay the parked events, or rebuild the projection.
    """
