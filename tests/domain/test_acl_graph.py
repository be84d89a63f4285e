"""The ACL graph module: its graph type, its write rules and the access query."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from domain import (
    AttributesInvalidError,
    ConflictError,
    ForbiddenError,
    GraphConfig,
    Metagraph,
    NotFoundError,
    ParallelEdgeError,
    ValidationError,
)
from domain.errors import DelegationScopeError
from domain.install import ensure_graph_type
from domain.modules import acl_graph as acl
from domain.modules import install_builtin_modules
from tests.domain.conftest import TENANT, USER, acting, rejected, store_env, stream_position


@pytest.fixture
def graph(app: Metagraph) -> UUID:
    """An active ACL graph: accounts ada (scopes graph:read, graph:write) and bob (none),
    service bot (none), role editors (scope graph:admin), resources doc and folder."""
    acl.install(app)
    graph_id = app.create_graph(acl.GRAPH_TYPE, "access", status="active")
    acl.add_principal(
        app,
        graph_id,
        "ada",
        identity_type="account",
        identity_id="acc-ada",
        scopes=["graph:read", "graph:write"],
    )
    acl.add_principal(app, graph_id, "bob", identity_type="account", identity_id="acc-bob")
    acl.add_principal(app, graph_id, "bot", identity_type="service", identity_id="svc-bot")
    acl.add_principal(
        app,
        graph_id,
        "editors",
        identity_type="role",
        identity_id="editors",
        scopes=["graph:admin"],
    )
    acl.add_resource(app, graph_id, "doc", resource_type="graph", resource_id="g-doc")
    acl.add_resource(app, graph_id, "folder", resource_type="project", resource_id="p-1")
    return graph_id


def view(app: Metagraph, graph: UUID) -> acl.AclView:
    return acl.AclView.load(app, graph)


# --- the graph type ------------------------------------------------------------------


def test_install_defines_a_system_scope_directed_acl_graph_type_without_multi_edges_or_self_loops(
    app: Metagraph,
) -> None:
    acl.install(app)
    info = app.get_graph_type(acl.GRAPH_TYPE)
    assert info.scope == "system"
    assert info.config == GraphConfig(graph_type="directed", multi=False, allow_self_loops=False)
    assert set(info.node_types) == {"principal", "resource"}
    assert set(info.edge_types) == {
        "can_read",
        "can_write",
        "can_execute",
        "belongs_to",
        "delegates",
    }
    for grant in ("can_read", "can_write", "can_execute"):
        edge_type = info.edge_types[grant]
        assert edge_type.allowed_source_types == ("principal",)
        assert edge_type.allowed_target_types == ("resource",)
    assert info.edge_types["delegates"].allowed_source_types == ("principal",)
    assert info.edge_types["delegates"].allowed_target_types == ("principal",)


def test_installing_again_writes_nothing(app: Metagraph) -> None:
    install_builtin_modules(app)
    before = stream_position(app)
    install_builtin_modules(app)
    acl.install(app)
    assert stream_position(app) == before
    assert {"acl-graph", "secret-graph"} <= set(app.graph_types())


def test_install_evolves_a_built_in_type_whose_schema_is_older_than_the_modules(
    app: Metagraph,
) -> None:
    old_principal = acl.NodeTypeSpec(name="principal", schema={"type": "object"})
    ensure_graph_type(
        app,
        acl.GraphTypeSpec(name=acl.GRAPH_TYPE, config=acl.SPEC.config, node_types=(old_principal,)),
    )
    acl.install(app)
    info = app.get_graph_type(acl.GRAPH_TYPE)
    assert info.node_types["principal"].schema == acl.PRINCIPAL_SCHEMA
    assert info.node_types["principal"].schema_version == 2
    assert set(info.edge_types) == {e.name for e in acl.SPEC.edge_types}


def test_install_refuses_a_tenant_type_that_took_the_modules_name(app: Metagraph) -> None:
    with acting(app, TENANT):
        app.define_graph_type(acl.GRAPH_TYPE)
    with rejected(app, ConflictError, "not the built-in module's: its scope is 'tenant'"):
        acl.install(app)


def test_a_tenant_cannot_change_the_acl_graph_type(app: Metagraph) -> None:
    acl.install(app)
    with rejected(app, ForbiddenError), acting(app, TENANT):
        app.evolve_node_type_schema(acl.GRAPH_TYPE, "principal", {})
    with rejected(app, ForbiddenError), acting(app, USER):
        app.delete_graph_type(acl.GRAPH_TYPE)


# --- attribute schemas ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({"identityType": "robot", "identityId": "x", "scopes": []}, "is not one of"),
        ({"identityType": "account", "scopes": []}, "'identityId' is a required property"),
        ({"identityType": "account", "identityId": "x"}, "'scopes' is a required property"),
        ({"identityType": "account", "identityId": "x", "scopes": [1]}, "is not of type"),
        ({"identityType": "account", "identityId": "x", "scopes": ["a", "a"]}, "non-unique"),
        (
            {"identityType": "account", "identityId": "x", "scopes": [], "resources": {"g": "1"}},
            "is not of type 'array'",
        ),
        ({"identityType": "account", "identityId": "x", "scopes": [], "extra": 1}, "unexpected"),
    ],
)
def test_principal_attributes_must_match_the_principal_schema(
    app: Metagraph, graph: UUID, attributes: dict[str, Any], says: str
) -> None:
    with rejected(app, AttributesInvalidError, says):
        app.add_node(graph, "eve", "principal", attributes)


def test_principal_accepts_every_identity_type_and_a_resources_map(
    app: Metagraph, graph: UUID
) -> None:
    for identity_type in ("account", "org", "service", "role"):
        acl.add_principal(
            app,
            graph,
            f"p-{identity_type}",
            identity_type=identity_type,  # type: ignore[arg-type]
            identity_id="id",
            scopes=["s"],
            resources={"graph": ["g-doc"]},
        )
    assert app.get_node(graph, "p-org").attributes == {
        "identityType": "org",
        "identityId": "id",
        "scopes": ["s"],
        "resources": {"graph": ["g-doc"]},
    }


def test_resource_needs_a_resource_type_and_id(app: Metagraph, graph: UUID) -> None:
    with rejected(app, AttributesInvalidError, "'resourceId' is a required property"):
        app.add_node(graph, "r", "resource", {"resourceType": "graph"})


def test_grant_edges_carry_no_attributes_and_go_from_principal_to_resource(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(app, AttributesInvalidError, "unexpected"):
        app.add_edge(graph, "can_read", "ada", "doc", {"level": 3})
    with rejected(app, ValidationError, "does not allow an edge from a 'resource'"):
        app.add_edge(graph, "can_read", "doc", "ada")


def test_delegation_needs_narrowed_scopes_and_the_narrowable_flag(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(app, AttributesInvalidError, "'narrowable' is a required property"):
        app.add_edge(graph, "delegates", "ada", "bot", {"narrowedScopes": []})
    with rejected(app, AttributesInvalidError, "is not of type 'boolean'"):
        app.add_edge(graph, "delegates", "ada", "bot", {"narrowedScopes": [], "narrowable": 1})


def test_a_principal_cannot_delegate_to_itself(app: Metagraph, graph: UUID) -> None:
    with rejected(app, ValidationError, "self-loop"):
        acl.delegate(app, graph, "ada", "ada", ["graph:read"])


def test_belongs_to_joins_principals_or_resources_but_not_one_of_each(
    app: Metagraph, graph: UUID
) -> None:
    acl.belongs_to(app, graph, "ada", "editors")
    acl.belongs_to(app, graph, "doc", "folder")
    with rejected(app, ValidationError, "'bob' is a principal and 'folder' a resource"):
        acl.belongs_to(app, graph, "bob", "folder")


def test_helpers_refuse_a_graph_that_is_not_an_acl_graph(app: Metagraph, graph: UUID) -> None:
    app.define_graph_type("org")
    other = app.create_graph("org", "team")
    with pytest.raises(ValidationError, match="not an 'acl-graph' graph"):
        acl.AclView.load(app, other)
    with pytest.raises(ValidationError, match="not an 'acl-graph' graph"):
        acl.grant(app, other, "ada", "read", "doc")


# --- delegation scope rule -------------------------------------------------------------


def test_delegated_scopes_within_the_delegators_are_recorded(app: Metagraph, graph: UUID) -> None:
    edge_id = acl.delegate(app, graph, "ada", "bot", ["graph:read"], narrowable=True)
    edge = app.get_edge(graph, edge_id)
    assert (edge.source, edge.target, edge.edge_type) == ("ada", "bot", "delegates")
    assert edge.attributes == {"narrowedScopes": ["graph:read"], "narrowable": True}


def test_delegating_a_scope_the_delegator_does_not_hold_is_refused_and_nothing_is_written(
    app: Metagraph, graph: UUID
) -> None:
    with rejected(
        app, DelegationScopeError, r"'ada' cannot delegate scopes \['graph:admin'\]"
    ) as e:
        acl.delegate(app, graph, "ada", "bot", ["graph:read", "graph:admin"])
    assert e.value.delegator == "ada"
    assert e.value.excess == ("graph:admin",)
    assert e.value.code == "VALIDATION_ERROR"
    assert view(app, graph).delegations == {}


def test_a_principal_may_delegate_scopes_it_holds_through_its_groups(
    app: Metagraph, graph: UUID
) -> None:
    acl.belongs_to(app, graph, "ada", "editors")
    acl.delegate(app, graph, "ada", "bot", ["graph:admin"])
    assert view(app, graph).effective_scopes("ada") == {"graph:read", "graph:write", "graph:admin"}


def test_scopes_received_through_a_narrowable_delegation_may_be_passed_on_narrowed(
    app: Metagraph, graph: UUID
) -> None:
    acl.delegate(app, graph, "ada", "bot", ["graph:read", "graph:write"], narrowable=True)
    acl.delegate(app, graph, "bot", "bob", ["graph:read"])  # not narrowable: bob keeps it
    acl.add_principal(app, graph, "tool", identity_type="service", identity_id="t")
    with rejected(app, DelegationScopeError, "'bob' cannot delegate"):
        acl.delegate(app, graph, "bob", "tool", ["graph:read"])


def test_scopes_received_through_a_non_narrowable_delegation_cannot_be_passed_on(
    app: Metagraph, graph: UUID
) -> None:
    acl.delegate(app, graph, "ada", "bot", ["graph:read"], narrowable=False)
    with rejected(app, DelegationScopeError, r"'bot' cannot delegate scopes \['graph:read'\]"):
        acl.delegate(app, graph, "bot", "bob", ["graph:read"])


def test_updating_a_delegation_applies_the_same_subset_rule(app: Metagraph, graph: UUID) -> None:
    edge_id = acl.delegate(app, graph, "ada", "bot", ["graph:read"])
    acl.update_delegation(app, graph, edge_id, scopes=["graph:write"], narrowable=True)
    assert app.get_edge(graph, edge_id).attributes == {
        "narrowedScopes": ["graph:write"],
        "narrowable": True,
    }
    with rejected(app, DelegationScopeError, "graph:admin"):
        acl.update_delegation(app, graph, edge_id, scopes=["graph:admin"])
    with pytest.raises(NotFoundError):
        acl.update_delegation(app, graph, "no-such-edge", narrowable=False)


def test_revoking_a_delegators_scope_is_allowed_and_its_delegation_stops_carrying_it(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    acl.delegate(app, graph, "ada", "bot", ["graph:read"])
    assert acl.can(app, graph, "bot", "read", "doc", scopes=["graph:read"])
    app.update_node(graph, "ada", {"scopes": ["graph:write"]})
    assert not acl.can(app, graph, "bot", "read", "doc", scopes=["graph:read"])


# --- the access query ------------------------------------------------------------------


def test_a_direct_grant_allows_its_action_and_nothing_else(app: Metagraph, graph: UUID) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    v = view(app, graph)
    assert v.can("ada", "read", "doc")
    assert not v.can("ada", "write", "doc")
    assert not v.can("ada", "execute", "doc")
    assert not v.can("bob", "read", "doc")
    assert not v.can("ada", "read", "folder")


def test_write_implies_read_but_execute_is_separate(app: Metagraph, graph: UUID) -> None:
    acl.grant(app, graph, "ada", "write", "doc")
    acl.grant(app, graph, "bob", "execute", "doc")
    v = view(app, graph)
    assert v.can("ada", "read", "doc") and v.can("ada", "write", "doc")
    assert not v.can("ada", "execute", "doc")
    assert v.can("bob", "execute", "doc")
    assert not v.can("bob", "read", "doc")


def test_required_scopes_must_be_held(app: Metagraph, graph: UUID) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    v = view(app, graph)
    assert v.can("ada", "read", "doc", scopes=["graph:read"])
    assert not v.can("ada", "read", "doc", scopes=["graph:read", "graph:admin"])


def test_members_use_their_groups_grants_and_scopes_transitively(
    app: Metagraph, graph: UUID
) -> None:
    acl.add_principal(app, graph, "acme", identity_type="org", identity_id="acme", scopes=["org"])
    acl.belongs_to(app, graph, "bob", "editors")
    acl.belongs_to(app, graph, "editors", "acme")
    acl.grant(app, graph, "acme", "write", "doc")
    v = view(app, graph)
    assert v.can("bob", "write", "doc", scopes=["graph:admin", "org"])
    assert not v.can("ada", "write", "doc")
    assert not v.can("acme", "write", "doc", scopes=["graph:admin"])  # groups do not inherit down


def test_a_grant_on_a_resource_covers_the_resources_that_belong_to_it(
    app: Metagraph, graph: UUID
) -> None:
    acl.add_resource(app, graph, "page", resource_type="graph", resource_id="g-page")
    acl.belongs_to(app, graph, "page", "doc")
    acl.belongs_to(app, graph, "doc", "folder")
    acl.grant(app, graph, "ada", "read", "folder")
    acl.grant(app, graph, "bob", "read", "page")
    v = view(app, graph)
    assert v.can("ada", "read", "page") and v.can("ada", "read", "doc")
    assert not v.can("bob", "read", "folder")


def test_a_delegate_acts_for_its_delegator_within_the_narrowed_scopes_only(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "write", "doc")
    acl.delegate(app, graph, "ada", "bot", ["graph:read"])
    v = view(app, graph)
    assert v.can("bot", "write", "doc", scopes=["graph:read"])
    assert not v.can("bot", "write", "doc", scopes=["graph:write"])
    assert not v.can("ada", "read", "folder")
    assert not v.can("bob", "read", "doc")


def test_a_delegation_chain_is_followed_only_through_narrowable_delegations(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    first = acl.delegate(app, graph, "ada", "bot", ["graph:read"], narrowable=True)
    acl.delegate(app, graph, "bot", "bob", ["graph:read"])
    assert view(app, graph).can("bob", "read", "doc", scopes=["graph:read"])
    # the raw write skips the helper's rule; the query must not follow the chain anyway
    app.update_edge(graph, first, {"narrowable": False})
    assert not view(app, graph).can("bob", "read", "doc")


def test_scopes_narrow_along_a_delegation_chain(app: Metagraph, graph: UUID) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    acl.delegate(app, graph, "ada", "bot", ["graph:read", "graph:write"], narrowable=True)
    acl.delegate(app, graph, "bot", "bob", ["graph:write"])
    v = view(app, graph)
    assert v.can("bob", "read", "doc", scopes=["graph:write"])
    assert not v.can("bob", "read", "doc", scopes=["graph:read"])


def test_a_delegation_written_around_the_helper_grants_no_more_than_the_delegator_holds(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    app.add_edge(
        graph, "delegates", "ada", "bot", {"narrowedScopes": ["graph:admin"], "narrowable": True}
    )
    v = view(app, graph)
    assert v.can("bot", "read", "doc")
    assert not v.can("bot", "read", "doc", scopes=["graph:admin"])
    assert "graph:admin" not in v.delegable_scopes("bot")


def test_a_principals_resources_list_limits_every_grant_it_uses(
    app: Metagraph, graph: UUID
) -> None:
    acl.add_principal(
        app,
        graph,
        "key",
        identity_type="service",
        identity_id="api-key-1",
        scopes=["graph:read"],
        resources={"graph": ["g-other"]},
    )
    acl.add_resource(app, graph, "other", resource_type="graph", resource_id="g-other")
    for resource in ("doc", "other"):
        acl.grant(app, graph, "key", "read", resource)
        acl.grant(app, graph, "ada", "read", resource)
    acl.delegate(app, graph, "ada", "key", ["graph:read"])
    acl.delegate(app, graph, "key", "bot", ["graph:read"])
    v = view(app, graph)
    assert v.can("key", "read", "other")
    assert not v.can("key", "read", "doc")  # neither its own grant nor ada's, acting for her
    assert not v.can("bot", "read", "doc")  # nor anyone acting for it
    assert v.can("bot", "read", "other")


def test_a_groups_resources_list_limits_the_grants_it_confers(app: Metagraph, graph: UUID) -> None:
    app.update_node(graph, "editors", {"resources": {"project": ["p-1"]}})
    acl.belongs_to(app, graph, "bob", "editors")
    acl.grant(app, graph, "editors", "read", "doc")
    acl.grant(app, graph, "editors", "read", "folder")
    v = view(app, graph)
    assert v.can("bob", "read", "folder")
    assert not v.can("bob", "read", "doc")


def test_unknown_principals_and_resources_are_denied_and_unknown_actions_refused(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "read", "doc")
    v = view(app, graph)
    assert not v.can("nobody", "read", "doc")
    assert not v.can("ada", "read", "nothing")
    with pytest.raises(ValidationError, match="invalid action 'delete'"):
        v.can("ada", "delete", "doc")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="list of scope strings"):
        v.can("ada", "read", "doc", scopes="graph:read")


def test_cycles_of_memberships_and_delegations_are_answered(app: Metagraph, graph: UUID) -> None:
    acl.belongs_to(app, graph, "bob", "editors")
    acl.belongs_to(app, graph, "editors", "bob")
    acl.delegate(app, graph, "ada", "bot", ["graph:read"], narrowable=True)
    acl.delegate(app, graph, "bot", "ada", ["graph:read"], narrowable=True)
    acl.grant(app, graph, "editors", "read", "doc")
    v = view(app, graph)
    assert v.can("bob", "read", "doc")
    assert not v.can("bot", "read", "doc")
    assert v.delegable_scopes("bot") == {"graph:read"}


def test_the_can_helper_reads_the_recorded_graph_after_a_reopen(
    app: Metagraph, graph: UUID, env: dict[str, str]
) -> None:
    acl.grant(app, graph, "ada", "write", "doc")
    acl.delegate(app, graph, "ada", "bot", ["graph:write"])
    with Metagraph(env=store_env(Path(env["HONKER_DBNAME"]))) as reopened:
        assert acl.can(reopened, graph, "bot", "write", "doc", scopes=["graph:write"])
        assert not acl.can(reopened, graph, "bob", "read", "doc")


# --- grants ----------------------------------------------------------------------------


def test_granting_what_a_grant_already_covers_returns_that_grant_and_writes_nothing(
    app: Metagraph, graph: UUID
) -> None:
    edge_id = acl.grant(app, graph, "ada", "write", "doc")
    before = stream_position(app)
    assert acl.grant(app, graph, "ada", "read", "doc") == edge_id
    assert acl.grant(app, graph, "ada", "write", "doc") == edge_id
    assert stream_position(app) == before


def test_granting_write_over_read_replaces_the_read_grant(app: Metagraph, graph: UUID) -> None:
    read = acl.grant(app, graph, "ada", "read", "doc")
    write = acl.grant(app, graph, "ada", "write", "doc")
    assert app.get_edge(graph, write).edge_type == "can_write"
    assert read not in app.edge_ids(graph)


def test_granting_beside_an_execute_grant_is_refused_with_a_role_as_the_way_out(
    app: Metagraph, graph: UUID
) -> None:
    acl.grant(app, graph, "ada", "execute", "doc")
    with rejected(app, ParallelEdgeError, "one edge per pair.*role principal"):
        acl.grant(app, graph, "ada", "write", "doc")
    acl.belongs_to(app, graph, "ada", "editors")
    acl.grant(app, graph, "editors", "write", "doc")
    v = view(app, graph)
    assert v.can("ada", "execute", "doc") and v.can("ada", "write", "doc")


def test_revoking_deletes_that_grant_only(app: Metagraph, graph: UUID) -> None:
    acl.grant(app, graph, "ada", "write", "doc")
    assert not acl.revoke(app, graph, "ada", "read", "doc")
    assert acl.can(app, graph, "ada", "read", "doc")
    assert acl.revoke(app, graph, "ada", "write", "doc")
    assert not acl.can(app, graph, "ada", "read", "doc")


def test_revoking_finds_a_grant_written_without_the_helpers_key(
    app: Metagraph, graph: UUID
) -> None:
    app.add_edge(graph, "can_read", "bob", "doc")
    assert acl.revoke(app, graph, "bob", "read", "doc")
    assert not acl.can(app, graph, "bob", "read", "doc")


def test_a_second_edge_between_the_same_principals_is_a_parallel_edge(
    app: Metagraph, graph: UUID
) -> None:
    acl.delegate(app, graph, "ada", "bot", ["graph:read"])
    with rejected(app, ParallelEdgeError, "already an edge from 'ada' to 'bot'.*one edge per pair"):
        acl.delegate(app, graph, "ada", "bot", ["graph:write"])
    with rejected(app, ParallelEdgeError, "one edge per pair"):
        acl.belongs_to(app, graph, "ada", "bot")
