"""Shared fixtures: real tenant files in temporary directories, quiet structured logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@pytest.fixture
def tenant_file(tmp_path: Path) -> Iterator[Path]:
    """A path for a fresh tenant file (not yet created)."""
    yield tmp_path / "tenant-acme.db"
