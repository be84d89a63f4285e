"""Bundled sample data: ``workflows.jsonl``, made by :mod:`graphstore.samples.generate`."""

from pathlib import Path

__all__ = ["WORKFLOWS"]

WORKFLOWS = Path(__file__).with_name("workflows.jsonl")
"""A few hundred calls in 40 workflow runs: nested calls, failures, aborts, subscriptions."""
