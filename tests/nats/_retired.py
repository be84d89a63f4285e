"""Helpers of the retirement tests: a tenant that also writes other Honker streams (a
unit's ``publish`` stream, a durable event target), a graph retired the way a retention
pass does it (a ``Retention.RunsRetired`` record appended, the entries deleted), and
the file's and the subject's contents.

The retirement record is built here, minimal and matching the contract
(``streams/retirement.py``, issue 16): the retention helper's domain aggregate may not
be on this branch: the record's event class is the domain's when it has one, else a
minimal one, on a small aggregate of the tests' own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.utils import TopicError, register_topic, resolve_topic

from domain import Metagraph
from graphstore.data import DataDirectory
from streams import HonkerDatastore
from streams.replication import remove_entries
from streams.retirement import RETIREMENT_TYPE, digest_of, merged_ranges
from streams.target import EventTarget

SECRET: Final = "forget-me-7f3a"
"""A string only the retired graph's nodes hold (searched for in JetStream)."""


def _record_class() -> type[Aggregate.Event]:
    """The retirement record's event class: the domain's when it has one (the stable
    name is taken, by the retention pass's aggregate), else a minimal one."""
    try:
        found: type[Aggregate.Event] = resolve_topic(RETIREMENT_TYPE)
    except TopicError:

        class RunsRetired(Aggregate.Event):
            TOPIC = RETIREMENT_TYPE
            runs: list[str]
            ranges: list[list[int]]
            archive: str | None
            digest: str
            reason: str

        register_topic(RETIREMENT_TYPE, RunsRetired)
        return RunsRetired
    return found


RunsRetired = _record_class()


class RetirementLog(Aggregate):
    """A test's aggregate holding retirement records (its own stable names, so that it
    never takes the retention pass's)."""

    TOPIC = "Tests.RetirementLog"

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "Tests.RetirementLog.Started"

    Created = Started  # an alias, else eventsourcing adds a Created without TOPIC

    def retire(self, runs: list[str], ranges: list[list[int]], digest: str) -> None:
        self.trigger_event(
            RunsRetired, runs=runs, ranges=ranges, archive=None, digest=digest, reason="policy"
        )


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
        log = RetirementLog._create(RetirementLog.Started, id=uuid4())
        log.retire([str(graph_id)], ranges, digest_of(p.encode() for _, p in doomed))
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
