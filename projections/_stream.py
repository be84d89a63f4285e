"""Reading one tenant stream: the one module of ``projections`` that knows Honker's tables.

Everything goes through :class:`streams.HonkerDatastore`: reads through the reader pool
(``datastore.query``, never inside a write transaction), and the one writer-side read a
projector needs, its saved offset inside its own transaction. The layout relied on is
Honker 0.5.0's, pinned by ``pyproject.toml``: ``_honker_stream(offset, topic, key,
payload)`` with an index on ``(topic, offset)``, and ``_honker_stream_consumers(name,
topic, offset)``. ``streams`` offers no batch reader that keeps the envelope's ``time``
(``select_notifications`` drops it), hence this module; see docs/projections.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec

from domain.names import canonical
from projections.errors import EventNotProjectableError
from streams import HonkerDatastore
from streams import envelope as envelopes

__all__ = [
    "Record",
    "Row",
    "StreamReader",
    "Transaction",
    "VersionedEvent",
    "decode_record",
    "event_decoder",
    "saved_offset_in",
]


class Transaction(Protocol):
    """A Honker write transaction, as ``HonkerDatastore.transaction()`` yields it."""

    def execute(self, sql: str, params: Any = None) -> None: ...

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]: ...


class Row(NamedTuple):
    """One stream entry as read: its offset and its envelope's JSON text."""

    offset: int
    payload: str


class Record(msgspec.Struct, frozen=True):
    """One event of the stream, its envelope decoded; ``state`` is still the mapper's bytes.

    ``type`` is the event's stable name (``Graph.NodeAdded``, see docs/events.md), also
    for an event recorded under a legacy name (``domain.graphs:Graph.NodeAdded``).

    ``encoded`` is true when the envelope carried ``data_b64`` (a cipher or compressor
    was configured), so ``state`` must be decrypted before it is JSON.
    """

    offset: int
    type: str
    subject: str
    version: int
    time: int
    state: bytes
    encoded: bool


def decode_record(row: Row) -> Record:
    """The envelope of one row; :class:`EventNotProjectableError` if it is not one."""
    try:
        env = envelopes.decode(row.payload)
        state = envelopes.state_of(env)
    except msgspec.MsgspecError as exc:
        raise EventNotProjectableError(
            f"stream entry {row.offset} is not a valid envelope ({exc}); see "
            "streams/envelope.schema.json"
        ) from exc
    return Record(
        offset=row.offset,
        type=canonical(env.type),
        subject=env.subject,
        version=env.version,
        time=env.time,
        state=state,
        encoded=env.data_b64 is not msgspec.UNSET,
    )


class StreamReader:
    """Reads one stream (topic) of a tenant file through the reader pool."""

    def __init__(self, datastore: HonkerDatastore, stream: str) -> None:
        self.datastore = datastore
        self.stream = stream

    def after(self, offset: int, limit: int) -> list[Row]:
        """Up to ``limit`` entries with an offset above ``offset``, in offset order."""
        rows = self.datastore.query(
            'SELECT "offset", payload FROM _honker_stream WHERE topic = ? AND "offset" > ? '
            'ORDER BY "offset" LIMIT ?',
            [self.stream, offset, limit],
        )
        return [Row(row["offset"], row["payload"]) for row in rows]

    def head(self) -> tuple[int, int | None]:
        """The stream's last offset and its envelope's ``time`` (ms); ``(0, None)`` if empty."""
        rows = self.datastore.query(
            "SELECT \"offset\", payload ->> '$.time' AS time FROM _honker_stream "
            'WHERE topic = ? ORDER BY "offset" DESC LIMIT 1',
            [self.stream],
        )
        if not rows:
            return 0, None
        return int(rows[0]["offset"]), _int_or_none(rows[0]["time"])

    def time_at(self, offset: int) -> int | None:
        """The ``time`` of the entry at ``offset``, or of the first entry for offset 0."""
        if offset <= 0:
            sql = (
                "SELECT payload ->> '$.time' AS time FROM _honker_stream WHERE topic = ? "
                'ORDER BY "offset" LIMIT 1'
            )
            params: list[Any] = [self.stream]
        else:
            sql = (
                "SELECT payload ->> '$.time' AS time FROM _honker_stream "
                'WHERE topic = ? AND "offset" = ?'
            )
            params = [self.stream, offset]
        rows = self.datastore.query(sql, params)
        return _int_or_none(rows[0]["time"]) if rows else None

    def count_between(self, low: int, high: int) -> int:
        """How many entries have ``low < offset <= high`` (offsets have gaps across topics)."""
        if high <= low:
            return 0
        rows = self.datastore.query(
            'SELECT count(*) AS n FROM _honker_stream WHERE topic = ? AND "offset" > ? '
            'AND "offset" <= ?',
            [self.stream, low, high],
        )
        return int(rows[0]["n"])


def saved_offset_in(tx: Transaction, consumer: str, stream: str) -> int:
    """The consumer's saved offset as the writer sees it, inside ``tx`` (0 if none)."""
    rows = tx.query(
        'SELECT "offset" FROM _honker_stream_consumers WHERE name = ? AND topic = ?',
        [consumer, stream],
    )
    return int(rows[0]["offset"]) if rows else 0


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float | str) else None


class VersionedEvent(msgspec.Struct, kw_only=True):
    """The fields every projected event's state has in common (eventsourcing's)."""

    class_version: int = 1


_V = TypeVar("_V", bound=VersionedEvent)


def event_decoder(cls: type[_V], topic: str) -> Callable[[bytes], _V]:
    """A typed decoder of one event type's state; refuses malformed or newer versions."""
    decoder = msgspec.json.Decoder(cls)

    def decode(state: bytes) -> _V:
        try:
            event = decoder.decode(state)
        except msgspec.MsgspecError as exc:
            raise EventNotProjectableError(f"malformed {topic} event: {exc}") from exc
        if event.class_version != 1:
            raise EventNotProjectableError(
                f"{topic} event of class_version {event.class_version}: this projection "
                "reads version 1 only; upgrade it (a new projection version)"
            )
        return event

    return decode
