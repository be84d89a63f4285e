"""The event target: publish and subscribe by event type, on a Honker file, in three modes.

The platform's operations layer talks to the store through one integration point
(ADR-047's ``HonkerEventTarget``): it publishes events by type (the call protocol's
``call.requested``, ``call.responded:<requestId>``, ...) and subscribes by type. This
module is that target, over Honker's primitives in one SQLite file:

``ephemeral``
    Honker notify/listen: one notification per event on the channel named by its type.
    Listeners get what is committed after they subscribed; nothing is replayed.
``durable``
    A named Honker stream (``stream=``, one for every type; the entry's key is its
    type). A subscriber with a ``name`` has a consumer position in the file and resumes
    after it when it subscribes again, in this process or another; one without a name
    follows what is committed after it subscribed.
``composite``
    In-process dispatch (the publisher's thread calls this target's subscribers
    directly) plus Honker notify/listen for other processes and other targets. A
    subscriber of the publishing target gets each event once: entries it published are
    skipped when they come back through Honker (each target has an ``origin``).

Published inside a transaction (``within=``: the domain's unit of work, or anything with
its ``notify``, ``publish`` and ``on_commit``), an event is written with the
transaction's other writes and delivered only if it commits; in-process subscribers are
called after the commit.

Subscribers run on threads of this target, woken by the file's commit watcher (any
process's commit) with a slow poll for a lost wake. :meth:`EventTarget.close` stops and
joins them before it releases the file (a listener still polling a closed database is
the seeds' close-ordering pitfall). The file handle is shared with the other users of
the file in this process (``streams`` opens each file once per process), so an
application and a target on one tenant file may be closed in any order.

Wire format (any Honker client can read it): the notification's channel, or the
stream entry's key, is the event's type; the payload is JSON ``{"target": 1, "type",
"origin", "time", "detail"}`` (``time`` in ms since the epoch). A notification without
this shape (a unit's plain ``notify``) is delivered with its payload as the detail.

This module knows Honker's notifications table (``_honker_notifications``) and reads
named streams; :mod:`streams.side_writes` holds the statements that write them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Protocol

import msgspec

from streams._honker import Synchronous
from streams.errors import StreamsError
from streams.logs import wrap_logger
from streams.persistence import HonkerDatastore
from streams.positions import saved_position
from streams.side_writes import advance_position, notify, publish_entry

__all__ = [
    "Batch",
    "EventTarget",
    "Handler",
    "Mode",
    "Outbox",
    "Subscription",
    "TargetClosedError",
    "TargetError",
    "TargetEvent",
    "matches",
]

log = wrap_logger(logging.getLogger("streams.target"))

Mode = Literal["ephemeral", "durable", "composite"]
_MODES: Final = ("ephemeral", "durable", "composite")
_MAX_NAME: Final = 128
_RESERVED: Final = "honker:"  # Honker's own channels (queue wake-ups)
_PAGE: Final = 500
_BACKOFF: Final = (0.05, 5.0)


class TargetError(StreamsError, ValueError):
    """A bad argument to the event target (a type, a name, a detail that is not JSON);
    nothing was written. The message says what was wrong and how to fix it."""


class TargetClosedError(TargetError):
    """The event target was closed; open a new one."""


class TargetEvent(NamedTuple):
    """One delivered event.

    ``offset`` is the stream offset (durable) or the notification id (ephemeral), None
    for an in-process delivery; ``origin`` the publishing target (None if unknown);
    ``time`` when it was published (ms since the epoch; None if unknown).
    """

    type: str
    detail: Any
    offset: int | None
    origin: str | None
    time: int | None


class Batch(NamedTuple):
    """Entries of a durable stream for a consumer that saves its own position.

    ``events`` are those of the consumer's types among the entries ``after < offset <=
    upto``; ``saved`` is the position read (None: never saved). The handler must move
    the position from ``saved`` to ``upto`` in the transaction of its own writes.
    """

    consumer: str
    stream: str
    saved: int | None
    after: int
    upto: int
    events: list[TargetEvent]


Handler = Callable[[TargetEvent], None]


class Outbox(Protocol):
    """A transaction an event can be published in (the domain's unit of work is one)."""

    def notify(self, channel: str, payload: Any) -> None: ...

    def publish(self, stream: str, payload: Any, *, key: str | None = None) -> None: ...

    def on_commit(self, callback: Callable[[], None]) -> None: ...


class _Envelope(msgspec.Struct, frozen=True):
    target: int
    type: str
    origin: str
    time: int
    detail: Any = None


class _Row(NamedTuple):
    offset: int
    type: str
    payload: str


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise TargetError(f"invalid {what} {value!r}: use a string of 1-{_MAX_NAME} characters")
    return value


def _check_type(event_type: object) -> str:
    name = _check_name(event_type, "event type")
    if "*" in name or name.startswith(_RESERVED):
        raise TargetError(
            f"invalid event type {name!r}: '*' is kept for subscription patterns and "
            f"{_RESERVED!r} for Honker's own channels; publish under another name"
        )
    return name


def _patterns(types: str | Sequence[str]) -> tuple[str, ...]:
    listed = (types,) if isinstance(types, str) else tuple(types)
    if not listed:
        raise TargetError("subscribe to at least one event type or pattern ('*' for all)")
    for pattern in listed:
        name = _check_name(pattern, "event type or pattern")
        if "*" in name[:-1]:
            raise TargetError(
                f"invalid pattern {name!r}: '*' may only end a pattern "
                "('call.responded:*' matches every call.responded:<requestId>)"
            )
    return listed


def _page(size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= 10_000:
        raise TargetError(f"invalid batch size {size!r}: use an integer from 1 to 10000")
    return size


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Whether ``event_type`` is one of ``patterns`` (a pattern ending in ``*`` matches
    every type starting with what comes before it)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if event_type.startswith(pattern[:-1]):
                return True
        elif pattern == event_type:
            return True
    return False


class Subscription:
    """A subscriber of an :class:`EventTarget`: stop it with :meth:`close`.

    ``error`` holds the last error of its handler (None once a delivery succeeds);
    ``failures`` counts them.
    """

    def __init__(
        self,
        target: EventTarget,
        patterns: tuple[str, ...],
        handler: Callable[[Any], None],
        *,
        name: str | None,
        since: int,
        batches: bool = False,
        page: int = _PAGE,
    ) -> None:
        self.target = target
        self.patterns = patterns
        self.name = name
        self.handler = handler
        self.since = since
        self.batches = batches
        self.page = page
        self.error: BaseException | None = None
        self.failures = 0
        self.closed = False
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        """Stop delivering; join the subscription's thread unless called from it."""
        self.target._drop(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventTarget:
    """Publish and subscribe by event type on the Honker file ``path`` (see the module).

    ``stream`` names the durable stream (durable mode); ``synchronous`` and
    ``busy_timeout_ms`` must match the other users of the file in this process;
    ``poll_interval`` is the fallback poll in seconds when a wake is lost.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: Mode = "ephemeral",
        stream: str = "target",
        synchronous: Synchronous = "NORMAL",
        busy_timeout_ms: int = 5000,
        poll_interval: float = 1.0,
    ) -> None:
        if mode not in _MODES:
            raise TargetError(f"invalid mode {mode!r}: use one of {', '.join(_MODES)}")
        self.mode: Mode = mode
        self.stream = _check_name(stream, "stream name")
        self.origin = uuid.uuid4().hex
        """Identifies this target's events (composite mode skips its own coming back)."""
        self.datastore = HonkerDatastore(
            path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
        self.path = self.datastore.path
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._closed = False
        self._local: list[Subscription] = []  # composite: called in the publisher's thread
        self._followers: list[Subscription] = []  # unnamed: the shared follower thread
        self._consumers: list[Subscription] = []  # named (durable): a thread each
        self._follower: Subscription | None = None
        self._cursor = 0

    # --- publishing -------------------------------------------------------------------

    def publish(
        self, event_type: str, detail: Any = None, *, within: Outbox | None = None
    ) -> int | None:
        """Publish ``detail`` (any JSON value) as an event of type ``event_type``.

        Without ``within`` it is committed at once (its own transaction) and the stream
        offset (durable) or notification id is returned; in composite mode this
        target's subscribers are called first, in this thread. With ``within`` it is
        written with that transaction and delivered only if it commits (in-process
        subscribers after the commit); None is returned. Raises :class:`TargetError`
        for a bad type or a detail that is not JSON, writing nothing.
        """
        name = _check_type(event_type)
        if self._closed:
            raise TargetClosedError(f"the event target on {self.path} is closed; open a new one")
        now = time.time_ns() // 1_000_000
        try:
            payload = msgspec.json.encode(_Envelope(1, name, self.origin, now, detail))
        except (TypeError, msgspec.EncodeError) as exc:
            raise TargetError(
                f"the detail of a {name!r} event must be JSON (dicts, lists, str, numbers, "
                f"bools, None): {exc}"
            ) from None
        local = self._local if self.mode == "composite" else []
        if within is not None:
            document = msgspec.json.decode(payload)
            if self.mode == "durable":
                within.publish(self.stream, document, key=name)
            else:
                within.notify(name, document)
            if local:
                event = TargetEvent(name, detail, None, self.origin, now)
                within.on_commit(lambda: self._dispatch_local(event))
            return None
        if local:
            self._dispatch_local(TargetEvent(name, detail, None, self.origin, now))
        with self.datastore.transaction() as tx:
            if self.mode == "durable":
                return publish_entry(tx, self.stream, name, payload.decode())
            return notify(tx, name, payload.decode())

    def _dispatch_local(self, event: TargetEvent) -> None:
        for subscription in list(self._local):
            if not subscription.closed and matches(subscription.patterns, event.type):
                self._deliver(subscription, event)

    # --- subscribing ------------------------------------------------------------------

    def subscribe(
        self, types: str | Sequence[str], handler: Handler, *, name: str | None = None
    ) -> Subscription:
        """Call ``handler(event)`` for each event of ``types`` (exact types, or patterns
        ending in ``*``; ``"*"`` for all).

        Without ``name``: events committed from now on (and, in composite mode, this
        target's own events, in the publisher's thread); a handler's error is logged
        and the next event is delivered. With ``name`` (durable mode only): a consumer
        with a position in the file, starting at the stream's first entry the first
        time and after its saved position afterwards; the position is saved after each
        delivered event, and a handler that raises gets the same event again after a
        back-off (at least once across a crash: a handler that must see each event
        exactly once commits its own writes with the position, see :meth:`consume`).
        """
        patterns = _patterns(types)
        if name is not None:
            return self._start_consumer(patterns, handler, _check_name(name, "consumer name"))
        with self._lock:
            self._check_open()
            since = self._head()
            subscription = Subscription(self, patterns, handler, name=None, since=since)
            self._followers.append(subscription)
            if self.mode == "composite":
                self._local.append(subscription)
            if self._follower is None:
                self._cursor = since
                self._follower = self._start_thread(
                    Subscription(self, ("*",), _ignore, name=None, since=since),
                    self._follow,
                    "target-follower",
                )
        return subscription

    def consume(
        self,
        name: str,
        handler: Callable[[Batch], None],
        *,
        types: str | Sequence[str] = "*",
        batch: int = _PAGE,
    ) -> Subscription:
        """A durable consumer that saves its own position, on a thread of this target.

        ``handler(batch)`` must move ``name``'s position from ``batch.saved`` to
        ``batch.upto`` in the transaction of its own writes (a unit of work's
        ``save_position``), so each entry is applied exactly once. Entries of other
        types are passed over (the position moves past them). A handler that raises gets
        the same batch again after a back-off; ``batch`` entries at most per call.
        """
        patterns = _patterns(types)
        return self._start_consumer(
            patterns, handler, _check_name(name, "consumer name"), batches=True, page=batch
        )

    def consume_pending(
        self,
        name: str,
        handler: Callable[[Batch], None],
        *,
        types: str | Sequence[str] = "*",
        batch: int = _PAGE,
    ) -> int:
        """What :meth:`consume` does, in the caller's thread, until the stream's head as it
        is now; the number of entries consumed. A handler's error is raised."""
        if self.mode != "durable":
            raise TargetError(f"consumer {name!r} needs a durable target; this one is {self.mode}")
        self._check_open()
        consumer = Subscription(
            self,
            _patterns(types),
            handler,
            name=_check_name(name, "consumer name"),
            since=0,
            batches=True,
            page=_page(batch),
        )
        head = self._head()
        consumed = 0
        while (saved_position(self.datastore, name, self.stream) or 0) < head:
            consumed += self._consume_once(consumer, name)[1]
        return consumed

    def _start_consumer(
        self,
        patterns: tuple[str, ...],
        handler: Callable[[Any], None],
        name: str,
        *,
        batches: bool = False,
        page: int = _PAGE,
    ) -> Subscription:
        if self.mode != "durable":
            raise TargetError(
                f"a named consumer ({name!r}) needs a position, which only a durable target "
                f"keeps; this one is {self.mode}: open it with mode='durable'"
            )
        with self._lock:
            self._check_open()
            if any(c.name == name and not c.closed for c in self._consumers):
                raise TargetError(f"consumer {name!r} is already subscribed on this target")
            subscription = Subscription(
                self, patterns, handler, name=name, since=0, batches=batches, page=_page(page)
            )
            self._consumers.append(subscription)
            self._start_thread(subscription, self._consume, f"target-consumer:{name}")
        return subscription

    def _start_thread(
        self, subscription: Subscription, loop: Callable[[Subscription], None], label: str
    ) -> Subscription:
        self.datastore.watcher.add(subscription.wake.set)
        thread = threading.Thread(target=loop, args=(subscription,), name=label, daemon=True)
        subscription.thread = thread
        thread.start()
        return subscription

    def _check_open(self) -> None:
        if self._closed:
            raise TargetClosedError(f"the event target on {self.path} is closed; open a new one")

    # --- reading ----------------------------------------------------------------------

    def position(self, name: str) -> int | None:
        """The saved position of consumer ``name`` in this target's stream (None: never)."""
        return saved_position(self.datastore, name, self.stream)

    def head(self) -> int:
        """The last offset of the stream (durable) or notification id (otherwise); 0 if none."""
        return self._head()

    def read(self, after: int = 0, *, limit: int | None = None) -> list[TargetEvent]:
        """The durable stream's events after ``after``, in offset order."""
        return [self._event(row) for row in self._read(after, limit or -1)]

    def _head(self) -> int:
        if self.mode == "durable":
            sql = 'SELECT COALESCE(MAX("offset"), 0) AS m FROM _honker_stream WHERE topic = ?'
            rows = self.datastore.query(sql, [self.stream])
        else:
            rows = self.datastore.query(
                "SELECT COALESCE(MAX(id), 0) AS m FROM _honker_notifications"
            )
        return int(rows[0]["m"])

    def _read(self, after: int, limit: int) -> list[_Row]:
        if self.mode == "durable":
            rows = self.datastore.query(
                'SELECT "offset" AS o, key AS t, payload AS p FROM _honker_stream '
                'WHERE topic = ? AND "offset" > ? ORDER BY "offset" LIMIT ?',
                [self.stream, after, limit],
            )
        else:
            rows = self.datastore.query(
                "SELECT id AS o, channel AS t, payload AS p FROM _honker_notifications "
                "WHERE id > ? ORDER BY id LIMIT ?",
                [after, limit],
            )
        return [_Row(int(r["o"]), str(r["t"] or ""), str(r["p"])) for r in rows]

    @staticmethod
    def _event(row: _Row) -> TargetEvent:
        try:
            envelope = msgspec.json.decode(row.payload, type=_Envelope)
        except msgspec.DecodeError:
            try:
                detail = msgspec.json.decode(row.payload)
            except msgspec.DecodeError:
                detail = row.payload
            return TargetEvent(row.type, detail, row.offset, None, None)
        return TargetEvent(row.type, envelope.detail, row.offset, envelope.origin, envelope.time)

    # --- threads ----------------------------------------------------------------------

    def _follow(self, follower: Subscription) -> None:
        """The shared thread of unnamed subscribers: new rows, to whoever matches."""
        while not follower.closed:
            follower.wake.clear()
            try:
                rows = self._read(self._cursor, _PAGE)
            except Exception as exc:  # a closed or busy file: wait, then read again
                log.warning("event target read failed", path=str(self.path), error=str(exc))
                follower.wake.wait(self.poll_interval)
                continue
            for row in rows:
                self._cursor = row.offset
                if row.type.startswith(_RESERVED):
                    continue
                event: TargetEvent | None = None
                for subscription in list(self._followers):
                    if subscription.closed or row.offset <= subscription.since:
                        continue
                    if not matches(subscription.patterns, row.type):
                        continue
                    event = event or self._event(row)
                    if self.mode == "composite" and event.origin == self.origin:
                        continue  # delivered in-process when it was published
                    self._deliver(subscription, event)
            if len(rows) < _PAGE:
                follower.wake.wait(self.poll_interval)

    def _deliver(self, subscription: Subscription, event: TargetEvent) -> None:
        try:
            subscription.handler(event)
        except Exception as exc:
            subscription.error = exc
            subscription.failures += 1
            log.warning(
                "event target handler failed",
                type=event.type,
                offset=event.offset,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _consume(self, subscription: Subscription) -> None:
        """A named consumer's thread: entries after its saved position, in order."""
        name = str(subscription.name)
        delay = _BACKOFF[0]
        while not subscription.closed:
            subscription.wake.clear()
            try:
                done = self._consume_once(subscription, name)[0]
            except Exception as exc:
                subscription.error = exc
                subscription.failures += 1
                log.warning(
                    "event target consumer failed; retrying",
                    consumer=name,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=delay,
                )
                subscription.wake.wait(delay)
                delay = min(delay * 2, _BACKOFF[1])
                continue
            delay = _BACKOFF[0]
            if done:
                subscription.wake.wait(self.poll_interval)

    def _consume_once(self, subscription: Subscription, name: str) -> tuple[bool, int]:
        """Handle one page: whether the consumer is at the head, and the entries read."""
        saved = saved_position(self.datastore, name, self.stream)
        after = saved or 0
        rows = self._read(after, subscription.page)
        if not rows:
            return True, 0
        upto = rows[-1].offset
        events = [self._event(r) for r in rows if matches(subscription.patterns, r.type)]
        if subscription.batches:
            if events:
                subscription.handler(Batch(name, self.stream, saved, after, upto, events))
                moved = saved_position(self.datastore, name, self.stream)
                if moved is None or moved < upto:
                    raise TargetError(
                        f"the handler of consumer {name!r} did not save its position "
                        f"({upto}); it must move it with its own writes (Batch.upto)"
                    )
            else:
                self._advance(name, saved, upto)
        else:
            position = saved
            for event in events:
                if subscription.closed:
                    return False, 0
                subscription.handler(event)
                offset = int(event.offset or upto)
                self._advance(name, position, offset)
                position = offset
            if position is None or position < upto:
                self._advance(name, position, upto)
        subscription.error = None
        return len(rows) < subscription.page, len(rows)

    def _advance(self, name: str, saved: int | None, upto: int) -> None:
        with self.datastore.transaction() as tx:
            advance_position(tx, name, self.stream, upto, saved)

    # --- closing ----------------------------------------------------------------------

    def _drop(self, subscription: Subscription) -> None:
        with self._lock:
            subscription.closed = True
            for group in (self._local, self._followers, self._consumers):
                if subscription in group:
                    group.remove(subscription)
            follower = None
            if not self._followers and self._follower is not None:
                follower, self._follower = self._follower, None
        for stopping in (subscription, follower):
            if stopping is not None:
                stopping.closed = True
                self.datastore.watcher.discard(stopping.wake.set)
                stopping.wake.set()
                thread = stopping.thread
                if thread is not None and thread is not threading.current_thread():
                    thread.join()

    def close(self) -> None:
        """Stop and join every subscriber's thread, then release the file (idempotent).

        A handler running when this is called finishes first; nothing is delivered
        after this returns.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscriptions = [*self._local, *self._followers, *self._consumers]
        for subscription in dict.fromkeys(subscriptions):
            self._drop(subscription)
        self.datastore.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> EventTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def threads(self) -> Iterator[threading.Thread]:
        """The subscriber threads running now (for tests of the close ordering)."""
        with self._lock:
            subscriptions = [*self._followers, *self._consumers]
            if self._follower is not None:
                subscriptions.append(self._follower)
        for subscription in subscriptions:
            if subscription.thread is not None and subscription.thread.is_alive():
                yield subscription.thread


def _ignore(_: object) -> None:
    return None
