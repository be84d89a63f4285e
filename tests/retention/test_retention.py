"""Retention (issue 16), as an operator runs it: the policy as an event, a pass that
retires finished runs and leaves in-flight ones, projections that follow, `verify`
accepting the retired gaps, the bytes really gone from the file and its WAL, and an
erasure (`runs forget`) with its refusals. Real processes on a real data directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from domain.calls import get_call, ingest
from domain.calls.ledger import locate
from domain.retention import RetentionPolicy
from graphstore.cli import ExitCode
from graphstore.retention import forget_run, run_pass, set_policy
from graphstore.store import open_store
from projections import FlowgraphProjection, MetagraphProjection, Projector
from streams import pauses as pauses_module
from streams.checkpointer import Checkpointer
from tests.cli.test_cli import gs

MARK = "PERSONAL-DATA-7f3c1e-DO-NOT-KEEP"
T0 = 1_700_000_000_000  # long finished: any policy lets these runs go

OUTPUT: dict[str, Any] = {"data": {}, "meta": {"source": "local"}}
"""A call's output, as the protocol shapes it."""


def call(kind: str, key: str, **payload: Any) -> dict[str, Any]:
    """A call-protocol event of request ``key`` at :data:`T0`."""
    return {"type": kind, "at": T0, "payload": {"requestId": key, **payload}}


def _event(n: int, kind: str, request: str, at: int, **payload: Any) -> str:
    return json.dumps(
        {"id": f"e-{n}", "type": kind, "at": at, "payload": {"requestId": request, **payload}}
    )


def _events() -> str:
    """Three finished runs (one carrying MARK in its input) and one run in flight."""
    lines: list[str] = []
    for i, run in enumerate(["done-1", "done-2", "secret"]):
        at = T0 + i * 1000
        secret = {"note": MARK} if run == "secret" else {"n": i}
        lines += [
            _event(len(lines), "call.requested", run, at, operationId="flows.run", input=secret),
            _event(
                len(lines) + 1,
                "call.requested",
                f"{run}.0",
                at + 1,
                operationId="db.query",
                input={"q": i},
                parentRequestId=run,
            ),
            _event(
                len(lines) + 2,
                "call.responded",
                f"{run}.0",
                at + 2,
                output=OUTPUT,
            ),
            _event(
                len(lines) + 3,
                "call.responded",
                run,
                at + 3,
                output=OUTPUT,
            ),
        ]
    lines.append(
        _event(len(lines), "call.requested", "flying", T0, operationId="flows.run", input={})
    )
    return "\n".join(lines) + "\n"


def ok(data: Path, *args: str) -> Any:
    done = gs(data, "--json", *args)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    for command in (
        ["init"],
        ["account", "create", "ada@example.com", "--name", "Ada", "--level", "admin"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"],
    ):
        done = gs(path, *command)
        assert done.returncode == 0, done.stderr
    source = tmp_path / "events.jsonl"
    source.write_text(_events())
    ok(path, "ingest", str(source), "--tenant", "acme")
    ok(path, "projector", "catch-up", "--tenant", "acme")
    return path


def runs_of(data: Path) -> set[str]:
    ok(data, "projector", "catch-up", "--tenant", "acme")
    return {r["run_id"] for r in ok(data, "runs", "list", "--tenant", "acme", "--limit", "100")}


def file_bytes(data: Path) -> bytes:
    tenant = data / "tenant-acme.db"
    wal = tenant.with_name(tenant.name + "-wal")
    return tenant.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def head(data: Path) -> int:
    with open_store(data) as store:
        from streams import stream_head  # noqa: PLC0415

        metagraph = store.tenant("acme")
        return stream_head(metagraph.recorder.datastore, "metagraph").offset  # type: ignore[attr-defined]


def test_policy_is_an_audited_event_and_bad_input_writes_nothing(data: Path) -> None:
    shown = ok(data, "retention", "show", "--tenant", "acme")
    assert shown["policy"] is None and shown["retired"] == 0
    before = head(data)
    bad = gs(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "30 days")
    assert bad.returncode == ExitCode.USAGE, bad.stderr
    assert "30d" in bad.stderr and "Traceback" not in bad.stderr
    assert head(data) == before  # nothing written
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "30d",
       "--failed-older-than", "90d", "--keep-at-most", "10")  # fmt: skip
    policy = ok(data, "retention", "show", "--tenant", "acme")["policy"]
    assert policy == {
        "finished_older_than_s": 30 * 86_400,
        "failed_older_than_s": 90 * 86_400,
        "keep_at_most": 10,
        "archive": None,
    }
    audit = gs(data, "--json", "audit", "--tenant", "acme").stdout
    assert "set the retention policy" in audit


