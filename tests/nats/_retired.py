"""Helpers of the retirement tests: a tenant that also writes other Honker streams (a
unit's ``publish`` stream, a durable event target), a graph retired the way a retention
pass does it (a ``Retention.RunsRetired`` record appended, the entries deleted), and
the file's and the subject's contents.

The record is the domain's (``domain.retention.Retention.record_retirement``, the
contract of ``streams/retirement.py``); a graph's entries are retired here, not a run's,
so the entries are deleted by the test in a second transaction after the record (a
retention pass does both in one).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain import Metagraph
from domain.retention import RETENTION_ID, Retention
from graphstore.data import DataDirectory
from streams import HonkerDatastore
from streams.replication import remove_entries
from streams.retirement import RETIREMENT_TYPE, digest_of, merged_ranges
from streams.target import EventTarget

SECRET: Final = "forget-me-7f3a"
"""A string only the retired graph's nodes hold (searched for in JetStream)."""


def write_mixed(data: DataDirectory, org: str, graph_id: UUID, nodes: int, tag: str) -> None:
    """Add ``nodes`` nodes to graph ``graph_id``, each in a unit that also publishes to a
    named stream, with a durable event target's event between units: the tenant file's
    offsets interleave three streams."""
    path = data.tenant_path(org)
    target = EventTarget(path, mode="durable", stream="platform-events")
    try:
        with Metagraph(env=data.tenant_env(org)) as app:
            for i in range(nodes):
                with app.transaction() as unit:
                    app.add_node(graph_id, f"{tag}-{i}", "item", {"i": i, "note": tag})
                    unit.publish("audit-feed", {"node": f"{tag}-{i}"}, key=tag)
                if i % 3 == 0:
                    target.publish("call.requested", {"requestId": f"{tag}-{i}"})
    finally:
        target.close()


def new_graph(data: DataDirectory, org: str, name: str) -> UUID:
    """A new graph of the relay tests' type (``tests.nats._relay_worker.write`` defined it)."""
    with Metagraph(env=data.tenant_env(org)) as app:
        type_id = app.graph_types()["relay-graph"]
        return app.create_graph(type_id, name, status="active")


def retire_graph(data: DataDirectory, org: str, graph_id: UUID) -> tuple[int, list[list[int]]]:
    """Retire every entry of ``graph_id`` as a retention pass would: the record appended
    (the domain's unit of work), then the entries and their index rows deleted. Returns
    the record's offset and its ranges."""
    rows = entries(data.tenant_path(org))
    doomed = [(o, p) for o, t, p in rows if t == "metagraph" and str(graph_id) in p]
    doomed = [(o, p) for o, p in doomed if f'"subject":"{graph_id}"' in p]
    ranges = [list(r) for r in merged_ranges(o for o, _ in doomed)]
    with Metagraph(env=data.tenant_env(org)) as app:
        try:
            log = app.repository.get(RETENTION_ID)
        except AggregateNotFoundError:
            log = Retention.start()
        log.record_retirement(
            runs=[str(graph_id)],
            ranges=[(a, b) for a, b in ranges],
            archive=None,
            digest=digest_of(p.encode() for _, p in doomed),
            reason="policy",
        )
        app.save(log)
    datastore = HonkerDatastore(data.tenant_path(org), tenant=org)
    try:
        with datastore.transaction() as tx:
            remove_entries(tx, "metagraph", [(a, b) for a, b in ranges])
    finally:
        datastore.close()
    record = max(o for o, t, p in entries(data.tenant_path(org)) if RETIREMENT_TYPE in p)
    return record, ranges


def entries(path: Path, stream: str | None = None) -> list[tuple[int, str, str]]:
    """(offset, topic, payload) of the file's stream entries (all streams by default)."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        where = "" if stream is None else f"WHERE topic = '{stream}'"
        return [
            (int(o), str(t), str(p))
            for o, t, p in connection.execute(
                f'SELECT "offset", topic, payload FROM _honker_stream {where} ORDER BY 1'
            )
        ]
    finally:
        connection.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return list(connection.execute(sql).fetchall())
    finally:
        connection.close()
