"""Crash soak: ``./dev soak --kills N [--rounds R] [--seed S]`` (``python -m tests.soak``).

Runs the crash test of ``tests/projections/test_crash.py`` (real writer and runner
processes killed with SIGKILL at random points, every check after each kill; see
docs/recovery.md) for at least ``N`` kill points: ``ceil(N / R)`` series of ``R`` rounds
each, every series on a fresh data directory, from a source checkout. It lives beside
the tests it runs, not in the library. Prints the seed first; the same ``--seed``
replays the same kill delays and targets (process timing still varies). Exit status:
pytest's (0: every check held).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT / "tests" / "projections" / "test_crash.py"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev soak", description=__doc__)
    parser.add_argument("--kills", type=int, default=100, help="kill points to run (at least)")
    parser.add_argument("--rounds", type=int, default=10, help="kill points per data directory")
    parser.add_argument("--seed", type=int, default=None, help="replay this seed")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.rounds < 1:
        parser.error("--kills and --rounds must be at least 1")
    if not TEST.is_file():
        parser.error(f"{TEST} is missing: the soak runs from a source checkout")
    seed = random.randrange(1 << 30) if args.seed is None else args.seed
    series = math.ceil(args.kills / args.rounds)
    _say(f"crash soak: {series * args.rounds} kill points, CRASH_SEED={seed}")
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(TEST),
            "-q",
            "-x",
            "-k",
            "kill",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "CRASH_SEED": str(seed),
            "CRASH_SERIES": str(series),
            "CRASH_ROUNDS": str(args.rounds),
        },
        check=False,
    )
    verdict = "every check held" if done.returncode == 0 else "FAILED"
    _say(
        f"crash soak: {series * args.rounds} kill points in {time.monotonic() - began:.1f}s, "
        f"{verdict} (CRASH_SEED={seed})"
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
