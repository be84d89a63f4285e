"""The main job (`./dev demo`) tells the whole story, on real files, and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_ingests_projects_travels_in_time_and_reports_status(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "graphstore.demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "tenants: ['acme']" in out
    assert "622 call events -> 651 call changes in 1 transaction" in out
    assert "4. run run-004, now" in out and "VALIDATION_ERROR" in out
    assert "5. run run-004 as of offset 112 (of 1015)" in out  # 1015: the ingest's audit record
    assert "9 calls: 4 completed, 0 failed, 0 aborted, 5 open" in out  # the past
    assert "9 calls: 7 completed, 2 failed, 0 aborted, 0 open" in out  # the present
    assert "every projector caught up: yes" in out
    assert "eve@example.com reading acme: refused, membership of the organization" in out
    assert "audit: tenant.write" in out and "call events ingested" in out
    assert "audit: access.denied" in out
    assert "GET /v1/tenants/acme/openapi.json: 22 operations" in out
    assert "POST .../ops/graphstore.runs.list {status: [failed]}: 14 runs" in out
    assert "Server-Sent Events, first id: 92" in out
    assert "verify: OK (2 files" in out  # the demo ends with a verify that passes
    assert (data / "tenant-acme.db").exists() and (data / "system.db").exists()
    assert "tenant-acme.db: head 1015, " in out
    assert f"backup: 2 files in {tmp_path / 'demo-backup'} (manifest.json)" in out
    # Run again: the directory is made anew, and the story is the same.
    again = subprocess.run(
        [sys.executable, "-m", "graphstore.demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert again.returncode == 0 and "as of offset 112 (of 1015)" in again.stdout
