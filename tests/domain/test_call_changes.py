"""A call's stored events carry what happened, once (issue 17, item 1): the request with
its input when the call is added, then only what each event changed (docs/events.md,
"The call trees"). Old files, whose updates carry the whole call, are read by
tests/test_upgrade_trees.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import Metagraph
from domain.calls import get_call, ingest
from domain.calls.ledger import locate
from domain.calls.tree import (
    CallRef,
    CallTree,
    apply_change,
    change_of,
    ref_id,
    stored_change,
    tree_id,
)
from tests.domain.calls_state import triggered_edges
from tests.domain.conftest import store_env

T0 = 1_795_000_000_000
WATCH = {"feeds.watch": "subscription"}


def call_updates(app: Metagraph) -> list[dict[str, Any]]:
    """The state of every stored ``CallTree.CallUpdated``, in order."""
    return [
        json.loads(n.state)
        for n in app.recorder.select_notifications(0, 100_000)
        if n.topic == "CallTree.CallUpdated"
    ]


def requested(key: str, op: str = "flows.step", **more: Any) -> dict[str, Any]:
    payload = {"requestId": key, "operationId": op, "input": {"big": "x" * 500}, **more}
    return {"type": "call.requested", "at": T0, "payload": payload}


def responded(key: str, data: Any, at: int = T0 + 5) -> dict[str, Any]:
    output = {"data": data, "meta": {"source": "local"}}
    return {"type": "call.responded", "at": at, "payload": {"requestId": key, "output": output}}


def test_an_update_stores_the_response_and_the_status_not_the_request(app: Metagraph) -> None:
    ingest(app, [requested("r")])
    ingest(app, [responded("r", {"ok": 1})])
    (update,) = call_updates(app)
    assert update["key"] == "r"
    assert update["changes"] == {  # startedAt, completedAt: the event's at (derived)
        "status": "completed",
        "output": {"data": {"ok": 1}, "meta": {"source": "local"}},
    }
    (entry,) = update["appended"]["events"]
    assert set(entry) == {"id", "at"} and entry["at"] == T0 + 5  # its type: derived
    assert "x" * 500 not in json.dumps(update)  # the input is not carried again
    call = get_call(app, "r")
    assert call is not None and (call["startedAt"], call["completedAt"]) == (T0 + 5, T0 + 5)
    assert call["events"][-1] == {"id": entry["id"], "type": "call.responded", "at": T0 + 5}


def test_a_subscription_output_costs_the_same_however_many_came_before(app: Metagraph) -> None:
    ingest(app, [requested("s", "feeds.watch")], operation_types=WATCH)
    for n in range(60):
        ingest(app, [responded("s", {"tick": n % 10}, T0 + 10 + n)], operation_types=WATCH)
    updates = call_updates(app)
    assert len(updates) == 60
    sizes = [len(json.dumps(u["changes"])) + len(json.dumps(u["appended"])) for u in updates]
    assert max(sizes[1:]) - min(sizes[1:]) <= 4  # the tick's and the event id's digits
    assert updates[-1]["appended"]["output"] == [{"data": {"tick": 9}, "meta": {"source": "local"}}]
    ingest(app, [{"type": "call.completed", "at": T0 + 99, "payload": {"requestId": "s"}}])
    last = call_updates(app)[-1]
    assert last["changes"] == {"status": "completed"}  # completedAt: the event's at
    call = get_call(app, "s")
    assert call is not None and (call["startedAt"], call["completedAt"]) == (T0 + 10, T0 + 99)


def test_an_abort_cascade_stores_a_status_change_per_descendant(app: Metagraph) -> None:
    ingest(app, [requested("root"), requested("kid", parentRequestId="root")])
    ingest(app, [{"type": "call.aborted", "at": T0 + 9, "payload": {"requestId": "root"}}])
    updates = {u["key"]: u for u in call_updates(app)}
    assert updates["kid"]["changes"] == {"status": "aborted"}  # completedAt: derived
    assert updates["kid"]["appended"]["events"][0]["cause"] == "root"


def test_a_time_other_than_the_events_is_stored_and_reads_back(app: Metagraph) -> None:
    """An abort timed before a descendant's own request completes it at its request
    (docs/calls.md): not the abort's ``at``, so the update stores that completedAt."""
    late = {**requested("kid", parentRequestId="root"), "at": T0 + 50}
    ingest(app, [requested("root"), late])
    ingest(app, [{"type": "call.aborted", "at": T0 + 30, "payload": {"requestId": "root"}}])
    updates = {u["key"]: u for u in call_updates(app)}
    assert updates["root"]["changes"] == {"status": "aborted"}
    assert updates["kid"]["changes"] == {"status": "aborted", "completedAt": T0 + 50}
    kid = get_call(app, "kid")
    assert kid is not None and kid["completedAt"] == T0 + 50
    assert kid["events"][-1]["at"] == T0 + 30


