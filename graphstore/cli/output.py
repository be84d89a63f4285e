"""How the command line shows results: tables for people, JSON for scripts.

rich's consoles are made on first use: a table printed where rich would add no style
needs none of rich (:class:`graphstore.cli.render.Grid`, issue 17).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from enum import Enum
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from graphstore.cli.render import Grid, is_terminal

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Output"]


def _plain(value: Any) -> Any:
    """Structs, dataclasses, enums, UUIDs, paths and times as JSON-ready values, so every
    ``--json`` output serializes whatever a command hands over (tests/cli/test_json.py)."""
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, UUID | PurePath):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


class Output:
    """Writes a command's result to stdout (and messages to stderr)."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # Piped output is not cut to 80 columns: ids must survive `| grep`.
        self.width = None if sys.stdout.isatty() else 240

    @functools.cached_property
    def out(self) -> Console:
        """rich's console on stdout."""
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True, width=self.width)

    @functools.cached_property
    def err(self) -> Console:
        """rich's console on stderr (messages)."""
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    def line(self, text: str) -> None:
        """One line of the command's own text on stdout, as it is: what rich prints for
        text with no markup and no ``:emoji:`` code, without importing rich."""
        sys.stdout.write(f"{text}\n")
        sys.stdout.flush()

    def show(self, grid: Grid) -> None:
        """A table on stdout: as plain lines where rich would print exactly those (not a
        terminal, UTF-8, the table fits), else through rich."""
        stdout = sys.stdout
        plain = self.width is not None and not is_terminal(stdout)
        utf = (stdout.encoding or "utf-8").lower().startswith("utf")  # else rich's ASCII box
        lines = grid.plain_lines(self.width) if plain and utf and self.width else None
        if lines is None:
            self.out.print(grid)
            return
        stdout.write("".join(f"{line}\n" for line in lines))
        stdout.flush()

    def data(self, value: Any) -> None:
        """One JSON document on stdout (``--json``)."""
        self.out.print_json(json.dumps(_plain(value)), highlight=False)

    def result(self, value: Any, human: str) -> None:
        """``value`` as JSON with ``--json``, else the ``human`` line."""
        if self.as_json:
            self.data(value)
        else:
            self.out.print(human, markup=False)

    def table(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str = ""
    ) -> None:
        """Rows as a table, or as a JSON list with ``--json``."""
        if self.as_json:
            self.data(list(rows))
            return
        if not rows:
            self.line(f"(no {title or 'rows'})")
            return
        grid = Grid(
            tuple(columns), tuple(tuple(_cell(row.get(c)) for c in columns) for row in rows)
        )
        if not title:
            self.show(grid)
            return
        table = grid.__rich__()
        table.title = title
        self.out.print(table)

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False)


def _cell(value: Any) -> tuple[str, str]:
    """A value as a table cell (no style), as it is: a ``[`` in a name is not rich
    markup."""
    if value is None:
        return ("", "")
    if isinstance(value, list | tuple | dict):
        return (json.dumps(_plain(value)), "")
    return (str(_plain(value)), "")
