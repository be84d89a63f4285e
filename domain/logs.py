"""The package's loggers: structlog around a stdlib logger, imported on first record.

Why: ``import structlog`` costs tens of milliseconds (with rich installed it loads
rich's tracebacks and pretty-printer), and most processes that import this package, a
command that reads a status or a list among them, never log a record. A
:class:`LazyLogger` is what ``structlog.wrap_logger(logging.getLogger(name))`` gives,
made when the first record at an enabled level arrives: while structlog is not
imported, a record below the stdlib logger's level is dropped without importing it
(the stdlib logger would drop it anyway). Where records go is unchanged: the stdlib
logger named after the module (README, "Logs"), silent until the application
configures logging.

``domain/logs.py`` and ``streams/logs.py`` are one file twice: the two bottom floors may
import nothing of each other (tests/test_architecture.py), and
tests/test_lazy_logging.py keeps the two copies identical.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

__all__ = ["LazyLogger", "wrap_logger"]

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _dropped(*_args: Any, **_kwargs: Any) -> None:
    """A record below the logger's level: nothing to do."""


def _drops(stdlib: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` would come to nothing: structlog not imported yet
    (so not configured by anyone, or configured by ``graphstore.logs`` with the stdlib
    loggers' threshold), and ``stdlib`` below that level. Once structlog is imported the
    application's structlog settings decide (its own filter, ``capture_logs``, ...)."""
    return "structlog" not in sys.modules and not stdlib.isEnabledFor(level)


class LazyLogger:
    """structlog's logger wrapped around ``stdlib``, made on first use; every
    attribute (``info``, ``bind``, ...) is structlog's."""

    def __init__(self, stdlib: logging.Logger) -> None:
        self.stdlib = stdlib
        """The stdlib logger the records go to."""
        self._wrapped: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._wrapped is None:
            level = _LEVELS.get(name)
            if level is not None and _drops(self.stdlib, level):
                return _dropped
            import structlog  # noqa: PLC0415 (on the first record: the module docstring)

            self._wrapped = structlog.wrap_logger(self.stdlib)
        return getattr(self._wrapped, name)


def wrap_logger(stdlib: logging.Logger) -> LazyLogger:
    """What ``wrap_logger(stdlib)`` gives, imported when first used."""
    return LazyLogger(stdlib)
