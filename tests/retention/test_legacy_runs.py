"""Retiring and forgetting runs of a tenant written before call trees (issue 16, items 5
and 6): the call graph's own events that first recorded the run's calls (its inputs
included) leave the file too, the graph still loads (from its events or a snapshot
taken before) and takes new calls, the views equal a rebuild and ``verify`` passes. On a
copy of the committed fixture ``tests/fixtures/legacy-v1``, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import graphstore
from domain.calls import find_call_graph, get_call, ingest
from graphstore.cli import ExitCode
from projections.replay import Replay
from tests.cli.test_cli import gs
from tests.projections.rebuild_check import projections_equal_rebuild

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy-v1"
T1 = 1_795_000_100_000
# The fixture's calls were written with input {"n": <request id>}: as the stream stores it.
INPUTS = {key: f'"input":{{"n":"{key}"}}'.encode() for key in ("run-a", "a-1", "run-c", "c-1")}
KEPT = b'"input":{"n":"run-b"}'


def ok(data: Path, *args: str) -> Any:
    done = gs(data, "--json", *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else None


def file_bytes(data: Path) -> bytes:
    tenant = data / "tenant-acme.db"
    wal = tenant.with_name(tenant.name + "-wal")
    return tenant.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def runs_of(data: Path) -> set[str]:
    ok(data, "projector", "catch-up", "--tenant", "acme")
    return {r["run_id"] for r in ok(data, "runs", "list", "--tenant", "acme", "--limit", "100")}


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


def test_a_retired_and_a_forgotten_legacy_run_leave_no_input_bytes(
    legacy: Path, tmp_path: Path
) -> None:
    before = file_bytes(legacy)
    assert all(needle in before for needle in INPUTS.values())  # the test can fail
    assert runs_of(legacy) == {"run-a", "run-b", "run-c"}
    with graphstore.open(legacy) as store:  # a snapshot holding the legacy calls' nodes
        acme = store.tenant("acme")
        graph = find_call_graph(acme)  # copies the legacy calls into trees
        assert graph is not None
        acme.take_snapshot(graph)
    ok(legacy, "projector", "catch-up", "--tenant", "acme")
    # The aborted run-c is kept by the policy; the completed run-a goes.
    policy = ["--finished-older-than", "1d", "--failed-older-than", "3650d"]
    ok(legacy, "retention", "set", "--tenant", "acme", *policy)
    report = ok(legacy, "retention", "run", "--tenant", "acme")
    assert [r["run_id"] for r in report["runs"]] == ["run-a"], report
    assert report["runs"][0]["events"] >= 5 + 2  # the graph's 5 events + the trees'
    assert runs_of(legacy) == {"run-b", "run-c"}

    flying = gs(legacy, "runs", "forget", "run-b", "--tenant", "acme")
    assert flying.returncode == ExitCode.REFUSED, flying.stderr
    ok(legacy, "runs", "forget", "run-c", "--tenant", "acme")
    assert runs_of(legacy) == {"run-b"}

    after = file_bytes(legacy)
    for key, needle in INPUTS.items():
        assert needle not in after, f"{key}'s input is still in the file or its WAL"
    assert KEPT in after  # a kept legacy run keeps its history

    verified = gs(legacy, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert projections_equal_rebuild(legacy / "tenant-acme.db", tmp_path) > 0


def test_the_legacy_call_graph_still_loads_and_takes_new_calls_after_retirement(
    legacy: Path, tmp_path: Path
) -> None:
    ok(legacy, "projector", "catch-up", "--tenant", "acme")
    ok(legacy, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    ok(legacy, "retention", "run", "--tenant", "acme")  # the copy into trees: runs wait
    ok(legacy, "projector", "catch-up", "--tenant", "acme")
    report = ok(legacy, "retention", "run", "--tenant", "acme")
    assert sorted(r["run_id"] for r in report["runs"]) == ["run-a", "run-c"]
    with graphstore.open(legacy) as store:  # a new process: the graph replays
        acme = store.tenant("acme")
        graph = find_call_graph(acme)
        assert graph is not None
        assert set(acme.nodes(graph)) == {"run-b", "b-1"}
        assert acme.get_node(graph, "b-1").attributes["input"] == {"n": "b-1"}
        assert get_call(acme, "run-a") is None
        requested = {"requestId": "b-2", "operationId": "flows.step", "input": {},
                     "parentRequestId": "run-b"}  # fmt: skip
        new_run = {"requestId": "run-d", "operationId": "flows.run", "input": {}}
        ingest(
            acme,
            [
                {"type": "call.requested", "at": T1, "payload": requested},
                {"type": "call.requested", "at": T1, "payload": new_run},
            ],
        )
        assert get_call(acme, "b-2")["parentRequestId"] == "run-b"  # type: ignore[index]
        with Replay.open(store.data.tenant_env("acme")) as replay:  # as of now, folded
            folded = replay.graph_as_of(graph, 2**62)
        assert folded is not None
        assert {n.key for n in folded.nodes} == {"run-b", "b-1", "b-2", "run-d"}
    assert runs_of(legacy) == {"run-b", "run-d"}
    verified = gs(legacy, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert projections_equal_rebuild(legacy / "tenant-acme.db", tmp_path) > 0
