"""How the command line shows results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
        width = None if sys.stdout.isatty() else 240
        self.out = Console(highlight=False, soft_wrap=True, width=width)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

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
            self.out.print(f"(no {title or 'rows'})", markup=False)
            return
        table = Table(title=title or None, show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        self.out.print(table)

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False)


def _cell(value: Any) -> Text:
    """A value as a table cell, as it is: a ``[`` in a name is not rich markup."""
    if value is None:
        return Text()
    if isinstance(value, list | tuple | dict):
        return Text(json.dumps(_plain(value)))
    return Text(str(_plain(value)))
