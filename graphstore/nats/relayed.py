"""What the relay put on JetStream, read back for a check: a tenant's relayed entries.

``graphstore verify --nats`` compares a tenant file's stream with its subject
``graphstore.<tenant>.events`` up to the relay's saved position; this is the public door
to the subject reader the restore uses too (:mod:`graphstore.nats.restore`), so nothing
outside this package needs its private modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from graphstore.nats._subject import connect, read_subject

__all__ = ["relayed_upto"]


async def relayed_upto(
    nats_url: str | Sequence[str], tenant: str, position: int
) -> list[tuple[int, bytes]]:
    """The ``(Graphstore-Offset, envelope bytes)`` of each message on the tenant's
    subject, in subject order, up to the first one past ``position`` (a message without
    the offset header counts as offset -1). ``nats_url``: one URL, a comma-separated
    list, or a sequence of them. Raises the connection's error if the server cannot be
    reached (the reader does not reconnect)."""
    urls = nats_url.split(",") if isinstance(nats_url, str) else list(nats_url)
    nc = await connect([u.strip() for u in urls if u.strip()])
    try:
        found: list[tuple[int, bytes]] = []
        async with contextlib.aclosing(read_subject(nc, tenant)) as entries:
            async for entry in entries:
                offset = entry.offset if entry.offset is not None else -1
                if offset > position:
                    break
                found.append((offset, entry.payload))
        return found
    finally:
        await nc.close()
