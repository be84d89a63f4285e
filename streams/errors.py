"""Errors raised by ``streams`` itself.

Database errors are eventsourcing's PEP 249 classes (``IntegrityError``,
``OperationalError``, ...), which applications already catch; these are for what the
caller configured wrongly. Factored out to avoid import loops.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "StreamsError"]


class StreamsError(Exception):
    """Base of the errors ``streams`` raises itself."""


class ConfigurationError(StreamsError, ValueError):
    """A setting is missing or invalid; the message names it and the accepted values."""
