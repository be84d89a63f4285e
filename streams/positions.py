"""Consumer positions: how far a consumer (a projector, a subscription) has read a stream.

A position is Honker's consumer offset: consumer = a name chosen by the reader
(``metagraph@v1``, ``changes:audit``), stream = the topic it reads. It is saved inside
the caller's write transaction, so a projection's rows and the position they reflect
commit together, or not at all. :class:`~streams.HonkerTrackingRecorder` keeps its
tracking records the same way (consumer = its ``consumer`` name, stream = the upstream
application's name).

Why a module of its own: Honker ignores a save that does not advance a position and
reads an unknown consumer as 0; a reader that must never apply an event twice needs the
refusal and the difference between "never saved" and 0. Both are here, once.
"""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError

from streams.transaction import Source, Transaction

__all__ = ["positions_table", "save_position", "saved_position"]

_TABLE = "_honker_stream_consumers"


def positions_table() -> str:
    """The SQLite table of saved positions, for a statement that must read a position
    together with a projection's own tables (one statement is one snapshot of the file).

    Columns: ``name`` (the consumer), ``topic`` (the stream) and ``"offset"`` (the saved
    position); one row per (consumer, stream). It is Honker's table (version pinned in
    pyproject.toml, its layout tested in tests/streams/test_reading.py): read it, never
    write it (use :func:`save_position`). Prefer :func:`saved_position` when no join is
    needed.
    """
    return _TABLE


def saved_position(source: Source, consumer: str, stream: str) -> int | None:
    """The position ``consumer`` saved in ``stream``; None if it never saved one.

    ``source`` is a datastore (committed positions, read through the reader pool) or a
    write transaction (the writer's view, for a compare-and-set: the position cannot
    move until that transaction ends).
    """
    rows = source.query(
        f'SELECT "offset" FROM {_TABLE} WHERE name = ? AND topic = ?', [consumer, stream]
    )
    return int(rows[0]["offset"]) if rows else None


def save_position(tx: Transaction, consumer: str, stream: str, position: int) -> None:
    """Save ``position`` as ``consumer``'s position in ``stream``, inside ``tx``.

    Positions only advance: a position at or below the saved one raises
    ``IntegrityError`` (the caller's transaction then rolls back, so nothing it wrote
    commits: the entries up to that position were already handled).
    """
    saved = saved_position(tx, consumer, stream)
    if saved is not None and saved >= position:
        raise IntegrityError(
            f"consumer {consumer!r} is already at offset {saved} of {stream!r}; position "
            f"{position} does not advance it (already processed). Nothing was written."
        )
    tx.query("SELECT honker_stream_save_offset(?, ?, ?)", [consumer, stream, position])
