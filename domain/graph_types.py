"""Graph types: their structural rules and their node and edge types, as aggregates.

Two aggregates:

- :class:`GraphTypeCatalog`, one per tenant file at a fixed id, maps graph type names to
  ids. Defining and deleting a type changes the catalog and the type in ONE save, so
  names are unique (optimistic concurrency on the catalog settles races between
  processes) and a deleted type's name can be used again.
- :class:`GraphType`, one per type: config (directed/undirected/mixed, multi,
  self-loops; fixed at definition), scope, node types and edge types with their JSON
  Schemas.

Scope rule (ADR-043, extended): scopes rank ``user < tenant < system``. An actor may
define a type at its own rank or below, and may change or delete a type only if the
type's rank is at most the actor's. So tenant and user commands can never change or
delete a system-scope type.

Schema evolution rule: a node or edge type's schema may be replaced by any valid schema;
this is VERSIONED, not checked against existing data. The type's ``schema_version`` and
the graph type's ``version`` each grow by one. Nodes and edges already written keep the
attributes they have (each records the schema version it was last written under); every
later write of them (add, merge, replace) is validated against the current schema.
Rejecting an evolution that existing nodes would violate would mean reading every
node's attributes in every graph of the type on each change, which does not scale and
would couple this aggregate to all graphs; a projection can list the nodes whose
``schema_version`` is behind for a migration.
"""

from __future__ import annotations

import copy
from typing import Any, Final, cast
from uuid import UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate

from domain.errors import DuplicateError, ForbiddenError, NotFoundError, ValidationError
from domain.names import register_module
from domain.schema import AttributeSchema, check_name, compiled_schema
from domain.values import (
    SCOPE_RANK,
    Actor,
    EdgeTypeDef,
    GraphConfig,
    GraphTypeInfo,
    NodeTypeDef,
    Scope,
    checked,
)

__all__ = [
    "CATALOG_ID",
    "NAMESPACE",
    "GraphType",
    "GraphTypeCatalog",
    "check_may_change",
]

NAMESPACE: Final = UUID("6f1c3a52-9b0e-5d7a-8c41-2e7d0b9f4a13")
"""Namespace of the metagraph's deterministic ids (``uuid5``)."""

CATALOG_ID: Final = uuid5(NAMESPACE, "graph-type-catalog")
"""The id of the one :class:`GraphTypeCatalog` of a tenant file."""


def check_may_change(actor: Actor, scope: Scope, *, action: str) -> None:
    """Raise :class:`ForbiddenError` unless ``actor`` may ``action`` a ``scope`` type."""
    actor = checked(actor, Actor, what="actor")
    if SCOPE_RANK[actor.scope] < SCOPE_RANK[scope]:
        raise ForbiddenError(
            f"a {actor.scope}-scope actor{f' ({actor.id!r})' if actor.id else ''} may not "
            f"{action}: it has scope {scope!r}, which only a {scope}-scope actor (or higher) "
            "may change; ask an operator of that scope, or use a type of your own scope"
        )


def _scope(value: object) -> Scope:
    if value not in SCOPE_RANK:
        raise ValidationError(f"invalid scope {value!r}: use 'system', 'tenant' or 'user'")
    return cast("Scope", value)


def _checked_schema(schema: object, what: str) -> dict[str, Any]:
    """A valid schema, copied: the caller may go on to mutate the dict it passed."""
    AttributeSchema.compile(schema, what=what)
    return copy.deepcopy(cast("dict[str, Any]", schema))


def _description(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"invalid description {value!r}: use a string ('' for none)")
    return value


class GraphTypeCatalog(Aggregate):
    """Names of the graph types of one tenant file, each with its type's id."""

    TOPIC = "GraphTypeCatalog"

    class Event(Aggregate.Event):
        pass

    class Started(Event, Aggregate.Created):
        TOPIC = "GraphTypeCatalog.Started"

    Created = Started  # an alias, else eventsourcing adds a Created without TOPIC

    class NameClaimed(Event):
        TOPIC = "GraphTypeCatalog.NameClaimed"
        name: str
        graph_type_id: UUID

        def apply(self, aggregate: GraphTypeCatalog) -> None:
            aggregate.names[self.name] = self.graph_type_id

    class NameReleased(Event):
        TOPIC = "GraphTypeCatalog.NameReleased"
        name: str

        def apply(self, aggregate: GraphTypeCatalog) -> None:
            del aggregate.names[self.name]

    def __init__(self) -> None:
        self.names: dict[str, UUID] = {}

    @classmethod
    def start(cls) -> GraphTypeCatalog:
        """The catalog of a tenant file that has none yet (at :data:`CATALOG_ID`)."""
        return cls._create(cls.Started, id=CATALOG_ID)

    def claim(self, name: str, graph_type_id: UUID) -> None:
        """Reserve ``name`` for ``graph_type_id``; DuplicateError if it is taken."""
        if name in self.names:
            raise DuplicateError(
                f"a graph type named {name!r} already exists (id {self.names[name]}); "
                "choose another name, or evolve the existing type"
            )
        self.trigger_event(self.NameClaimed, name=name, graph_type_id=graph_type_id)

    def release(self, name: str) -> None:
        """Free ``name`` (its type was deleted)."""
        self.trigger_event(self.NameReleased, name=name)


