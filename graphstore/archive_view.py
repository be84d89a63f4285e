"""An archived run read like a live one: its call tree, folded from the archive.

The archive keeps a run's call protocol events (:class:`graphstore.archive.ArchivedRun`),
not its rows in the views. :func:`archived_tree` folds those events the way the tenant
did, into a scratch tenant file in a temporary directory (the call trees, then the
flowgraph views), and reads the run and its calls back: the same ``FlowRun`` and
``FlowCall`` values ``graphstore runs show`` prints for a live run. Nothing is written
to the tenant or the archive.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from domain import Metagraph
from domain.calls import ingest
from graphstore.archive import ArchivedRun
from projections import FlowCall, Flowgraph, FlowgraphProjection, FlowRun, Projector

__all__ = ["archived_tree"]


def archived_tree(run: ArchivedRun) -> tuple[FlowRun | None, list[FlowCall]]:
    """The run and its calls (root first, by request time) as the views showed them
    before the run was retired; ``(None, [])`` if its events name no such run."""
    with tempfile.TemporaryDirectory(prefix="graphstore-archived-") as scratch:
        env = {
            "PERSISTENCE_MODULE": "streams.persistence",
            "HONKER_DBNAME": str(Path(scratch) / "run.db"),
        }
        with Metagraph(env=env) as app:
            ingest(app, run.events, operation_types=run.operation_types or None)
        with Projector.open(env, FlowgraphProjection()) as projector:
            projector.catch_up()
        with Flowgraph.open(env) as views:
            found = views.run(run.run_id)
            return found, views.call_tree(run.run_id) if found is not None else []
