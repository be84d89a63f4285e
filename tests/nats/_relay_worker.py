"""Helpers of the relay tests: tenants with many events, the tenant stream as written and
the JetStream subject as relayed, and a relay process (the real command line)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, Final
from uuid import UUID, uuid4

import nats
from nats.js.api import DeliverPolicy

from domain import Graph, GraphType, Metagraph, Principal
from graphstore.data import DataDirectory
from graphstore.nats.subjects import OFFSET_HEADER, events_subject
from streams import TenantReader, read_after

ROOT: Final = Path(__file__).resolve().parents[2]
TYPE: Final = "relay-graph"
ITEM_SCHEMA: Final[dict[str, Any]] = {"type": "object"}
BATCH: Final = 500


def register(data: DataDirectory, *org_ids: str) -> None:
    """Register tenants (an owner account first, if there is none)."""
    identity = data.identity
    accounts = identity.accounts()
    owner = (
        accounts[0]
        if accounts
        else identity.create_account(
            "ops@example.com", "Ops", actor=Principal.system(), access_level="admin"
        )
    )
    for org_id in org_ids:
        identity.create_organization(
            org_id.title(), org_id, owner_id=owner.id, actor=Principal.system()
        )


def write(data: DataDirectory, org_id: str, nodes: int) -> None:
    """Append about ``nodes`` events to the tenant's stream (node additions to one graph,
    saved ``BATCH`` at a time; the first call also defines the graph type and graph,
    whose id it keeps beside the data directory)."""
    keep = data.path.parent / f"{org_id}.graph"
    with Metagraph(env=data.tenant_env(org_id)) as app:
        if not keep.exists():
            type_id = app.define_graph_type(TYPE, config={"graphType": "directed"})
            app.add_node_type(type_id, "item", schema=ITEM_SCHEMA)
            keep.write_text(str(app.create_graph(type_id, "g", status="active")))
        graph: object = app.repository.get(UUID(keep.read_text()))
        graph_type: object = app.repository.get(app.graph_types()[TYPE])
        assert isinstance(graph, Graph) and isinstance(graph_type, GraphType)
        run = uuid4().hex[:8]
        for i in range(nodes):
            graph.add_node(graph_type, f"n{run}-{i}", "item", {"i": i})
            if len(graph.pending_events) >= BATCH:
                app.save(graph)
        app.save(graph)


def stream_entries(data: DataDirectory, org_id: str) -> list[tuple[int, bytes]]:
    """The tenant's stream as stored: (offset, envelope bytes)."""
    with TenantReader(data.tenant_env(org_id)) as reader:
        return [
            (e.offset, e.payload.encode()) for e in read_after(reader.datastore, reader.stream, 0)
        ]


async def _subject(url: str, org_id: str) -> list[tuple[int, bytes]]:
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        found: list[tuple[int, bytes]] = []
        try:
            sub = await js.subscribe(
                events_subject(org_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
            )
        except nats.js.errors.NotFoundError:
            return found
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                return found
            found.append((int((msg.headers or {})[OFFSET_HEADER]), msg.data))
            if msg.metadata.num_pending == 0:
                return found
    finally:
        await nc.close()


def subject_messages(url: str, org_id: str) -> list[tuple[int, bytes]]:
    """Every message of ``graphstore.<org_id>.events`` in order: (offset header, payload)."""
    return asyncio.run(_subject(url, org_id))


def relay_command(data_dir: Path, url: str, *extra: str) -> list[str]:
    """``graphstore relay --nats URL`` as a command line."""
    return [
        sys.executable,
        "-m",
        "graphstore",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "info",
        "relay",
        "--nats",
        url,
        *extra,
    ]


def relay_process(data_dir: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    """``graphstore relay --nats URL`` in a process of its own (killed with SIGKILL)."""
    log = (data_dir.parent / "relay.log").open("ab")
    return subprocess.Popen(
        relay_command(data_dir, url, *extra),
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
