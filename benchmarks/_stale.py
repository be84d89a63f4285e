"""``python -m benchmarks stale``: which results predate a change to what they measure.

Each ``results/SUITE.json`` records the commit it was measured on (``commit.sha``;
files written before that was recorded fall back to the commit that last changed the
results file, labelled so). A result is stale when a later commit changed one of the
paths its suite measures is not empty (``git log <measured>..HEAD -- <paths>``): the
packages :data:`MEASURED` names, the suite's module and the benchmark modules it imports,
directly or through another (:func:`measured_paths`; not ``_report``, which only
formats and writes results). Then the documents: README.md's figures table against what
``python -m benchmarks table`` prints from the results, and the commit each
``docs/benchmarks.md`` figures heading names against its result file
(``benchmarks/_table.py``). A report, not a check: it always exits 0 (the documents'
agreement is also a test: ``tests/test_benchmark_figures.py``).
"""

from __future__ import annotations

import ast
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks._report import REPOSITORY
from benchmarks._table import figure_problems

__all__ = ["MEASURED", "Staleness", "main", "measured_paths", "staleness"]

BENCHMARKS: Final = Path(__file__).parent
RESULTS: Final = BENCHMARKS / "results"
_NOT_MEASURED: Final = frozenset({"_report", "_table", "_stale", "__main__"})

MEASURED: Final[dict[str, tuple[str, ...]]] = {
    "streams": ("streams",),
    "domain": ("domain", "streams"),
    "projections": ("projections", "domain", "streams"),
    "cli": ("graphstore", "projections", "domain", "streams"),
    "target": ("graphstore", "projections", "streams"),
    "serve": ("graphstore", "projections", "domain", "streams"),
    "relay": ("graphstore", "projections", "domain", "streams"),
    "backup": ("graphstore", "domain", "streams"),
    "restore": ("graphstore", "projections", "domain", "streams"),
    "retention": ("graphstore", "projections", "domain", "streams"),
}
"""The packages each suite measures (besides its own modules: :func:`measured_paths`)."""


def _imported(module: str) -> set[str]:
    """The modules of this package that ``benchmarks/<module>.py`` imports."""
    tree = ast.parse((BENCHMARKS / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "benchmarks":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("benchmarks."):
                found.add(node.module.removeprefix("benchmarks."))
    return {name for name in found if (BENCHMARKS / f"{name}.py").exists()}


def measured_paths(suite: str) -> list[str]:
    """The paths whose change makes ``suite``'s results stale: the packages it measures
    (:data:`MEASURED`), ``benchmarks/<suite>.py`` and every benchmark module it reaches
    by imports."""
    modules, todo = {suite}, [suite]
    while todo:
        for name in _imported(todo.pop()) - modules - _NOT_MEASURED:
            modules.add(name)
            todo.append(name)
    return [*MEASURED.get(suite, ()), *(f"benchmarks/{name}.py" for name in sorted(modules))]


@dataclass(frozen=True)
class Staleness:
    """One result file against the history of what it measures."""

    suite: str
    measured: str | None
    """The commit it was measured on (None: unknown)."""
    recorded: bool
    """Whether the file records that commit itself (else: the commit that last wrote it)."""
    changes: list[str]
    """Commits since then that changed the measured paths (``sha date subject``)."""

    @property
    def stale(self) -> bool:
        return self.measured is None or bool(self.changes)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def staleness(result: Path) -> Staleness:
    """How ``result`` (a ``results/SUITE.json``) stands against the measured paths."""
    suite = result.name.removesuffix(".json")
    commit = json.loads(result.read_text()).get("commit") or {}
    measured: str | None = commit.get("sha")
    recorded = measured is not None
    if measured is None:
        measured = _git("log", "-1", "--format=%H", "--", str(result.relative_to(REPOSITORY)))
        measured = measured or None
    paths = measured_paths(suite)
    changes: list[str] = []
    if measured is not None:
        log = _git("log", "--format=%h %cs %s", f"{measured}..HEAD", "--", *paths)
        changes = [line for line in log.splitlines() if line]
    return Staleness(suite, measured, recorded, changes)


def main() -> int:
    """Print one line per result file (and the changes since, for stale ones); exit 0."""
    for result in sorted(RESULTS.glob("*.json")):
        found = staleness(result)
        source = "recorded" if found.recorded else "from the commit that wrote the file"
        at = "unknown" if found.measured is None else f"{found.measured[:12]} ({source})"
        paths = ", ".join(measured_paths(found.suite))
        if not found.stale:
            print(f"fresh  {result.name}: measured at {at}; no change since to {paths}")
            continue
        print(
            f"STALE  {result.name}: measured at {at}; {len(found.changes)} commits since "
            f"changed {paths}:"
        )
        for change in found.changes[:5]:
            print(f"         {change}")
        if len(found.changes) > 5:
            print(f"         ... and {len(found.changes) - 5} more")
    problems = figure_problems()
    for problem in problems:
        print(f"STALE  {problem}")
    if not problems:
        print("fresh  README.md and docs/benchmarks.md: the figures and commits of results/*.json")
    return 0
