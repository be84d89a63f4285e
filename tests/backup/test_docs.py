"""docs/backup.md's runbook runs as typed (from a directory holding a store at ``data``),
with the store's disk "lost" where the runbook says so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.backup.conftest import GRAPHSTORE, build_source

DOC = Path(__file__).resolve().parents[2] / "docs" / "backup.md"


def test_the_runbook_runs_as_typed(tmp_path: Path) -> None:
    found = re.search(
        r"<!-- runbook -->\n```sh\n(.*?)```\n<!-- /runbook -->", DOC.read_text(), re.S
    )
    assert found, "docs/backup.md lost its runbook block"
    build_source(tmp_path / "data", runs=5)
    ran = []
    for line in found.group(1).splitlines():
        if line.startswith("#"):
            if "disk is gone" in line:
                shutil.rmtree(tmp_path / "data")
            continue
        assert line.startswith(".venv/bin/graphstore "), line
        command = line.replace(".venv/bin/graphstore", GRAPHSTORE, 1)
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (line, done.stderr)
        ran.append(line)
    assert len(ran) == 6
    assert (tmp_path / "backups" / "tuesday" / "manifest.json").exists()
    assert (tmp_path / "data" / "tenant-acme.db").exists()


def test_the_command_line_pages_backup_and_restore_lines_run_as_typed(tmp_path: Path) -> None:
    readme = (DOC.parent / "cli.md").read_text()  # docs/cli.md, moved from the README
    lines = [
        line
        for line in readme.splitlines()
        if line.startswith((".venv/bin/graphstore backup", ".venv/bin/graphstore restore"))
    ]
    assert len(lines) == 2
    build_source(tmp_path / "data", runs=3)
    for line in lines:
        command = line.replace(".venv/bin/graphstore", GRAPHSTORE, 1)
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (line, done.stderr)
    assert (tmp_path / "data-restored" / "tenant-acme.db").exists()
