"""structlog, configured once for the command line and the demo (the applications).

Readable console lines when stderr is a terminal, JSON lines otherwise (for log
collectors). Logs go to stderr so that stdout stays the command's output. Library code
binds ``tenant``, ``consumer`` and ``offset``; this module never lets a secret through:
any field whose name looks like a credential is replaced before rendering.

The library configures nothing: ``streams``, ``domain`` and ``projections`` log through
structlog wrapped around stdlib loggers named after them (README, "Logs"), silent until
an application configures logging. :func:`configure` is that configuration: structlog's
processors render each record, and those loggers write the rendered line to the stream.

It configures structlog without importing it: ``import structlog`` costs tens of
milliseconds (rich's tracebacks come with it), and a command that logs nothing should
not pay them (issue 17 item 4). The library's loggers import structlog with their first
record (``domain.logs``, ``streams.logs``); :func:`configure` applies its settings at
once if structlog is already imported, else right after whoever imports it first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import re
import sys
from collections.abc import Callable, MutableMapping, Sequence
from types import ModuleType
from typing import Any, Final, TextIO

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

    ``json_lines`` defaults to "stderr is not a terminal". structlog's part waits for
    structlog's first import (the module docstring says why).
    """
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    threshold = _LEVELS.get(level, logging.WARNING)
    _write_library_lines(stream, threshold)
    _ConfigureOnImport.cancel()
    settings = _StructlogSettings(threshold, json_lines, stream)
    if "structlog" in sys.modules:
        settings.apply()
    else:
        sys.meta_path.insert(0, _ConfigureOnImport(settings))


class _StructlogSettings:
    """structlog's configuration for :func:`configure`: render, redact, filter."""

    def __init__(self, threshold: int, json_lines: bool, stream: TextIO) -> None:
        self.threshold = threshold
        self.json_lines = json_lines
        self.stream = stream

    def apply(self) -> None:
        import structlog  # noqa: PLC0415 (imported by now: see the module docstring)

        renderer: Any = (
            structlog.processors.JSONRenderer()
            if self.json_lines
            else structlog.dev.ConsoleRenderer(colors=self.stream.isatty())
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
            wrapper_class=structlog.make_filtering_bound_logger(self.threshold),
            logger_factory=structlog.PrintLoggerFactory(file=self.stream),
            cache_logger_on_first_use=False,
        )


class _ConfigureOnImport(importlib.abc.MetaPathFinder):
    """An import hook that applies structlog's settings right after ``structlog`` is
    first imported, then leaves ``sys.meta_path``."""

    def __init__(self, settings: _StructlogSettings) -> None:
        self.settings = settings

    @classmethod
    def cancel(cls) -> None:
        """Remove a hook an earlier :func:`configure` left (the last call wins)."""
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, cls)]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "structlog":
            return None
        self.cancel()
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenApply(spec.loader, self.settings.apply)
        return spec


class _ThenApply(importlib.abc.Loader):
    """A module's own loader, then ``after()`` once the module has run."""

    def __init__(self, loader: importlib.abc.Loader, after: Callable[[], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.after()

    def __getattr__(self, name: str) -> Any:
        """The rest (``get_source``, ``get_resource_reader``, ...) is the loader's."""
        return getattr(self.loader, name)


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
