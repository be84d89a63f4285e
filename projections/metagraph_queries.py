"""Typed queries on the metagraph tables of one tenant file: graphs, nodes, edges.

The tables are :class:`~projections.metagraph.MetagraphProjection`'s (``graphs``,
``nodes``, ``edges``; their JSON columns come back decoded), read through the file's
reader pool, never inside a write transaction, on the live version's tables (read at
each call, so a rebuild's swap is followed: :mod:`projections.rebuild`). Pages are by
key: ``after`` the last id (or node key) of the previous page, at most ``limit`` rows.

Before a projector has built the tables in the file, every query raises
:class:`~projections.errors.ViewNotBuiltError` (a ``NotFoundError`` of kind ``view``),
which says what to run. Nothing here checks who asks: the caller authorizes first (the
operations layer does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eventsourcing.persistence import ProgrammingError

from projections.errors import ViewNotBuiltError
from projections.metagraph import TABLES, MetagraphProjection
from projections.rebuild import live_version
from streams import HonkerDatastore, TenantReader

__all__ = ["MetagraphTables"]

_QUERIED = ("graphs", "nodes", "edges")


def _row(row: Mapping[str, Any], json_columns: Sequence[str]) -> dict[str, Any]:
    found = dict(row)
    for column in json_columns:
        found[column] = json.loads(found[column])
    return found


class MetagraphTables:
    """Graphs, nodes and edges of one tenant file (see the module docstring)."""

    def __init__(self, datastore: HonkerDatastore) -> None:
        self.datastore = datastore
        self._owned: TenantReader | None = None

    @classmethod
    def open(cls, env: Mapping[str, str]) -> MetagraphTables:
        """The tables of the tenant file ``env`` selects (as the writers' env);
        :meth:`close` closes the file."""
        return TenantReader(env, MetagraphProjection.upstream).adopt(
            lambda reader: cls.on(reader, owns=True)
        )

    @classmethod
    def on(cls, reader: TenantReader, *, owns: bool = False) -> MetagraphTables:
        """The tables read through ``reader``; with ``owns``, :meth:`close` closes it."""
        tables = cls(reader.datastore)
        tables._owned = reader if owns else None
        return tables

    def close(self) -> None:
        """Close the file if :meth:`open` opened it."""
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> MetagraphTables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- graphs -------------------------------------------------------------------------

    def graph(self, graph_id: str) -> dict[str, Any] | None:
        """The row of graph ``graph_id``, None if there is none."""
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

    # --- nodes --------------------------------------------------------------------------

    def node(self, graph_id: str, key: str) -> dict[str, Any] | None:
        """The node ``key`` of graph ``graph_id``, None if there is none."""
        rows = self._query(
            lambda t: f"SELECT * FROM {t['nodes']} WHERE graph_id = ? AND key = ?", [graph_id, key]
        )
        return _row(rows[0], ("attributes", "metadata")) if rows else None

    def nodes(
        self, graph_id: str, *, node_type: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The nodes of graph ``graph_id`` by key (of ``node_type`` if given)."""
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

    # --- edges --------------------------------------------------------------------------

    def edge(self, graph_id: str, *, edge_id: str | None, key: str | None) -> dict[str, Any] | None:
        """The edge of graph ``graph_id`` with id ``edge_id`` (else with ``key``)."""
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

    # --- reading ------------------------------------------------------------------------

    def _query(self, sql: Callable[[dict[str, str]], str], params: list[Any]) -> list[Any]:
        """The rows of one read on the live tables; :class:`ViewNotBuiltError` if the
        tables are not built."""
        live = live_version(self.datastore, MetagraphProjection.name)
        tables = {table: f'"{live.table_prefix}{table}"' for table in TABLES}
        try:
            return list(self.datastore.query(sql(tables), params))
        except ProgrammingError as exc:
            if "no such table" not in str(exc):
                raise
            names = [f"{live.table_prefix}{table}" for table in _QUERIED]
            version = live.version or MetagraphProjection.version
            raise ViewNotBuiltError(
                MetagraphProjection.name,
                consumer=f"{MetagraphProjection.name}@v{version}",
                projection=MetagraphProjection.__name__,
                tenant=self.datastore.tenant,
                path=self.datastore.path,
                tables=[name for name in names if not self._exists(name)],
            ) from exc

    def _exists(self, table: str) -> bool:
        found = self.datastore.query(
            "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
        )
        return bool(found)
