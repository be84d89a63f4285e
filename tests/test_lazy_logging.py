"""The library imports structlog with its first record, not with its modules (issue 17
item 4: a command that logs nothing does not pay for it), and the command line's
configuration still shapes that first record, whenever it comes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

LIBRARY_ONLY = textwrap.dedent(
    """
    import logging, sys
    import domain, streams.persistence, projections.projector
    from domain.application import log
    assert "structlog" not in sys.modules, "importing the library imported structlog"
    log.debug("below the level")  # the stdlib logger drops it: nothing to import
    assert "structlog" not in sys.modules, "a dropped record imported structlog"
    log.warning("a warning")
    assert "structlog" in sys.modules
    """
)

CONFIGURED_FIRST = textwrap.dedent(
    """
    import json, sys
    from graphstore import logs
    logs.configure("info", json_lines=True)
    assert "structlog" not in sys.modules, "configuring logs imported structlog"
    from domain.application import log
    log.info("first record", api_key="gsk_secret")
    import structlog
    assert structlog.is_configured()
    """
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_library_or_dropping_a_record_does_not_import_structlog() -> None:
    done = _python(LIBRARY_ONLY)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_a_configuration_made_before_structlog_is_imported_renders_the_first_record() -> None:
    done = _python(CONFIGURED_FIRST)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["event"] == "first record" and record["level"] == "info"
    assert record["api_key"] == "[redacted]" and "timestamp" in record


def test_the_two_floors_loggers_are_one_file_twice() -> None:
    """domain and streams may not import each other, so each holds a copy: the same."""
    root = Path(__file__).resolve().parent.parent
    assert (root / "domain" / "logs.py").read_bytes() == (root / "streams" / "logs.py").read_bytes()
