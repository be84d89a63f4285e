"""Logs: JSON lines when not on a terminal, on stderr, context bound, never a secret."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from graphstore import logs


def graphstore(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put structlog's configuration and the library's loggers back as they were."""
    saved = structlog.get_config()
    loggers = [logging.getLogger(name) for name in logs.LIBRARY_LOGGERS]
    before = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    structlog.configure(**saved)
    for lg, (handlers, level, propagate) in zip(loggers, before, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def test_piped_logs_are_json_lines_on_stderr_and_hold_no_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    wrong = "gsk_" + "s3cret" * 7 + "x"
    assert graphstore(data, "init").returncode == 0
    done = graphstore(data, "--log-level", "info", "--api-key", wrong, "whoami")
    assert done.returncode == 4
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    refused = [r for r in records if r.get("event") == "authentication refused"]
    assert refused and refused[0]["level"] == "info" and "timestamp" in refused[0]
    assert wrong not in done.stderr and wrong not in done.stdout


def test_the_library_records_reach_the_command_lines_stderr_as_json_at_its_level(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert graphstore(data, "init").returncode == 0
    quiet = graphstore(data, "tenant", "list")  # --log-level warning: no debug records
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    done = graphstore(data, "--log-level", "debug", "tenant", "list")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    opened = [r for r in records if r["event"] == "opened"]  # streams' own logger
    assert opened and opened[0]["level"] == "debug" and "timestamp" in opened[0]
    assert str(data / "system.db") in {r["path"] for r in opened}
    assert "opened" not in done.stdout


@pytest.mark.usefixtures("restored_logging")
def test_library_records_are_rendered_and_redacted_like_the_command_lines() -> None:
    out = io.StringIO()
    logs.configure("debug", json_lines=True, stream=out)
    library_log = structlog.wrap_logger(logging.getLogger("streams.test"))
    library_log.debug("opened", path="x.db", api_key="gsk_abc")
    record = json.loads(out.getvalue())
    assert (record["event"], record["level"], record["path"]) == ("opened", "debug", "x.db")
    assert record["api_key"] == logs.REDACTED and "gsk_abc" not in out.getvalue()


@pytest.mark.usefixtures("restored_logging")
def test_credential_fields_are_redacted_and_context_is_bound() -> None:
    out = io.StringIO()
    logs.configure("debug", json_lines=True, stream=out)
    log = structlog.get_logger("test").bind(tenant="acme", consumer="flowgraph@v1")
    log.info("applied", offset=42, api_key="gsk_abc", password="hunter2", secret_value="x")
    record = json.loads(out.getvalue())
    assert (record["tenant"], record["consumer"], record["offset"]) == ("acme", "flowgraph@v1", 42)
    assert record["api_key"] == record["password"] == record["secret_value"] == logs.REDACTED
    assert "hunter2" not in out.getvalue() and "gsk_abc" not in out.getvalue()


@pytest.mark.usefixtures("restored_logging")
def test_console_rendering_when_interactive() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    logs.configure("info", stream=out)
    structlog.get_logger("test").info("hello", tenant="acme")
    text = out.getvalue()
    assert "hello" in text and "tenant" in text and not text.lstrip().startswith("{")
