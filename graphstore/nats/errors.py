"""The root of the errors ``graphstore.nats`` raises itself (relay, spokes, ingester,
restore), under :class:`graphstore.errors.GraphstoreError`. Factored out to avoid import
loops: every module of the package imports it, it imports nothing of theirs.

Named apart from the NATS client's own ``nats.errors.Error`` (often imported as
``NatsError``): those are the server's and the connection's, these are ours.
"""

from __future__ import annotations

from graphstore.errors import GraphstoreError

__all__ = ["GraphstoreNatsError"]


class GraphstoreNatsError(GraphstoreError):
    """Base of the errors ``graphstore.nats`` raises itself."""
