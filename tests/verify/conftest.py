"""A demo data directory (real files: one tenant with runs, system.db), made once per
session and copied for each test that damages or restores it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def make_demo(where: Path) -> Path:
    """``python -m graphstore.demo --data-dir WHERE`` (the README's demo, every run kept:
    no retention pass), files closed."""
    subprocess.run(
        [sys.executable, "-m", "graphstore.demo", "--data-dir", str(where), "--keep-every-run"],
        capture_output=True,
        check=True,
        timeout=300,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    return where


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture
def demo(demo_source: Path, tmp_path: Path) -> Path:
    """A copy of the demo's data directory, this test's own."""
    target = tmp_path / "data"
    shutil.copytree(demo_source, target)
    return target