def test_a_pass_retires_finished_runs_only_and_the_views_and_verify_follow(data: Path) -> None:
    assert runs_of(data) == {"done-1", "done-2", "secret", "flying"}
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    before = head(data)
    dry = ok(data, "retention", "run", "--tenant", "acme", "--dry-run")
    assert sorted(r["run_id"] for r in dry["runs"]) == ["done-1", "done-2", "secret"]
    assert all(r["bytes"] > 0 for r in dry["runs"])
    assert head(data) == before and runs_of(data) == {"done-1", "done-2", "secret", "flying"}

    done = ok(data, "retention", "run", "--tenant", "acme")
    assert sorted(r["run_id"] for r in done["runs"]) == ["done-1", "done-2", "secret"]
    assert done["skipped_in_flight"] == [] or "flying" not in done["skipped_in_flight"]
    assert done["file_after"] <= done["file_before"]
    assert runs_of(data) == {"flying"}  # the in-flight run is never retired
    shown = ok(data, "retention", "show", "--tenant", "acme")
    assert shown["retired"] == 3 and shown["due"] == 0
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "projections equal a clean rebuild" in verified.stdout
    again = ok(data, "retention", "run", "--tenant", "acme")
    assert again["runs"] == []  # nothing left to retire: a second pass changes nothing


def test_retired_bytes_are_not_in_the_file_nor_its_wal(data: Path) -> None:
    assert MARK.encode() in file_bytes(data)
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    ok(data, "retention", "run", "--tenant", "acme")  # the pass catches the views up itself
    assert MARK.encode() not in file_bytes(data)


def test_subscribers_see_a_retired_change(data: Path) -> None:
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    ok(data, "retention", "run", "--tenant", "acme")
    ok(data, "projector", "catch-up", "--tenant", "acme")
    with open_store(data) as store, store.subscribe("acme", from_start=True) as changes:
        retired = [c for c in changes.poll() if c.status == "retired"]
    assert len(retired) == 1
    assert sorted(retired[0].runs or []) == ["done-1", "done-2", "secret"]


def test_a_subscription_to_one_run_sees_that_run_retired_and_no_other(data: Path) -> None:
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    ok(data, "retention", "run", "--tenant", "acme")
    with open_store(data) as store:
        with store.subscribe("acme", run="secret", from_start=True) as changes:
            retired = [c for c in changes.poll() if c.status == "retired"]
        with store.subscribe("acme", run="flying", from_start=True) as changes:
            assert [c for c in changes.poll() if c.status == "retired"] == []
    assert len(retired) == 1 and retired[0].run_id == "secret"
    assert "secret" in (retired[0].runs or [])


def test_a_run_waits_for_a_consumer_that_has_not_passed_it(data: Path) -> None:
    with open_store(data) as store:
        sub = store.subscribe("acme", name="laggard", from_start=True, auto_commit=False)
        sub.commit(1)  # a named durable consumer, stuck at offset 1
        sub.close()
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    shown = gs(data, "retention", "show", "--tenant", "acme")
    assert "waits for consumer changes:laggard" in shown.stdout, shown.stdout + shown.stderr
    done = ok(data, "retention", "run", "--tenant", "acme")
    assert done["runs"] == [] and {w["consumer"] for w in done["waiting"]} == {"changes:laggard"}
    assert runs_of(data) == {"done-1", "done-2", "secret", "flying"}


