"""A quick front door: help imports the command line's framework and nothing of the store.

Speed itself is measured by the benchmarks (`python -m benchmarks cli`); this checks what
is imported, which does not depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = {
    "domain",
    "streams",
    "projections",
    "eventsourcing",
    "honker",
    "structlog",
    "jsonschema",
    "yaml",
    "watchdog",
    "cryptography",
    "graphstore.store",
    "graphstore.logs",
    "graphstore.cli.render",
}

IMPORTED = textwrap.dedent(
    """
    import json, sys
    from graphstore.cli import main
    sys.argv = ["graphstore", *sys.argv[1:]]
    try:
        main()
    except SystemExit:
        pass
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
    """
)


@pytest.mark.parametrize(
    "command", [["--help"], ["projector", "--help"], ["projector", "status", "--help"]]
)
def test_help_imports_nothing_of_the_store(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED, *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Usage" in done.stdout, done.stderr
    modules = set(json.loads(done.stderr.splitlines()[-1]))
    assert sorted(HEAVY & modules) == []


def test_importing_the_package_loads_the_store_on_first_use() -> None:
    code = (
        "import sys, graphstore; assert 'graphstore.store' not in sys.modules; "
        "assert graphstore.open is graphstore.open_store; "
        "assert graphstore.Store.__module__ == 'graphstore.store'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
