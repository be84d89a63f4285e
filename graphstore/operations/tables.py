"""Reading a tenant's read model for the query operations: the metagraph projection's
``graphs``, ``nodes`` and ``edges`` tables, and waiting for a projector to reach a
stream offset (``minPosition``: read your own writes).

Reads go through the tenant file's reader pool (never a write transaction), on the live
version's tables (after a rebuild's swap, ``projections.rebuild``). The caller
authorizes first; nothing here checks who asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import Any, Final

from eventsourcing.persistence import ProgrammingError
from eventsourcing.utils import Environment

from graphstore.errors import GraphstoreError
from projections import Flowgraph, FlowgraphProjection, MetagraphProjection, Projection, Replay
from projections.metagraph import TABLES
from projections.projector import plain_state_reader
from projections.rebuild import live_prefix, live_projection
from streams import HonkerDatastore, HonkerFactory, saved_position

__all__ = ["ReadModel", "ViewMissingError", "WaitTimeoutError"]

_WAKE: Final = 0.25
"""Longest sleep between checks while waiting (a lost wake costs at most this)."""


class ViewMissingError(GraphstoreError, LookupError):
    """The metagraph tables are not in the tenant file yet: no projector built them."""


class WaitTimeoutError(GraphstoreError, TimeoutError):
    """A projector did not reach the position asked for in time; ``reached`` is where it
    was."""

    def __init__(self, message: str, *, reached: int) -> None:
        super().__init__(message)
        self.reached = reached


def _row(row: Mapping[str, Any], json_columns: Sequence[str]) -> dict[str, Any]:
    found = dict(row)
    for column in json_columns:
        found[column] = json.loads(found[column])
    return found


class ReadModel:
    """One tenant file's read side, opened once and shared by the executor's queries;
    :meth:`close` closes the file."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._factory = HonkerFactory(Environment("metagraph", env))
        self.datastore: HonkerDatastore = self._factory.datastore
        self.stream: str = self._factory.stream

    def close(self) -> None:
        self._factory.close()

    def flowgraph(self) -> Flowgraph:
        """The flowgraph views, on the live version's tables (read at each call, so a
        rebuild's swap is followed)."""
        return Flowgraph(
            self.datastore, table_prefix=live_prefix(self.datastore, FlowgraphProjection.name)
        )

    def replay(self) -> Replay:
        """Replay on this file, on the live flowgraph version."""
        return Replay(
            self.datastore,
            stream=self.stream,
            projection=live_projection(self.datastore, FlowgraphProjection),
            plain_state=plain_state_reader(self._factory),
        )

    # --- waiting ----------------------------------------------------------------------

    def consumer(self, base: type[Projection]) -> str:
        """The consumer name of the live version of projection ``base``."""
        return live_projection(self.datastore, base).consumer

    def position(self, base: type[Projection]) -> int:
        """The stream offset projection ``base`` has applied (0: nothing yet)."""
        return saved_position(self.datastore, self.consumer(base), self.stream) or 0

    def wait_for(self, base: type[Projection], position: int, timeout: float) -> None:
        """Return once projection ``base`` has applied ``position``; :class:`WaitTimeoutError`
        after ``timeout`` seconds. Woken by commits to the file from any process."""
        deadline = monotonic() + timeout
        watcher = self.datastore.watcher
        while True:
            generation = watcher.generation  # read before checking: no missed commit
            reached = self.position(base)
            if reached >= position:
                return
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(
                    f"the {base.name} projection is at offset {reached}, not yet at "
                    f"{position}, after {timeout:g} s: is the projector runner running "
                    "(`graphstore projector run`)?",
                    reached=reached,
                )
            watcher.wait_for_change(generation, min(remaining, _WAKE))

    # --- the metagraph tables -----------------------------------------------------------

    def _tables(self) -> dict[str, str]:
        prefix = live_prefix(self.datastore, MetagraphProjection.name)
        return {table: f'"{prefix}{table}"' for table in TABLES}

    def _query(self, sql: Callable[[dict[str, str]], str], params: list[Any]) -> list[Any]:
        try:
            return list(self.datastore.query(sql(self._tables()), params))
        except ProgrammingError as exc:
            if "no such table" not in str(exc):
                raise
            raise ViewMissingError(
                "the metagraph tables are not in this tenant's file yet: start the "
                "projector runner (`graphstore projector run`) and try again"
            ) from exc

    def graph(self, graph_id: str) -> dict[str, Any] | None:
        rows = self._query(lambda t: f"SELECT * FROM {t['graphs']} WHERE id = ?", [graph_id])
        return _row(rows[0], ("metadata",)) if rows else None

    def graphs(
        self, graph_type: str, *, filters: Mapping[str, str], after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Graphs of type ``graph_type`` by id, after ``after``; ``filters``: column ->
        value (status, owner_id, project_id)."""
        where, params = ["graph_type_name = ?", "graph_type_id IS NOT NULL"], [graph_type]
        for column, value in sorted(filters.items()):
            where.append(f"{column} = ?")
            params.append(value)
        if after is not None:
            where.append("id > ?")
            params.append(after)
        rows = self._query(
            lambda t: (
                f"SELECT * FROM {t['graphs']} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
            ),
            [*params, limit],
        )
        return [_row(row, ("metadata",)) for row in rows]

    def node(self, graph_id: str, key: str) -> dict[str, Any] | None:
        rows = self._query(
            lambda t: f"SELECT * FROM {t['nodes']} WHERE graph_id = ? AND key = ?", [graph_id, key]
        )
        return _row(rows[0], ("attributes", "metadata")) if rows else None

    def nodes(
        self, graph_id: str, *, node_type: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, params = ["graph_id = ?"], [graph_id]
        if node_type is not None:
            where.append("node_type = ?")
            params.append(node_type)
        if after is not None:
            where.append("key > ?")
            params.append(after)
        rows = self._query(
            lambda t: (
                f"SELECT * FROM {t['nodes']} WHERE {' AND '.join(where)} ORDER BY key LIMIT ?"
            ),
            [*params, limit],
        )
        return [_row(row, ("attributes", "metadata")) for row in rows]

    def edge(self, graph_id: str, *, edge_id: str | None, key: str | None) -> dict[str, Any] | None:
        column, value = ("id", edge_id) if edge_id is not None else ("key", key)
        rows = self._query(
            lambda t: f"SELECT * FROM {t['edges']} WHERE graph_id = ? AND {column} = ?",
            [graph_id, value],
        )
        return _row(rows[0], ("attributes", "metadata")) if rows else None

    def edges(
        self, graph_id: str, *, filters: Mapping[str, str], after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Edges by id; ``filters``: column -> value (edge_type, source_node_key,
        target_node_key)."""
        where, params = ["graph_id = ?"], [graph_id]
        for column, value in sorted(filters.items()):
            where.append(f"{column} = ?")
            params.append(value)
        if after is not None:
            where.append("id > ?")
            params.append(after)
        rows = self._query(
            lambda t: f"SELECT * FROM {t['edges']} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, limit],
        )
        return [_row(row, ("attributes", "metadata")) for row in rows]
