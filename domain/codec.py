"""How domain values are written into events and snapshots (eventsourcing transcodings).

eventsourcing's JSON transcoder writes a registered custom value as
``{"_type_": NAME, "_data_": DATA}``. The names below are therefore part of the stored
format: renaming one makes recorded events unreadable. ``DATA`` is the value's
``msgspec.to_builtins`` form (the data model's field names, e.g. ``graphType``).

A graph's index (snapshots only) is written as ONE string: the base64 of the msgpack of
its :class:`~domain.graphs.IndexColumns`. A snapshot of a 100k-node, 200k-edge graph is
then one JSON string, which every JSON transcoder (the stdlib one, and
``streams.transcoder``'s msgspec one, whose Python walk would otherwise visit each of
its 1.6 million values) copies in one pass; msgspec decodes the columns typed, in C.
User-chosen text never becomes a JSON object key. Snapshots recorded in the earlier row
format (``metagraph.GraphIndex``) are still read.
"""

from __future__ import annotations

import binascii
from typing import Any, Final

import msgspec
from eventsourcing.persistence import Transcoding

from domain.graphs import GraphIndex, IndexColumns
from domain.values import Actor, EdgeTypeDef, GraphConfig, NodeTypeDef

__all__ = ["GraphIndexAsColumns", "GraphIndexAsRows", "StructAsDict", "transcodings"]


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
    """The earlier snapshot format, ``{"nodes": [[key, type, version]...], "edges":
    [[...]...]}``: registered so that such snapshots are read; no longer written."""

    type = GraphIndex
    name = "metagraph.GraphIndex"

    def encode(self, obj: GraphIndex) -> dict[str, list[Any]]:
        return obj.rows()

    def decode(self, data: dict[str, list[Any]]) -> GraphIndex:
        return GraphIndex.from_rows(data)


class GraphIndexAsColumns(Transcoding):
    """A graph's index as base64 text of the msgpack of its :class:`IndexColumns`."""

    type = GraphIndex
    name = "metagraph.GraphIndex.columns"

    def __init__(self) -> None:
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(IndexColumns).decode

    def encode(self, obj: GraphIndex) -> str:
        return binascii.b2a_base64(self._encode(obj.columns()), newline=False).decode("ascii")

    def decode(self, data: str) -> GraphIndex:
        return GraphIndex.from_columns(self._decode(binascii.a2b_base64(data)))


_STRUCTS: Final[tuple[type[msgspec.Struct], ...]] = (
    Actor,
    EdgeTypeDef,
    GraphConfig,
    NodeTypeDef,
)


def transcodings() -> list[Transcoding]:
    """Every transcoding the metagraph's events and snapshots need.

    Two are registered for :class:`GraphIndex`: a transcoder encodes with the LAST one
    registered for a type (the columns) and decodes by name (both).
    """
    return [
        *(StructAsDict(cls, f"metagraph.{cls.__name__}") for cls in _STRUCTS),
        GraphIndexAsRows(),
        GraphIndexAsColumns(),
    ]
