"""A data directory for the operation tests: tenant ``acme`` with a graph type of its own
(``social``), the built-in call graph (the bundled workflow sample ingested) and the
projector runner kept running; accounts acting as an owner, a service and an outsider."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import graphstore
from domain.identity import AccessLevel
from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from graphstore.store import Store
from projections import Runner

PERSON = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
}


@dataclass(frozen=True)
class World:
    data: Path
    owner_key: str
    service_key: str
    outsider_key: str


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    data = tmp_path_factory.mktemp("operations") / "data"
    with graphstore.open(data) as store:
        me = store.principal
        keys = {}
        levels: tuple[tuple[str, AccessLevel], ...] = (
            ("ada@example.com", "user"),
            ("svc@example.com", "service"),
            ("eve@example.com", "user"),
        )
        for email, level in levels:
            account = store.identity.create_account(email, email, access_level=level, actor=me)
            keys[email] = store.identity.create_api_key(account.id, name="k", actor=me).secret
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        service = store.identity.find_account("svc@example.com")
        store.identity.add_member("acme", service.id, actor=me)
        store.create_tenant("globex", name="Globex", owner_email="eve@example.com")
        acme.define_graph_type("social", config={"graphType": "undirected"})
        acme.add_node_type("social", "person", schema=PERSON)
        acme.add_node_type("social", "place")
        acme.add_edge_type(
            "social",
            "knows",
            schema={"type": "object", "properties": {"since": {"type": "integer"}}},
            allowed_source_types=["person"],
            allowed_target_types=["person"],
        )
        graphstore.ingest_jsonl(acme, WORKFLOWS, operation_types=OPERATION_TYPES)
    return World(
        data=data,
        owner_key=keys["ada@example.com"],
        service_key=keys["svc@example.com"],
        outsider_key=keys["eve@example.com"],
    )


@dataclass
class Live:
    """The operator's store and the projector runner of the data directory."""

    operator: Store
    runner: Runner

    def settle(self, org_id: str = "acme") -> int:
        """Wait until the running projectors have applied the tenant's head; the head."""
        head = self.operator.tenant(org_id).recorder.max_notification_id() or 0
        self.runner.wait_for(org_id, head)
        return head


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[Live]:
    """The runner, running for one test module (its threads end with the module: other
    tests count threads)."""
    with graphstore.open(world.data) as operator, operator.runner() as running:
        yield Live(operator, running)


def head_of(data: Path, org_id: str = "acme") -> int:
    """The tenant stream's head, read through a separate operator store."""
    with graphstore.open(data) as operator:
        return operator.tenant(org_id).recorder.max_notification_id() or 0
