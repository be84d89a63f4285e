"""Shared fixtures: real tenant files in temporary directories, quiet structured logs."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

# A suite started as a background job of a non-interactive shell (`./dev test &`) inherits
# SIGINT ignored, and so would every process it starts: the tests that stop a runner with
# Ctrl-C would wait for ever. Handled here, SIGINT is back to its default in each child
# (exec resets a handled signal, never an ignored one).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def tenant_file(tmp_path: Path) -> Iterator[Path]:
    """A path for a fresh tenant file (not yet created)."""
    yield tmp_path / "tenant-acme.db"
