"""The check every crash test ends with: the live projections equal a clean rebuild.

A copy of the (closed) tenant file is given both projections again from offset 0, under
other consumer names and into ``clean_`` tables; every row of every table is compared,
and every projector must stand at the stream's head with nothing parked.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from projections import FlowgraphProjection, MetagraphProjection, Projector
from projections.flowgraph import TABLES as FLOW_TABLES
from streams import HonkerDatastore

STREAM: Final = "metagraph"
CONSUMERS: Final = ("metagraph@v1", "flowgraph@v1")


class CleanMetagraph(MetagraphProjection):
    name = "clean-metagraph"

    def __init__(self) -> None:
        super().__init__(table_prefix="clean_")


class CleanFlowgraph(FlowgraphProjection):
    name = "clean-flowgraph"

    def __init__(self) -> None:
        super().__init__(table_prefix="clean_")


def file_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path)}


@contextlib.contextmanager
def opened(path: Path) -> Iterator[HonkerDatastore]:
    datastore = HonkerDatastore(path)
    try:
        yield datastore
    finally:
        datastore.close()


def head_and_offsets(path: Path) -> tuple[int, dict[str, int]]:
    """The stream's head and every consumer's saved offset."""
    with opened(path) as db:
        rows = db.query(
            'SELECT max("offset") AS head FROM _honker_stream WHERE topic = ?', [STREAM]
        )
        saved = db.query(
            'SELECT name, "offset" FROM _honker_stream_consumers WHERE topic = ?', [STREAM]
        )
    return int(rows[0]["head"] or 0), {r["name"]: int(r["offset"]) for r in saved}


def catch_up_in_process(path: Path) -> None:
    """Run both live projectors (the runner's) until they reach the stream's head."""
    for projection in (MetagraphProjection(), FlowgraphProjection()):
        with Projector.open(file_env(path), projection) as projector:
            projector.catch_up()


def _rows(db: HonkerDatastore, table: str) -> list[tuple[Any, ...]]:
    rows = db.query(f'SELECT * FROM "{table}"')
    return sorted((tuple(sorted(row.items())) for row in rows), key=repr)


def table_pairs() -> list[tuple[str, str]]:
    live, clean = MetagraphProjection(), CleanMetagraph()
    pairs = list(zip(live.table_names(), clean.table_names(), strict=True))
    return pairs + [(t, f"clean_{t}") for t in FLOW_TABLES]


def projections_equal_rebuild(path: Path, work: Path) -> int:
    """Copy the (closed) file, rebuild both projections from offset 0 into prefixed
    tables of the copy, compare every row; the number of rows compared."""
    copy = work / "check.db"
    for suffix in ("", "-wal"):
        target = Path(f"{copy}{suffix}")
        target.unlink(missing_ok=True)
        if Path(f"{path}{suffix}").exists():
            shutil.copyfile(f"{path}{suffix}", target)
    Path(f"{copy}-shm").unlink(missing_ok=True)
    compared = 0
    for projection in (CleanMetagraph(), CleanFlowgraph()):
        with Projector.open(file_env(copy), projection) as projector:
            projector.catch_up()
            assert projector.status().lag_events == 0
    head, saved = head_and_offsets(copy)
    # A consumer that never had an event to apply has no saved offset yet (a kill can
    # land before the first commit: head 0): 0 stands for it.
    rebuilt = (saved.get("clean-metagraph@v1", 0), saved.get("clean-flowgraph@v1", 0))
    running = (saved.get("metagraph@v1", 0), saved.get("flowgraph@v1", 0))
    assert rebuilt == (head, head), f"saved {saved}, head {head}"
    assert running == (head, head), f"saved {saved}, head {head}"
    with opened(copy) as db:
        parked = db.query('SELECT consumer, "offset", error FROM projection_parked')
        assert parked == [], f"events were parked: {parked[:3]}"
        for live, clean in table_pairs():
            live_rows, clean_rows = _rows(db, live), _rows(db, clean)
            assert live_rows == clean_rows, f"{live} differs from a clean rebuild"
            compared += len(live_rows)
    return compared
