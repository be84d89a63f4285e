"""The main job: the whole story on a fresh machine, in one command (``./dev demo``).

1. initialise a data directory (``data/demo``, made anew on every run),
2. create an admin account and a tenant ``acme`` (``data/demo/tenant-acme.db``),
3. ingest the bundled sample of workflow runs (graphstore/samples/workflows.jsonl: a few
   hundred calls, nested, with failures, aborts and subscriptions) into acme's call graph,
4. run the projections (the metagraph tables and the flowgraph views) to the stream's
   head with the runner that serves every tenant,
5. print one run's call tree with statuses and durations,
6. show the same run as of an earlier offset (time travel through the stream),
7. print every projector's status: position, head, lag, state.

Everything is real: SQLite files, Honker streams, the projectors' saved offsets.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.rule import Rule

import graphstore
from domain import Principal
from domain.calls import ingest_jsonl
from graphstore import logs
from graphstore._render import run_tree, runs_table, status_table
from graphstore.samples import WORKFLOWS
from graphstore.samples.generate import OPERATION_TYPES
from projections import Flowgraph, FlowRun, Replay, Runner

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
    args = parser.parse_args(argv)
    logs.configure(args.log_level)  # the demo is an application: it configures the logs
    console = Console(highlight=False)

    # 1-2. A fresh data directory, an admin, a tenant.
    shutil.rmtree(args.data_dir, ignore_errors=True)
    console.print(Rule(f"1. data directory {args.data_dir}"))
    with graphstore.open(args.data_dir) as store:
        store.identity.create_account(
            "ada@example.com", "Ada", actor=Principal.system(), access_level="admin"
        )
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        console.print(f"tenants: {store.tenants()}  (files: system.db, tenant-acme.db)")

        # 3. Ingest the bundled sample.
        console.print(Rule(f"2. ingest {WORKFLOWS.name}"))
        started = time.perf_counter()
        with Progress(
            TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress:
            task = progress.add_task("ingest", total=None)
            report = ingest_jsonl(
                acme,
                WORKFLOWS,
                operation_types=OPERATION_TYPES,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        console.print(
            f"{report.events} call events -> {report.writes} call changes in "
            f"{report.transactions} transaction, {time.perf_counter() - started:.2f} s"
        )
        head = acme.recorder.max_notification_id() or 0

    # 4. Project: one runner for every tenant of the data directory.
    console.print(Rule("3. projections catch up"))
    started = time.perf_counter()
    with Runner(args.data_dir) as runner:
        runner.wait_for("acme", head, timeout=120)
        statuses = runner.status()
    console.print(f"caught up to offset {head} in {time.perf_counter() - started:.2f} s")

    env = {"PERSISTENCE_MODULE": "streams.persistence"}
    env["HONKER_DBNAME"] = str(args.data_dir / "tenant-acme.db")
    flowgraph = Flowgraph.open(env)
    replay = Replay.open(env)
    try:
        page = flowgraph.runs(limit=8, newest_first=False)
        console.print(runs_table(page.runs))

        # 5. One run's tree.
        run = _pick_run(flowgraph)
        console.print(Rule(f"4. run {run.run_id}, now"))
        console.print(run_tree(run, flowgraph.call_tree(run.run_id)))

        # 6. The same run as of an earlier offset.
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
    finally:
        flowgraph.close()
        replay.close()

    # 7. Projector status.
    console.print(Rule("6. projector status"))
    console.print(status_table(statuses))
    caught_up = all(s.lag_events == 0 and s.state == "running" for s in statuses)
    console.print(f"every projector caught up: {'yes' if caught_up else 'NO'}")
    return 0 if caught_up else 1


if __name__ == "__main__":
    raise SystemExit(main())
