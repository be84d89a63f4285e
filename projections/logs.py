"""The package's loggers: :func:`streams.logs.wrap_logger`, structlog imported on first
record (see there: a process that logs nothing does not pay for ``import structlog``)."""

from __future__ import annotations

from streams.logs import LazyLogger, wrap_logger

__all__ = ["LazyLogger", "wrap_logger"]
