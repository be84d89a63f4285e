"""Every example in README.md and docs/*.md runs as written, from a fresh clone's root.

A fenced block's info string says what it is. ``python`` and ``sh`` blocks are run; every
other kind (``text``, ``console-output``, ``json``, ``jsonl``, ``yaml``) is shown, never
run. A ``python`` or ``sh`` block that is not run here is marked just above its fence:
``<!-- run by tests/x/test_y.py -->`` (a test of its own runs it, on a store it builds;
the file must exist and name the document) or ``<!-- not run: why -->`` (a command that
runs for minutes). A fence without an info string, or of another kind, fails the check,
so no block is left neither run nor marked.

Each document runs in a sandbox of its own: a temporary directory holding a link to every
top-level entry a clone has (those git tracks) and to ``.venv`` (so
``.venv/bin/graphstore``, ``examples/`` and ``graphstore/samples/`` are where a clone has
them), and whatever the blocks write. The
blocks of one document run in order and build on each other: ``sh`` blocks in
``bash -euo pipefail`` (anything they leave running is killed after the block), ``python``
blocks in one interpreter sharing their names, as a reader pasting them one after the
other would. ``.venv/bin`` is not on the PATH, as in a fresh shell. The sandbox's driver is
this module run as a script.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "sh"}
SHOWN = {"text", "console-output", "json", "jsonl", "yaml"}
NOT_RUN = re.compile(r"<!-- not run: [^>]+ -->\s*$")
RUN_BY = re.compile(r"<!-- run by (tests/\S+\.py) -->\s*$")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its kind, its text, where it starts, and the marks above it."""

    kind: str
    code: str
    line: int
    marks: tuple[str, ...]

    @property
    def marked(self) -> bool:
        """Whether it is marked as run elsewhere or not run."""
        return any(NOT_RUN.match(mark) or RUN_BY.match(mark) for mark in self.marks)


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index] != "```":
            body.append(lines[index])
            index += 1
        marks: list[str] = []
        for line in reversed(lines[:start]):  # the HTML comments just above the fence
            if line.strip().startswith("<!--"):
                marks.append(line.strip())
            elif line.strip():
                break
        found.append(Block(opening.group(1), "\n".join(body) + "\n", start + 1, tuple(marks)))
        index += 1
    return found


def runnable(path: Path) -> list[Block]:
    """The blocks of a document that are run: python and sh, not marked."""
    return [block for block in blocks_of(path) if block.kind in RUN and not block.marked]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- the driver (runs in the sandbox as ``python tests/test_readme.py DOC``) -------------


def _run_document(document: Path) -> int:
    namespace: dict[str, object] = {"__name__": "__main__"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GRAPHSTORE_", "HONKER_", "PERSISTENCE_"))
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if ".venv" not in part
    )
    for block in runnable(document):
        print(f"--- {_name(document)}:{block.line} ({block.kind})", flush=True)
        if block.kind == "python":
            exec(compile(block.code, f"{_name(document)}:{block.line}", "exec"), namespace)
            sys.stdout.flush()
            continue
        shell = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", block.code], env=env, start_new_session=True
        )
        try:
            code = shell.wait(timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)  # what the block left running
        if code != 0:
            print(f"{_name(document)}:{block.line}: exit status {code}", file=sys.stderr)
            return 1
    return 0


# ---- the checks -------------------------------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_every_block_is_run_or_marked_as_shown(document: Path) -> None:
    for block in blocks_of(document):
        where = f"{_name(document)}:{block.line}"
        assert block.kind in RUN | SHOWN, (
            f"{where}: a fence needs an info string: python or sh (run) or one of "
            f"{sorted(SHOWN)} (shown); mark a python/sh block run elsewhere or not run"
        )
        for mark in block.marks:
            run_by = RUN_BY.match(mark)
            if run_by:
                test = ROOT / run_by.group(1)
                assert test.is_file(), f"{where}: {run_by.group(1)} does not exist"
                assert document.name in test.read_text(), f"{where}: {test} never reads it"


def test_marks_are_read_from_the_comments_just_above_a_fence(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not run: minutes -->\n```sh\nsleep 600\n```\n\n"
        "<!-- run by tests/test_readme.py -->\n<!-- label -->\n\n```python\nx = 1\n```\n"
        "<!-- not run: not this block's -->\ntext between\n```sh\ntrue\n```\n"
        "```\nbare\n```\n"
    )
    blocks = blocks_of(page)
    assert [(b.kind, b.marked, b.line) for b in blocks] == [
        ("sh", True, 2),
        ("python", True, 9),
        ("sh", False, 14),
        ("", False, 17),
    ]
    assert runnable(page) == [blocks[2]]  # the bare fence is refused by the check above


