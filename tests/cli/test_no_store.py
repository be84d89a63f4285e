"""A data directory that holds no store (a mistyped `--data-dir`) is refused by every
command but `init`, naming the path, and nothing is created there."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphstore.cli import ExitCode
from tests.cli.test_cli import gs

COMMANDS = [
    ("tenant", "list"),
    ("account", "list"),
    ("whoami",),
    ("audit",),
    ("runs", "list", "--tenant", "acme"),
    ("graph-type", "list", "--tenant", "acme"),
    ("projector", "status"),
    ("relay", "status"),
    ("ops", "export"),
    ("tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"),
    ("serve", "--port", "0"),
]


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_every_command_but_init_refuses_a_directory_without_a_store(
    tmp_path: Path, where: str
) -> None:
    data = tmp_path / "dta"  # a typo of `data`
    if where == "empty":
        data.mkdir()
    for command in COMMANDS:
        done = gs(data, *command)
        assert done.returncode == ExitCode.NOT_FOUND, (command, done.stderr)
        assert done.stdout == ""
        assert done.stderr == (
            f"error: no store in {data} (no system.db): pass the right --data-dir (or "
            f"GRAPHSTORE_DATA_DIR), or create one there with `graphstore --data-dir {data} "
            "init`\n"
        ), command
        assert not data.exists() if where == "missing" else not any(data.iterdir())
    made = gs(data, "init")
    assert made.returncode == 0, made.stderr
    assert (data / "system.db").is_file()
    assert gs(data, "tenant", "list").stdout.strip() == "(no tenants)"
