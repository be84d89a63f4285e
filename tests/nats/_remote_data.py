"""Data for the remote-projection and spoke tests: workflow runs as call events, a graph
with nodes and edges, and the row-for-row comparison of a tenant file with a mirror."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain import Metagraph
from domain.calls import ingest
from projections.flowgraph import TABLES as FLOW_TABLES
from projections.metagraph import TABLES as META_TABLES
from streams import HonkerDatastore

STREAM = "metagraph"
CONSUMERS = ("metagraph@v1", "flowgraph@v1")


def run_events(prefix: str, number: int, *, children: int = 3) -> list[dict[str, Any]]:
    """One workflow run: a root call, ``children`` child calls, all responded."""
    root = f"{prefix}-{number}"
    at = 1_790_000_000_000 + number * 1000
    events: list[dict[str, Any]] = [
        call(root, "requested", at, operationId="flows.run", input={"n": number})
    ]
    kids = [f"{root}.{i}" for i in range(children)]
    for i, kid in enumerate(kids):
        events.append(
            call(kid, "requested", at + 1 + i, operationId="db.q", input={}, parentRequestId=root)
        )
    for i, kid in enumerate(kids):
        events.append(call(kid, "responded", at + 10 + i, output=_output(i)))
    events.append(call(root, "responded", at + 50, output=_output(-1)))
    return events


def _output(i: int) -> dict[str, Any]:
    return {"data": {"i": i}, "meta": {"source": "local"}}


def call(request_id: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"{request_id}/{kind}",
        "type": f"call.{kind}",
        "at": at,
        "payload": {"requestId": request_id, **fields},
    }


def write_history(app: Metagraph, prefix: str, runs: int, *, graph_nodes: int = 5) -> None:
    """Runs of call events (one ingest each) and a small graph (nodes, edges, updates)."""
    if "org" not in app.graph_types():
        graph_type = app.define_graph_type("org", config={"graphType": "directed"})
        app.add_node_type(graph_type, "item")
        app.add_edge_type(graph_type, "link")
    graph = app.create_graph("org", f"g-{prefix}", status="active")
    for i in range(graph_nodes):
        app.add_node(graph, f"n{i}", "item", {"i": i})
        if i:
            app.add_edge(graph, "link", f"n{i - 1}", f"n{i}", key=f"e{i}")
    app.update_node(graph, "n0", {"i": 100})
    for number in range(runs):
        ingest(app, run_events(prefix, number))


def rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    db = HonkerDatastore(path)
    try:
        found = db.query(f'SELECT * FROM "{table}"')
    finally:
        db.close()
    return sorted((tuple(sorted(r.items())) for r in found), key=repr)


def positions(path: Path) -> dict[str, int]:
    db = HonkerDatastore(path)
    try:
        found = db.query(
            'SELECT name, "offset" FROM _honker_stream_consumers WHERE topic = ?', [STREAM]
        )
    finally:
        db.close()
    return {r["name"]: int(r["offset"]) for r in found if r["name"] in CONSUMERS}


def assert_equal_views(tenant_file: Path, mirror_file: Path) -> int:
    """Every row of every metagraph and flowgraph table, and both positions, equal in
    the tenant file and the mirror; the number of rows compared."""
    compared = 0
    for table in (*META_TABLES, *FLOW_TABLES):
        local, remote = rows(tenant_file, table), rows(mirror_file, table)
        assert local == remote, f"{table}: {len(local)} local rows, {len(remote)} remote"
        compared += len(local)
    assert positions(tenant_file) == positions(mirror_file)
    return compared