def test_forget_refusals_change_nothing_then_erase_one_run(data: Path) -> None:
    before = head(data)
    unknown = gs(data, "runs", "forget", "nope", "--tenant", "acme")
    assert unknown.returncode == ExitCode.NOT_FOUND, unknown.stderr
    flying = gs(data, "runs", "forget", "flying", "--tenant", "acme")
    assert flying.returncode == ExitCode.REFUSED and "--abort" in flying.stderr
    assert head(data) == before

    ok(data, "runs", "forget", "secret", "--tenant", "acme")
    assert MARK.encode() not in file_bytes(data)
    assert runs_of(data) == {"done-1", "done-2", "flying"}
    ok(data, "runs", "forget", "flying", "--tenant", "acme", "--abort")
    assert runs_of(data) == {"done-1", "done-2"}
    audit = gs(data, "--json", "audit", "--tenant", "acme").stdout
    assert "forget a run" in audit
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_schedule_applies_the_policy_and_is_off_without_a_setting(data: Path) -> None:
    from graphstore.retention import INTERVAL_SETTING, RetentionSchedule  # noqa: PLC0415

    with open_store(data) as store:
        assert RetentionSchedule.from_env(store, {}) is None
        assert RetentionSchedule.from_env(store, {INTERVAL_SETTING: "0"}) is None
        schedule = RetentionSchedule.from_env(store, {INTERVAL_SETTING: "0.2"})
        assert schedule is not None
        assert schedule.run_once() == []  # no policy: no pass
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    with open_store(data) as store:
        schedule = RetentionSchedule(store, 0.2).start()
        try:
            deadline = time.monotonic() + 30
            while not schedule.passes and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            schedule.stop()
        assert sorted(r.run_id for r in schedule.passes[0].runs) == ["done-1", "done-2", "secret"]
    assert runs_of(data) == {"flying"}


def test_a_policy_with_an_archive_archives_then_deletes_and_a_run_comes_back(
    data: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "cold"  # not the data directory's default: the policy names it
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d",
       "--archive", str(archive))  # fmt: skip
    exported = gs(data, "runs", "export", "done-1", "--tenant", "acme").stdout
    assert exported.strip()
    ok(data, "retention", "run", "--tenant", "acme")
    assert runs_of(data) == {"flying"}

    # every retired run is in the policy's archive, whole, and the archive verifies
    listed = ok(data, "archive", "list", "--tenant", "acme", "--archive", str(archive))
    assert sum(f["runs"] for f in listed) == 3, listed
    ok(data, "archive", "verify", "--archive", str(archive))

    # runs show/export find it there without being told where, and say it is archived
    shown = gs(data, "runs", "show", "done-1", "--tenant", "acme")
    assert shown.returncode == 0 and "archived" in shown.stderr, shown.stderr
    again = gs(data, "runs", "export", "done-1", "--tenant", "acme")
    assert again.returncode == 0 and again.stdout == exported

    # restore puts it back from the policy's archive; the views show it again
    ok(data, "archive", "restore", "done-1", "--tenant", "acme")
    assert runs_of(data) == {"flying", "done-1"}

    # an erasure removes a run from the archive too
    ok(data, "runs", "forget", "secret", "--tenant", "acme")
    assert gs(data, "runs", "show", "secret", "--tenant", "acme").returncode == ExitCode.NOT_FOUND
    assert MARK.encode() not in b"".join(p.read_bytes() for p in archive.rglob("*") if p.is_file())
    assert gs(data, "verify", "--tenant", "acme").returncode == 0


def test_a_mirror_drops_the_retired_runs_rows_and_its_copies_of_their_entries(
    data: Path, tmp_path: Path
) -> None:
    from projections.mirror import ENTRIES_TABLE, Mirror  # noqa: PLC0415
    from streams import TenantReader, read_after  # noqa: PLC0415

    tenant_env = {"HONKER_DBNAME": str(data / "tenant-acme.db"), "HONKER_TENANT": "acme"}

    def feed(mirror: Mirror) -> None:
        with TenantReader(tenant_env) as reader:
            entries = read_after(reader.datastore, "metagraph", mirror.position, limit=100_000)
        mirror.apply(entries)

    with Mirror.open(tmp_path / "remote", "acme") as mirror:
        feed(mirror)
        assert mirror.views().run("secret") is not None
        ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        ok(data, "retention", "run", "--tenant", "acme")
        feed(mirror)  # the retirement record arrives like any other entry
        views = mirror.views()
        assert views.run("secret") is None and views.run("flying") is not None
        rows = mirror.datastore.query(f"SELECT payload FROM {ENTRIES_TABLE}")
        assert not any(MARK in str(row["payload"]) for row in rows)


def _ingest_marked_run(data: Path, store: Any, mark: str) -> None:
    """Record one finished run carrying ``mark`` through this process's writer, and
    catch the views up: its pages are now frames of the open WAL."""
    metagraph = store.tenant("acme")
    ingest(
        metagraph,
        [
            {"type": "call.requested", "at": T0, "payload": {"requestId": "wal-run",
             "operationId": "flows.run", "input": {"note": mark}}},
            {"type": "call.responded", "at": T0 + 1, "payload": {"requestId": "wal-run",
             "output": OUTPUT}},
        ],
    )  # fmt: skip
    for projection in (MetagraphProjection(), FlowgraphProjection()):
        with Projector.open(metagraph.env, projection) as projector:
            projector.catch_up()
    assert mark.encode() in wal_bytes(data)


