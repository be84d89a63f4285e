"""The main job: the whole story on a fresh machine, in one command (``./dev demo``).

1. initialise a data directory (``data/demo``, made anew on every run): accounts, a
   tenant ``acme`` (``data/demo/tenant-acme.db``) owned by Ada, API keys,
2. ingest the bundled sample of workflow runs (graphstore/samples/workflows.jsonl: a few
   hundred calls, nested, with failures, aborts and subscriptions) into acme's call
   graph, as Ada (her key; the batch and its audit record in one transaction),
3. run the projections (the metagraph tables and the flowgraph views) to the stream's
   head with the runner that serves every tenant,
4. print one run's call tree with statuses and durations,
5. show the same run as of an earlier offset (time travel through the stream),
6. print every projector's status: position, head, lag, state,
7. who may do what: an account that is no member of acme is refused, and the refusal
   is in the audit log beside Ada's ingest,
8. the same store over HTTP: the server on 127.0.0.1, its generated operations, a runs
   query, a run's changes as Server-Sent Events,
9. an online backup of the data directory (``<data dir>-backup``, made anew): a
   consistent snapshot of every file and its manifest (docs/backup.md),
10. retention: a policy keeping acme's 10 most recent finished runs; a pass archives the
    older ones (``<data dir>/archive``), deletes them from the file and reclaims the
    bytes; ``runs show`` still finds one, in the archive (docs/retention.md),
11. ``graphstore verify``: the store, retired gaps and all, proves itself right.

Everything is real: SQLite files, Honker streams, the projectors' saved offsets, an HTTP
server on loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.rule import Rule

import graphstore
from domain.calls import read_jsonl
from graphstore import logs
from graphstore.cli.render import run_tree, runs_table, status_table
from graphstore.operations.ingest import ingest_calls
from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from projections import Flowgraph, FlowRun, Runner

__all__ = ["main"]


def _pick_run(flowgraph: Flowgraph) -> FlowRun:
    """An instructive run: nested, with a failed call if there is one."""
    runs = flowgraph.runs(limit=100, newest_first=False).runs
    failed = [r for r in runs if r.failed_calls and r.calls >= 6]
    return (failed or runs)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphstore.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--log-level", default="warning", help="debug, info or warning")
    parser.add_argument(
        "--keep-every-run",
        action="store_true",
        help="skip step 10 (retention): every run stays in the file (a test's starting point)",
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_level)  # the demo is an application: it configures the logs
    console = Console(highlight=False)
    data: Path = args.data_dir

    ada_key, eve_key = _set_up(console, data)
    head = _ingest(console, data, ada_key)

    console.print(Rule("3. projections catch up"))  # one runner for every tenant
    started = time.perf_counter()
    with Runner(data) as runner:
        runner.wait_for("acme", head, timeout=120)
        statuses = runner.status()
    console.print(f"caught up to offset {head} in {time.perf_counter() - started:.2f} s")

    run_id = _show_a_run(console, data, ada_key, head)

    console.print(Rule("6. projector status"))
    console.print(status_table(statuses))
    caught_up = all(s.lag_events == 0 and s.state == "running" for s in statuses)
    console.print(f"every projector caught up: {'yes' if caught_up else 'NO'}")

    _who_may(console, data, eve_key)
    console.print(Rule("8. over HTTP"))
    _over_http(console, data, ada_key, run_id)
    backed_up = _backup(console, data)
    retired = args.keep_every_run or _retention(console, data)
    verified = _verify(console, data)
    return 0 if caught_up and backed_up and retired and verified else 1


def _graphstore(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``graphstore --data-dir DATA ARGS...`` as an operator types it, in a process."""
    command = [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _retention(console: Console, data: Path) -> bool:
    """10. A retention policy and one pass, with an archive (docs/retention.md)."""
    console.print(Rule("10. retention: keep the 10 most recent finished runs, archive the rest"))
    policy = ("--finished-older-than", "3650d", "--keep-at-most", "10")
    archive = ("--archive", str(data / "archive"))
    for args in (("retention", "set", "--tenant", "acme", *policy, *archive),
                 ("--json", "retention", "run", "--tenant", "acme")):  # fmt: skip
        done = _graphstore(data, *args)
        if done.returncode != 0:
            console.print(f"retention failed: {done.stderr.strip()}", markup=False)
            return False
    report = json.loads(done.stdout)
    retired = [run["run_id"] for run in report["runs"]]
    console.print(
        f"retired {len(retired)} runs ({', '.join(retired[:3])}, ...) into {data / 'archive'}; "
        f"file {report['file_before']:,} -> {report['file_after']:,} bytes",
        markup=False,
    )
    shown = _graphstore(data, "runs", "show", retired[0], "--tenant", "acme")
    console.print(shown.stdout.strip(), markup=False)
    return shown.returncode == 0


def _verify(console: Console, data: Path) -> bool:
    """Last: ``graphstore verify``, as an operator's cron job runs it (docs/verify.md)."""
    console.print(Rule("11. graphstore verify: the store proves itself right"))
    done = _graphstore(data, "verify")
    for line in done.stdout.splitlines():
        console.print(line, markup=False)
    return done.returncode == 0


def _set_up(console: Console, data: Path) -> tuple[str, str]:
    """1. A fresh data directory: accounts, a tenant owned by Ada, keys (as the local
    operator); Ada's key and Eve's (no member of acme)."""
    shutil.rmtree(data, ignore_errors=True)
    console.print(Rule(f"1. data directory {data}"))
    with graphstore.open(data) as store:
        me = store.principal
        ada = store.identity.create_account("ada@example.com", "Ada", actor=me)
        eve = store.identity.create_account("eve@example.com", "Eve", actor=me)
        store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        ada_key = store.identity.create_api_key(ada.id, name="demo", actor=me).secret
        eve_key = store.identity.create_api_key(eve.id, name="demo", actor=me).secret
        console.print(f"tenants: {store.tenants()}  (files: system.db, tenant-acme.db)")
    return ada_key, eve_key


def _ingest(console: Console, data: Path, key: str) -> int:
    """2. The bundled sample, ingested as Ada: one transaction with its audit record;
    the stream's head after it."""
    console.print(Rule(f"2. ingest {WORKFLOWS.name} as ada@example.com"))
    with graphstore.open(data, api_key=key) as store:
        acme = store.tenant("acme")
        started = time.perf_counter()
        with Progress(
            TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress:
            task = progress.add_task("ingest", total=None)
            numbered = read_jsonl(WORKFLOWS)
            report, _ = ingest_calls(  # the ingest operation's work, with its audit record
                acme,
                [event for _, event in numbered],
                source=WORKFLOWS.name,
                operation_types=OPERATION_TYPES,
                lines=[line for line, _ in numbered],
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        console.print(
            f"{report.events} call events -> {report.writes} call changes in "
            f"{report.transactions} transaction, {time.perf_counter() - started:.2f} s"
        )
        return acme.recorder.max_notification_id() or 0


def _show_a_run(console: Console, data: Path, key: str, head: int) -> str:
    """4-5. The runs, one run's tree now and as of an earlier offset; the run's id."""
    with (
        graphstore.open(data, api_key=key) as store,
        contextlib.closing(store.views("acme")) as flowgraph,
        contextlib.closing(store.replay("acme")) as replay,
    ):
        console.print(runs_table(flowgraph.runs(limit=8, newest_first=False).runs))
        run = _pick_run(flowgraph)
        console.print(Rule(f"4. run {run.run_id}, now"))
        console.print(run_tree(run, flowgraph.call_tree(run.run_id)))

        history = replay.history(run.run_id)
        earlier = history[len(history) * 2 // 3].offset
        snapshot = replay.run_as_of(run.run_id, earlier)
        console.print(Rule(f"5. run {run.run_id} as of offset {earlier} (of {head})"))
        if snapshot is not None:
            console.print(run_tree(snapshot.run, snapshot.calls))
        console.print(
            f"history: {len(history)} stream events touched this run, offsets "
            f"{history[0].offset}..{history[-1].offset}"
        )
        return run.run_id


def _who_may(console: Console, data: Path, outsider_key: str) -> None:
    """7. A non-member refused; the refusal in the audit log beside the ingest."""
    console.print(Rule("7. who may do what"))
    with graphstore.open(data, api_key=outsider_key) as store:
        try:
            store.views("acme")
        except graphstore.AccessDeniedError as refused:
            console.print(f"eve@example.com reading acme: refused, {refused.missing}")
    with graphstore.open(data) as store:
        for entry in store.audit_log(org_id="acme")[-2:]:
            what = entry.details.get("what") or entry.details.get("missing", "")
            console.print(
                f"audit: {entry.action:14} by {entry.actor_id[:8]}…  {what}", markup=False
            )


def _over_http(console: Console, data_dir: Path, key: str, run_id: str) -> None:
    """Serve the data directory on a free loopback port for a moment and use it."""
    import uvicorn  # noqa: PLC0415 - only this step needs the server

    from graphstore.http import create_app  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(create_app(data_dir), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-http", daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}/v1/tenants/acme"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def call(path: str, body: dict[str, Any] | None = None) -> Any:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.read()

        document = json.loads(call("/openapi.json"))
        console.print(f"GET /v1/tenants/acme/openapi.json: {len(document['paths'])} operations")
        failed = json.loads(call("/ops/graphstore.runs.list", {"status": ["failed"]}))
        console.print(
            f"POST .../ops/graphstore.runs.list {{status: [failed]}}: {len(failed['runs'])} runs",
            markup=False,
        )
        request = urllib.request.Request(f"{url}/changes?run={run_id}&after=0", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as stream:
            lines = [stream.readline().decode().strip() for _ in range(6)]
        first = next(line for line in lines if line.startswith("id:"))
        console.print(f"GET .../changes?run={run_id}: Server-Sent Events, first {first}")
        console.print(  # the demo's own key (a throwaway directory), so the link works
            f"in a browser, live: run `graphstore --data-dir {data_dir} serve`, then open "
            f"http://127.0.0.1:8080/#tenant=acme&key={key}  (Ada's demo key)",
            soft_wrap=True,  # the link stays one line, whatever the terminal's width
            markup=False,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _backup(console: Console, data_dir: Path) -> bool:
    """9. ``graphstore backup`` as an operator types it, in a process of its own."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from graphstore.backup import read_manifest  # noqa: PLC0415

    dest = data_dir.with_name(f"{data_dir.name}-backup")
    console.print(Rule(f"9. graphstore backup {dest}"))
    shutil.rmtree(dest, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data_dir), "backup", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        console.print(f"backup failed: {done.stderr.strip()}", markup=False)
        return False
    manifest = read_manifest(dest)
    for entry in manifest.files:
        console.print(
            f"{entry.file}: head {entry.head}, {entry.size:,} bytes, sha256 {entry.sha256[:12]}...",
            markup=False,
        )
    console.print(f"backup: {len(manifest.files)} files in {dest} (manifest.json)", markup=False)
    return True


if __name__ == "__main__":
    raise SystemExit(main())
