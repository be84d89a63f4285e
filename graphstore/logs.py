"""structlog, configured once for the command line and the demo.

Readable console lines when stderr is a terminal, JSON lines otherwise (for log
collectors). Logs go to stderr so that stdout stays the command's output. Library code
binds ``tenant``, ``consumer`` and ``offset``; this module never lets a secret through:
any field whose name looks like a credential is replaced before rendering.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure", "redact_secrets"]

REDACTED = "[redacted]"
_SECRET_FIELD = re.compile(
    r"(secret|passw|api[_-]?key|token|cipher[_-]?key|private|credential_value)", re.I
)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: replace the value of every credential-like field."""
    for name in list(event_dict):
        if name != "event" and _SECRET_FIELD.search(name):
            event_dict[name] = REDACTED
    return event_dict


def configure(
    level: str = "warning", *, json_lines: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog for this process (idempotent; the last call wins).

    ``json_lines`` defaults to "stderr is not a terminal".
    """
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.WARNING)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
