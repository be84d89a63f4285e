"""The exactly-once fold of delivered call events, with dead letters: every way in uses it.

Call events reach a tenant's call graph by several ways in: the durable event target
(:class:`projections.CallIntake`), JetStream (:class:`graphstore.nats.ingester.Ingester`),
and whatever comes next. Each delivers batches of entries numbered by its source (a
stream offset, a JetStream sequence) and keeps a consumer position in the tenant file.
:func:`fold_calls` folds one batch under one rule for all of them:

- the batch's call events and the consumer's new position commit in ONE transaction, a
  compare-and-set on the position read (``UnitOfWork.save_position``), so a crash can
  neither lose an entry nor apply one twice; entries at or below the saved position
  (redelivered) are passed over;
- if the protocol or the call rules refuse an event (malformed, unknown call, conflict,
  cycle), the batch is folded event by event, and each refused one is written to the
  dead-letter stream ``<consumer>.dead-letters`` of the tenant file as a
  :class:`DeadLetter` in the same transaction that moves the position past it: it
  neither blocks the source for ever nor vanishes;
- database trouble and a lost race (:class:`~domain.errors.ConcurrencyError`) raise with
  nothing committed: the caller tries the same entries again.

A new way in is a few lines. A consumer of a queue whose jobs carry call events as JSON
text, say::

    from projections.call_fold import Delivery, fold_calls
    from streams import saved_position

    def on_jobs(app, jobs):  # jobs in queue order, each with an increasing .id
        datastore = app.recorder.datastore
        saved = saved_position(datastore, "queue-intake@v1", "queue:calls")
        return fold_calls(
            app,
            [Delivery.of_json(job.id, job.payload) for job in jobs],
            consumer="queue-intake@v1",
            stream="queue:calls",
            saved=saved,
        )

and ``read_dead_letters(datastore, "queue-intake@v1")`` lists what it refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from domain import Metagraph
from domain.calls import DEFAULT_ABORT_POLICY, AbortPolicy, CallEvent, OperationTypes, ingest
from domain.calls.protocol import decode_event
from domain.errors import ConcurrencyError, DomainError, InvalidCallEventError
from domain.unit_of_work import UnitOfWork
from projections.logs import wrap_logger
from streams import Source, read_after

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DeadLetter",
    "Delivery",
    "Folded",
    "dead_letter_stream",
    "fold_calls",
    "read_dead_letters",
]

log = wrap_logger(logging.getLogger("projections.call_fold"))

DEAD_LETTER_SUFFIX: Final = ".dead-letters"


def dead_letter_stream(consumer: str) -> str:
    """The named stream of ``consumer``'s dead letters: ``<consumer>.dead-letters``."""
    return f"{consumer}{DEAD_LETTER_SUFFIX}"


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A call event a consumer refused: where it was, what was published, and why.

    ``offset`` is its place in its source (the event target's stream offset, the
    JetStream stream sequence); ``type`` and ``detail`` what was published (for the event
    target its topic and detail, for JetStream the event's type and the message as
    published, as JSON, or its text when it is not JSON); ``error`` the refusal's class
    (``InvalidCallEventError``, ``UnknownCallError``, ``CallConflictError``, ...),
    ``code`` its platform code and ``message`` what was wrong; ``parked_at`` when it was
    parked (ms since the epoch).
    """

    offset: int
    type: str
    detail: Any
    error: str
    code: str
    message: str
    parked_at: int


class _NatsDeadLetterV1(msgspec.Struct, frozen=True, kw_only=True):
    """How the NATS ingester wrote its dead letters before there was one record type
    (read only: files written then must still read)."""

    sequence: int
    message: str
    error: str
    code: str
    reason: str
    parked_at: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered entry: its ``position`` in its source (increasing), its call
    event (parsed, or a mapping the fold checks, or why it could not be read), and what
    was published, for a dead letter: ``type`` and ``detail``, or ``raw`` JSON text read
    again only if it is refused."""

    position: int
    event: CallEvent | Mapping[str, Any] | InvalidCallEventError
    type: str = ""
    detail: Any = None
    raw: bytes | None = None

    @classmethod
    def of_json(cls, position: int, data: bytes) -> Delivery:
        """An entry whose payload is a call event as JSON text ``{id?, type, at, payload}``
        (decoded to a mapping: the fold checks it with the batch, its fastest path)."""
        try:
            value = msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            value = None
        if isinstance(value, dict):
            return cls(position, value, raw=data)
        return cls(position, _parsed(decode_event, data), raw=data)

    @classmethod
    def of(cls, position: int, type: str, detail: Any, parse: Callable[[], CallEvent]) -> Delivery:
        """An entry published as ``type`` with ``detail``, its event from ``parse()``
        (which raises :class:`~domain.errors.InvalidCallEventError` when malformed)."""
        return cls(position, _parsed(lambda _: parse(), None), type=type, detail=detail)

    def published(self) -> tuple[str, Any]:
        """What was published: (type, detail)."""
        if self.raw is None:
            return self.type, self.detail
        return _published_json(self.raw, self.type)