def wal_bytes(data: Path) -> bytes:
    wal = data / "tenant-acme.db-wal"
    return wal.read_bytes() if wal.exists() else b""


def test_a_pass_scrubs_the_file_at_once_and_the_wal_at_its_next_restart(data: Path) -> None:
    """The decision written in docs/retention.md ("What stays in the WAL"): a policy pass
    never holds writers off to empty the WAL; the file is clean after the pass, the WAL
    after the next commit (``journal_size_limit = 0`` cuts it to that commit's frames)."""
    mark = "WAL-ONLY-PERSONAL-DATA-51d0"
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    with open_store(data) as store:
        _ingest_marked_run(data, store, mark)
        report = run_pass(store.tenant("acme"), store.views("acme"), "acme")
        assert "wal-run" in {r.run_id for r in report.runs}
        assert mark.encode() not in (data / "tenant-acme.db").read_bytes()
        assert mark.encode() in wal_bytes(data)  # old frames, until the WAL restarts
        one_commit = RetentionPolicy(finished_older_than_s=86_400)
        set_policy(store.tenant("acme"), one_commit)
        assert mark.encode() not in file_bytes(data)


def test_a_pass_has_its_wal_copied_by_a_helper_that_ends_with_it(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass's pauses ask a helper process to copy the WAL into the file
    (streams/pauses.py); the helper is a real process and none outlives the pass."""
    helpers: list[int] = []

    class Recorded(Checkpointer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            assert self.pid is not None
            helpers.append(self.pid)

    monkeypatch.setattr(pauses_module, "Checkpointer", Recorded)
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    with open_store(data) as store:
        _ingest_marked_run(data, store, "HELPER-RUN-2b8d")
        report = run_pass(store.tenant("acme"), store.views("acme"), "acme")
        assert {"done-1", "done-2", "secret", "wal-run"} <= {r.run_id for r in report.runs}
        assert helpers  # the pauses used one
        for pid in helpers:  # and it ended with the pass (reaped: no zombie either)
            assert not Path(f"/proc/{pid}").exists()
        assert b"HELPER-RUN-2b8d" not in (data / "tenant-acme.db").read_bytes()


def test_an_erasure_empties_the_wal_at_once(data: Path) -> None:
    mark = "WAL-ONLY-PERSONAL-DATA-9a2e"
    with open_store(data) as store:
        _ingest_marked_run(data, store, mark)
        forget_run(store.tenant("acme"), "acme", "wal-run")
        assert mark.encode() not in file_bytes(data)


def test_a_late_event_in_another_process_never_lands_on_a_retired_tree(data: Path) -> None:
    """This process caches run ``late``'s tree; another process (the CLI) retires the
    run; a late event for it here must not be appended after the deleted history (which
    `verify` would find not replaying): the cache is dropped when the retirement is seen."""
    with open_store(data) as store:
        acme = store.tenant("acme")
        ingest(
            acme,
            [
                call("call.requested", "late", operationId="flows.run", input={}),
                call(
                    "call.requested", "late.0", operationId="op", input={}, parentRequestId="late"
                ),
                call("call.responded", "late.0", output=OUTPUT),
                call("call.responded", "late", output=OUTPUT),
            ],
        )
        ok(data, "projector", "catch-up", "--tenant", "acme")
        ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        retired = ok(data, "retention", "run", "--tenant", "acme")  # another process
        assert "late" in {r["run_id"] for r in retired["runs"]}
        ingest(acme, [call("call.requested", "late.1", operationId="op", input={},
                           parentRequestId="late")])  # fmt: skip
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_retired_request_sent_again_is_new_in_a_process_that_cached_it(data: Path) -> None:
    """This process caches run ``again``; another process retires it; the same request
    sent again here is a new call (as in a process that never saw it), not a duplicate
    of the cached, retired one: a batch that writes nothing still checks the trees it
    found its events in."""
    requested = call("call.requested", "again", operationId="flows.run", input={})
    responded = call("call.responded", "again", output=OUTPUT)
    with open_store(data) as store:
        acme = store.tenant("acme")
        ingest(acme, [requested, responded])
        assert ingest(acme, [requested]).applied == 0  # a duplicate while it is recorded
        ok(data, "projector", "catch-up", "--tenant", "acme")
        ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        retired = ok(data, "retention", "run", "--tenant", "acme")  # another process
        assert "again" in {r["run_id"] for r in retired["runs"]}
        report = ingest(acme, [requested])
        assert (report.applied, report.attempts) == (1, 2)  # new, after one stale attempt
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_pass_that_commits_while_a_late_event_folds_makes_that_batch_run_again(
    data: Path,
) -> None:
    """The race the cache check alone leaves open: the batch has read the tenant's
    Retention and added the late call to the run's tree, then another process retires
    the run, then the batch commits. Its commit expects the Retention it read, so it
    fails and the batch runs again on fresh reads: the late event never lands after the
    deleted history."""
    attempts: list[int] = []

    def retire_meanwhile(_done: int, _total: int) -> None:  # the late event is folded
        attempts.append(1)
        if len(attempts) == 1:  # another process, between this batch's reads and commit
            retired = ok(data, "retention", "run", "--tenant", "acme")
            assert "race" in {r["run_id"] for r in retired["runs"]}

    with open_store(data) as store:
        acme = store.tenant("acme")
        ingest(
            acme,
            [
                call("call.requested", "race", operationId="flows.run", input={}),
                call("call.responded", "race", output=OUTPUT),
            ],
        )
        ok(data, "projector", "catch-up", "--tenant", "acme")
        ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        late = call("call.requested", "race.1", operationId="op", input={}, parentRequestId="race")
        ingest(acme, [late], progress=retire_meanwhile)
    assert len(attempts) == 2  # the first commit was refused, the second went through
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_batch_that_only_starts_runs_does_not_wait_on_a_pass(data: Path) -> None:
    """A pass committing while a batch of new runs folds does not make that batch run
    again (a writer beside a running pass would otherwise lose its batches)."""
    attempts: list[int] = []

    def retire_meanwhile(_done: int, _total: int) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            assert "old" in {
                r["run_id"] for r in ok(data, "retention", "run", "--tenant", "acme")["runs"]
            }

    with open_store(data) as store:
        acme = store.tenant("acme")
        ingest(acme, [call("call.requested", "old", operationId="flows.run", input={}),
                      call("call.responded", "old", output=OUTPUT)])  # fmt: skip
        ok(data, "projector", "catch-up", "--tenant", "acme")
        ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
        new = call("call.requested", "new", operationId="flows.run", input={})
        report = ingest(acme, [new], progress=retire_meanwhile)
    assert report.attempts == 1 and len(attempts) == 1


def test_a_run_whose_calls_came_before_their_parents_is_retired_whole(data: Path) -> None:
    """Calls sent before their parents start trees of their own, linked once the parent
    comes: a pass finds the run's calls through every tree and reference, and leaves
    nothing of it (verify accepts the file: no reference without its entry)."""
    keys = ["split", "split.0", "split.0.0", "split.1", "split.1.0"]
    parent = {k: k.rsplit(".", 1)[0] for k in keys if "." in k}

    def requested(key: str) -> dict[str, Any]:
        extra = {"parentRequestId": parent[key]} if key in parent else {}
        return call("call.requested", key, operationId="op", input={"k": key}, **extra)

    with open_store(data) as store:
        acme = store.tenant("acme")
        for batch in (["split.0.0"], ["split.1.0"], ["split.0", "split.1"], ["split"]):
            ingest(acme, [requested(k) for k in batch])  # grandchildren first
        ingest(acme, [call("call.responded", k, output=OUTPUT) for k in reversed(keys)])
        with acme.transaction() as unit:
            trees = {locate(unit, k) for k in keys}
        assert len(trees) >= 2, trees  # the run spans several trees
    ok(data, "projector", "catch-up", "--tenant", "acme")
    ok(data, "retention", "set", "--tenant", "acme", "--finished-older-than", "1d")
    retired = ok(data, "retention", "run", "--tenant", "acme")
    going = {r["run_id"]: r for r in retired["runs"]}
    assert going["split"]["calls"] == len(keys)
    assert "split" not in runs_of(data)
    with open_store(data) as store:
        acme = store.tenant("acme")
        assert [get_call(acme, k) for k in keys] == [None] * len(keys)
    verified = gs(data, "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
