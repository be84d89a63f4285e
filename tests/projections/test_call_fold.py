"""The one exactly-once fold of delivered call events (projections/call_fold.py), as a
new way in uses it, and the one dead-letter record every way in writes and reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain import Metagraph
from domain.calls import get_call
from domain.errors import ConcurrencyError
from domain.unit_of_work import UnitOfWork
from graphstore.nats.ingester import CONSUMER as NATS_CONSUMER
from graphstore.nats.ingester import DEAD_LETTERS as NATS_DEAD_LETTERS
from projections.call_fold import DeadLetter, Delivery, fold_calls, read_dead_letters
from streams import saved_position
from tests.projections._intake_worker import env

QUEUE = "queue-intake@v1"


def request(rid: str) -> dict[str, Any]:
    payload = {"requestId": rid, "operationId": "billing.charge", "input": {}}
    return {"type": "call.requested", "at": 1_800_000_000_000, "payload": payload}


def response(rid: str) -> dict[str, Any]:
    output = {"data": 1, "meta": {"source": "local"}}
    return {
        "type": "call.responded",
        "at": 1_800_000_000_100,
        "payload": {"requestId": rid, "output": output},
    }


@pytest.fixture
def app(tenant_file: Path) -> Iterator[Metagraph]:
    with Metagraph(env=env(str(tenant_file))) as metagraph:
        yield metagraph


def _fold(app: Metagraph, jobs: list[tuple[int, bytes]]) -> Any:
    """The module docstring's queue consumer, as written there."""
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    saved = saved_position(datastore, QUEUE, "queue:calls")
    return fold_calls(
        app,
        [Delivery.of_json(job_id, payload) for job_id, payload in jobs],
        consumer=QUEUE,
        stream="queue:calls",
        saved=saved,
    )


def test_a_new_way_in_folds_once_and_dead_letters_what_is_refused(app: Metagraph) -> None:
    jobs = [
        (1, msgspec.json.encode(request("r1"))),
        (2, b"not json"),
        (3, msgspec.json.encode(response("nobody"))),
        (4, msgspec.json.encode(response("r1"))),
    ]
    done = _fold(app, jobs)
    assert (done.position, done.folded, done.refused) == (4, 2, 2)
    call = get_call(app, "r1")
    assert call is not None and call["status"] == "completed"
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    letters = read_dead_letters(datastore, QUEUE)
    assert [(d.offset, d.type, d.error, d.code) for d in letters] == [
        (2, "", "InvalidCallEventError", "VALIDATION_ERROR"),
        (3, "call.responded", "UnknownCallError", "NOT_FOUND"),
    ]
    assert letters[0].detail == "not json"
    assert letters[1].detail == response("nobody")
    # Delivered again (a crash before the source's acknowledgement): nothing changes.
    again = _fold(app, jobs)
    assert (again.position, again.folded, again.refused) == (4, 0, 0)
    assert len(read_dead_letters(datastore, QUEUE)) == 2


def test_a_lost_race_commits_nothing(app: Metagraph) -> None:
    app.atomic(lambda unit: unit.save_position(QUEUE, "queue:calls", 5, expected=None))
    with pytest.raises(ConcurrencyError):
        fold_calls(
            app,
            [Delivery.of_json(6, msgspec.json.encode(request("r1")))],
            consumer=QUEUE,
            stream="queue:calls",
            saved=None,  # read before the other copy moved it
        )
    assert get_call(app, "r1") is None


def test_dead_letters_the_nats_ingester_wrote_before_still_read(app: Metagraph) -> None:
    """Files written when the ingester had its own record (``NatsDeadLetter``:
    sequence, message as published, reason) read as the one :class:`DeadLetter`."""
    published = msgspec.json.encode(response("nobody")).decode()
    old = {
        "sequence": 7,
        "message": published,
        "error": "UnknownCallError",
        "code": "NOT_FOUND",
        "reason": "no call 'nobody'",
        "parked_at": 1_800_000_000_000,
    }
    garbled = {
        **old,
        "sequence": 8,
        "message": '{"type": "call.nonsense"',
        "error": "InvalidCallEventError",
    }

    def write(unit: UnitOfWork) -> None:
        unit.publish(NATS_DEAD_LETTERS, old, key="7")
        unit.publish(NATS_DEAD_LETTERS, garbled, key="8")

    app.atomic(write)
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    assert read_dead_letters(datastore, NATS_CONSUMER) == [
        DeadLetter(
            offset=7,
            type="call.responded",
            detail=response("nobody"),
            error="UnknownCallError",
            code="NOT_FOUND",
            message="no call 'nobody'",
            parked_at=1_800_000_000_000,
        ),
        DeadLetter(
            offset=8,
            type="",
            detail='{"type": "call.nonsense"',
            error="InvalidCallEventError",
            code="NOT_FOUND",
            message="no call 'nobody'",
            parked_at=1_800_000_000_000,
        ),
    ]
