"""The ACL graph: who may read, write or execute what, and who acts for whom.

A built-in module: the system-scope graph type ``acl-graph`` (directed, no parallel
edges, no self-loops), installed by :func:`install` (idempotent). Decisions and their
reasons are in ``docs/secrets.md`` ("ACL graph"); in short:

- node ``principal`` {identityType: account/org/service/role, identityId, scopes: [str],
  resources?: {type: [ids]}} and node ``resource`` {resourceType, resourceId, name?,
  description?};
- edges ``can_read``, ``can_write``, ``can_execute`` (principal -> resource, no
  attributes): grants. ``can_write`` implies read;
- ``belongs_to`` (no attributes): principal -> principal is membership (an account in
  an org or a role: the member gets the group's scopes and grants); resource ->
  resource is containment (a grant on the container covers what it contains). A mixed
  ``belongs_to`` means nothing: :func:`belongs_to` refuses it and :meth:`AclView.can`
  ignores it;
- ``delegates`` {narrowedScopes, narrowable} (delegator -> delegate): the delegate may act
  for the delegator, limited to narrowedScopes; ``narrowable`` says whether the delegate
  may pass this delegation on (narrowed again). The narrowedScopes must be a subset of
  the scopes the delegator holds and may delegate (:meth:`AclView.delegable_scopes`);
  :func:`delegate` and :func:`update_delegation` enforce it with
  :class:`~domain.errors.DelegationScopeError`. The Metagraph has no hook for a
  module's cross-node rules, so an edge written with ``Metagraph.add_edge`` directly is
  not checked; :meth:`AclView.can` therefore intersects scopes along every delegation
  chain, so such an edge can never grant more than the delegator holds.

Reads go through :class:`AclView`, a snapshot of one ACL graph (read node by node and
edge by edge: O(size) reads, then every question is answered in memory).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Literal, get_args
from uuid import UUID

import msgspec

from domain.application import Metagraph
from domain.errors import (
    DelegationScopeError,
    DuplicateError,
    NotFoundError,
    ParallelEdgeError,
    ValidationError,
)
from domain.install import EdgeTypeSpec, GraphTypeSpec, NodeTypeSpec, ensure_graph_type
from domain.logs import wrap_logger
from domain.values import Edge, GraphConfig

__all__ = [
    "BELONGS_TO",
    "DELEGATES",
    "GRANT_EDGES",
    "GRAPH_TYPE",
    "PRINCIPAL",
    "RESOURCE",
    "SPEC",
    "AclView",
    "Action",
    "Delegation",
    "IdentityType",
    "PrincipalInfo",
    "ResourceInfo",
    "add_principal",
    "add_resource",
    "belongs_to",
    "can",
    "delegate",
    "grant",
    "install",
    "revoke",
    "update_delegation",
]

log = wrap_logger(logging.getLogger("domain.acl"))

GRAPH_TYPE: Final = "acl-graph"
PRINCIPAL: Final = "principal"
RESOURCE: Final = "resource"
BELONGS_TO: Final = "belongs_to"
DELEGATES: Final = "delegates"

Action = Literal["read", "write", "execute"]
IdentityType = Literal["account", "org", "service", "role"]

GRANT_EDGES: Final[dict[str, str]] = {
    "read": "can_read",
    "write": "can_write",
    "execute": "can_execute",
}
"""The grant edge type of each action."""

_GRANTS: Final[dict[str, frozenset[str]]] = {
    "can_read": frozenset({"read"}),
    "can_write": frozenset({"write", "read"}),
    "can_execute": frozenset({"execute"}),
}
"""The actions each grant edge type grants: write implies read (see the module doc)."""

_SCOPE: Final[dict[str, Any]] = {"type": "string", "minLength": 1, "maxLength": 256}
_SCOPES: Final[dict[str, Any]] = {"type": "array", "items": _SCOPE, "uniqueItems": True}
_ID: Final[dict[str, Any]] = {"type": "string", "minLength": 1, "maxLength": 1024}

PRINCIPAL_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "identityType": {"enum": list(get_args(IdentityType))},
        "identityId": _ID,
        "scopes": _SCOPES,
        "resources": {
            "type": "object",
            "propertyNames": {"minLength": 1},
            "additionalProperties": {"type": "array", "items": _ID, "uniqueItems": True},
        },
    },
    "required": ["identityType", "identityId", "scopes"],
    "additionalProperties": False,
}
RESOURCE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "resourceType": _ID,
        "resourceId": _ID,
        "name": {"type": "string"},
        "description": {"type": "string"},
    },
    "required": ["resourceType", "resourceId"],
    "additionalProperties": False,
}
_NO_ATTRIBUTES: Final[dict[str, Any]] = {"type": "object", "additionalProperties": False}
DELEGATES_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"narrowedScopes": _SCOPES, "narrowable": {"type": "boolean"}},
    "required": ["narrowedScopes", "narrowable"],
    "additionalProperties": False,
}

SPEC: Final = GraphTypeSpec(
    name=GRAPH_TYPE,
    description="Access control: principals, resources, grants, memberships, delegations",
    config=GraphConfig(graph_type="directed", multi=False, allow_self_loops=False),
    node_types=(
        NodeTypeSpec(name=PRINCIPAL, schema=PRINCIPAL_SCHEMA, description="who acts"),
        NodeTypeSpec(name=RESOURCE, schema=RESOURCE_SCHEMA, description="what is acted on"),
    ),
    edge_types=(
        *(
            EdgeTypeSpec(
                name=edge_type,
                schema=_NO_ATTRIBUTES,
                description=f"grants {' and '.join(sorted(actions))}",
                sources=(PRINCIPAL,),
                targets=(RESOURCE,),
            )
            for edge_type, actions in _GRANTS.items()
        ),
        EdgeTypeSpec(
            name=BELONGS_TO,
            schema=_NO_ATTRIBUTES,
            description="principal member of principal, or resource inside resource",
            sources=(PRINCIPAL, RESOURCE),
            targets=(PRINCIPAL, RESOURCE),
        ),
        EdgeTypeSpec(
            name=DELEGATES,
            schema=DELEGATES_SCHEMA,
            description="the target may act for the source within narrowedScopes",
            sources=(PRINCIPAL,),
            targets=(PRINCIPAL,),
        ),
    ),
)
"""The ``acl-graph`` graph type as :func:`install` defines it."""


def install(app: Metagraph) -> UUID:
    """Define (or bring up to date) the system-scope ``acl-graph`` type; its id."""
    return ensure_graph_type(app, SPEC)


# --- reads -------------------------------------------------------------------------


class PrincipalInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A principal as the ACL reads it. ``resources`` (when set) limits its grants."""

    key: str
    identity_type: str
    identity_id: str
    scopes: frozenset[str]
    resources: dict[str, frozenset[str]] | None = None

    def allows(self, resource: ResourceInfo) -> bool:
        """Whether ``resources`` (if any) lists this resource's type and id."""
        if self.resources is None:
            return True
        return resource.resource_id in self.resources.get(resource.resource_type, ())


class ResourceInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    resource_type: str
    resource_id: str


class Delegation(msgspec.Struct, frozen=True, kw_only=True):
    """A ``delegates`` edge: ``delegate`` may act for ``delegator`` within ``scopes``."""

    edge_id: str
    delegator: str
    delegate: str
    scopes: frozenset[str]
    narrowable: bool


_Chain = tuple[str, frozenset[str] | None]  # (acting as, scope limit or None for no limit)


class AclView:
    """One ACL graph in memory, to answer access questions.

    Semantics (each tested in ``tests/domain/test_acl_graph.py``):

    - a principal's *effective scopes* are its own and those of every group it belongs
      to, transitively;
    - a principal may act as itself, and as D for every delegation D -> it (limited to
      the delegation's narrowedScopes), and further up a chain of delegations
      D0 -> D1 -> ... -> it as long as every edge but the last one is ``narrowable``;
      acting as Z through a chain, the available scopes are Z's effective scopes
      intersected with every narrowedScopes on the chain;
    - acting as Z, the grants used are Z's and those of the groups Z belongs to;
    - a grant on a resource covers the resources that belong to it, transitively;
    - a principal with ``resources`` set can use no grant (its own, through a group, or
      as a delegator in a chain) for a resource that list does not name.
    """

    def __init__(
        self,
        principals: Iterable[PrincipalInfo],
        resources: Iterable[ResourceInfo],
        edges: Iterable[Edge],
    ) -> None:
        self.principals = {p.key: p for p in principals}
        self.resources = {r.key: r for r in resources}
        self.delegations: dict[str, Delegation] = {}
        self._groups: dict[str, list[str]] = {}
        self._containers: dict[str, list[str]] = {}
        self._grants: dict[str, dict[str, set[str]]] = {}
        self._delegations_to: dict[str, list[Delegation]] = {}
        for edge in edges:
            self._add_edge(edge)

    def _add_edge(self, edge: Edge) -> None:
        source, target = edge.source, edge.target
        if edge.edge_type in _GRANTS:
            if source in self.principals and target in self.resources:
                grants = self._grants.setdefault(source, {}).setdefault(target, set())
                grants.update(_GRANTS[edge.edge_type])
        elif edge.edge_type == BELONGS_TO:
            if source in self.principals and target in self.principals:
                self._groups.setdefault(source, []).append(target)
            elif source in self.resources and target in self.resources:
                self._containers.setdefault(source, []).append(target)
        elif edge.edge_type == DELEGATES and source in self.principals:
            found = Delegation(
                edge_id=edge.id,
                delegator=source,
                delegate=target,
                scopes=frozenset(edge.attributes.get("narrowedScopes", ())),
                narrowable=edge.attributes.get("narrowable") is True,
            )
            self.delegations[edge.id] = found
            self._delegations_to.setdefault(target, []).append(found)

    @classmethod
    def load(cls, app: Metagraph, graph_id: UUID | str) -> AclView:
        """Read an ACL graph: every node and edge (one read each).

        The reads are not one instant: a node or edge deleted while the view is read is
        left out, as are edges to nodes added meanwhile. Load again for later writes.
        """
        _check_acl_graph(app, graph_id)
        principals: list[PrincipalInfo] = []
        resources: list[ResourceInfo] = []
        for key, node_type in app.nodes(graph_id).items():
            try:
                attributes = app.get_node(graph_id, key).attributes
            except NotFoundError:
                continue
            if node_type == PRINCIPAL:
                principals.append(_principal(key, attributes))
            elif node_type == RESOURCE:
                resources.append(
                    ResourceInfo(
                        key=key,
                        resource_type=str(attributes.get("resourceType", "")),
                        resource_id=str(attributes.get("resourceId", "")),
                    )
                )
        edges: list[Edge] = []
        for edge_id in app.edge_ids(graph_id):
            try:
                edges.append(app.get_edge(graph_id, edge_id))
            except NotFoundError:
                continue
        return cls(principals, resources, edges)

    # --- scopes --------------------------------------------------------------------

    def groups(self, principal: str) -> list[str]:
        """``principal`` and every group it belongs to, transitively (cycles are fine)."""
        return _reach(principal, lambda key: self._groups.get(key, ()))

    def effective_scopes(self, principal: str) -> frozenset[str]:
        """Its own scopes and those of all its groups (empty for an unknown key)."""
        scopes: set[str] = set()
        for key in self.groups(principal):
            found = self.principals.get(key)
            if found is not None:
                scopes |= found.scopes
        return frozenset(scopes)

    def delegable_scopes(self, principal: str) -> frozenset[str]:
        """The scopes ``principal`` may delegate: its effective scopes, and those it
        holds through chains of ``narrowable`` delegations (narrowed along each)."""
        scopes: set[str] = set()
        for acting_as, limit in self._chains(principal, first_any=False, blocked=None):
            scopes |= self._available(acting_as, limit)
        return frozenset(scopes)

    def _available(self, acting_as: str, limit: frozenset[str] | None) -> frozenset[str]:
        effective = self.effective_scopes(acting_as)
        return effective if limit is None else effective & limit

    def _chains(
        self, principal: str, *, first_any: bool, blocked: Callable[[str], bool] | None
    ) -> Iterator[_Chain]:
        """Everyone ``principal`` may act as, with the scope limit of the chain.

        ``first_any``: the delegation into ``principal`` itself need not be narrowable
        (acting); otherwise every edge must be (passing on). ``blocked`` principals can
        neither be acted as nor pass a delegation on.
        """
        start: tuple[str, frozenset[str] | None, bool] = (principal, None, True)
        seen = {start}
        stack = [start]
        while stack:
            holder, limit, first = stack.pop()
            if blocked is not None and blocked(holder):
                continue
            yield holder, limit
            for delegation in self._delegations_to.get(holder, ()):
                if not delegation.narrowable and not (first and first_any):
                    continue
                narrowed = delegation.scopes if limit is None else limit & delegation.scopes
                state = (delegation.delegator, narrowed, False)
                if state not in seen:
                    seen.add(state)
                    stack.append(state)

    # --- access --------------------------------------------------------------------

    def can(
        self, principal: str, action: Action, resource: str, *, scopes: Iterable[str] = ()
    ) -> bool:
        """Whether ``principal`` may ``action`` on ``resource``, holding ``scopes``.

        ``scopes`` are the scopes the operation requires (an OperationSpec's
        ``requiredScopes``); they must all be available in the one way of acting that
        reaches the grant. Unknown principals and resources are denied.
        """
        if action not in GRANT_EDGES:
            raise ValidationError(f"invalid action {action!r}: use one of {sorted(GRANT_EDGES)}")
        required = _scope_set(scopes)
        target = self.resources.get(resource)
        if target is None or principal not in self.principals:
            return False
        covered = set(_reach(resource, lambda key: self._containers.get(key, ())))

        def blocked(key: str) -> bool:
            found = self.principals.get(key)
            return found is None or not found.allows(target)

        for acting_as, limit in self._chains(principal, first_any=True, blocked=blocked):
            if not required <= self._available(acting_as, limit):
                continue
            holders = _reach(
                acting_as,
                lambda key: [g for g in self._groups.get(key, ()) if not blocked(g)],
            )
            for holder in holders:
                for granted, actions in self._grants.get(holder, {}).items():
                    if granted in covered and action in actions:
                        return True
        return False


