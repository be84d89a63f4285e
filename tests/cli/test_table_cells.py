"""A table shows its values as they are: a name holding rich markup (``[bold]``) is
printed verbatim, not styled and cut down."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import gs


def test_a_name_that_looks_like_markup_is_printed_as_it_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert gs(data, "init").returncode == 0
    name = "[bold]Ada[/bold]"
    created = gs(data, "account", "create", "ada@example.com", "--name", name)
    assert created.returncode == 0, created.stderr
    listed = gs(data, "account", "list")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
