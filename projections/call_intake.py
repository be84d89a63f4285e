"""Call events published to a durable event target, folded into the tenant's call graph.

The operations layer publishes the call protocol's events to the store's event target
(``streams.EventTarget``, durable mode, in the tenant's file): ``call.requested``, and
``call.responded:<requestId>``, ``call.completed:<requestId>``, ``call.aborted:<requestId>``
and ``call.error:<requestId>`` (a bare ``call.responded`` ... is accepted too).
:class:`CallIntake` is the durable consumer that folds them with
:func:`domain.calls.ingest`, under the projectors' exactly-once rule: each batch's call
events and the consumer's new position commit in ONE SQLite transaction (a unit of
work's ``save_position``, a compare-and-set on the position it read), so a crash can
neither lose an entry nor apply one twice.

A bad call event (malformed, or refused by the call rules: unknown call, conflict,
cycle) is not retried for ever: it goes to the dead-letter stream
(``<consumer>.dead-letters`` in the same file) as a
:class:`~projections.call_fold.DeadLetter` with its typed error, and the position moves
past it, in one transaction; the events around it are applied. The fold itself is
:func:`projections.call_fold.fold_calls`, shared with the NATS ingester. Database trouble
(busy, full, closed file) is not an event's fault: nothing commits and the batch is
tried again after a back-off.

Why here: the intake reads ``streams`` (the target) and writes through ``domain``
(ingestion), so it lives above both, with the other consumers of streams that keep
exactly-once positions (the projectors); ``domain`` knows nothing of streams and
``streams`` nothing of the domain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

import msgspec

from domain import Metagraph
from domain.calls import DEFAULT_ABORT_POLICY, AbortPolicy, CallEvent, OperationTypes
from domain.calls.protocol import as_event
from domain.errors import InvalidCallEventError
from projections.call_fold import (
    DeadLetter,
    Delivery,
    dead_letter_stream,
    fold_calls,
    read_dead_letters,
)
from projections.errors import ProjectionError
from streams import Batch, EventTarget, Outbox, Subscription, TargetEvent

__all__ = [
    "CALL_TYPES",
    "DEFAULT_CONSUMER",
    "CallIntake",
    "CallIntakeError",
    "call_event_of",
    "call_topic",
    "publish_call",
]

DEFAULT_CONSUMER: Final = "call-intake@v1"
CALL_TYPES: Final = ("call.*",)
"""The patterns the intake consumes; other types in the stream are passed over."""


class CallIntakeError(ProjectionError, ValueError):
    """The intake cannot run as configured (the message says what to change); a
    ``ValueError`` too, as before it joined :class:`ProjectionError`."""


def call_topic(event: CallEvent) -> str:
    """The topic a call event is published under: ``call.requested`` for a request,
    ``<type>:<requestId>`` for the others (a caller waits for its own response)."""
    if event.type == "call.requested":
        return event.type
    return f"{event.type}:{event.payload.request_id}"


def publish_call(
    target: EventTarget,
    event: CallEvent | Mapping[str, Any],
    *,
    within: Outbox | None = None,
) -> int | None:
    """Check a call event and publish it to ``target`` under its topic (see
    :meth:`streams.EventTarget.publish` for ``within`` and the result). A malformed
    event raises :class:`~domain.errors.InvalidCallEventError` and writes nothing."""
    checked = as_event(event)
    detail = {
        "id": checked.id,
        "type": checked.type,
        "at": checked.at,
        "payload": msgspec.to_builtins(checked.payload),
    }
    return target.publish(call_topic(checked), detail, within=within)


def call_event_of(event: TargetEvent) -> CallEvent:
    """The call event a target event carries: its detail ``{id?, type?, at?, payload}``.

    ``type`` defaults to the topic's (``call.responded:r1`` -> ``call.responded``) and
    must agree with it; ``at`` defaults to when it was published; a topic's
    ``:<requestId>`` must be the payload's. Raises
    :class:`~domain.errors.InvalidCallEventError`.
    """
    base, _, request_id = event.type.partition(":")
    if not isinstance(event.detail, dict):
        raise _invalid(event, f"the detail must be a call event object, got {event.detail!r}")
    fields = dict(event.detail)
    if fields.setdefault("type", base) != base:
        raise _invalid(event, f"its detail says type {fields['type']!r}")
    if "at" not in fields and event.time is not None:
        fields["at"] = event.time
    checked = as_event(fields)
    if request_id and request_id != checked.payload.request_id:
        raise _invalid(event, f"its payload is about {checked.payload.request_id!r}")
    return checked


def _invalid(event: TargetEvent, what: str) -> InvalidCallEventError:
    return InvalidCallEventError(
        f"invalid call event at offset {event.offset} ({event.type!r}): {what}. Publish "
        "{id?, type?, at, payload} under call.requested or <type>:<requestId> "
        "(projections.call_intake.publish_call does).",
        reason=what,
    )


class CallIntake:
    """The durable consumer ``name`` of ``target``'s stream, folding call events into
    ``app``'s call graph; ``app`` and ``target`` must be on the same tenant file.

    :meth:`start` runs it on the target's thread; :meth:`catch_up` runs it in the
    caller's thread. :meth:`close` stops and joins its thread (it closes neither the
    target nor the application: close it first, then them).
    """

    def __init__(
        self,
        app: Metagraph,
        target: EventTarget,
        *,
        name: str = DEFAULT_CONSUMER,
        operation_types: OperationTypes | None = None,
        abort_policy: AbortPolicy = DEFAULT_ABORT_POLICY,
        batch: int = 200,
    ) -> None:
        if target.mode != "durable":
            raise CallIntakeError(
                f"the call intake needs a durable event target (a position per consumer); "
                f"this one is {target.mode}: open it with mode='durable'"
            )
        datastore = getattr(app.recorder, "datastore", None)
        app_path = getattr(datastore, "path", None)
        if app_path is None or Path(app_path) != target.path:
            raise CallIntakeError(
                f"the call intake commits its position with the call events, so the target "
                f"must be on the application's file: target on {target.path}, application on "
                f"{app_path or 'a store without a file'} (PERSISTENCE_MODULE=streams.persistence "
                "with HONKER_DBNAME set to the target's file)"
            )
        self.app = app
        self.target = target
        self.name = name
        self.dead_letter_stream = dead_letter_stream(name)
        self.operation_types = operation_types
        self.abort_policy: AbortPolicy = abort_policy
        self.batch = batch
        self._subscription: Subscription | None = None

    # --- running ------------------------------------------------------------------------

    def start(self) -> CallIntake:
        """Consume on a thread of the target until :meth:`close`."""
        if self._subscription is None:
            self._subscription = self.target.consume(
                self.name, self.fold, types=CALL_TYPES, batch=self.batch
            )
        return self

    def catch_up(self) -> int:
        """Fold everything published so far, in this thread; the entries consumed."""
        return self.target.consume_pending(self.name, self.fold, types=CALL_TYPES, batch=self.batch)

    def close(self) -> None:
        """Stop and join the consumer's thread (idempotent)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def __enter__(self) -> CallIntake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def error(self) -> BaseException | None:
        """The last error of the running consumer (None once a batch commits)."""
        return self._subscription.error if self._subscription is not None else None

    # --- reading ------------------------------------------------------------------------

    def position(self) -> int:
        """The last offset of the target's stream folded (or passed over); 0 if none."""
        return self.target.position(self.name) or 0

    def wait_for(self, offset: int, timeout: float = 10.0) -> bool:
        """Wait until the position reaches ``offset``; False if ``timeout`` passed first."""
        watcher = self.target.datastore.watcher
        deadline = time.monotonic() + timeout
        generation = watcher.generation
        while self.position() < offset:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            generation = watcher.wait_for_change(generation, min(left, 0.1))
        return True

    def dead_letters(self) -> list[DeadLetter]:
        """The refused call events, in the order they were parked."""
        return read_dead_letters(self.target.datastore, self.name)

    def requeue(self, letter: DeadLetter) -> int | None:
        """Publish a dead letter's event again (after its cause was fixed, e.g. the
        ``call.requested`` it was waiting for arrived); its new offset. The dead-letter
        entry stays, as history."""
        return self.target.publish(letter.type, letter.detail)

    # --- folding ------------------------------------------------------------------------

    def fold(self, batch: Batch) -> None:
        """Fold one batch (the target's consumer handler) with
        :func:`projections.call_fold.fold_calls`: all of it in one transaction with the
        position; if the call rules refuse an event, event by event, each refused one
        parked in the dead-letter stream as its position moves past it."""
        deliveries = [
            Delivery.of(
                int(event.offset or batch.upto),
                event.type,
                event.detail,
                partial(call_event_of, event),
            )
            for event in batch.events
        ]
        fold_calls(
            self.app,
            deliveries,
            consumer=self.name,
            stream=self.target.stream,
            saved=batch.saved,
            upto=batch.upto,
            operation_types=self.operation_types,
            abort_policy=self.abort_policy,
        )