def _reach(start: str, successors: Callable[[str], Iterable[str]]) -> list[str]:
    found = [start]
    seen = {start}
    for key in found:
        for following in successors(key):
            if following not in seen:
                seen.add(following)
                found.append(following)
    return found


def _principal(key: str, attributes: dict[str, Any]) -> PrincipalInfo:
    resources = attributes.get("resources")
    return PrincipalInfo(
        key=key,
        identity_type=str(attributes.get("identityType", "")),
        identity_id=str(attributes.get("identityId", "")),
        scopes=frozenset(attributes.get("scopes", ())),
        resources=None
        if resources is None
        else {str(kind): frozenset(ids) for kind, ids in resources.items()},
    )


def _scope_set(scopes: Iterable[str]) -> frozenset[str]:
    if isinstance(scopes, str) or not all(isinstance(s, str) for s in scopes):
        raise ValidationError(
            f"invalid scopes {scopes!r}: pass a list of scope strings, e.g. ['graph:read']"
        )
    return frozenset(scopes)


def _check_acl_graph(app: Metagraph, graph_id: UUID | str) -> None:
    info = app.get_graph(graph_id)
    if info.graph_type_name != GRAPH_TYPE:
        raise ValidationError(
            f"graph {info.name!r} ({info.id}) is a {info.graph_type_name!r} graph, not an "
            f"{GRAPH_TYPE!r} graph; pass the id of an ACL graph"
        )


