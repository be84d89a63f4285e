"""structlog, configured once for the command line and the demo (the applications).

Readable console lines when stderr is a terminal, JSON lines otherwise (for log
collectors). Logs go to stderr so that stdout stays the command's output. Library code
binds ``tenant``, ``consumer`` and ``offset``; this module never lets a secret through:
any field whose name looks like a credential is replaced before rendering.

The library configures nothing: ``streams``, ``domain`` and ``projections`` log through
structlog wrapped around stdlib loggers named after them (README, "Logs"), silent until
an application configures logging. :func:`configure` is that configuration: structlog's
processors render each record, and those loggers write the rendered line to the stream.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog

__all__ = ["LIBRARY_LOGGERS", "REDACTED", "configure", "redact_secrets"]

REDACTED = "[redacted]"
LIBRARY_LOGGERS: Final = ("streams", "domain", "projections", "graphstore")
"""The stdlib loggers the library's modules log through (and their children)."""

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
    """Configure structlog and the library's loggers for this process (idempotent; the
    last call wins).

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
    threshold = _LEVELS.get(level, logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _write_library_lines(stream, threshold)


class _RenderedLines(logging.StreamHandler[TextIO]):
    """Writes a library record as structlog rendered it: the message, nothing added."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter("%(message)s"))


def _write_library_lines(stream: TextIO, threshold: int) -> None:
    """Send the library loggers' records to ``stream`` (replacing an earlier call's)."""
    handler = _RenderedLines(stream)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _RenderedLines)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(threshold)
        logger.propagate = False  # the application's own root handlers would repeat them
