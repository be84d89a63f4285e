"""A table printed without rich is byte for byte what rich prints (issue 17 item 4): the
command line skips importing rich for a piped table, and nothing it prints changes."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from graphstore.cli.output import Output
from graphstore.cli.render import Grid

ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
STYLES = st.sampled_from(["", "bold red", "green"])


def _rich(grid: Grid, width: int = 240) -> str:
    """What rich prints for ``grid`` where it adds no style (piped, UTF-8)."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, highlight=False, soft_wrap=True, force_terminal=False
    )
    console.print(grid)
    return buffer.getvalue()


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    columns = tuple(draw(st.lists(ASCII, min_size=1, max_size=8)))
    rows = draw(
        st.lists(st.tuples(*(st.tuples(ASCII, STYLES) for _ in columns)), min_size=1, max_size=5)
    )
    return Grid(columns, tuple(rows))


@settings(max_examples=300, deadline=None)
@given(grids())
@example(Grid(("[a]",), ((("[b]", ""),),)))  # brackets are text, never rich markup
def test_plain_lines_are_the_lines_rich_prints(grid: Grid) -> None:
    lines = grid.plain_lines(240)
    if lines is None:  # only a table wider than the console is left to rich
        widths = [
            max(len(c), *(len(row[i][0]) for row in grid.rows)) for i, c in enumerate(grid.columns)
        ]
        assert sum(widths) + 3 * len(widths) - 1 > 240
        return
    assert "".join(f"{line}\n" for line in lines) == _rich(grid)


@pytest.mark.parametrize(
    "cell",
    ["名前", "tab\there", "two\nlines", "e\u0301", "\x1b[31m"],
)
def test_a_cell_rich_lays_out_otherwise_is_left_to_rich(cell: str) -> None:
    assert Grid(("name",), (((cell, ""),),)).plain_lines(240) is None


def test_no_rows_and_a_table_wider_than_the_console_are_left_to_rich() -> None:
    assert Grid(("a", "b"), ()).plain_lines(240) is None
    wide = Grid(("a", "b"), ((("x" * 120, ""), ("y" * 120, "")),))
    assert wide.plain_lines(240) is None
    assert wide.plain_lines(300) is not None


def test_output_prints_what_rich_prints_piped_or_through_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    for grid in (
        Grid(("run", "status"), ((("run-1", ""), ("failed", "bold red")),)),
        Grid(("run", "status"), ((("名前", ""), ("failed", "bold red")),)),  # through rich
    ):
        Output(as_json=False).show(grid)
        assert capsys.readouterr().out == _rich(grid)


def test_a_forced_terminal_gets_rich_styles(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    Output(as_json=False).show(Grid(("status",), ((("failed", "bold red"),),)))
    assert "\x1b[" in capsys.readouterr().out