def _pair_key(source: str, target: str) -> str:
    """The key the helpers give an edge: the graph has no parallel edges, so the
    (source, target) pair names it; hashed, as node keys may be long."""
    pair = msgspec.json.encode([source, target])
    return "acl-pair:" + hashlib.sha256(pair).hexdigest()


def can(
    app: Metagraph,
    graph_id: UUID | str,
    principal: str,
    action: Action,
    resource: str,
    *,
    scopes: Iterable[str] = (),
) -> bool:
    """Whether ``principal`` may ``action`` on ``resource`` (see :meth:`AclView.can`).

    Reads the whole graph; to ask several questions, load an :class:`AclView` once.
    """
    return AclView.load(app, graph_id).can(principal, action, resource, scopes=scopes)


# --- writes --------------------------------------------------------------------------


def add_principal(
    app: Metagraph,
    graph_id: UUID | str,
    key: str,
    *,
    identity_type: IdentityType,
    identity_id: str,
    scopes: Iterable[str] = (),
    resources: dict[str, list[str]] | None = None,
) -> None:
    """Add a principal node (its attributes checked against the type's schema)."""
    attributes: dict[str, Any] = {
        "identityType": identity_type,
        "identityId": identity_id,
        "scopes": sorted(_scope_set(scopes)),
    }
    if resources is not None:
        attributes["resources"] = resources
    app.add_node(graph_id, key, PRINCIPAL, attributes)


