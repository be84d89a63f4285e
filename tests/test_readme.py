"""The README's Python example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_quickstart_runs_and_prints_what_it_claims(tmp_path: Path) -> None:
    text = README.read_text()
    found = re.search(r"<!-- quickstart -->\n```python\n(.*?)```\n<!-- /quickstart -->", text, re.S)
    assert found, "README lost its quickstart block"
    done = subprocess.run(
        [sys.executable, "-c", found.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "1 {'name': 'Ada'}",
        "completed",
        "read needs membership of the organization (ask its owner or an admin to add the account)",
    ]
    assert (tmp_path / "data-quickstart" / "tenant-acme.db").exists()


def test_the_projections_example_runs_and_prints_what_it_claims(tmp_path: Path) -> None:
    text = README.read_text()
    found = re.search(
        r"<!-- projections -->\n```python\n(.*?)```\n<!-- /projections -->", text, re.S
    )
    assert found, "README lost its projections block"
    done = subprocess.run(
        [sys.executable, "-c", found.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    now, then, exported, last = done.stdout.splitlines()
    assert now == "failed 9 2"
    assert then.startswith("running ") and int(then.split()[1]) > 0
    assert int(exported) > 9
    assert last == "failed"  # the run's last change: its root call failed