def test_a_call_recorded_aborted_stores_its_attributes_whole(app: Metagraph) -> None:
    """A call requested under an aborted ancestor is recorded aborted: not what its
    request alone derives, so its ``CallAdded`` stores the attributes whole."""
    ingest(app, [requested("root")])
    ingest(app, [{"type": "call.aborted", "at": T0 + 9, "payload": {"requestId": "root"}}])
    ingest(app, [requested("kid", parentRequestId="root")])
    added = [
        json.loads(n.state)
        for n in app.recorder.select_notifications(0, 100_000)
        if n.topic == "CallTree.CallAdded"
    ]
    assert "request" in added[0] and "attributes" not in added[0]
    assert added[-1]["attributes"]["status"] == "aborted" and "request" not in added[-1]
    kid = get_call(app, "kid")
    assert kid is not None and kid["status"] == "aborted"


_value = st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=3)
_fields = st.sampled_from(["a", "events", "output"])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=st.dictionaries(_fields, _value),
    replaced=st.dictionaries(_fields, _value),
    grown=st.dictionaries(_fields, st.lists(st.integers(), min_size=1, max_size=2)),
    status=st.sampled_from(["pending", "running"]),
)
def test_a_change_applied_to_the_old_attributes_gives_the_new(
    old: dict[str, Any],
    replaced: dict[str, Any],
    grown: dict[str, list[int]],
    status: str,
) -> None:
    old = {"status": "pending", **old}
    new = {**old, **replaced, "status": status}  # calls never lose a field
    for name, items in grown.items():
        if isinstance(new.get(name), list):
            new[name] = [*new[name], *items]
    changes, appended = change_of(old, new)
    assert apply_change(old, changes, appended) == new
    assert changes["status"] == status
    assert all(old.get(k) != v for k, v in changes.items() if k != "status")


def test_a_change_that_would_remove_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot remove"):
        change_of({"status": "pending", "input": 1}, {"status": "running"})


# --- a call's reference: an index row of its CallAdded, not an event --------------------


def stream_types(app: Metagraph) -> list[str]:
    return [n.topic for n in app.recorder.select_notifications(0, 100_000)]


def test_a_run_stores_one_entry_per_call_event_plus_its_tree(app: Metagraph) -> None:
    ingest(app, [requested("root")])  # the call index, the call graph, ...
    before = len(stream_types(app))
    batch = [requested("r")]
    batch += [requested(f"r.{n}", parentRequestId="r") for n in range(3)]
    batch += [responded(f"r.{n}", {"n": n}) for n in range(3)] + [responded("r", {})]
    ingest(app, batch)
    new = stream_types(app)[before:]
    assert [t for t in new if t.startswith("Call")] == ["CallTree.Started"] + [
        "CallTree.CallAdded"
    ] * 4 + ["CallTree.CallUpdated"] * 4  # no CallRef.Filed: 9 entries for 8 events
    ref = ref_id("r.1")
    found = app.recorder.select_reference(ref)  # type: ignore[attr-defined]
    assert found == str(tree_id("r"))
    with app.transaction() as unit:
        assert unit.load(ref, CallRef) is None  # a reference row has no events
        assert locate(unit, "r.1") == tree_id("r") and locate(unit, "nope") is None
    assert get_call(app, "r.1") is not None


def test_a_placeholder_parent_is_filed_with_its_child_and_joins_later(app: Metagraph) -> None:
    ingest(app, [requested("c", parentRequestId="p")])  # the child first
    adds = [
        json.loads(n.state)
        for n in app.recorder.select_notifications(0, 100_000)
        if n.topic == "CallTree.CallAdded"
    ]
    assert adds[-1]["refs"] == [ref_id("c").hex, ref_id("p").hex]
    ingest(app, [requested("p")])
    parent = get_call(app, "p")
    assert parent is not None and parent["status"] == "pending"
    assert "CallRef.Filed" not in stream_types(app)