def add_resource(
    app: Metagraph,
    graph_id: UUID | str,
    key: str,
    *,
    resource_type: str,
    resource_id: str,
    name: str | None = None,
    description: str | None = None,
) -> None:
    """Add a resource node."""
    attributes: dict[str, Any] = {"resourceType": resource_type, "resourceId": resource_id}
    if name is not None:
        attributes["name"] = name
    if description is not None:
        attributes["description"] = description
    app.add_node(graph_id, key, RESOURCE, attributes)


def _add_pair_edge(
    app: Metagraph,
    graph_id: UUID | str,
    edge_type: str,
    source: str,
    target: str,
    *,
    attributes: dict[str, Any],
) -> str:
    """Add an edge keyed by its pair; a taken pair key is reported as the parallel edge
    it is (the domain checks keys before parallel edges)."""
    try:
        return app.add_edge(
            graph_id, edge_type, source, target, attributes, key=_pair_key(source, target)
        )
    except DuplicateError:
        raise ParallelEdgeError(
            f"there is already an edge from {source!r} to {target!r}, and an ACL graph holds "
            "one edge per pair (multi: false); update or delete that edge instead"
        ) from None


def _edge_between(app: Metagraph, graph_id: UUID | str, source: str, target: str) -> Edge | None:
    """The edge source->target: by its pair key, else (written without one) by a scan."""
    try:
        edge = app.find_edge(graph_id, _pair_key(source, target))
    except NotFoundError:
        edge = None
    if edge is not None and (edge.source, edge.target) == (source, target):
        return edge
    for edge_id in app.edge_ids(graph_id):
        try:
            edge = app.get_edge(graph_id, edge_id)
        except NotFoundError:
            continue
        if (edge.source, edge.target) == (source, target):
            return edge
    return None


def grant(
    app: Metagraph, graph_id: UUID | str, principal: str, action: Action, resource: str
) -> str:
    """Let ``principal`` ``action`` on ``resource``; the grant edge's id.

    The graph allows one edge per pair, so a principal holds at most one grant edge per
    resource: granting what an existing grant already covers returns that grant;
    granting write over read replaces the read grant (both in one transaction, so no
    reader ever sees neither or both); other combinations (read or write beside
    execute) are a :class:`~domain.errors.ParallelEdgeError`: grant one of them
    through a role the principal belongs to.
    """
    if action not in GRANT_EDGES:
        raise ValidationError(f"invalid action {action!r}: use one of {sorted(GRANT_EDGES)}")
    _check_acl_graph(app, graph_id)
    edge_type = GRANT_EDGES[action]
    try:
        return _add_pair_edge(app, graph_id, edge_type, principal, resource, attributes={})
    except ParallelEdgeError:
        existing = _edge_between(app, graph_id, principal, resource)
        if existing is None:  # deleted meanwhile: the caller may simply try again
            raise
        granted = _GRANTS.get(existing.edge_type, frozenset())
        if action in granted:
            return existing.id
        if granted and granted < _GRANTS[edge_type]:
            with app.transaction():  # the narrower grant and the wider one swap atomically
                app.delete_edge(graph_id, existing.id)
                edge_id = _add_pair_edge(
                    app, graph_id, edge_type, principal, resource, attributes={}
                )
            log.info("grant widened", principal=principal, resource=resource, action=action)
            return edge_id
        raise ParallelEdgeError(
            f"{principal!r} already has a {existing.edge_type!r} edge to {resource!r}, and an "
            f"ACL graph holds one edge per pair: {action!r} cannot be added beside it. Grant "
            f"{action!r} to a role principal and add {principal!r} to it (belongs_to)"
        ) from None


