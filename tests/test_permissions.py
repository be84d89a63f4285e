"""Who may do what in a tenant, through the Python API: every cell of the matrix
(docs/identity.md), refusals typed, audited and writing nothing to the tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import graphstore
from domain import Principal
from graphstore.store import Store
from tests._permissions import EXPECTED, OPERATIONS, Cell, build


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Cell]]:
    data = tmp_path_factory.mktemp("permissions") / "data"
    return data, build(data)


def call_event(request_id: str) -> dict[str, Any]:
    return {
        "type": "call.requested",
        "at": 1795000000000,
        "payload": {"requestId": request_id, "operationId": "ns.op", "input": 1},
    }


def attempt(store: Store, org_id: str, operation: str, tag: str) -> None:
    """One real operation of the group ``operation`` on tenant ``org_id``."""
    if operation == "read":
        store.tenant(org_id).graph_types()
    elif operation == "write":
        graphstore.ingest(store.tenant(org_id), [call_event(tag)])
    elif operation == "define":
        store.tenant(org_id).define_graph_type(f"type-{tag}")
    else:
        store.audit_log(org_id=org_id)


def head_of(data: Path, org_id: str) -> int:
    with graphstore.open(data) as operator:
        return operator.tenant(org_id).recorder.max_notification_id() or 0


def refusals_of(data: Path, account_id: object) -> list[dict[str, Any]]:
    with graphstore.open(data) as operator:
        entries = operator.identity.audit_log(actor_id=str(account_id))
    return [e.details | {"org_id": e.org_id} for e in entries if e.action == "access.denied"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_every_cell_of_the_matrix(
    world: tuple[Path, dict[str, Cell]], cell: str, operation: str
) -> None:
    data, cells = world
    found = cells[cell]
    tag = f"{cell}-{operation}"
    before, refused_before = head_of(data, found.org_id), refusals_of(data, found.account_id)
    with graphstore.open(data, principal=found.principal()) as store:
        if operation in EXPECTED[cell]:
            attempt(store, found.org_id, operation, tag)
            allowed = True
        else:
            with pytest.raises(graphstore.AccessDeniedError) as refused:
                attempt(store, found.org_id, operation, tag)
            allowed = False
    after, refused_after = head_of(data, found.org_id), refusals_of(data, found.account_id)
    if allowed:
        assert after > before or operation in ("read", "operate")
        assert refused_after == refused_before
        return
    # Refused at the first check it fails: opening the tenant checks `read` (the audit
    # log asks for `operate` directly); the refusal names the operation checked.
    first = operation if operation == "operate" or "read" in EXPECTED[cell] else "read"
    assert (refused.value.operation, refused.value.org_id) == (first, found.org_id)
    assert refused.value.missing and refused.value.missing in str(refused.value)
    assert after == before, "a refused operation wrote to the tenant"
    new = refused_after[len(refused_before) :]
    assert [(r["operation"], r["org_id"], r["missing"]) for r in new] == [
        (first, found.org_id, refused.value.missing)
    ]


def test_the_matrix_covers_every_membership_access_level_and_state() -> None:
    levels = {cell.split("-")[0] for cell in EXPECTED if "-" in cell}
    memberships = {cell.split("-")[1] for cell in EXPECTED if "-" in cell}
    states = {cell for cell in EXPECTED if "-" not in cell}
    assert levels == {"admin", "user", "service"}
    assert memberships == {"owner", "admin", "member", "none"}
    assert states == {"suspended", "deactivated", "revoked", "expired"}


@pytest.mark.parametrize("state", ["suspended", "deactivated", "revoked", "expired"])
def test_a_refused_key_cannot_open_the_store_and_the_attempt_is_audited(
    world: tuple[Path, dict[str, Cell]], state: str
) -> None:
    data, cells = world
    before = refusals_of(data, cells[state].account_id)
    with pytest.raises(graphstore.AuthenticationError):
        graphstore.open(data, api_key=cells[state].api_key)
    new = refusals_of(data, cells[state].account_id)[len(before) :]
    assert [(r["operation"], r["org_id"]) for r in new] == [("authenticate", None)]


def test_graph_types_get_the_scope_of_the_principal(world: tuple[Path, dict[str, Cell]]) -> None:
    data, cells = world
    scopes = {}
    for cell in ("admin-none", "user-owner", "user-admin", "user-member"):
        found = cells[cell]
        with graphstore.open(data, principal=found.principal()) as store:
            tenant = store.tenant(found.org_id)
            tenant.define_graph_type(f"scoped-{cell}")
            scopes[cell] = tenant.get_graph_type(f"scoped-{cell}").scope
    assert scopes == {
        "admin-none": "system",
        "user-owner": "tenant",
        "user-admin": "tenant",
        "user-member": "user",
    }


def test_a_member_may_not_choose_a_higher_scope_and_the_refusal_is_audited(
    world: tuple[Path, dict[str, Cell]],
) -> None:
    data, cells = world
    member = cells["user-member"]
    before, refused_before = head_of(data, member.org_id), refusals_of(data, member.account_id)
    with (
        graphstore.open(data, principal=member.principal()) as store,
        pytest.raises(graphstore.ForbiddenError, match="scope 'tenant'"),
    ):
        store.tenant(member.org_id).define_graph_type("ours", scope="tenant")
    assert head_of(data, member.org_id) == before
    new = refusals_of(data, member.account_id)[len(refused_before) :]
    assert [(r["operation"], r["what"]) for r in new] == [("define", "define graph type 'ours'")]


def test_a_user_scope_type_of_a_member_is_changed_by_owners_not_by_services(
    world: tuple[Path, dict[str, Cell]],
) -> None:
    data, cells = world
    with graphstore.open(data, principal=cells["user-member"].principal()) as store:
        store.tenant("org-user").define_graph_type("mine")
    with graphstore.open(data, principal=cells["user-owner"].principal()) as store:
        store.tenant("org-user").add_node_type("mine", "thing")  # a higher scope may
    with (
        graphstore.open(data, principal=cells["service-member"].principal()) as store,
        pytest.raises(graphstore.AccessDeniedError, match="'define' needs a user or admin"),
    ):
        store.tenant("org-service").define_graph_type("theirs")


@pytest.mark.parametrize("cell", ["admin-none", "user-owner", "service-owner", "revoked"])
def test_operations_over_every_tenant_are_for_admins(
    world: tuple[Path, dict[str, Cell]], cell: str
) -> None:
    data, cells = world
    with graphstore.open(data, principal=cells[cell].principal()) as store:
        if cell == "admin-none":
            assert {e.org_id for e in store.audit_log()} >= {"org-user", "org-service"}
            with store.runner():
                pass
            return
        with pytest.raises(graphstore.AccessDeniedError, match="may not run the projectors"):
            store.runner()
        with pytest.raises(graphstore.AccessDeniedError, match="may not read the audit log"):
            store.audit_log()


def test_a_change_in_system_db_takes_effect_at_the_next_operation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with graphstore.open(data) as operator:
        me = operator.principal
        ada = operator.identity.create_account("ada@example.com", "Ada", actor=me)
        bob = operator.identity.create_account("bob@example.com", "Bob", actor=me)
        operator.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        operator.identity.add_member("acme", bob.id, actor=me)
        key = operator.identity.create_api_key(
            bob.id, name="k", actor=me, expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        with graphstore.open(data, api_key=key.secret) as store:
            acme = store.tenant("acme")
            graphstore.ingest(acme, [call_event("one")])
            operator.identity.change_member_level("acme", bob.id, "admin", actor=me)
            store.audit_log(org_id="acme")  # operate: granted by the promotion, at once
            operator.identity.remove_member("acme", bob.id, actor=me)
            with pytest.raises(graphstore.AccessDeniedError, match="membership"):
                graphstore.ingest(acme, [call_event("two")])
            operator.identity.add_member("acme", bob.id, actor=me)
            graphstore.ingest(acme, [call_event("two")])
            operator.identity.suspend_account(bob.id, actor=me)
            with pytest.raises(graphstore.AccessDeniedError, match="suspended"):
                acme.graph_types()
            operator.identity.reactivate_account(bob.id, actor=me)
            acme.graph_types()
            store.identity.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
            with pytest.raises(graphstore.AccessDeniedError, match="expired"):
                acme.graph_types()
            store.identity.clock = lambda: datetime.now(UTC)
            operator.identity.revoke_api_key(key.id, actor=me)
            with pytest.raises(graphstore.AccessDeniedError, match="revoked"):
                acme.graph_types()
        assert graphstore.get_call(operator.tenant("acme"), "two") is not None
        assert ada.id != bob.id


def test_a_self_made_principal_of_an_account_without_its_key_is_refused(
    world: tuple[Path, dict[str, Cell]],
) -> None:
    data, cells = world
    owner = cells["user-owner"]
    forged = Principal(account_id=owner.account_id, access_level="admin", credential_type="system")
    with (
        graphstore.open(data, principal=forged) as store,
        pytest.raises(graphstore.AccessDeniedError, match="unknown credential"),
    ):
        store.tenant(owner.org_id)


def test_every_tenant_write_is_audited_with_its_principal(
    world: tuple[Path, dict[str, Cell]],
) -> None:
    data, cells = world
    owner = cells["user-owner"]
    with graphstore.open(data, principal=owner.principal()) as store:
        graphstore.ingest(store.tenant(owner.org_id), [call_event("audited")])
        entries = store.audit_log(org_id=owner.org_id)
    mine = [
        e for e in entries if e.actor_id == str(owner.account_id) and e.action != "access.denied"
    ]
    assert mine and mine[-1].credential_id == owner.key_id


def test_the_read_side_is_refused_to_a_non_member(world: tuple[Path, dict[str, Cell]]) -> None:
    data, cells = world
    outsider = cells["user-none"]
    with graphstore.open(data, principal=outsider.principal()) as store:
        for open_read_side in (store.views, store.replay, store.subscribe):
            with pytest.raises(graphstore.AccessDeniedError, match="'read' needs membership"):
                open_read_side(outsider.org_id)
        with pytest.raises(graphstore.AccessDeniedError, match="'read' needs membership"):
            store.authorize(outsider.org_id, "read", "tail its changes")
