"""How domain values are written into events and snapshots (eventsourcing transcodings).

eventsourcing's JSON transcoder writes a registered custom value as
``{"_type_": NAME, "_data_": DATA}``. The names below are therefore part of the stored
format: renaming one makes recorded events unreadable. ``DATA`` is the value's
``msgspec.to_builtins`` form (the data model's field names, e.g. ``graphType``), and a
graph's index is stored as rows (lists), so no user-chosen text ever becomes a JSON
object key in a snapshot.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from eventsourcing.persistence import Transcoding

from domain.graphs import GraphIndex
from domain.values import Actor, EdgeTypeDef, GraphConfig, NodeTypeDef

__all__ = ["GraphIndexAsRows", "StructAsDict", "transcodings"]


class StructAsDict(Transcoding):
    """A msgspec Struct as its JSON object, decoded (and type-checked) back."""

    def __init__(self, struct_type: type[msgspec.Struct], name: str) -> None:
        self.type = struct_type
        self.name = name

    def encode(self, obj: msgspec.Struct) -> Any:
        return msgspec.to_builtins(obj)

    def decode(self, data: Any) -> msgspec.Struct:
        return msgspec.convert(data, self.type)


class GraphIndexAsRows(Transcoding):
    """A graph's index as ``{"nodes": [[key, type, version]...], "edges": [[...]...]}``."""

    type = GraphIndex
    name = "metagraph.GraphIndex"

    def encode(self, obj: GraphIndex) -> dict[str, list[Any]]:
        return obj.rows()

    def decode(self, data: dict[str, list[Any]]) -> GraphIndex:
        return GraphIndex.from_rows(data)


_STRUCTS: Final[tuple[type[msgspec.Struct], ...]] = (
    Actor,
    EdgeTypeDef,
    GraphConfig,
    NodeTypeDef,
)


def transcodings() -> list[Transcoding]:
    """Every transcoding the metagraph's events and snapshots need."""
    return [
        *(StructAsDict(cls, f"metagraph.{cls.__name__}") for cls in _STRUCTS),
        GraphIndexAsRows(),
    ]
