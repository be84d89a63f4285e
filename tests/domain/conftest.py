"""Fixtures for the domain tests: a Metagraph on a real tenant file (Honker persistence)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain import Actor, DomainError, ForbiddenError, Metagraph
from domain.access import Operation
from domain.audit import Auditor

SYSTEM = Actor(scope="system", id="operator")
TENANT = Actor(scope="tenant", id="acme")
USER = Actor(scope="user", id="ada")

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
    },
    "required": ["name"],
    "additionalProperties": False,
}
KNOWS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"since": {"type": "integer"}},
    "additionalProperties": False,
}


class FixedScope:
    """A gate for domain tests of the scope rule: allows every operation, acting as
    ``actor`` (the store builds a real :class:`domain.access.TenantAccess` instead)."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.refusals: list[tuple[str, str]] = []

    @property
    def auditor(self) -> Auditor:
        return Auditor(actor_id=self.actor.id, credential_type="system", credential_id=None)

    def require(self, operation: Operation, what: str) -> Actor:
        return self.actor

    def refused(self, operation: Operation, what: str, error: ForbiddenError) -> None:
        self.refusals.append((operation, what))


@contextmanager
def acting(app: Metagraph, actor: Actor) -> Iterator[FixedScope]:
    """Commands in the block act as ``actor`` (scope rule tests only)."""
    gate = FixedScope(actor)
    previous, app._gate = app._gate, gate
    try:
        yield gate
    finally:
        app._gate = previous


def store_env(path: Path, **extra: str) -> dict[str, str]:
    """The environment selecting Honker persistence on ``path``."""
    return {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path), **extra}


@pytest.fixture
def env(tenant_file: Path) -> dict[str, str]:
    return store_env(tenant_file)


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Metagraph]:
    with Metagraph(env=env) as metagraph:
        yield metagraph


def define_org_type(
    app: Metagraph,
    name: str = "org",
    *,
    config: dict[str, Any] | None = None,
    actor: Actor = SYSTEM,
    scope: str | None = None,
) -> UUID:
    """A graph type with node types person (strict schema) and project (any attributes),
    and edge types knows (person->person), works_on (person->project), related (any)."""
    with acting(app, actor):
        graph_type = app.define_graph_type(
            name,
            config=config or {"graphType": "directed", "multi": False, "allowSelfLoops": False},
            scope=scope,  # type: ignore[arg-type]
        )
        app.add_node_type(graph_type, "person", schema=PERSON_SCHEMA)
        app.add_node_type(graph_type, "project")
        app.add_edge_type(
            graph_type,
            "knows",
            schema=KNOWS_SCHEMA,
            allowed_source_types=["person"],
            allowed_target_types=["person"],
        )
        app.add_edge_type(
            graph_type,
            "works_on",
            allowed_source_types=["person"],
            allowed_target_types=["project"],
        )
        app.add_edge_type(graph_type, "related")
        return graph_type


@pytest.fixture
def org_type(app: Metagraph) -> UUID:
    return define_org_type(app)


@pytest.fixture
def graph(app: Metagraph, org_type: UUID) -> UUID:
    """An active graph of the org type with persons ada and bob and project apollo."""
    graph_id = app.create_graph(org_type, "team", status="active")
    app.add_node(graph_id, "ada", "person", {"name": "Ada", "age": 36})
    app.add_node(graph_id, "bob", "person", {"name": "Bob"})
    app.add_node(graph_id, "apollo", "project", {"budget": 10})
    return graph_id


def stream_position(app: Metagraph) -> int | None:
    """The last notification id of the application's stream."""
    return app.recorder.max_notification_id()


@contextmanager
def rejected(
    app: Metagraph, error: type[DomainError], match: str | None = None
) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Expect ``error`` (message matching ``match``) and that nothing was written."""
    before = stream_position(app)
    with pytest.raises(error, match=match) as info:
        yield info
    assert stream_position(app) == before, "a refused command wrote to the stream"
