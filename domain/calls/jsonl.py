"""JSON Lines files of call protocol events: reading them, ingesting them as one batch.

A file holds one call event per line, as UTF-8 JSON::

    {"id": "e1", "type": "call.requested", "at": 1700000000000, "payload": {...}}

``type`` is one of the five call protocol events, ``at`` the time in ms since the epoch,
``payload`` the protocol's payload for that type, and ``id`` (optional) the event's
identity (derived from type, time and payload when absent). Blank lines are skipped;
any other field is refused. See ``docs/calls.md``.

A file is ONE batch, all or nothing: every line is read and checked first (format, then
the rules against the calls and the file's earlier lines), and the first bad line
raises a :class:`~domain.errors.CallEventError` with its ``line`` number; nothing is
written. Otherwise the whole file commits in one transaction. Ingesting the same file
again changes nothing (events are idempotent).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from domain.application import Metagraph
from domain.calls.ledger import IngestReport, call_ledger
from domain.calls.protocol import (
    DEFAULT_ABORT_POLICY,
    AbortPolicy,
    CallEvent,
    OperationTypes,
    decode_event,
)
from domain.errors import CallEventError

__all__ = ["JsonLinesSource", "ingest_jsonl", "read_jsonl"]

JsonLinesSource = str | os.PathLike[str] | IO[bytes] | IO[str]
"""A JSON Lines file: a path, or an open binary or text stream."""


def read_jsonl(source: JsonLinesSource) -> list[tuple[int, CallEvent]]:
    """Every event of a JSON Lines file with its line number, each checked.

    Raises :class:`~domain.errors.InvalidCallEventError` for the first malformed line,
    with ``line`` set and the line number and the problem in the message.
    """
    events: list[tuple[int, CallEvent]] = []
    for number, line in _lines(source):
        if not line.strip():
            continue
        try:
            events.append((number, decode_event(line)))
        except CallEventError as exc:
            exc.line = number
            exc.args = (f"line {number}: {exc.args[0]}", *exc.args[1:])
            raise
    return events


def ingest_jsonl(
    app: Metagraph,
    source: JsonLinesSource,
    *,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
    operation_types: OperationTypes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Fold a JSON Lines file of call events into the tenant's call graph, all or nothing.

    The options are those of :func:`domain.calls.ingest`. A refused line raises a
    :class:`~domain.errors.CallEventError` whose ``line`` is its line number.
    """
    numbered = read_jsonl(source)
    return call_ledger(app).ingest(
        [event for _, event in numbered],
        abort_policy=abort_policy,
        operation_types=operation_types,
        lines=[number for number, _ in numbered],
        progress=progress,
    )


def _lines(source: JsonLinesSource) -> Iterator[tuple[int, bytes | str]]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as stream:
            yield from enumerate(_split(stream), start=1)
    else:
        yield from enumerate(_split(source), start=1)


def _split(stream: Iterable[bytes] | Iterable[str]) -> Iterator[bytes | str]:
    for line in stream:
        yield line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")
