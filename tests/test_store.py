"""The façade: graphstore.open, tenants, and the audit of every tenant write."""

from __future__ import annotations

from pathlib import Path

import pytest

import graphstore
from domain import Principal
from domain.calls import ingest
from domain.errors import InvalidOrgIdError, NotFoundError


def test_a_store_opened_with_an_actor_audits_every_tenant_write(tmp_path: Path) -> None:
    with graphstore.open(tmp_path / "data") as setup:
        ada = setup.identity.create_account(
            "ada@example.com", "Ada", actor=Principal.system(), access_level="admin"
        )
        setup.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        key = setup.identity.create_api_key(ada.id, name="t", actor=Principal.system())
        principal = setup.identity.authenticate(key.secret)

    with graphstore.open(tmp_path / "data", principal=principal) as store:
        acme = store.tenant("acme")
        acme.define_graph_type("g")
        acme.add_node_type("g", "n")
        graph = acme.create_graph("g", "one")
        acme.add_node(graph, "a", "n", {})
        with acme.transaction() as unit:
            acme.add_node(graph, "b", "n", {})
            acme.add_node(graph, "c", "n", {})
            unit.describe("two nodes", {"why": "a test"})
        head = acme.recorder.max_notification_id()
        writes = [e for e in store.audit_log(org_id="acme") if e.action == "tenant.write"]
    # One record per commit, in the tenant file: type defined, node type added, graph,
    # node, and the unit of two nodes; each is the last event of its commit.
    assert len(writes) == 5
    assert {e.actor_id for e in writes} == {str(ada.id)}
    assert {e.credential_type for e in writes} == {"api_key"}
    assert writes[3].details["what"] == "Graph.NodeAdded x1" and writes[3].details["covers"] == 1
    assert writes[-1].details == {
        "what": "two nodes",
        "why": "a test",
        "events": "Graph.NodeAdded x2",
        "covers": 2,
    }
    assert writes[-1].position == head
    assert store.identity.audit_log(org_id="acme")[-1].action == "organization.created"


def test_without_an_actor_nothing_is_audited_and_unknown_tenants_are_refused(
    tmp_path: Path,
) -> None:
    with graphstore.open(tmp_path / "data") as store:
        store.identity.create_account("b@example.com", "B", actor=Principal.system())
        acme = store.create_tenant("acme", name="Acme", owner_email="b@example.com")
        acme.define_graph_type("g")
        assert [e.action for e in store.audit_log(org_id="acme")] == ["organization.created"]
        with pytest.raises(NotFoundError, match="no tenant 'nope'"):
            store.tenant("nope")
        with pytest.raises(InvalidOrgIdError):
            store.tenant("../x")
        assert store.tenant("acme") is acme  # one metagraph per tenant per store


def test_the_read_side_of_a_tenant_comes_from_the_store(tmp_path: Path) -> None:
    events = [
        {
            "type": "call.requested",
            "at": 1,
            "payload": {"requestId": "r", "operationId": "o", "input": 1},
        },
    ]
    with graphstore.open(tmp_path / "data") as store:
        store.identity.create_account("b@example.com", "B", actor=Principal.system())
        acme = store.create_tenant("acme", name="Acme", owner_email="b@example.com")
        ingest(acme, events)
        with store.runner() as runner:
            runner.wait_for("acme", acme.recorder.max_notification_id())
        with store.views("acme") as views, store.replay("acme") as replay:
            assert views.run("r").status == "running"  # type: ignore[union-attr]
            assert [h.request_id for h in replay.history("r")] == ["r"]
        with store.subscribe("acme", from_start=True) as changes:
            assert [(c.call_id, c.status) for c in changes.poll()] == [("r", "pending")]
        for read in (store.views, store.replay, store.subscribe):
            with pytest.raises(NotFoundError, match="no tenant 'nope'"):
                read("nope")