def revoke(
    app: Metagraph, graph_id: UUID | str, principal: str, action: Action, resource: str
) -> bool:
    """Delete the ``can_<action>`` edge principal -> resource; whether there was one.

    Only that edge type: revoking read leaves a ``can_write`` grant (which implies read)
    in place; revoke write to remove it.
    """
    if action not in GRANT_EDGES:
        raise ValidationError(f"invalid action {action!r}: use one of {sorted(GRANT_EDGES)}")
    _check_acl_graph(app, graph_id)
    existing = _edge_between(app, graph_id, principal, resource)
    if existing is None or existing.edge_type != GRANT_EDGES[action]:
        return False
    app.delete_edge(graph_id, existing.id)
    return True


def belongs_to(app: Metagraph, graph_id: UUID | str, member: str, group: str) -> str:
    """Make principal ``member`` a member of principal ``group``, or resource ``member``
    part of resource ``group``; the edge's id. Mixing a principal and a resource is a
    :class:`~domain.errors.ValidationError`."""
    _check_acl_graph(app, graph_id)
    kinds = app.get_node(graph_id, member).node_type, app.get_node(graph_id, group).node_type
    if kinds[0] != kinds[1]:
        raise ValidationError(
            f"belongs_to joins a principal to a principal (membership) or a resource to a "
            f"resource (containment); {member!r} is a {kinds[0]} and {group!r} a {kinds[1]}"
        )
    return _add_pair_edge(app, graph_id, BELONGS_TO, member, group, attributes={})


def _check_delegable(view: AclView, delegator: str, scopes: frozenset[str]) -> None:
    if delegator not in view.principals:
        raise NotFoundError(
            f"no principal {delegator!r} in this ACL graph; add it first",
            kind="principal",
            name=delegator,
        )
    held = view.delegable_scopes(delegator)
    excess = tuple(sorted(scopes - held))
    if excess:
        raise DelegationScopeError(
            f"{delegator!r} cannot delegate scopes {list(excess)}: narrowedScopes must be a "
            f"subset of the scopes it holds (its own, its groups', and those delegated to it "
            f"as narrowable), which are {sorted(held)}; drop the others",
            delegator=delegator,
            excess=excess,
        )


def delegate(
    app: Metagraph,
    graph_id: UUID | str,
    delegator: str,
    delegate_to: str,
    scopes: Iterable[str],
    *,
    narrowable: bool = False,
) -> str:
    """Let ``delegate_to`` act for ``delegator`` within ``scopes``; the edge's id.

    ``scopes`` must be a subset of :meth:`AclView.delegable_scopes` of the delegator
    (:class:`~domain.errors.DelegationScopeError` otherwise; nothing is written).
    ``narrowable``: whether ``delegate_to`` may pass the delegation on, narrowed.
    """
    wanted = _scope_set(scopes)
    view = AclView.load(app, graph_id)
    _check_delegable(view, delegator, wanted)
    attributes = {"narrowedScopes": sorted(wanted), "narrowable": narrowable}
    return _add_pair_edge(app, graph_id, DELEGATES, delegator, delegate_to, attributes=attributes)


def update_delegation(
    app: Metagraph,
    graph_id: UUID | str,
    edge_id: str,
    *,
    scopes: Iterable[str] | None = None,
    narrowable: bool | None = None,
) -> None:
    """Change a delegation's narrowedScopes or narrowable flag (same subset rule)."""
    view = AclView.load(app, graph_id)
    found = view.delegations.get(edge_id)
    if found is None:
        raise NotFoundError(
            f"no delegates edge with id {edge_id!r} in this ACL graph; use the id delegate "
            "returned",
            kind="delegation",
            name=str(edge_id),
        )
    changes: dict[str, Any] = {}
    if scopes is not None:
        wanted = _scope_set(scopes)
        _check_delegable(view, found.delegator, wanted)
        changes["narrowedScopes"] = sorted(wanted)
    if narrowable is not None:
        changes["narrowable"] = narrowable
    if changes:
        app.update_edge(graph_id, edge_id, changes)
