"""Call protocol events folded into the tenant's call graph: payloads and every rule.

Each test names the rule it checks (``docs/calls.md``); refused events are checked to
leave the stream unchanged, and duplicates to write nothing. The property tests at the
end deliver a valid run's events in random orders with duplicates.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import GraphArchivedError, Metagraph, ValidationError
from domain.calls import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    CallEvent,
    CallRequested,
    Output,
    call_event,
    decode_event,
    get_call,
    ingest,
    status_path,
    tenant_call_graph,
)
from domain.errors import (
    CallConflictError,
    CallCycleError,
    CallEventError,
    InvalidCallEventError,
    UnknownCallError,
)
from tests.domain.calls_state import all_calls, app_children, triggered_edges
from tests.domain.conftest import rejected, store_env, stream_position

SUBSCRIPTIONS = {"ns.sub": "subscription"}


def output(n: int = 1) -> dict[str, Any]:
    return {"data": n, "meta": {"source": "local"}}


def requested(key: str, at: int = 1, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"requestId": key, "operationId": "ns.query", "input": {"k": key}}
    if parent is not None:
        payload["parentRequestId"] = parent
    return {"type": "call.requested", "at": at, "payload": {**payload, **extra}}


def subscription(key: str, at: int = 1, parent: str | None = None) -> dict[str, Any]:
    return requested(key, at, parent, operationId="ns.sub")


def responded(key: str, at: int, n: int = 1) -> dict[str, Any]:
    return {"type": "call.responded", "at": at, "payload": {"requestId": key, "output": output(n)}}


def completed(key: str, at: int) -> dict[str, Any]:
    return {"type": "call.completed", "at": at, "payload": {"requestId": key}}


def aborted(key: str, at: int) -> dict[str, Any]:
    return {"type": "call.aborted", "at": at, "payload": {"requestId": key}}


def failed(key: str, at: int, code: str = "EXECUTION_ERROR", **extra: Any) -> dict[str, Any]:
    payload = {"requestId": key, "code": code, "message": "boom", **extra}
    return {"type": "call.error", "at": at, "payload": payload}


def feed(app: Metagraph, *events: dict[str, Any], **options: Any) -> None:
    ingest(app, list(events), operation_types=SUBSCRIPTIONS, **options)


def call(app: Metagraph, key: str) -> dict[str, Any]:
    attributes = get_call(app, key)
    assert attributes is not None, f"no call {key!r}"
    return attributes


def status(app: Metagraph, key: str) -> str:
    return str(call(app, key)["status"])


def triggered(app: Metagraph) -> set[tuple[str, str]]:
    return triggered_edges(app)


@contextmanager
def unchanged(app: Metagraph) -> Iterator[None]:
    """The block writes nothing (accepted or refused)."""
    assert tenant_call_graph(app)  # created beforehand: not the block's write
    before = stream_position(app)
    yield
    assert stream_position(app) == before, "the block wrote to the stream"


# --- payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (
            {"type": "call.requested", "at": 1, "payload": {"requestId": "r", "input": 1}},
            "operationId",
        ),
        (
            {"type": "call.requested", "at": 1, "payload": {"requestId": "r", "operationId": "o"}},
            "input",
        ),
        (
            {
                "type": "call.requested",
                "at": 1,
                "payload": {"requestId": "", "operationId": "o", "input": 1},
            },
            "length >= 1",
        ),
        (requested("r", parentRequestID="p"), "unknown field `parentRequestID`"),
        ({**completed("r", 1), "extra": 1}, "unknown field `extra`"),
        ({**completed("r", 1), "type": "call.started"}, "unknown type 'call.started'"),
        (completed("r", -1), ">= 0"),
        ({"type": "call.completed", "payload": {"requestId": "r"}}, "missing required field `at`"),
        (
            {
                "type": "call.responded",
                "at": 1,
                "payload": {"requestId": "r", "output": {"data": 1}},
            },
            "meta",
        ),
        (
            {
                "type": "call.responded",
                "at": 1,
                "payload": {"requestId": "r", "output": {"data": 1, "meta": {"source": "ftp"}}},
            },
            "meta.source",
        ),
        (failed("r", 1, code="bad code"), "matching regex"),
        (
            {"type": "call.error", "at": 1, "payload": {"requestId": "r", "code": "TIMEOUT"}},
            "message",
        ),
        (requested("r", identity={"id": "u"}), "scopes"),
        (requested("r", deadline=-5), ">= 0"),
        (requested("r", input={"_type_": "x", "_data_": 1}), "reserves"),
        (requested("r" * 1001), "length <= 1000"),
    ],
)
def test_a_payload_outside_the_protocol_is_refused_and_nothing_is_written(
    app: Metagraph, event: dict[str, Any], says: str
) -> None:
    with unchanged(app), pytest.raises(InvalidCallEventError, match=says) as info:
        ingest(app, [event])
    assert (info.value.code, info.value.line) == ("VALIDATION_ERROR", 1)
    assert str(info.value).startswith("event 1: invalid call event: ")


def test_error_codes_of_the_platform_and_of_operations_are_accepted() -> None:
    for code in ("OPERATION_NOT_FOUND", "ACCESS_DENIED", "TIMEOUT", "PAYMENT_REQUIRED"):
        event = call_event("call.error", {"requestId": "r", "code": code, "message": "m"}, at=1)
        assert event.payload.code == code  # type: ignore[union-attr]


def test_event_identity_is_derived_from_type_time_and_payload_when_not_given() -> None:
    first, again = (
        decode_event(msgspec.json.encode(completed("r", 5))),
        call_event("call.completed", {"requestId": "r"}, at=5),
    )
    assert first.id == again.id
    assert call_event("call.completed", {"requestId": "r"}, at=6).id != first.id
    assert call_event("call.completed", {"requestId": "r"}, at=5, id="mine").id == "mine"


def test_payload_structs_use_the_protocols_field_names() -> None:
    payload = CallRequested(request_id="r", operation_id="o", input=None, parent_request_id="p")
    assert msgspec.to_builtins(payload) == {
        "requestId": "r",
        "operationId": "o",
        "input": None,
        "parentRequestId": "p",
    }
    event = call_event("call.requested", payload, at=1)
    assert isinstance(event, CallEvent)
    assert event.payload == payload
    with pytest.raises(ValueError, match=r"meta\.source"):
        Output(data=1, meta={})


def test_a_hand_built_event_is_checked_like_any_other(app: Metagraph) -> None:
    bad = CallEvent(id="e", type="call.completed", at=-1, payload=msgspec.UNSET)  # type: ignore[arg-type]
    with unchanged(app), pytest.raises(InvalidCallEventError):
        ingest(app, [bad])


def test_an_unknown_abort_policy_is_refused(app: Metagraph) -> None:
    with pytest.raises(ValidationError, match="abort policy"):
        ingest(app, [requested("r")], abort_policy="abort-all")  # type: ignore[arg-type]


# --- the state machine ------------------------------------------------------------------


def test_the_state_machine_allows_exactly_the_documented_transitions() -> None:
    assert {s: set(t) for s, t in TRANSITIONS.items() if t} == {
        "pending": {"running", "aborted"},
        "running": {"completed", "failed", "aborted"},
    }
    assert status_path("pending", "completed") == ("running", "completed")
    assert status_path("pending", "failed") == ("running", "failed")
    assert status_path("pending", "aborted") == ("aborted",)
    assert status_path("completed", "failed") == ()
    assert status_path("aborted", "running") == ()


def test_requested_creates_a_pending_call_keyed_by_its_request_id(app: Metagraph) -> None:
    feed(app, requested("r", 7, deadline=9, idleTimeout=3, identity={"id": "u", "scopes": []}))
    attributes = call(app, "r")
    event_id = attributes["events"][0]["id"]
    assert attributes == {
        "requestId": "r",
        "operationId": "ns.query",
        "operationType": "query",
        "status": "pending",
        "input": {"k": "r"},
        "deadline": 9,
        "idleTimeout": 3,
        "identity": {"id": "u", "scopes": []},
        "requestedAt": 7,
        "events": [{"id": event_id, "type": "call.requested", "at": 7}],
    }
    assert list(all_calls(app)) == ["r"]


def test_a_query_response_completes_the_call_through_running(app: Metagraph) -> None:
    feed(app, requested("q", 1), responded("q", 4))
    attributes = call(app, "q")
    assert (attributes["status"], attributes["output"]) == ("completed", output())
    assert (attributes["startedAt"], attributes["completedAt"]) == (4, 4)
    assert [e["type"] for e in attributes["events"]] == ["call.requested", "call.responded"]


def test_a_subscription_runs_at_its_first_output_appends_each_and_completes_at_completed(
    app: Metagraph,
) -> None:
    feed(app, subscription("s", 1), responded("s", 2, 1))
    assert (status(app, "s"), call(app, "s")["startedAt"]) == ("running", 2)
    feed(app, responded("s", 3, 2))
    assert call(app, "s")["output"] == [output(1), output(2)]
    assert status(app, "s") == "running"
    feed(app, completed("s", 5))
    attributes = call(app, "s")
    assert (attributes["status"], attributes["startedAt"], attributes["completedAt"]) == (
        "completed",
        2,
        5,
    )


def test_operation_types_may_be_given_as_a_function(app: Metagraph) -> None:
    ingest(
        app,
        [requested("s", operationId="feed.watch"), responded("s", 2)],
        operation_types=lambda op: "subscription" if op.endswith(".watch") else None,
    )
    assert (status(app, "s"), call(app, "s")["operationType"]) == ("running", "subscription")


def test_a_subscription_without_outputs_may_complete_while_pending(app: Metagraph) -> None:
    feed(app, subscription("s"), completed("s", 2))
    attributes = call(app, "s")
    assert (attributes["status"], "startedAt" in attributes, "output" in attributes) == (
        "completed",
        False,
        False,
    )


def test_an_error_fails_the_call_with_code_message_and_details(app: Metagraph) -> None:
    feed(app, requested("a"), failed("a", 3, details={"field": "x"}))
    feed(app, requested("b"), failed("b", 3, code="ACCESS_DENIED", details=None))
    assert call(app, "a")["error"] == {
        "code": "EXECUTION_ERROR",
        "message": "boom",
        "details": {"field": "x"},
    }
    assert (status(app, "a"), call(app, "a")["completedAt"]) == ("failed", 3)
    assert call(app, "b")["error"] == {"code": "ACCESS_DENIED", "message": "boom"}
    assert "startedAt" not in call(app, "b")  # no output: no sign a handler ran


def test_aborting_a_pending_call_goes_straight_to_aborted(app: Metagraph) -> None:
    feed(app, requested("r"), aborted("r", 2))
    attributes = call(app, "r")
    assert (attributes["status"], attributes["completedAt"], "startedAt" in attributes) == (
        "aborted",
        2,
        False,
    )


# --- parents, cycles, conflicts ---------------------------------------------------------


def test_a_call_with_a_recorded_parent_gets_a_triggered_edge_from_it(app: Metagraph) -> None:
    feed(app, requested("p"), requested("c", 2, parent="p"), requested("g", 3, parent="c"))
    assert triggered(app) == {("p", "c"), ("c", "g")}
    assert call(app, "c")["parentRequestId"] == "p"


def test_a_child_requested_before_its_parent_is_linked_when_the_parent_arrives(
    app: Metagraph,
) -> None:
    feed(app, requested("c1", 2, parent="p"), requested("c2", 3, parent="p"))
    assert triggered(app) == set()
    feed(app, requested("p", 1))
    assert triggered(app) == {("p", "c1"), ("p", "c2")}


def test_a_call_that_is_its_own_parent_is_a_cycle_and_nothing_is_written(app: Metagraph) -> None:
    with unchanged(app), pytest.raises(CallCycleError, match="leads back to it") as info:
        feed(app, requested("r", parent="r"))
    assert (info.value.code, info.value.request_id) == ("CONFLICT", "r")


def test_a_parent_chain_leading_back_to_the_call_is_a_cycle(app: Metagraph) -> None:
    feed(app, requested("b", 1, parent="a"), requested("c", 2, parent="b"))
    with unchanged(app), pytest.raises(CallCycleError, match="'a' -> 'c' -> 'b' -> 'a'"):
        feed(app, requested("a", 3, parent="c"))


def test_a_request_id_reused_for_another_request_is_a_conflict(app: Metagraph) -> None:
    feed(app, requested("r", parent="p"))
    with unchanged(app), pytest.raises(CallConflictError, match="differs in input"):
        feed(app, requested("r", parent="p", input=2))
    with unchanged(app), pytest.raises(CallConflictError, match="parentRequestId"):
        feed(app, requested("r"))


def test_an_event_for_a_call_not_yet_requested_is_unknown_and_nothing_is_written(
    app: Metagraph,
) -> None:
    for event in (responded("x", 1), completed("x", 1), aborted("x", 1), failed("x", 1)):
        with (
            unchanged(app),
            pytest.raises(UnknownCallError, match=r"ingest its call\.requested") as e,
        ):
            feed(app, event)
        assert (e.value.code, e.value.kind, e.value.name) == ("NOT_FOUND", "call", "x")


@pytest.mark.parametrize(
    ("history", "late", "says"),
    [
        ([subscription("s"), completed("s", 2)], responded("s", 3), "stream already ended"),
        ([subscription("s"), failed("s", 2)], responded("s", 3), "stream already ended"),
        ([requested("q"), responded("q", 2, 1)], responded("q", 3, 2), "responds once"),
        ([requested("q"), failed("q", 2)], responded("q", 3), "responds once"),
        ([requested("q"), responded("q", 2)], failed("q", 3), "which already completed"),
        ([requested("q"), failed("q", 2)], failed("q", 3, code="TIMEOUT"), "already failed"),
        ([requested("q"), failed("q", 2)], completed("q", 3), "which failed"),
    ],
)
def test_an_event_contradicting_how_a_call_ended_is_a_conflict(
    app: Metagraph, history: list[dict[str, Any]], late: dict[str, Any], says: str
) -> None:
    feed(app, *history)
    with unchanged(app), pytest.raises(CallConflictError, match=says):
        feed(app, late)


def test_a_query_completed_before_its_response_arrived_gets_the_output_later(
    app: Metagraph,
) -> None:
    feed(app, requested("q"), completed("q", 3), responded("q", 2))
    attributes = call(app, "q")
    assert (attributes["status"], attributes["output"], attributes["completedAt"]) == (
        "completed",
        output(),
        3,
    )


# --- idempotence --------------------------------------------------------------------------


RUN = [
    requested("p", 1),
    subscription("s", 2, parent="p"),
    responded("s", 3, 1),
    responded("s", 4, 1),  # the same output again, later: a new item, not a duplicate
    requested("q", 5, parent="p"),
    responded("q", 6),
    completed("q", 7),  # redundant for a query: changes nothing
    requested("e", 8, parent="p"),
    failed("e", 9),
    completed("s", 10),
    aborted("p", 11),
]


def test_every_event_delivered_twice_changes_nothing_and_writes_nothing(app: Metagraph) -> None:
    feed(app, *RUN)
    state = all_calls(app)
    assert state["s"]["output"] == [output(1), output(1)]
    for event in RUN:
        with unchanged(app):
            feed(app, event)
    with unchanged(app):
        report = ingest(app, RUN, operation_types=SUBSCRIPTIONS)
    assert (report.events, report.applied, report.unchanged, report.writes) == (11, 0, 11, 0)
    assert all_calls(app) == state


def test_a_repeated_request_with_a_new_event_id_is_still_the_same_call(app: Metagraph) -> None:
    feed(app, requested("r", 1))
    with unchanged(app):
        feed(app, {**requested("r", 5), "id": "resent"})


def test_a_report_counts_what_a_batch_did(app: Metagraph) -> None:
    report = ingest(app, [requested("p"), requested("c", 2, parent="p"), completed("c", 3)])
    assert (report.events, report.applied, report.unchanged, report.writes) == (3, 3, 0, 3)


# --- abort race and abort policy ------------------------------------------------------------


def test_events_for_an_aborted_call_are_ignored_and_write_nothing(app: Metagraph) -> None:
    feed(app, subscription("s"), responded("s", 2), aborted("s", 3))
    for late in (responded("s", 4, 2), completed("s", 5), failed("s", 6), aborted("s", 7)):
        with unchanged(app):
            feed(app, late)
    attributes = call(app, "s")
    assert (attributes["status"], attributes["output"]) == ("aborted", [output()])


def test_an_abort_after_the_call_ended_is_ignored(app: Metagraph) -> None:
    feed(app, requested("q"), responded("q", 2), requested("e"), failed("e", 2))
    with unchanged(app):
        feed(app, aborted("q", 3), aborted("e", 3))
    assert (status(app, "q"), status(app, "e")) == ("completed", "failed")


TREE = [
    requested("root", 1),
    requested("a", 2, parent="root"),
    requested("b", 3, parent="root"),
    responded("b", 4),  # b completed ...
    requested("b1", 5, parent="b"),  # ... after starting b1, which still runs
    subscription("a1", 6, parent="a"),
    responded("a1", 7),
]


def test_aborting_a_call_aborts_its_non_terminal_descendants_naming_the_cause(
    app: Metagraph,
) -> None:
    feed(app, *TREE, aborted("root", 10))
    assert {key: status(app, key) for key in ("root", "a", "b", "b1", "a1")} == {
        "root": "aborted",
        "a": "aborted",
        "b": "completed",
        "b1": "aborted",
        "a1": "aborted",
    }
    root_abort = call(app, "root")["events"][-1]
    for key in ("a", "b1", "a1"):
        attributes = call(app, key)
        assert attributes["events"][-1] == {**root_abort, "cause": "root"}
        assert attributes["completedAt"] == 10
    assert call(app, "a1")["output"] == [output()]  # what it produced stays


def test_continue_running_leaves_the_descendants_of_an_aborted_call_alone(
    app: Metagraph,
) -> None:
    feed(app, *TREE, aborted("root", 10), abort_policy="continue-running")
    assert {key: status(app, key) for key in ("root", "a", "b1", "a1")} == {
        "root": "aborted",
        "a": "pending",
        "b1": "pending",
        "a1": "running",
    }
    feed(app, requested("late", 11, parent="a"), abort_policy="continue-running")
    assert status(app, "late") == "pending"


def test_a_call_requested_under_an_aborted_ancestor_is_recorded_aborted(app: Metagraph) -> None:
    feed(app, *TREE, aborted("root", 10), requested("b2", 12, parent="b1"))
    attributes = call(app, "b2")
    assert (attributes["status"], attributes["completedAt"]) == ("aborted", 12)
    assert attributes["events"][-1]["cause"] == "root"
    assert ("b1", "b2") in triggered(app)


def test_a_late_parent_under_an_aborted_ancestor_aborts_its_waiting_children(
    app: Metagraph,
) -> None:
    feed(app, requested("root", 1), aborted("root", 2), requested("c", 4, parent="p"))
    assert status(app, "c") == "pending"
    feed(app, requested("p", 3, parent="root"))
    assert (status(app, "p"), status(app, "c")) == ("aborted", "aborted")
    assert triggered(app) == {("root", "p"), ("p", "c")}


def test_an_interrupted_cascade_is_completed_when_the_abort_is_delivered_again(
    app: Metagraph,
) -> None:
    feed(app, *TREE, aborted("root", 10), abort_policy="continue-running")
    feed(app, aborted("root", 10))  # the same event, now under abort-dependents
    assert {status(app, key) for key in ("a", "b1", "a1")} == {"aborted"}


# --- batches, other writers, reopening ----------------------------------------------------


def test_a_batch_with_a_refused_event_writes_nothing_and_names_its_position(
    app: Metagraph,
) -> None:
    with unchanged(app), pytest.raises(UnknownCallError, match=r"^event 3: ") as info:
        feed(app, requested("p"), requested("c", 2, parent="p"), responded("x", 3))
    assert info.value.line == 3
    assert all_calls(app) == {}


def test_a_refused_batch_on_a_tenant_without_calls_writes_nothing_not_even_the_graph(
    app: Metagraph,
) -> None:
    before = stream_position(app)
    with pytest.raises(UnknownCallError):
        feed(app, requested("p"), completed("x", 2))
    with pytest.raises(CallCycleError):
        feed(app, requested("p", parent="p"))
    assert stream_position(app) == before
    assert app.graph_types() == {}


def test_rules_in_a_batch_see_the_batchs_earlier_events(app: Metagraph) -> None:
    with unchanged(app), pytest.raises(CallConflictError, match="event 4: "):
        feed(app, requested("q"), responded("q", 2, 1), requested("x"), responded("q", 3, 2))


def test_an_archived_call_graph_refuses_events_and_nothing_is_written(app: Metagraph) -> None:
    app.archive_graph(tenant_call_graph(app))
    with rejected(app, GraphArchivedError, "archived"):
        feed(app, requested("r"))


def test_a_call_graph_archived_by_another_writer_refuses_events_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    # The ingesting writer decides from the call graph as it last saw it (not archived)
    # and its commit checks the graph is unchanged: the check fails, the retry reads.
    env = store_env(tmp_path / "tenant.db")
    with Metagraph(env=env) as app, Metagraph(env=env) as other:
        feed(app, requested("r"))  # the call graph is now in this writer's cache
        other.archive_graph(tenant_call_graph(other))
        with rejected(app, GraphArchivedError, "archived"):
            feed(app, requested("s", 2))


def test_changes_by_another_writer_are_seen_before_the_next_event(tmp_path: Path) -> None:
    env = store_env(tmp_path / "tenant.db")
    with Metagraph(env=env) as app, Metagraph(env=env) as other:
        feed(app, requested("r"), requested("c", 2, parent="r"))
        assert status(app, "r") == "pending"  # loaded (and cached) by this writer
        feed(other, completed("r", 3), requested("d", 4, parent="r"))
        with pytest.raises(CallConflictError, match="already completed"):
            feed(app, failed("r", 5))
        assert set(app_children(app, "r")) == {"c", "d"}


def test_the_state_is_rebuilt_from_the_graph_after_reopening(tmp_path: Path) -> None:
    env = store_env(tmp_path / "tenant.db")
    with Metagraph(env=env) as app:
        feed(app, *TREE)
    with Metagraph(env=env) as app:
        with unchanged(app):
            feed(app, *TREE)
        feed(app, aborted("root", 10))
        assert {status(app, key) for key in ("a", "b1", "a1")} == {"aborted"}


# --- properties: orderings and duplicates ----------------------------------------------------


class _Run(msgspec.Struct):
    """A valid run: events in a causal order, and what may be reordered."""

    events: list[dict[str, Any]]
    before: set[tuple[int, int]]  # (i, j): event i must be delivered before event j
    policy: str


@st.composite
def runs(draw: st.DrawFn) -> _Run:
    size = draw(st.integers(1, 7))
    rnd = draw(st.randoms(use_true_random=False))
    parents: list[int | None] = [None]  # mostly deep trees: aborts have descendants
    parents += [rnd.choice([None, *range(i), i - 1, i - 1]) for i in range(1, size)]
    sequences: list[list[dict[str, Any]]] = []
    for i in range(size):
        key, parent = f"c{i}", None if parents[i] is None else f"c{parents[i]}"
        is_sub = rnd.random() < 0.5
        first = subscription(key, 0, parent) if is_sub else requested(key, 0, parent)
        outcome = rnd.choice(["respond", "error", "abort", "abort", "none"])
        outputs = rnd.randint(0, 3) if is_sub else int(outcome == "respond")
        rest = [responded(key, 0, n) for n in range(outputs if outcome != "error" else 0)]
        if outcome == "respond" and is_sub:
            rest.append(completed(key, 0))
        elif outcome == "error":
            rest.append(failed(key, 0))
        elif outcome == "abort":
            rest.append(aborted(key, 0))
        sequences.append([first, *rest])
    # a causal order: a call's events in order, a child requested after its parent
    cursor, order = [0] * size, []
    while True:
        ready = [
            i
            for i in range(size)
            if cursor[i] < len(sequences[i])
            and (cursor[i] > 0 or parents[i] is None or cursor[parents[i]] > 0)  # type: ignore[index]
        ]
        if not ready:
            break
        i = rnd.choice(ready)
        order.append((i, cursor[i]))
        cursor[i] += 1
    events = []
    for at, (i, j) in enumerate(order, start=1):
        events.append({**sequences[i][j], "at": at})
    position = {step: n for n, step in enumerate(order)}

    def descendants(i: int) -> set[int]:
        found = {k for k in range(size) if parents[k] == i}
        for k in list(found):
            found |= descendants(k)
        return found

    before: set[tuple[int, int]] = set()
    for i in range(size):
        steps = [position[(i, j)] for j in range(len(sequences[i]))]
        before |= set(itertools.pairwise(steps))  # a call's own order
        ancestor = parents[i]
        while ancestor is not None:  # a call's outcomes after its ancestors' requests
            before |= {(position[(ancestor, 0)], s) for s in steps[1:]}
            ancestor = parents[ancestor]
        if sequences[i][-1]["type"] == "call.aborted":  # an abort stays where it was
            abort = steps[-1]
            for k in descendants(i):
                for j in range(len(sequences[k])):
                    s = position[(k, j)]
                    before.add((s, abort) if s < abort else (abort, s))
    policy = draw(st.sampled_from(["abort-dependents", "continue-running"]))
    return _Run(events=events, before=before, policy=policy)


@st.composite
def deliveries(draw: st.DrawFn, run: _Run, *, keep_order: bool) -> list[int]:
    """Indexes of ``run.events`` to deliver: each at least once, duplicates anywhere after."""
    count, rnd = len(run.events), draw(st.randoms(use_true_random=False))
    pending, order = set(range(count)), []
    while pending:
        ready = sorted(
            j for j in pending if not keep_order or all((i, j) not in run.before for i in pending)
        )
        chosen = rnd.choice(ready)
        order.append(chosen)
        pending.remove(chosen)
    for _ in range(draw(st.integers(0, 4))):
        spot = rnd.randrange(len(order))
        order.insert(rnd.randint(spot + 1, len(order)), order[spot])
    return order


@contextmanager
def fresh_store() -> Iterator[Metagraph]:
    directory = tempfile.mkdtemp()
    try:
        with Metagraph(env=store_env(Path(directory) / "tenant.db")) as app:
            yield app
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def graph_state(app: Metagraph) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    return all_calls(app), triggered(app)


def deliver(app: Metagraph, event: dict[str, Any], policy: str) -> None:
    ingest(app, [event], abort_policy=policy, operation_types=SUBSCRIPTIONS)  # type: ignore[arg-type]


PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_reordered_and_duplicated_deliveries_of_a_run_converge_to_the_same_graph(
    data: st.DataObject,
) -> None:
    """Children before parents, any interleaving of calls, any duplicates: same graph.

    Kept as in the run: each call's own order, a call's outcomes after its ancestors'
    requests (an abort can only reach a call through a known chain), and the order of an
    abort relative to its descendants' events (the abort race decides what a descendant
    ends as).
    """
    run = data.draw(runs())
    order = data.draw(deliveries(run, keep_order=True))
    with fresh_store() as app:
        for event in run.events:
            deliver(app, event, run.policy)
        expected = graph_state(app)
    with fresh_store() as app:
        assert tenant_call_graph(app)
        seen: set[int] = set()
        for index in order:
            before = stream_position(app)
            deliver(app, run.events[index], run.policy)
            if index in seen:
                assert stream_position(app) == before, "a duplicate wrote to the stream"
            seen.add(index)
        assert graph_state(app) == expected


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_delivery_order_is_applied_or_refused_by_the_rules_leaving_the_stream_unchanged(
    data: st.DataObject,
) -> None:
    """Any order: each event is applied, ignored or refused (unknown call, conflict) and a
    refused one writes nothing; the graph keeps its invariants."""
    run = data.draw(runs())
    order = data.draw(deliveries(run, keep_order=False))
    with fresh_store() as app:
        for index in order:
            before = stream_position(app)
            try:
                deliver(app, run.events[index], run.policy)
            except (UnknownCallError, CallConflictError):
                assert stream_position(app) == before, "a refused event wrote to the stream"
        nodes, edges = graph_state(app)
    for key, attributes in nodes.items():
        ids = [entry["id"] for entry in attributes["events"]]
        assert len(ids) == len(set(ids)), f"{key} lists an event twice"
        parent = attributes.get("parentRequestId")
        assert ((parent, key) in edges) == (parent in nodes)
        if run.policy == "abort-dependents" and attributes["status"] != "aborted":
            ancestor = parent
            while ancestor in nodes:
                if nodes[ancestor]["status"] == "aborted":
                    assert attributes["status"] in TERMINAL_STATUSES, f"{key} outlived an abort"
                ancestor = nodes[ancestor].get("parentRequestId")
    assert all(parent in nodes and child in nodes for parent, child in edges)


def test_call_event_errors_are_domain_errors_with_a_line() -> None:
    assert issubclass(CallEventError, Exception)
    for cls in (InvalidCallEventError, UnknownCallError, CallConflictError, CallCycleError):
        assert issubclass(cls, CallEventError)
