"""The relay's side of JetStream: the events stream's configuration, what a subject
already holds, and the relay's publisher (a :class:`~graphstore.nats._pipeline.Pipeline`
of publishes whose acknowledgements are awaited in order: the relay's throughput is
made of it). Everything else (stream info, a subject's last message, creating the
stream) uses nats-py's JetStream API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final, NamedTuple

from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from graphstore.nats._pipeline import Ack, Pipeline
from graphstore.nats.errors import GraphstoreNatsError
from graphstore.nats.subjects import (
    EVENTS_STREAM,
    OFFSET_HEADER,
    SYSTEM_KEY,
    SYSTEM_SUBJECT,
    events_subject,
)

__all__ = [
    "DUPLICATE_WINDOW_S",
    "EVENTS_SUBJECTS",
    "EXPECTED_LAST_SEQUENCE",
    "EXPECTED_LAST_SUBJECT_SEQUENCE",
    "Ack",
    "Publisher",
    "RelayStreamError",
    "Relayed",
    "events_stream_config",
]

EVENTS_SUBJECTS: Final = "graphstore.*.events"
"""The events stream's one subject filter: every tenant's ``graphstore.<tenant>.events``."""

DUPLICATE_WINDOW_S: Final = 600.0
"""Seconds JetStream remembers a ``Nats-Msg-Id`` (dropping a second message with it)."""

EXPECTED_LAST_SEQUENCE: Final = "Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJECT_SEQUENCE: Final = "Nats-Expected-Last-Subject-Sequence"


class RelayStreamError(GraphstoreNatsError):
    """The JetStream side is not as the relay needs it (a stream of the same name with
    other subjects, a relayed message without its offset header)."""


class Relayed(NamedTuple):
    """A subject's last message: the tenant offset it carries, its stream sequence and
    its payload (the envelope's bytes)."""

    offset: int
    seq: int
    payload: bytes = b""


def events_stream_config() -> StreamConfig:
    """``GRAPHSTORE_EVENTS`` as the relay creates it when it is missing (docs/scale.md):
    subjects ``graphstore.*.events``, file storage, limits retention with no limit (an
    operator may add ``max_age``/``max_bytes`` later), discard old, the duplicate window
    above, direct get allowed (readers fetch a subject's last message cheaply)."""
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENTS_SUBJECTS, SYSTEM_SUBJECT],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        allow_direct=True,
        description="graphstore tenant streams, relayed entry by entry (docs/scale.md)",
    )


class Publisher(Pipeline):
    """The relay's pipeline: it also creates the events stream and reads what a subject
    already holds."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc)
        self._js = nc.jetstream()

    async def open(self, *, identity: bool = False) -> int:
        """Create the events stream if missing (with ``identity``, make it hold
        ``system.db``'s subject too); subscribe to acknowledgements. Returns the stream's
        last sequence."""
        try:
            info = await self._js.stream_info(EVENTS_STREAM)
        except NotFoundError:
            info = await self._js.add_stream(events_stream_config())
        subjects = list(info.config.subjects or [])
        if EVENTS_SUBJECTS not in subjects:
            raise RelayStreamError(
                f"JetStream stream {EVENTS_STREAM} exists with subjects {subjects}; the relay "
                f"needs {EVENTS_SUBJECTS!r} (docs/scale.md, 'JetStream configuration')"
            )
        if identity and SYSTEM_SUBJECT not in subjects:
            config = info.config
            config.subjects = [*subjects, SYSTEM_SUBJECT]
            await self._js.update_stream(config)
        await self.listen()
        return await self.last_sequence()

    async def last_sequence(self) -> int:
        """The events stream's last sequence (0 when nothing was ever stored)."""
        info = await self._js.stream_info(EVENTS_STREAM)
        return int(info.state.last_seq)

    async def last_relayed(self, tenant: str) -> Relayed | None:
        """The last message of ``graphstore.<tenant>.events`` (for :data:`SYSTEM_KEY`:
        of ``system.db``'s subject); None if it holds none."""
        subject = SYSTEM_SUBJECT if tenant == SYSTEM_KEY else events_subject(tenant)
        try:
            msg = await self._js.get_last_msg(EVENTS_STREAM, subject)
        except NotFoundError:
            return None
        raw = (msg.headers or {}).get(OFFSET_HEADER)
        if raw is None or not raw.isdigit():
            raise RelayStreamError(
                f"the last message of {subject} (sequence {msg.seq}) has no "
                f"{OFFSET_HEADER} header: something other than the relay publishes there"
            )
        return Relayed(int(raw), int(msg.seq or 0), bytes(msg.data or b""))

    async def delete_offsets(self, tenant: str, ranges: Sequence[tuple[int, int]]) -> int:
        """Delete the messages of the tenant's subject whose ``Graphstore-Offset`` lies in
        ``ranges`` (inclusive pairs): the relayed copies of what a retirement record
        removed from the file. The number deleted (0 when they are gone already: it may
        be called again for the same ranges, after a crash, and deletes nothing twice).

        The relay keeps no map from offset to sequence: in a subject, sequences ascend
        with offsets (the relay publishes in order), so each range's first message is
        found by a binary search over sequences (one "next message of the subject at or
        after sequence s" request per step, about 30 for a billion messages), and the
        messages after it are walked while their offsets stay in the range. JetStream
        erases a deleted message's bytes (its default, not ``no_erase``)."""
        subject = SYSTEM_SUBJECT if tenant == SYSTEM_KEY else events_subject(tenant)
        top = await self.last_sequence()
        deleted = 0
        start = 1
        for first, last in sorted(ranges):
            message = await self._first_from(subject, first, start, top)
            while message is not None:
                offset, seq = message
                if offset > last:
                    break
                with contextlib.suppress(NotFoundError):  # deleted meanwhile: gone anyway
                    if await self._js.delete_msg(EVENTS_STREAM, seq):
                        deleted += 1
                start = seq + 1
                message = await self._next_of(subject, start)
        return deleted

    async def _next_of(self, subject: str, seq: int) -> tuple[int, int] | None:
        """(offset, sequence) of the subject's first message at or after ``seq``."""
        try:
            msg = await self._js.get_msg(EVENTS_STREAM, seq, subject=subject, next=True)
        except NotFoundError:
            return None
        raw = (msg.headers or {}).get(OFFSET_HEADER)
        if raw is None or not raw.isdigit():
            raise RelayStreamError(
                f"{subject} sequence {msg.seq} has no {OFFSET_HEADER} header: something "
                "other than the relay publishes there"
            )
        return int(raw), int(msg.seq or seq)

    async def _first_from(
        self, subject: str, offset: int, low: int, high: int
    ) -> tuple[int, int] | None:
        """The subject's first message (offset, sequence) with an offset of at least
        ``offset``, searching sequences ``low`` to ``high``."""
        while low < high:
            middle = (low + high) // 2
            found = await self._next_of(subject, middle)
            if found is None or found[0] >= offset:
                high = middle
            else:
                low = found[1] + 1
        found = await self._next_of(subject, low)
        return found if found is not None and found[0] >= offset else None
