"""The root of the errors ``graphstore`` raises itself (the façade, HTTP, NATS, the
operations layer), factored out to avoid import loops (as structlog's ``exceptions``).

``except GraphstoreError`` catches every error this package defines. The layers below
keep their own roots: :class:`domain.errors.DomainError` (a refused command),
:class:`streams.errors.StreamsError`, :class:`projections.errors.ProjectionError`; an
error of this package that is also a refused command (a backup, a restore) derives
from both. Each message says what was wrong and what to do.
"""

from __future__ import annotations

__all__ = ["GraphstoreError"]


class GraphstoreError(Exception):
    """Base of the errors ``graphstore`` raises itself."""
