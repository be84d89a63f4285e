"""Reading a tenant's relayed subject back, in order: what ``verify --nats`` compares and
what a point-in-time restore replays (docs/backup.md, docs/verify.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from typing import NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from graphstore.nats._connection import log_connection_error
from graphstore.nats.subjects import (
    EVENTS_STREAM,
    MSG_ID,
    OFFSET_HEADER,
    PREVIOUS_HEADER,
    events_subject,
)

__all__ = ["RelayedEntry", "connect", "read_subject"]


class RelayedEntry(NamedTuple):
    """One message of ``graphstore.<tenant>.events`` as relayed: its JetStream sequence,
    the headers the relay set (None when missing) and the envelope bytes."""

    seq: int
    msg_id: str | None
    offset: int | None
    previous: int | None
    payload: bytes


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


class _ReaderClient(Client):
    """A nats-py client whose header parsing is one split per line.

    Why: a restore reads every relayed message, each with the relay's five headers, and
    nats-py 2.16 checks every character of every header name with a Python generator
    (``any(c.isspace() for c in key)``): about a third of a restore's CPU. The names
    here are the relay's and JetStream's own (tokens without spaces), so the check is
    left out; the values are decoded as nats-py decodes them. nats-py versions that
    parse headers another way never call this method (the behaviour is the same, only
    slower); ``tests/nats/test_restore.py`` reads every header through it."""

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                out[name.strip().decode("ascii", "replace")] = value.strip().decode(
                    "utf-8", "replace"
                )
        return out


def _stream_sequence(msg: Msg) -> int:
    """The message's stream sequence, read from its reply subject as nats-py's
    ``msg.metadata`` reads it (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...``,
    9 tokens, or with a domain and an account hash, 11 or more), without building the
    metadata object (its timestamp is a ``datetime``: a tenth of a restore's read)."""
    tokens = (msg.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == 9:
            return int(tokens[5])
        if len(tokens) >= 11:
            return int(tokens[7])
    return int(msg.metadata.sequence.stream)


async def connect(url: str | Sequence[str], *, timeout: float = 5.0) -> Client:
    """A connection that does not reconnect (a reader fails fast and says so)."""
    servers = [url] if isinstance(url, str) else list(url)
    nc = _ReaderClient()
    await nc.connect(
        servers=servers,
        allow_reconnect=False,
        connect_timeout=round(timeout),
        # nats-py retries a refused connect forever with max_reconnect_attempts=0: give
        # up after a second immediate try.
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=log_connection_error,
    )
    return nc


async def read_subject(
    nc: Client,
    tenant: str,
    *,
    subject: str | None = None,
    start_seq: int = 1,
    idle_timeout: float = 5.0,
) -> AsyncGenerator[RelayedEntry, None]:
    """Every message of the tenant's subject (or ``subject``) from stream sequence
    ``start_seq``, in order, up to the subject's last message when the read began (an
    ordered consumer: JetStream redelivers nothing twice and skips nothing)."""
    js = nc.jetstream()
    subject = subject or events_subject(tenant)
    try:
        last = await js.get_last_msg(EVENTS_STREAM, subject)
    except NotFoundError:
        return
    last_seq = int(last.seq or 0)
    if last_seq < start_seq:
        return
    # A callback, not next_msg(): one awaited wait per burst of messages instead of one
    # per message (about twice the throughput with nats-py). The caller's synchronous
    # work between two awaits stops reading the socket: JetStream's flow control then
    # holds the rest back, so the buffer stays small.
    buffer: deque[RelayedEntry] = deque()
    arrived = asyncio.Event()

    async def received(msg: Msg) -> None:
        headers = msg.headers or {}
        buffer.append(
            RelayedEntry(
                _stream_sequence(msg),
                headers.get(MSG_ID),
                _int(headers.get(OFFSET_HEADER)),
                _int(headers.get(PREVIOUS_HEADER)),
                msg.data,
            )
        )
        arrived.set()

    sub = await js.subscribe(
        subject,
        cb=received,
        ordered_consumer=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq
        ),
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    try:
        while True:
            if not buffer:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), idle_timeout)
                except TimeoutError:
                    raise TimeoutError(
                        f"JetStream sent nothing of {subject} for {idle_timeout}s before its "
                        f"last message (sequence {last_seq})"
                    ) from None
            while buffer:
                entry = buffer.popleft()
                yield entry
                if entry.seq >= last_seq:
                    return
    finally:
        with contextlib.suppress(Exception):  # the connection may be gone already
            await sub.unsubscribe()
