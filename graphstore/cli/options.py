"""What several command groups share beside the session: option and argument callbacks
that refuse a bad value (exit 2, one line) before anything runs, the common option
types, and the projections the command line knows by name.

Imports typer and nothing of the store: the groups register their options with it while
``graphstore --help`` is being built.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final
from uuid import UUID

import typer

if TYPE_CHECKING:
    from projections import Projection

__all__ = [
    "NATS_HELP",
    "MetricsPortOption",
    "StatusEveryOption",
    "TenantOption",
    "a_directory",
    "a_projector",
    "a_time",
    "an_id",
    "known_projections",
    "nats_urls",
    "one_of",
]

TenantOption = Annotated[str, typer.Option(help="The tenant's org id.")]
MetricsPortOption = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics.")
]
StatusEveryOption = Annotated[
    float,
    typer.Option(
        min=0, help="Print each tenant's status this often (seconds; default 0: never, quiet)."
    ),
]

NATS_HELP: Final = "NATS server URL(s), comma-separated (e.g. nats://127.0.0.1:4222)."
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def one_of(*choices: str) -> Callable[[Any], Any]:
    """An option callback refusing (exit 2, one line) a value not among ``choices``."""

    def check(value: Any) -> Any:
        for given in value if isinstance(value, list) else [value]:
            if given is not None and given not in choices:
                raise typer.BadParameter(f"{given!r} is not one of {', '.join(choices)}")
        return value

    return check


def a_directory(value: Path) -> Path:
    """An option callback refusing (exit 2) a data directory that is a file."""
    if value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{str(value)!r} is a file, not a directory")
    return value


def a_projector(value: str) -> str:
    """An argument callback refusing (exit 2) a projector that is none of the known ones:
    metagraph or flowgraph, optionally with its version (metagraph@v1)."""
    name, at, version = value.partition("@")
    if name not in ("metagraph", "flowgraph") or (
        at and not (version.startswith("v") and version[1:].isdigit())
    ):
        raise typer.BadParameter(
            f"{value!r} is not metagraph or flowgraph (optionally @v<N>, e.g. metagraph@v1)"
        )
    return value


def an_id(value: str | None) -> str | None:
    """An option or argument callback refusing (exit 2) an id that is no UUID (graph and
    key ids are the UUIDs the store printed when it made them)."""
    if value is not None:
        try:
            UUID(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not an id: pass the UUID the store printed when it made it"
            ) from None
    return value


def a_time(value: str | None) -> str | None:
    """An option callback refusing (exit 2) a value that is no ISO 8601 time or ms."""
    if value is not None and not value.isdigit():
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a time: use ISO 8601 (2026-11-21T10:00:00Z) or "
                "milliseconds since the epoch"
            ) from None
    return value


def nats_urls(value: str | None) -> str | None:
    """An option callback refusing (exit 2, one line) a ``--nats`` value that is not a
    comma-separated list of NATS server URLs (``nats://host:port``), before any connect."""
    from urllib.parse import urlsplit

    if value is None:
        return None
    urls = [url.strip() for url in value.split(",") if url.strip()]
    for url in urls or [value]:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in _NATS_SCHEMES or not parts.hostname:
            raise typer.BadParameter(
                f"{url!r} is not a NATS server URL: use nats://HOST:PORT "
                f"(schemes {', '.join(_NATS_SCHEMES)}), comma-separated for several"
            )
    return value


def known_projections() -> dict[str, type[Projection]]:
    """The projections the command line knows, by name."""
    from projections import FlowgraphProjection, MetagraphProjection

    return {"metagraph": MetagraphProjection, "flowgraph": FlowgraphProjection}