class GraphType(Aggregate):
    """One graph type: rules, scope, node and edge types. See the module docstring."""

    TOPIC = "GraphType"

    class Event(Aggregate.Event):
        pass

    class Defined(Event, Aggregate.Created):
        TOPIC = "GraphType.Defined"
        name: str
        description: str
        config: GraphConfig
        scope: Scope

    Created = Defined  # an alias, else eventsourcing adds a Created without TOPIC

    class NodeTypeAdded(Event):
        TOPIC = "GraphType.NodeTypeAdded"
        node_type: NodeTypeDef

        def apply(self, aggregate: GraphType) -> None:
            aggregate.node_types[self.node_type.name] = self.node_type

    class EdgeTypeAdded(Event):
        TOPIC = "GraphType.EdgeTypeAdded"
        edge_type: EdgeTypeDef

        def apply(self, aggregate: GraphType) -> None:
            aggregate.edge_types[self.edge_type.name] = self.edge_type

    class NodeTypeSchemaEvolved(Event):
        TOPIC = "GraphType.NodeTypeSchemaEvolved"
        name: str
        schema: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: GraphType) -> None:
            old = aggregate.node_types[self.name]
            aggregate.node_types[self.name] = msgspec.structs.replace(
                old, schema=self.schema, schema_version=self.schema_version
            )
            aggregate.type_version += 1

    class EdgeTypeSchemaEvolved(Event):
        TOPIC = "GraphType.EdgeTypeSchemaEvolved"
        name: str
        schema: dict[str, Any]
        schema_version: int

        def apply(self, aggregate: GraphType) -> None:
            old = aggregate.edge_types[self.name]
            aggregate.edge_types[self.name] = msgspec.structs.replace(
                old, schema=self.schema, schema_version=self.schema_version
            )
            aggregate.type_version += 1

    class Deleted(Event):
        TOPIC = "GraphType.Deleted"

        def apply(self, aggregate: GraphType) -> None:
            aggregate.deleted = True

    def __init__(self, name: str, description: str, config: GraphConfig, scope: Scope) -> None:
        self.name = name
        self.description = description
        self.config = config
        self.scope: Scope = scope
        self.type_version = 1
        self.deleted = False
        self.node_types: dict[str, NodeTypeDef] = {}
        self.edge_types: dict[str, EdgeTypeDef] = {}

    @classmethod
    def define(
        cls,
        name: str,
        *,
        actor: Actor,
        config: GraphConfig | dict[str, Any] | None = None,
        description: str = "",
        scope: Scope | None = None,
    ) -> GraphType:
        """A new graph type; ``scope`` defaults to the actor's own scope."""
        actor = checked(actor, Actor, what="actor")
        check_name(name, what="graph type name")
        scope = _scope(actor.scope if scope is None else scope)
        check_may_change(actor, scope, action=f"define graph type {name!r}")
        return cls._create(
            cls.Defined,
            name=name,
            description=_description(description),
            config=checked(config or GraphConfig(), GraphConfig, what="graph config"),
            scope=scope,
        )

    # --- reads ---------------------------------------------------------------------

    def check_usable(self) -> None:
        """Raise :class:`NotFoundError` if this type was deleted."""
        if self.deleted:
            raise NotFoundError(
                f"graph type {self.name!r} ({self.id}) was deleted; graphs of it are "
                "read-only. Define a new type and create a new graph",
                kind="graph type",
                name=self.name,
            )

    def node_type(self, name: str) -> NodeTypeDef:
        """The node type ``name``, or :class:`NotFoundError` listing the known ones."""
        found = self.node_types.get(name) if isinstance(name, str) else None
        if found is None:
            raise NotFoundError(
                f"graph type {self.name!r} has no node type {name!r}; known node types: "
                f"{sorted(self.node_types)}. Use one of them, or add the node type first",
                kind="node type",
                name=str(name),
            )
        return found

    def edge_type(self, name: str) -> EdgeTypeDef:
        """The edge type ``name``, or :class:`NotFoundError` listing the known ones."""
        found = self.edge_types.get(name) if isinstance(name, str) else None
        if found is None:
            raise NotFoundError(
                f"graph type {self.name!r} has no edge type {name!r}; known edge types: "
                f"{sorted(self.edge_types)}. Use one of them, or add the edge type first",
                kind="edge type",
                name=str(name),
            )
        return found

    def node_schema(self, spec: NodeTypeDef) -> AttributeSchema:
        """The compiled schema of a node type (cached per schema version)."""
        return compiled_schema(
            (self.id, "node", spec.name, spec.schema_version),
            spec.schema,
            what=f"node type {spec.name!r}",
        )

    def edge_schema(self, spec: EdgeTypeDef) -> AttributeSchema:
        """The compiled schema of an edge type (cached per schema version)."""
        return compiled_schema(
            (self.id, "edge", spec.name, spec.schema_version),
            spec.schema,
            what=f"edge type {spec.name!r}",
        )

    def info(self) -> GraphTypeInfo:
        """This type as a read value."""
        return GraphTypeInfo(
            id=self.id,
            name=self.name,
            description=self.description,
            config=self.config,
            scope=self.scope,
            version=self.type_version,
            # Copies: a caller mutating a returned schema must not reach the cached type.
            node_types=copy.deepcopy(self.node_types),
            edge_types=copy.deepcopy(self.edge_types),
        )

    # --- commands ------------------------------------------------------------------

    def _check_change(self, actor: Actor, action: str) -> None:
        self.check_usable()
        check_may_change(actor, self.scope, action=f"{action} of graph type {self.name!r}")

    def _check_new_type_name(self, name: str, kind: str) -> None:
        check_name(name, what=f"{kind} name")
        if name in self.node_types or name in self.edge_types:
            raise DuplicateError(
                f"graph type {self.name!r} already has a node or edge type named {name!r}; "
                "choose another name, or evolve that type's schema"
            )

    def add_node_type(
        self,
        name: str,
        *,
        actor: Actor,
        schema: dict[str, Any] | None = None,
        description: str = "",
    ) -> None:
        """Add a node type whose attributes must match ``schema`` ({} accepts any)."""
        self._check_change(actor, f"add node type {name!r}")
        self._check_new_type_name(name, "node type")
        schema = _checked_schema({} if schema is None else schema, f"schema of node type {name!r}")
        spec = NodeTypeDef(name=name, description=_description(description), schema=schema)
        self.trigger_event(self.NodeTypeAdded, node_type=spec)

    def add_edge_type(
        self,
        name: str,
        *,
        actor: Actor,
        schema: dict[str, Any] | None = None,
        description: str = "",
        allowed_source_types: tuple[str, ...] | list[str] = (),
        allowed_target_types: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Add an edge type; endpoint type lists name existing node types (empty: any)."""
        self._check_change(actor, f"add edge type {name!r}")
        self._check_new_type_name(name, "edge type")
        schema = _checked_schema({} if schema is None else schema, f"schema of edge type {name!r}")
        spec = EdgeTypeDef(
            name=name,
            description=_description(description),
            schema=schema,
            allowed_source_types=self._node_type_names(allowed_source_types, name, "source"),
            allowed_target_types=self._node_type_names(allowed_target_types, name, "target"),
        )
        self.trigger_event(self.EdgeTypeAdded, edge_type=spec)

    def _node_type_names(self, names: object, edge_type: str, end: str) -> tuple[str, ...]:
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ValidationError(
                f"allowed {end} types of edge type {edge_type!r} must be a list of node "
                f"type names, got {names!r}"
            )
        for name in names:
            self.node_type(name)
        return tuple(dict.fromkeys(names))

    def evolve_node_type_schema(self, name: str, schema: dict[str, Any], *, actor: Actor) -> int:
        """Replace a node type's schema; returns its new schema version (see module doc)."""
        self._check_change(actor, f"evolve node type {name!r}")
        spec = self.node_type(name)
        schema = _checked_schema(schema, f"new schema of node type {name!r}")
        version = spec.schema_version + 1
        self.trigger_event(
            self.NodeTypeSchemaEvolved, name=name, schema=schema, schema_version=version
        )
        return version

    def evolve_edge_type_schema(self, name: str, schema: dict[str, Any], *, actor: Actor) -> int:
        """Replace an edge type's schema; returns its new schema version (see module doc)."""
        self._check_change(actor, f"evolve edge type {name!r}")
        spec = self.edge_type(name)
        schema = _checked_schema(schema, f"new schema of edge type {name!r}")
        version = spec.schema_version + 1
        self.trigger_event(
            self.EdgeTypeSchemaEvolved, name=name, schema=schema, schema_version=version
        )
        return version

    def delete(self, *, actor: Actor) -> None:
        """Delete this type: its graphs stay readable but refuse every write."""
        self._check_change(actor, "delete")
        self.trigger_event(self.Deleted)


register_module(__name__, globals())  # its legacy event names (domain/names.py)
