"""How runs, calls and projector status look in a terminal.

A table is a :class:`Grid` of plain cells: :class:`~graphstore.cli.output.Output` prints
it without rich where rich would print it without styles (piped, UTF-8, fits the width:
the same bytes, tests/cli/test_grid.py), and through rich (colours, narrow terminals,
wide characters) otherwise; rich is imported only then (issue 17: a command imports only
what it runs). The call tree is rich's.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    from projections import FlowCall, FlowRun, ProjectorStatus

__all__ = ["Grid", "format_ms", "is_terminal", "run_tree", "runs_table", "status_table"]

_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "bold red",
    "aborted": "magenta",
}


def format_ms(ms: int | None) -> str:
    """A duration in ms as ``850 ms`` or ``12.3 s``; empty for None."""
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S")


def _label(call: FlowCall) -> Text:
    from rich.text import Text

    text = Text()
    text.append(call.operation, style="bold")
    text.append(f"  {call.request_id}  ", style="dim")
    text.append(call.status, style=_STYLE.get(call.status, ""))
    if call.duration_ms is not None:
        text.append(f"  {format_ms(call.duration_ms)}")
    if call.error_code:
        text.append(f"  {call.error_code}: {call.error_message or ''}", style="red")
    return text


def run_tree(run: FlowRun, calls: Sequence[FlowCall], *, title: str = "") -> Tree:
    """A run's calls (in tree order, as the flowgraph queries give them) as a tree."""
    from rich.text import Text
    from rich.tree import Tree

    head = Text(title or f"run {run.run_id}  ")
    head.append(run.status, style=_STYLE.get(run.status, ""))
    head.append(
        f"  {run.calls} calls: {run.completed_calls} completed, {run.failed_calls} failed, "
        f"{run.aborted_calls} aborted, {run.pending_calls + run.running_calls} open"
    )
    if run.duration_ms is not None:
        head.append(f"  {format_ms(run.duration_ms)}")
    tree = Tree(head)
    branches: dict[str, Tree] = {}
    for call in calls:
        parent = branches.get(call.parent or "")
        branches[call.request_id] = (parent or tree).add(_label(call))
    return tree


@dataclass(frozen=True)
class Grid:
    """A table of text cells, each with its rich style (``""``: none): what the command
    line prints as rich's ``Table(show_edge=False, header_style="bold")`` would."""

    columns: tuple[str, ...]
    rows: tuple[tuple[tuple[str, str], ...], ...]

    def __rich__(self) -> Table:
        """The rich table (for a terminal, and for ``Console.print``)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, header_style="bold")
        for column in self.columns:
            table.add_column(Text(column))  # text, not markup: "[a]" is printed as is
        for row in self.rows:
            table.add_row(*(Text(text, style=style) for text, style in row))
        return table

    def plain_lines(self, width: int) -> list[str] | None:
        """The lines rich prints for this table without styles at ``width`` columns
        (UTF-8), or None where rich's layout would differ from the plain one: a cell
        that is not printable ASCII (wide characters, tabs, new lines), more width than
        ``width``, or no rows."""
        cells = [*self.columns, *(text for row in self.rows for text, _ in row)]
        if not self.rows or not all(cell.isascii() and cell.isprintable() for cell in cells):
            return None
        widths = [len(column) for column in self.columns]
        for row in self.rows:
            widths = [max(w, len(text)) for w, (text, _) in zip(widths, row, strict=True)]
        if sum(widths) + 3 * len(widths) - 1 > width:
            return None

        def line(texts: Sequence[str], rule: str) -> str:
            return rule.join(f" {text.ljust(w)} " for text, w in zip(texts, widths, strict=True))

        return [
            line(self.columns, "\u2503"),  # ┃
            "\u2547".join("\u2501" * (w + 2) for w in widths),  # ━ and ╇
            *(line([text for text, _ in row], "\u2502") for row in self.rows),  # │
        ]


def is_terminal(stream: TextIO) -> bool:
    """Whether rich would treat ``stream`` as a terminal (and style its output): as
    ``rich.console.Console.is_terminal`` decides, from ``TTY_COMPATIBLE``,
    ``FORCE_COLOR`` and ``isatty``."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return stream.isatty()
    except ValueError:
        return False


def _plain(*values: object) -> tuple[tuple[str, str], ...]:
    """Cells shown as they are: a run id or an operation name holding ``[...]`` is not
    rich markup."""
    return tuple((str(value), "") for value in values)


def runs_table(runs: Sequence[FlowRun]) -> Grid:
    return Grid(
        ("run", "operation", "status", "started", "duration", "calls", "failed"),
        tuple(
            (
                *_plain(run.run_id, run.root_operation),
                (run.status, _STYLE.get(run.status, "")),
                *_plain(
                    _when(run.started_at), format_ms(run.duration_ms), run.calls, run.failed_calls
                ),
            )
            for run in runs
        ),
    )


def status_table(statuses: Sequence[ProjectorStatus]) -> Grid:
    return Grid(
        ("tenant", "projector", "state", "position", "head", "lag", "lag s", "parked"),
        tuple(
            _plain(
                status.tenant,
                status.projector,
                status.state,
                status.position,
                status.head,
                status.lag_events,
                f"{status.lag_seconds:.1f}",
                status.parked,
            )
            for status in statuses
        ),
    )
