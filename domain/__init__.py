"""What may happen: the metagraph domain (graph types, graphs, nodes, edges). Issue 3.

The entry point is :class:`Metagraph`, an eventsourcing application whose persistence
is chosen by its environment (the data directory's, given by ``graphstore``)::

    with Metagraph(env) as app:          # no gate: the local operator, system scope
        app.define_graph_type("social", config={"graphType": "undirected"})
        app.add_node_type("social", "person", schema={"type": "object", "required": ["name"]})
        app.add_edge_type("social", "knows")
        graph = app.create_graph("social", "friends", status="active")
        app.add_node(graph, "ada", "person", {"name": "Ada"})

Who acts is the gate's business (:mod:`domain.access`: the permission matrix, scope
from the principal); ``graphstore.open(path, api_key=...)`` gives a gated one. Every
refused command raises a :class:`DomainError` and writes nothing. The rules and design
decisions are in ``docs/domain.md``. This package imports neither ``streams``,
``projections`` nor ``graphstore`` and names no file or setting: data flows from the
domain outwards.
"""

import logging
from typing import TYPE_CHECKING, Any

from domain.lazy_exports import LazyExports

if TYPE_CHECKING:
    from domain._identity_values import check_org_id
    from domain.application import GraphTypeRef, Metagraph
    from domain.errors import (
        AttributesInvalidError,
        ConcurrencyError,
        ConflictError,
        DomainError,
        DuplicateError,
        ForbiddenError,
        GraphArchivedError,
        NotFoundError,
        ParallelEdgeError,
        StatusTransitionError,
        ValidationError,
    )
    from domain.graph_types import GraphType, GraphTypeCatalog
    from domain.graphs import Graph
    from domain.identity import Identity, IssuedKey, Principal
    from domain.retention import Retention, RetentionPolicy
    from domain.unit_of_work import SideWrite, UnitOfWork
    from domain.values import (
        STATUS_TRANSITIONS,
        Actor,
        Edge,
        EdgeTypeDef,
        GraphConfig,
        GraphInfo,
        GraphKind,
        GraphStatus,
        GraphTypeInfo,
        Node,
        NodeTypeDef,
        Scope,
        UpdateMode,
    )

# Each name is imported from its module when first used (PEP 562): reading the tenant
# registry needs the identity classes, not the graphs' (issue 17, command line start).
# A stored event decodes once its class's module is imported: each application imports
# the classes it stores, and each class module registers its own legacy names
# (domain/names.py).
_LAZY = LazyExports(
    __name__,
    {
        "domain._identity_values": ("check_org_id",),
        "domain.application": ("GraphTypeRef", "Metagraph"),
        "domain.errors": (
            "AttributesInvalidError",
            "ConcurrencyError",
            "ConflictError",
            "DomainError",
            "DuplicateError",
            "ForbiddenError",
            "GraphArchivedError",
            "NotFoundError",
            "ParallelEdgeError",
            "StatusTransitionError",
            "ValidationError",
        ),
        "domain.graph_types": ("GraphType", "GraphTypeCatalog"),
        "domain.graphs": ("Graph",),
        "domain.identity": ("Identity", "IssuedKey", "Principal"),
        "domain.retention": ("Retention", "RetentionPolicy"),
        "domain.unit_of_work": ("SideWrite", "UnitOfWork"),
        "domain.values": (
            "STATUS_TRANSITIONS",
            "Actor",
            "Edge",
            "EdgeTypeDef",
            "GraphConfig",
            "GraphInfo",
            "GraphKind",
            "GraphStatus",
            "GraphTypeInfo",
            "Node",
            "NodeTypeDef",
            "Scope",
            "UpdateMode",
        ),
    },
)


def __getattr__(name: str) -> Any:
    return _LAZY.attribute(name)


def __dir__() -> list[str]:
    return _LAZY.names()


# Quiet unless the application configures logging (README, "Logs").
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "STATUS_TRANSITIONS",
    "Actor",
    "AttributesInvalidError",
    "ConcurrencyError",
    "ConflictError",
    "DomainError",
    "DuplicateError",
    "Edge",
    "EdgeTypeDef",
    "ForbiddenError",
    "Graph",
    "GraphArchivedError",
    "GraphConfig",
    "GraphInfo",
    "GraphKind",
    "GraphStatus",
    "GraphType",
    "GraphTypeCatalog",
    "GraphTypeInfo",
    "GraphTypeRef",
    "Identity",
    "IssuedKey",
    "Metagraph",
    "Node",
    "NodeTypeDef",
    "NotFoundError",
    "ParallelEdgeError",
    "Principal",
    "Retention",
    "RetentionPolicy",
    "Scope",
    "SideWrite",
    "StatusTransitionError",
    "UnitOfWork",
    "UpdateMode",
    "ValidationError",
    "check_org_id",
]
