"""Bundled sample data: ``workflows.jsonl``, made by :mod:`graphstore.samples.generate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from domain.calls import OperationType

__all__ = ["OPERATION_TYPES", "WORKFLOWS"]

WORKFLOWS: Final = Path(__file__).with_name("workflows.jsonl")
"""A few hundred calls in 40 workflow runs: nested calls, failures, aborts, subscriptions."""

OPERATION_TYPES: Final[dict[str, OperationType]] = {"feed.watch": "subscription"}
"""The sample's operation types that are not queries (``ingest(operation_types=...)``);
:mod:`graphstore.samples.generate` writes the sample with the same table."""
