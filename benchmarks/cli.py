"""The ``cli`` suite: how fast the command line starts (issue 9 item 9).

Every figure is the wall time of a fresh process, from ``subprocess.run`` to its exit,
beside a bare ``python -c pass`` of the same interpreter timed in the same rounds:

- ``graphstore --help`` (the console script in the interpreter's ``bin``, or
  ``python -m graphstore`` where there is none): the front door;
- ``graphstore projector status`` on a small data directory (one tenant, the bundled
  workflow sample ingested, projectors caught up), built once per run with the command
  line itself;
- ``graphstore runs list --tenant acme`` on the same directory (issue 17 item 4: a
  command imports only what it runs).

Each round runs every side ``runs`` times, in a rotated order, and keeps each side's
median; a ratio is the median of the per-round ratios. README.md says what each metric
means.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from benchmarks._report import Report, RunConfig, Target, median, paired_ratio, rounds
from graphstore.samples import WORKFLOWS

__all__ = ["run"]

RUNS_PER_ROUND: Final = 7
RUNS_PER_ROUND_QUICK: Final = 4


def graphstore_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m graphstore``."""
    script = Path(sys.executable).with_name("graphstore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "graphstore"]


def child_env() -> dict[str, str]:
    """This environment without ``GRAPHSTORE_*`` settings, and with bytecode caching on.

    An installed package has its ``.pyc`` files (pip compiles them); with
    ``PYTHONDONTWRITEBYTECODE`` set, a changed module would be compiled on every run.
    The warm-up run writes them.
    """
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRAPHSTORE_") and k != "PYTHONDONTWRITEBYTECODE"
    }


def wall_s(argv: Sequence[str], env: dict[str, str]) -> float:
    """Seconds from spawning ``argv`` to its exit; its output is captured and dropped."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.decode()[-2000:]}"
        )
    return elapsed


def build_data_dir(path: Path, env: dict[str, str]) -> None:
    """A small data directory, made with the command line: one tenant, projected."""
    cli = [*graphstore_command(), "--data-dir", str(path)]
    for args in (
        ["init"],
        ["account", "create", "ops@example.com", "--name", "Ops", "--level", "admin"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "ops@example.com"],
        ["ingest", str(WORKFLOWS), "--tenant", "acme", "--subscription", "feed.watch"],
        ["projector", "catch-up", "--timeout", "120"],
    ):
        wall_s([*cli, *args], env)


def _side(argv: Sequence[str], env: dict[str, str], runs: int) -> Callable[[int], float]:
    def one_round(_round: int) -> float:
        return median([wall_s(argv, env) for _ in range(runs)])

    return one_round


def run(config: RunConfig) -> Report:
    report = Report("cli", config)
    env = child_env()
    runs = RUNS_PER_ROUND_QUICK if config.quick else RUNS_PER_ROUND
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-", dir=config.tmp_dir))
    try:
        data = tmp / "data"
        build_data_dir(data, env)
        cli = graphstore_command()
        sides = {
            "python": [sys.executable, "-c", "pass"],
            "help": [*cli, "--help"],
            "status": [*cli, "--data-dir", str(data), "projector", "status"],
            "runs": [*cli, "--data-dir", str(data), "runs", "list", "--tenant", "acme"],
        }
        for argv in sides.values():  # warm-up: the page cache and .pyc files
            wall_s(argv, env)
        figures = rounds(
            config.repeats, {name: _side(argv, env, runs) for name, argv in sides.items()}
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    python, help_, status = figures["python"], figures["help"], figures["status"]
    runs_list = figures["runs"]
    report.add("cli_start_vs_python", paired_ratio(help_, python), Target("<=", 8))
    report.add("cli_status_vs_python", paired_ratio(status, python), Target("<=", 10))
    report.add("cli_runs_list_vs_python", paired_ratio(runs_list, python), Target("<=", 10))
    report.add("python_pass_ms", median(python) * 1000)
    report.add("cli_help_ms", median(help_) * 1000)
    report.add("cli_status_ms", median(status) * 1000)
    report.add("cli_runs_list_ms", median(runs_list) * 1000)
    report.raw = {
        "commands": {name: " ".join(argv) for name, argv in sides.items()},
        "runs_per_round": runs,
        "round_medians_ms": {
            name: [round(s * 1000, 2) for s in values] for name, values in figures.items()
        },
    }
    report.notes.append(
        "ratios are wall time ÷ `python -c pass` (same interpreter, same rounds); lower is better"
    )
    return report
