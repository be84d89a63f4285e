"""How runs, calls and projector status look in a terminal (rich renderables)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from projections import FlowCall, FlowRun, ProjectorStatus

__all__ = ["format_ms", "run_tree", "runs_table", "status_table"]

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


def _plain_cells(*values: object) -> list[Text]:
    """Table cells shown as they are: a run id or an operation name holding ``[...]`` is
    not rich markup (and a cell skips the markup parser)."""
    return [Text(str(value)) for value in values]


def runs_table(runs: Sequence[FlowRun]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("run", "operation", "status", "started", "duration", "calls", "failed"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            Text(run.run_id),
            Text(run.root_operation),
            Text(run.status, style=_STYLE.get(run.status, "")),
            *_plain_cells(
                _when(run.started_at), format_ms(run.duration_ms), run.calls, run.failed_calls
            ),
        )
    return table


def status_table(statuses: Sequence[ProjectorStatus]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in ("tenant", "projector", "state", "position", "head", "lag", "lag s", "parked"):
        table.add_column(column)
    for status in statuses:
        table.add_row(
            *_plain_cells(
                status.tenant,
                status.projector,
                status.state,
                status.position,
                status.head,
                status.lag_events,
                f"{status.lag_seconds:.1f}",
                status.parked,
            )
        )
    return table
