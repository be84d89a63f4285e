"""Typed values of the metagraph: what events carry, aggregates hold and reads return.

All are :class:`msgspec.Struct` types, immutable unless noted. Their JSON form (what
``msgspec.to_builtins`` gives, also what the event stream carries) uses the data
model's names: ``GraphConfig`` is ``{"graphType", "multi", "allowSelfLoops"}``.

msgspec does not check field types when a Struct is built in Python, so commands pass
values through :func:`checked` (a round trip through ``msgspec.convert``) before use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar
from uuid import UUID

import msgspec

from domain.errors import ValidationError

__all__ = [
    "SCOPE_RANK",
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
    "checked",
]

Scope = Literal["system", "tenant", "user"]
"""Who owns a graph type, and who an actor speaks for (ADR-043)."""

GraphKind = Literal["directed", "undirected", "mixed"]
"""Which edges a graph type admits: directed only, undirected only, or both."""

GraphStatus = Literal["draft", "active", "archived"]
"""A graph's life cycle; see :data:`STATUS_TRANSITIONS`."""

UpdateMode = Literal["merge", "replace"]
"""How an attribute update combines with the current attributes (see ``update_node``)."""

SCOPE_RANK: Final[Mapping[str, int]] = {"user": 1, "tenant": 2, "system": 3}
"""An actor may define or change a graph type only if its rank is at least the type's."""

STATUS_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "draft": frozenset({"active", "archived"}),
    "active": frozenset({"archived"}),
    "archived": frozenset(),
}
"""Allowed graph status changes. A draft is built, then activated or dropped (archived);
an active graph can only be archived; archived is final (a read-only record)."""

_S = TypeVar("_S", bound=msgspec.Struct)


def checked(value: _S | Mapping[str, Any], cls: type[_S], *, what: str) -> _S:
    """``value`` as a valid ``cls``, or :class:`ValidationError` naming the bad field.

    Accepts an instance (re-checked, since msgspec does not check types on construction)
    or a JSON-style mapping with the wire names (``{"graphType": "directed"}``).
    """
    data = msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise ValidationError(
            f"invalid {what} {data!r}: {exc}. Fix the value; see the type "
            f"{cls.__name__} for the fields and the values each allows."
        ) from None


class Actor(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who issues a command: its scope decides which graph types it may change."""

    scope: Scope
    id: str = ""


class GraphConfig(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """The structural rules of a graph type (fixed once the type is defined).

    ``graph_type`` (``graphType``): which edges are admitted; ``multi``: whether two
    edges may join the same pair; ``allow_self_loops`` (``allowSelfLoops``): whether an
    edge may join a node to itself. Defaults are the strict ones.
    """

    graph_type: GraphKind = "directed"
    multi: bool = False
    allow_self_loops: bool = False


class NodeTypeDef(msgspec.Struct, frozen=True, kw_only=True):
    """A node type: its name, its attributes' JSON Schema and that schema's version."""

    name: str
    description: str = ""
    schema: dict[str, Any] = {}
    schema_version: int = 1


class EdgeTypeDef(msgspec.Struct, frozen=True, kw_only=True):
    """An edge type: schema as for nodes, plus the node types its endpoints may have.

    An empty ``allowed_source_types`` (or ``allowed_target_types``) admits any node type.
    """

    name: str
    description: str = ""
    schema: dict[str, Any] = {}
    schema_version: int = 1
    allowed_source_types: tuple[str, ...] = ()
    allowed_target_types: tuple[str, ...] = ()


class GraphTypeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A graph type as read: its rules, its node and edge types, its version.

    ``version`` starts at 1 and grows by one with every schema evolution of one of its
    node or edge types.
    """

    id: UUID
    name: str
    description: str
    config: GraphConfig
    scope: Scope
    version: int
    node_types: dict[str, NodeTypeDef]
    edge_types: dict[str, EdgeTypeDef]


class GraphInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A graph as read: its metadata and the size of its node and edge sets."""

    id: UUID
    name: str
    description: str
    graph_type_id: UUID
    graph_type_name: str
    status: GraphStatus
    owner_id: str
    project_id: str
    node_count: int
    edge_count: int
    version: int


class Node(msgspec.Struct, frozen=True, kw_only=True):
    """A node as read: ``schema_version`` is the type's schema it was last written under."""

    key: str
    node_type: str
    attributes: dict[str, Any]
    schema_version: int


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    """An edge as read. ``id`` is assigned by the store; ``key`` is the caller's, if any."""

    id: str
    key: str | None
    edge_type: str
    source: str
    target: str
    undirected: bool
    attributes: dict[str, Any]
    schema_version: int
