"""``python -m benchmarks SUITE [--quick]``: run one suite, print its table, write its JSON.

A suite is a module with ``run(config: RunConfig) -> Report``; register it in
:data:`SUITES` with one line. ``python -m benchmarks stale`` lists the results older
than the last change to what they measure (``benchmarks/_stale.py``; a report, exit 0).
``python -m benchmarks table [--write]`` prints (or puts in README.md) the README's
figures table and the commit each suite was measured on (``benchmarks/_table.py``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import structlog

from benchmarks._report import Report, RunConfig, print_table, write_json

SUITES: dict[str, str] = {
    "streams": "benchmarks.streams",  # the Honker persistence module vs its baselines
    "domain": "benchmarks.domain",  # big graphs: write latency, cold start, ingestion
    "projections": "benchmarks.projections",  # catch-up, end to end, time travel, idle tenants
    "cli": "benchmarks.cli",  # command line start-up: --help and projector status vs python
    "target": "benchmarks.target",  # the event target: in-process and cross-process delivery
    "serve": "benchmarks.serve",  # HTTP ingest vs in-process, SSE fan-out to 200, event target
    "relay": "benchmarks.relay",  # tenant streams to NATS JetStream: relay vs local catch-up
    "backup": "benchmarks.backup",  # online backup vs a file copy; the writer during a backup
    "restore": "benchmarks.restore",  # point-in-time restore from JetStream vs the relay; verify
    "retention": "benchmarks.retention",  # retiring runs: vs ingest, file size, flatness, writer
}

RESULTS = Path(__file__).with_name("results")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run a benchmark suite beside its baselines."
    )
    parser.add_argument(
        "suite",
        choices=[*sorted(SUITES), "stale", "table"],
        help="the suite to run; stale: list results older than what they measure; "
        "table: print the README's figures table from results/*.json",
    )
    parser.add_argument(
        "--write", action="store_true", help="with table: put it in README.md, in place"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds, fewer wake-up runs (under a minute)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="rounds per case (default 5, or 3 with --quick)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default results/SUITE.json; results/SUITE.quick.json.tmp with --quick)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="where the database files go (default: $TMPDIR)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards profile each case once (cProfile, top functions by own time)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated cases to run, for a suite that has them (domain: write_latency, "
        "snapshot_cost, cold, ingest, call_history, call_storage; retention: retire_vs_ingest, "
        "flatness, writer, archive_write); default all",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.suite == "stale":
        from benchmarks._stale import main as stale  # noqa: PLC0415 - only this command

        return stale()
    if args.suite == "table":
        from benchmarks._table import main as table  # noqa: PLC0415 - only this command

        return table(write=args.write)
    # Library debug logs would measure the terminal, not the store: warnings and up only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    repeats = args.repeats or (3 if args.quick else 5)
    if repeats < 1:
        print("--repeats must be at least 1", file=sys.stderr)
        return 2
    config = RunConfig(
        quick=args.quick,
        repeats=repeats,
        tmp_dir=args.tmp_dir,
        profile=args.profile,
        only=frozenset(case for case in args.only.split(",") if case),
    )
    run = cast(Callable[[RunConfig], Report], importlib.import_module(SUITES[args.suite]).run)
    report = run(config)
    print_table(report)
    if not args.no_write:
        default = f"{args.suite}.quick.json.tmp" if args.quick else f"{args.suite}.json"
        write_json(report, args.out or RESULTS / default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