def _published_json(raw: bytes, default_type: str) -> tuple[str, Any]:
    """(the event's type, the JSON value) of a message as published; its text if it is
    not JSON."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return default_type, raw.decode("utf-8", "replace")
    found = value.get("type") if isinstance(value, dict) else None
    return (found if isinstance(found, str) else default_type), value


def _parsed(parse: Callable[[Any], CallEvent], data: Any) -> CallEvent | InvalidCallEventError:
    try:
        return parse(data)
    except InvalidCallEventError as exc:
        return exc


@dataclass(frozen=True, slots=True)
class Folded:
    """What a fold did: the consumer's ``position`` after it, the events ``folded`` and
    the events ``refused`` (dead-lettered)."""

    position: int
    folded: int
    refused: int


def fold_calls(
    app: Metagraph,
    deliveries: Sequence[Delivery],
    *,
    consumer: str,
    stream: str,
    saved: int | None,
    upto: int | None = None,
    operation_types: OperationTypes | None = None,
    abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
) -> Folded:
    """Fold ``deliveries`` (in source order) into ``app``'s call graph with
    ``consumer``'s position in ``stream``, exactly once (module docstring).

    ``saved`` is the position the caller read (None: never saved); entries at or below it
    are passed over. ``upto`` is where the position ends (default: the last entry; a
    source that skips entries of other types passes the batch's end). Raises database
    errors and :class:`~domain.errors.ConcurrencyError` with nothing committed.
    """
    fresh = [d for d in deliveries if d.position > (saved or 0)]
    end = max(upto or 0, fresh[-1].position if fresh else 0)
    if end <= (saved or 0):
        return Folded(saved or 0, 0, 0)
    fold = _Fold(app, consumer, stream, operation_types, abort_policy)
    events = [d.event for d in fresh if not isinstance(d.event, InvalidCallEventError)]
    if len(events) == len(fresh):
        try:  # the whole batch, checked once, in the ledger's own unit (its fast path)
            fold.commit(saved, end, events)
            return Folded(end, len(events), 0)
        except ConcurrencyError:
            raise
        except DomainError:
            pass  # one of them is refused: find it, event by event
    position, folded, refused = saved, 0, 0
    for delivery in fresh:
        event = delivery.event
        refusal: DomainError | None = None
        if isinstance(event, InvalidCallEventError):
            refusal = event
        else:
            try:
                fold.commit(position, delivery.position, [event])
                folded += 1
            except ConcurrencyError:
                raise
            except DomainError as exc:
                refusal = exc
        if refusal is not None:
            fold.park(position, delivery, refusal)
            refused += 1
        position = delivery.position
    if position is None or position < end:
        fold.commit(position, end, [])
    return Folded(end, folded, refused)


@dataclass(frozen=True, slots=True)
class _Fold:
    app: Metagraph
    consumer: str
    stream: str
    operation_types: OperationTypes | None
    abort_policy: AbortPolicy

    def commit(
        self, expected: int | None, upto: int, events: list[CallEvent | Mapping[str, Any]]
    ) -> None:
        def position(unit: UnitOfWork) -> None:
            unit.save_position(self.consumer, self.stream, upto, expected=expected)

        if not events:
            self.app.atomic(position)
            return
        ingest(
            self.app,
            events,
            abort_policy=self.abort_policy,
            operation_types=self.operation_types,
            also=position,
        )

    def park(self, expected: int | None, delivery: Delivery, error: DomainError) -> None:
        """Write the refused entry's dead letter as the position moves past it."""
        kind, detail = delivery.published()
        letter = DeadLetter(
            offset=delivery.position,
            type=kind,
            detail=detail,
            error=type(error).__name__,
            code=error.code,
            message=str(error),
            parked_at=time.time_ns() // 1_000_000,
        )

        def work(unit: UnitOfWork) -> None:
            unit.save_position(self.consumer, self.stream, delivery.position, expected=expected)
            unit.publish(
                dead_letter_stream(self.consumer),
                msgspec.to_builtins(letter),
                key=str(delivery.position),
            )

        self.app.atomic(work)
        log.warning(
            "call event dead-lettered",
            consumer=self.consumer,
            stream=self.stream,
            offset=delivery.position,
            type=kind,
            error=letter.error,
        )


def read_dead_letters(source: Source, consumer: str) -> list[DeadLetter]:
    """``consumer``'s dead letters in a tenant file (``source``: a datastore or a
    transaction), in the order they were parked; the NATS ingester's earlier record
    (``sequence``, ``message`` as published, ``reason``) reads as a :class:`DeadLetter`."""
    return [_letter(e.payload) for e in read_after(source, dead_letter_stream(consumer), 0)]


def _letter(payload: bytes | str) -> DeadLetter:
    try:
        return msgspec.json.decode(payload, type=DeadLetter)
    except msgspec.ValidationError:
        old = msgspec.json.decode(payload, type=_NatsDeadLetterV1)
    kind, detail = _published_json(old.message.encode(), "")
    return DeadLetter(
        offset=old.sequence,
        type=kind,
        detail=detail,
        error=old.error,
        code=old.code,
        message=old.reason,
        parked_at=old.parked_at,
    )
