"""Installing a built-in module's graph type: idempotent, safe against a second process.

The public installer of the domain's built-in graph types (the call graph,
:mod:`domain.calls.graph`; the ACL and secret graphs, :mod:`domain.modules`), kept
below both so that each can describe its type here without importing the other
(:func:`domain.modules.install_builtin_modules` installs them all).

A module describes its graph type once (:class:`GraphTypeSpec`); :func:`ensure_graph_type`
brings a tenant file to that description using the :class:`Metagraph` commands, acting
as the store's own modules (system scope, whoever triggered the install: a member
ingesting its first call events installs the call graph's type; the member itself may
change no system-scope type):

- the type is defined (system scope) if its name is free;
- missing node and edge types are added; a node or edge type whose schema differs from
  the module's is evolved to it (a newer release of the module upgrades the schema);
- a type of that name that is not the module's (another scope, another config, an edge
  type with other endpoint types) is a :class:`~domain.errors.ConflictError`: nothing
  can change those, so the module refuses to run on top of them.

Running it again changes nothing and writes nothing. Another process installing at the
same time makes one of the two commands fail with ``DuplicateError``; the loser re-reads
and carries on.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from domain.errors import ConflictError, DuplicateError
from domain.values import Actor, GraphConfig, GraphTypeInfo

if TYPE_CHECKING:
    from domain.application import Metagraph

__all__ = ["MODULE_ACTOR", "EdgeTypeSpec", "GraphTypeSpec", "NodeTypeSpec", "ensure_graph_type"]

MODULE_ACTOR = Actor(scope="system", id="builtin-modules")
"""The actor that installs built-in modules (recorded nowhere but in the type's scope)."""


class NodeTypeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A node type of a built-in graph type: its ``name``, the JSON Schema of its
    attributes and a description."""

    name: str
    schema: dict[str, Any]
    description: str = ""


class EdgeTypeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """An edge type of a built-in graph type: as a node type, plus the node types its
    edges may join (``sources`` -> ``targets``; empty: any)."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()


class GraphTypeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A built-in graph type as its module describes it: what :func:`ensure_graph_type`
    brings a tenant file to."""

    name: str
    config: GraphConfig
    description: str = ""
    node_types: tuple[NodeTypeSpec, ...] = ()
    edge_types: tuple[EdgeTypeSpec, ...] = ()


def ensure_graph_type(app: Metagraph, spec: GraphTypeSpec) -> UUID:
    """Bring the tenant's graph type ``spec.name`` to ``spec``; its id. Idempotent."""
    with app.acting_as_module(MODULE_ACTOR):
        return _ensure(app, spec)


def _ensure(app: Metagraph, spec: GraphTypeSpec) -> UUID:
    if spec.name not in app.graph_types():
        # another process defining it meanwhile is fine: it is checked below like any other
        with suppress(DuplicateError):
            app.define_graph_type(
                spec.name,
                config=spec.config,
                description=spec.description,
                scope="system",
            )
    info = app.get_graph_type(spec.name)
    _check_compatible(info, spec)
    for node in spec.node_types:
        found = info.node_types.get(node.name)
        if found is None:
            with suppress(DuplicateError):
                app.add_node_type(
                    info.id,
                    node.name,
                    schema=node.schema,
                    description=node.description,
                )
        elif found.schema != node.schema:
            app.evolve_node_type_schema(info.id, node.name, node.schema)
    for edge in spec.edge_types:
        found_edge = info.edge_types.get(edge.name)
        if found_edge is None:
            with suppress(DuplicateError):
                app.add_edge_type(
                    info.id,
                    edge.name,
                    schema=edge.schema,
                    description=edge.description,
                    allowed_source_types=edge.sources,
                    allowed_target_types=edge.targets,
                )
        elif found_edge.schema != edge.schema:
            app.evolve_edge_type_schema(info.id, edge.name, edge.schema)
    _check_compatible(app.get_graph_type(info.id), spec)
    return info.id


def _check_compatible(info: GraphTypeInfo, spec: GraphTypeSpec) -> None:
    problems: list[str] = []
    if info.scope != "system":
        problems.append(f"its scope is {info.scope!r}, not 'system'")
    if info.config != spec.config:
        problems.append(
            f"its config is {msgspec.to_builtins(info.config)}, not "
            f"{msgspec.to_builtins(spec.config)}"
        )
    for edge in spec.edge_types:
        found = info.edge_types.get(edge.name)
        if found is not None and (
            set(found.allowed_source_types) != set(edge.sources)
            or set(found.allowed_target_types) != set(edge.targets)
        ):
            problems.append(
                f"its edge type {edge.name!r} joins {list(found.allowed_source_types)} -> "
                f"{list(found.allowed_target_types)}, not {list(edge.sources)} -> "
                f"{list(edge.targets)}"
            )
    if problems:
        raise ConflictError(
            f"graph type {spec.name!r} exists but is not the built-in module's: "
            f"{'; '.join(problems)}. The name is reserved for the built-in module: delete or "
            "rename that type (a system-scope actor can), then install again"
        )
