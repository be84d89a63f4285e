"""Logs: JSON lines when not on a terminal, on stderr, context bound, never a secret."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import structlog

from graphstore import logs


def test_piped_logs_are_json_lines_on_stderr_and_hold_no_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wrong = "gsk_" + "s3cret" * 7 + "x"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphstore",
            "--data-dir",
            str(data),
            "--log-level",
            "info",
            "--api-key",
            wrong,
            "whoami",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    refused = [r for r in records if r.get("event") == "authentication refused"]
    assert refused and refused[0]["level"] == "info" and "timestamp" in refused[0]
    assert wrong not in done.stderr and wrong not in done.stdout


def test_credential_fields_are_redacted_and_context_is_bound() -> None:
    out = io.StringIO()
    logs.configure("debug", json_lines=True, stream=out)
    try:
        log = structlog.get_logger("test").bind(tenant="acme", consumer="flowgraph@v1")
        log.info("applied", offset=42, api_key="gsk_abc", password="hunter2", secret_value="x")
    finally:
        logs.configure("warning")
    record = json.loads(out.getvalue())
    assert (record["tenant"], record["consumer"], record["offset"]) == ("acme", "flowgraph@v1", 42)
    assert record["api_key"] == record["password"] == record["secret_value"] == logs.REDACTED
    assert "hunter2" not in out.getvalue() and "gsk_abc" not in out.getvalue()


def test_console_rendering_when_interactive() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    logs.configure("info", stream=out)
    try:
        structlog.get_logger("test").info("hello", tenant="acme")
    finally:
        logs.configure("warning")
    text = out.getvalue()
    assert "hello" in text and "tenant" in text and not text.lstrip().startswith("{")
