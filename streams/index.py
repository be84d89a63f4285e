"""The aggregate index of a stream: the name of its table and the key of an aggregate.

Every recorded event has one index row ``(originator_id, originator_version) -> offset``
beside its stream entry (:mod:`streams.persistence` writes both in one transaction).
Reading an aggregate's offsets (:mod:`streams.reading`), checking a file
(:mod:`streams.check`) and writing relayed entries back (:mod:`streams.replication`)
need the same two facts as the recorders: which table holds a stream's index, and how
an originator id is keyed in it. They live here, once, below all of them.
"""

from __future__ import annotations

import re
from uuid import UUID

__all__ = ["id_key", "index_table", "table_prefix"]


def table_prefix(name: str) -> str:
    """``name`` as a table-name part: lower case, anything but ``[a-z0-9_]`` as ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def index_table(stream: str) -> str:
    """The default aggregate index table of ``stream``: ``es_<stream>_index``."""
    return f"es_{table_prefix(stream)}_index"


def id_key(originator_id: UUID | str) -> bytes | str:
    """How ``originator_id`` is keyed in the index: a UUID as its 16 bytes, text as text."""
    return originator_id.bytes if isinstance(originator_id, UUID) else originator_id
