"""The aggregate index of a stream: the name of its table and the key of an aggregate.

Every recorded event has one index row ``(originator_id, originator_version) -> offset``
beside its stream entry (:mod:`streams.persistence` writes both in one transaction).
Reading an aggregate's offsets (:mod:`streams.reading`), checking a file
(:mod:`streams.check`) and writing relayed entries back (:mod:`streams.replication`)
need the same two facts as the recorders: which table holds a stream's index, and how
an originator id is keyed in it. They live here, once, below all of them.

**References.** An event may also *file references*: its state's top-level ``refs``, a
list of ids (UUIDs as 32 hex digits, or text ids), each given one more index row
``(id, 1) -> offset`` pointing at the event's own entry, in the same transaction. No
entry of its own is stored for a reference: the row makes the id taken (a second
reference to it, or a first event of an aggregate with that id, is a version conflict)
and :meth:`~streams.persistence.HonkerApplicationRecorder.select_reference` finds the
entry from the id alone. The rows are derived from the entry's ``data`` alone
(:func:`refs_of`), so a replica or a restore rebuilds them (:mod:`streams.replication`)
and a check verifies them (:mod:`streams.check`). The call trees use this: a call's
``CallTree.CallAdded`` files the reference of its requestId (docs/events.md).
"""

from __future__ import annotations

import re
from uuid import UUID

import msgspec

__all__ = ["REF_VERSION", "id_key", "index_table", "ref_keys", "refs_of", "table_prefix"]

REF_VERSION = 1
"""The version of a reference's index row (the first version of the id it takes)."""


def table_prefix(name: str) -> str:
    """``name`` as a table-name part: lower case, anything but ``[a-z0-9_]`` as ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def index_table(stream: str) -> str:
    """The default aggregate index table of ``stream``: ``es_<stream>_index``."""
    return f"es_{table_prefix(stream)}_index"


def id_key(originator_id: UUID | str) -> bytes | str:
    """How ``originator_id`` is keyed in the index: a UUID as its 16 bytes, text as text."""
    return originator_id.bytes if isinstance(originator_id, UUID) else originator_id


class _Refs(msgspec.Struct):
    refs: list[str] = []


_MARK = b'"refs":["'
_refs = msgspec.json.Decoder(_Refs)


def refs_of(state: bytes | str) -> list[str]:
    """The references an event's ``state`` (its JSON ``data``) files: its top-level
    ``refs`` list, or none. A state without the bytes ``"refs":["`` costs one search."""
    raw = state.encode("utf-8") if isinstance(state, str) else state
    if _MARK not in raw:
        return []
    try:
        return _refs.decode(raw).refs
    except msgspec.DecodeError:  # not JSON (compressed or encrypted), or no list of str
        return []


def ref_keys(refs: list[str], *, uuid_ids: bool = True) -> list[bytes | str]:
    """How each reference of :func:`refs_of` is keyed in the index (see :func:`id_key`)."""
    return [UUID(ref).bytes for ref in refs] if uuid_ids else list(refs)
