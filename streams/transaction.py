"""What a Honker write transaction offers, and where a read can run.

:class:`Transaction` is what ``HonkerDatastore.transaction()`` yields (``BEGIN
IMMEDIATE`` ... ``COMMIT``): projections write their rows through it, and the reading API
(:mod:`streams.reading`, :mod:`streams.positions`) reads inside it when a read must see
the caller's uncommitted writes, or must not let another writer commit in between.

:class:`Source` is anything a read can run on: a :class:`~streams.HonkerDatastore`
(Honker's reader pool: never waits for a writer, sees only committed data) or a
:class:`Transaction` (the writer's view, uncommitted writes included; SQLite has one
writer, so nothing else commits until it ends).

Declared once, here, and factored out of the other modules to avoid import loops.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Source", "Transaction"]


class Transaction(Protocol):
    """A Honker write transaction, as ``HonkerDatastore.transaction()`` yields it."""

    def execute(self, sql: str, params: Any = None) -> None: ...

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]: ...


class Source(Protocol):
    """Where a read runs: a ``HonkerDatastore`` (reader pool) or a :class:`Transaction`."""

    def query(self, sql: str, params: list[Any]) -> list[dict[str, Any]]: ...
