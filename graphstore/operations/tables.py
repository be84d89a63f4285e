"""Reading a tenant's read model for the query operations: the metagraph tables
(:class:`projections.metagraph_queries.MetagraphTables`: graphs, nodes, edges), the
flowgraph views and replay, and waiting for a projector to reach a stream offset
(``minPosition``: read your own writes).

The queries live with their tables in ``projections``; this module opens the tenant file
once for all of them (a :class:`streams.TenantReader`) and adds the waiting. Reads go
through the file's reader pool (never a write transaction), on the live version's tables
(after a rebuild's swap, ``projections.rebuild``). The caller authorizes first; nothing
here checks who asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import monotonic
from typing import Final

from graphstore.errors import GraphstoreError
from projections import Flowgraph, MetagraphProjection, Projection, Replay
from projections.metagraph_queries import MetagraphTables
from projections.rebuild import live_projection
from streams import TenantReader, saved_position

__all__ = ["ReadModel", "WaitTimeoutError"]

_WAKE: Final = 0.25
"""Longest sleep between checks while waiting (a lost wake costs at most this)."""


class WaitTimeoutError(GraphstoreError, TimeoutError):
    """A projector did not reach the position asked for in time; ``reached`` is where it
    was."""

    def __init__(self, message: str, *, reached: int) -> None:
        super().__init__(message)
        self.reached = reached


class ReadModel(MetagraphTables):
    """One tenant file's read side, opened once and shared by the executor's queries:
    the metagraph tables' queries (inherited), :meth:`flowgraph`, :meth:`replay` and
    :meth:`wait_for`; :meth:`close` closes the file."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.reader = TenantReader(env, MetagraphProjection.upstream)
        super().__init__(self.reader.datastore)
        self.stream: str = self.reader.stream

    def close(self) -> None:
        self.reader.close()

    def flowgraph(self) -> Flowgraph:
        """The flowgraph views, on the live version's tables (read at each call, so a
        rebuild's swap is followed)."""
        return Flowgraph.on(self.reader)

    def replay(self) -> Replay:
        """Replay on this file, on the live flowgraph version."""
        return Replay.on(self.reader)

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
