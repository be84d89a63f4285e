"""The façade: graphstore.open, tenants, and the audit of every tenant write."""

from __future__ import annotations

from pathlib import Path

import pytest

import graphstore
from domain import Actor, Principal
from domain.errors import InvalidOrgIdError, NotFoundError


def test_a_store_opened_with_an_actor_audits_every_tenant_write(tmp_path: Path) -> None:
    with graphstore.open(tmp_path / "data") as setup:
        ada = setup.identity.create_account(
            "ada@example.com", "Ada", actor=Principal.system(), access_level="admin"
        )
        setup.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        key = setup.identity.create_api_key(ada.id, name="t", actor=Principal.system())
        principal = setup.identity.authenticate(key.secret)

    with graphstore.open(tmp_path / "data", actor=principal) as store:
        acme = store.tenant("acme")
        acme.define_graph_type("g", actor=Actor(scope="tenant"))
        acme.add_node_type("g", "n", actor=Actor(scope="tenant"))
        graph = acme.create_graph("g", "one")
        acme.add_node(graph, "a", "n", {})
        head = acme.recorder.max_notification_id()
        writes = [e for e in store.identity.audit_log(org_id="acme") if e.action == "tenant.write"]
    assert len(writes) == 4  # one per save: type defined, node type added, graph, node
    assert {e.actor_id for e in writes} == {str(ada.id)}
    assert {e.credential_type for e in writes} == {"api_key"}
    assert writes[-1].details["what"] == "Graph.NodeAdded x1"
    assert writes[-1].details["details"]["offsets"] == [head, head]
    assert str(graph) in writes[-1].details["details"]["aggregates"]


def test_without_an_actor_nothing_is_audited_and_unknown_tenants_are_refused(
    tmp_path: Path,
) -> None:
    with graphstore.open(tmp_path / "data") as store:
        store.identity.create_account("b@example.com", "B", actor=Principal.system())
        acme = store.create_tenant("acme", name="Acme", owner_email="b@example.com")
        acme.define_graph_type("g", actor=Actor(scope="tenant"))
        assert [e.action for e in store.identity.audit_log(org_id="acme")] == [
            "organization.created"
        ]
        with pytest.raises(NotFoundError, match="no tenant 'nope'"):
            store.tenant("nope")
        with pytest.raises(InvalidOrgIdError):
            store.tenant("../x")
        assert store.tenant("acme") is acme  # one metagraph per tenant per store
