"""A command builds only its own group (issue 17 item 4): ``main`` gives typer the app
with the group module that adds the command named, and the full app otherwise, so each
group module must add exactly the commands the table in :mod:`graphstore.cli.entry`
names for it. Help and errors are the same either way (tests/cli/test_cli.py,
tests/cli/test_bad_values.py run them through ``main``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import typer.main

from graphstore.cli import app
from graphstore.cli.entry import GROUPS, build_app, command_named


def test_the_table_names_every_command_of_the_app_once() -> None:
    named = [name for _, names in GROUPS for name in names]
    assert sorted(named) == sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [name for _, names in GROUPS for name in names])
def test_a_command_alone_is_the_same_command_as_in_the_full_app(name: str) -> None:
    full = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    alone = typer.main.get_command(build_app(name)).commands[name]  # type: ignore[attr-defined]
    assert alone.help == full.help
    assert getattr(alone.callback, "__name__", None) == getattr(full.callback, "__name__", None)
    assert sorted(getattr(alone, "commands", {})) == sorted(getattr(full, "commands", {}))
    assert [p.name for p in alone.params] == [p.name for p in full.params]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--help"], None),
        ([], None),
        (["runs", "list", "--tenant", "acme"], "runs"),
        (["--data-dir", "runs", "projector", "status"], "projector"),
        (["--json", "--api-key", "k", "--log-level", "debug", "init"], "init"),
        (["--data-dir=d", "tail", "--tenant", "a"], "tail"),
        (["nope"], "nope"),
    ],
)
def test_the_command_named_skips_the_global_options_and_their_values(
    argv: list[str], named: str | None
) -> None:
    assert command_named(argv) == named


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
    ("argv", "group"),
    [
        (["runs", "list", "--help"], "runs"),
        (["--json", "projector", "status", "--help"], "projector"),
    ],
)
def test_a_command_imports_no_other_group_module(argv: list[str], group: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Usage" in done.stdout, done.stderr
    modules = set(json.loads(done.stderr.splitlines()[-1]))
    groups = {module for module, _ in GROUPS}
    assert sorted(
        m for m in modules if m.rpartition(".")[2] in groups and m.startswith("graphstore.cli.")
    ) == [f"graphstore.cli.{group}"]