def test_every_document_referenced_exists_and_the_index_lists_every_document() -> None:
    names = {path.name for path in (ROOT / "docs").glob("*.md")}
    for document in DOCUMENTS:
        for name in re.findall(r"\b([a-z][a-z0-9-]*\.md)\b", document.read_text()):
            if name in {"README.md", "style.md", "architecture.md"}:
                continue
            assert name in names, f"{_name(document)} names {name}, which is not in docs/"
    index = (ROOT / "docs" / "README.md").read_text()
    for name in sorted(names - {"README.md"}):
        assert f"({name})" in index, f"docs/README.md does not list {name}"
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 220, "the README is for a newcomer's first five minutes"


def test_the_readme_and_the_benchmarks_page_name_every_suite() -> None:
    from benchmarks.__main__ import SUITES  # noqa: PLC0415 - only this test

    listed = re.search(r"`\./dev bench ([a-z|]+) \[--quick\]`", (ROOT / "README.md").read_text())
    assert listed, "the README lost its ./dev bench line"
    assert sorted(listed.group(1).split("|")) == sorted(SUITES)
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert all(f"| `{suite}` |" in page for suite in SUITES)


def _shipped() -> set[str]:
    """The repository's top-level entries a clone has (tracked by git), and ``.venv``."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:  # not a git checkout: everything but data directories
        return {e.name for e in ROOT.iterdir() if e.name != ".git" and "data" not in e.name}
    return {line.split("/", 1)[0] for line in listed.stdout.splitlines()} | {".venv"}


def _sandbox(into: Path) -> None:
    for name in sorted(_shipped()):
        (into / name).symlink_to(ROOT / name)


def _run_in_sandbox(document: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="docs-") as directory:
        sandbox = Path(directory)
        _sandbox(sandbox)
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(document)],
            cwd=sandbox,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    return done.stdout + done.stderr


RUNNABLE = [document for document in DOCUMENTS if runnable(document)]


# What some documents' blocks must print (beyond exiting 0): lines, or patterns with the
# number of lines they must match.
PRINTS: dict[str, list[str]] = {
    "README.md": ["2 {'name': 'Alan'}"],
    "docs/python.md": [
        "1 {'name': 'Ada'}",
        "completed",
        "read needs membership of the organization (ask its owner or an admin to add the account)",
        "failed 9 2",
    ],
    "docs/operations.md": ["{'name': 'Ada'}", "NOT_FOUND 404"],
    "docs/calls.md": ["pending", "failed"],
    "docs/event-target.md": ["completed"],
    "docs/secrets.md": ["True", "s3cret"],
}
CONTAINS: dict[str, list[str]] = {
    "README.md": ["failed", '"runs":[{', "event: change", "key=gsk_"],
    "docs/cli.md": [
        "graph type social defined in acme: 1 node types, 1 edge types",
        "rebuilt on acme",
    ],
    "docs/http.md": [
        '"applied":622',
        '"runs":[{',
        '"status":"failed"',
        "event: change",
        '"runId":"run-004"',
        '"operationId"',
        'graphstore_projector_lag_events{projector="flowgraph@v1",tenant="acme"}',
        "http://127.0.0.1:8080/#tenant=acme&key=gsk_",
    ],
    "docs/scale.md": ["'run-004'", "failed"],
    "docs/archive.md": [
        "warning: run run-004 is archived",
        "restored run run-004 (failed) into acme",
        "is live in acme",
        "failed 18 call.requested",
    ],
}
MATCHES: dict[str, list[tuple[str, int]]] = {
    "docs/cli.md": [(r"^\d+  \S+  CallAdded .*call=run-004", 3)],  # tail --count 3
}


@pytest.mark.parametrize("document", RUNNABLE, ids=_name)
def test_the_examples_run_as_written(document: Path) -> None:
    out = _run_in_sandbox(document)
    lines, name = out.splitlines(), _name(document)
    for expected in PRINTS.get(name, []):
        assert expected in lines, out[-4000:]
    for part in CONTAINS.get(name, []):
        assert part in out, out[-4000:]
    for pattern, count in MATCHES.get(name, []):
        assert len(re.findall(pattern, out, re.M)) == count, out[-4000:]


if __name__ == "__main__":
    sys.path[0] = ""  # as ``python -c`` from the sandbox: its packages, not tests/'s
    sys.exit(_run_document(Path(sys.argv[1])))
