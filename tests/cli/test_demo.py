"""The main job (`./dev demo`) tells the whole story, on real files, and says so."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
    assert "5. run run-004 as of offset 77 (of 700)" in out  # 700: the ingest's audit record
    assert "9 calls: 4 completed, 0 failed, 0 aborted, 5 open" in out  # the past
    assert "9 calls: 7 completed, 2 failed, 0 aborted, 0 open" in out  # the present
    assert "every projector caught up: yes" in out
    assert "eve@example.com reading acme: refused, membership of the organization" in out
    assert "audit: tenant.write" in out and "call events ingested" in out
    assert "audit: access.denied" in out
    assert "GET /v1/tenants/acme/openapi.json: 27 operations" in out
    assert "POST .../ops/graphstore.runs.list {status: [failed]}: 14 runs" in out
    assert "Server-Sent Events, first id: 65" in out
    assert "verify: OK (2 files" in out  # the demo ends with a verify that passes
    # retention: the older finished runs archived, deleted and still found in the archive
    assert "retired 30 runs (run-001, run-002, run-003, ...) into" in out
    assert "run run-001 (archived)  completed" in out  # its call tree, from the archive
    assert "└── flows.run  run-001  completed" in out
    assert (data / "tenant-acme.db").exists() and (data / "system.db").exists()
    assert "tenant-acme.db: head 700, " in out
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
    assert again.returncode == 0 and "as of offset 77 (of 700)" in again.stdout


def test_the_demo_prints_how_to_open_its_live_view_with_a_key_that_works(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "graphstore.demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    found = re.search(
        r"in a browser, live: run `graphstore --data-dir (\S+) serve`, then open "
        r"http://127\.0\.0\.1:8080/#tenant=acme&key=(gsk_\S+)  \(Ada's demo key\)",
        done.stdout,
    )
    assert found, done.stdout[-600:]
    assert Path(found.group(1)) == data
    key = found.group(2)
    # The printed command and key, as a user would use them (another port: 8080 may be taken).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = ["serve", "--port", str(port), "--no-projectors"]
    server = subprocess.Popen(
        [sys.executable, "-m", "graphstore", "--data-dir", found.group(1), *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/tenants/acme/openapi.json",
            headers={"Authorization": f"Bearer {key}"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    assert answer.status == 200
                    break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