def test_a_duplicate_request_in_another_process_state_changes_nothing(
    app: Metagraph, env: dict[str, str]
) -> None:
    ingest(app, [requested("d")])
    with Metagraph(env=env) as other:  # guesses "d" new: its reference row conflicts
        report = ingest(other, [requested("d"), requested("e")])
    assert (report.applied, report.attempts) == (1, 2)
    assert stream_types(app).count("CallTree.CallAdded") == 2


def test_with_a_compressor_a_reference_is_a_callref_event(tenant_file: Path) -> None:
    env = store_env(tenant_file, COMPRESSOR_TOPIC="eventsourcing.compressor:ZlibCompressor")
    with Metagraph(env=env) as zipped:
        ingest(zipped, [requested("z"), requested("z.1", parentRequestId="z")])
        assert stream_types(zipped).count("CallRef.Filed") == 2
        assert get_call(zipped, "z.1") is not None


def stored_states(app: Metagraph, topic: str) -> list[dict[str, Any]]:
    return [
        json.loads(n.state)
        for n in app.recorder.select_notifications(0, 100_000)
        if n.topic == topic
    ]


def stored_envelope(app: Metagraph, offset: int) -> str:
    rows = app.recorder.datastore.query(
        'SELECT payload FROM _honker_stream WHERE "offset" = ?', [offset]
    )
    return str(rows[0]["payload"])


def test_a_call_event_leaves_out_what_is_derivable(app: Metagraph) -> None:
    """A ``CallAdded`` stores no ``key`` (its requestId) and, when its only link is from
    its recorded parent, no ``links`` (``default_links``); a ``CallUpdated`` stores no
    ``"attributes": null`` (nor an ``appended`` that is null); null ``refs`` are not
    written."""
    ingest(app, [requested("r"), requested("r.1", parentRequestId="r")])
    ingest(app, [responded("r.1", {"ok": 1})])
    root, child = stored_states(app, "CallTree.CallAdded")[-2:]
    assert "links" not in root and "links" not in child
    assert "key" not in root and child["request"]["requestId"] == "r.1"  # the key
    # The request as given: what the rules add on a request is derived when folded.
    assert "attributes" not in child
    fields = {"requestId", "operationId", "input", "parentRequestId", "id", "at"}
    assert set(child["request"]) == fields
    (update,) = stored_states(app, "CallTree.CallUpdated")
    assert set(update) == {"key", "changes", "appended"}  # no timestamp: the envelope's
    (last,) = app.recorder.select_notifications(0, 1, topics=["CallTree.CallUpdated"])
    recorded_ms = int(json.loads(stored_envelope(app, last.id))["time"])
    # A call tree event's timestamp reads back as when it was recorded (ms).
    assert app.mapper.to_domain_event(last).timestamp.timestamp() * 1000 == recorded_ms
    with app.transaction() as unit:
        tree = unit.load(tree_id("r"), CallTree)
        assert tree is not None and tree.children == {"r": ["r.1"]}


def test_links_that_differ_from_the_parent_edge_are_stored(app: Metagraph) -> None:
    """A child whose parent is not recorded yet has no edge (``links: []`` stored); the
    parent, when it comes, stores the edges to the children that waited for it."""
    ingest(app, [requested("c", parentRequestId="p")])
    ingest(app, [requested("p")])
    child, parent = stored_states(app, "CallTree.CallAdded")[-2:]
    assert (child["request"]["requestId"], child["links"]) == ("c", [])
    assert (parent["request"]["requestId"], parent["links"]) == ("p", [["p", "c"]])
    assert triggered_edges(app) == {("p", "c")}


def test_a_change_that_cannot_be_stored_is_refused_naming_its_keys_not_its_values() -> None:
    """The message of the refusal may reach a log: a call's output must not be in it."""
    output = {"data": {"email": "PII-3c9a@example.com"}, "meta": {"source": "local"}}
    with pytest.raises(ValueError, match="startedAt") as info:
        stored_change(
            {},
            {"output": output, "status": "running"},
            {"events": [{"type": "call.responded", "at": 5}]},
        )
    assert "PII-3c9a" not in str(info.value)
    assert "'output', 'status'" in str(info.value)
