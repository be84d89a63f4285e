"""A command imports only what it runs (issue 17 item 4): reading a status or a list of
runs loads neither the runner's file watcher nor the parts of the store it does not use.

Speed is measured by the benchmarks (`python -m benchmarks cli`); this checks what is
imported, which does not depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NOT_FOR_A_READ = {
    "watchdog",  # the runner's file events
    "jsonschema",  # compiling attribute schemas
    "jsonschema_rs",
    "cryptography",  # secrets
    "nats",
    "starlette",
    "uvicorn",
    "yaml",
    "projections.runner",
    "projections.call_intake",
    "projections.mirror",
    "domain.calls.tree",
    "domain.calls.ledger",
    "structlog",  # logs: imported with the first record (domain.logs, streams.logs)
    "pydantic",  # typer 0.29 coerces every option through it: pyproject pins 0.28
    "rich",  # a piped table is printed plainly (graphstore/cli/render.py, Grid)
    "domain.application",  # the local operator reads without opening a tenant's metagraph
    "domain.graphs",  # the graphs' event classes: only the identity ones are read
    "domain.graph_types",
}

IMPORTED = textwrap.dedent(
    """
    import json, sys
    from graphstore.cli import main
    sys.argv = ["graphstore", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)
    """
)


def _graphstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", IMPORTED, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("imports") / "data"
    for args in (
        ["init"],
        ["account", "create", "ops@example.com", "--name", "Ops", "--level", "admin"],
        ["tenant", "create", "acme", "--name", "Acme", "--owner", "ops@example.com"],
    ):
        done = _graphstore("--data-dir", str(data), *args)
        assert json.loads(done.stderr.splitlines()[-1])[0] == 0, done.stderr
    return data


FOR_RICH_HELP = {"rich", "markdown_it", "pygments", "typer.rich_utils"}
"""typer's rich help (boxes, markdown): the command line prints click's plain help."""


def test_help_imports_neither_rich_nor_the_logs() -> None:
    done = _graphstore("--help")
    code, modules = json.loads(done.stderr.splitlines()[-1])
    assert code == 0, done.stderr
    loaded = {m for m in modules if m.split(".")[0] in FOR_RICH_HELP | {"structlog", "pydantic"}}
    assert sorted(loaded) == []
    assert "typer.rich_utils" not in modules


@pytest.mark.parametrize("command", [["projector", "status"], ["runs", "list", "--tenant", "acme"]])
def test_a_read_command_imports_only_what_it_runs(data_dir: Path, command: list[str]) -> None:
    done = _graphstore("--data-dir", str(data_dir), *command)
    code, modules = json.loads(done.stderr.splitlines()[-1])
    assert code == 0, done.stderr
    loaded = {m for m in modules if m in NOT_FOR_A_READ or m.split(".")[0] in NOT_FOR_A_READ}
    assert sorted(loaded) == []
