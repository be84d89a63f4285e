"""Errors raised by ``projections`` itself. Factored out to avoid import loops.

Database errors stay eventsourcing's PEP 249 classes (``OperationalError`` for a busy
or full file, ...), as ``streams`` raises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eventsourcing.persistence import MapperDeserialisationError

from domain.errors import NotFoundError

__all__ = [
    "EventNotProjectableError",
    "MissingCipherError",
    "ProjectionError",
    "UnknownEventError",
    "ViewDivergedError",
    "ViewNotBuiltError",
]


class ProjectionError(Exception):
    """Base of the errors ``projections`` raises itself."""


class EventNotProjectableError(ProjectionError):
    """One event cannot be applied: malformed, of an unsupported version, or encrypted
    without a way to decrypt it. The projector's error policy decides what happens."""


class UnknownEventError(EventNotProjectableError):
    """An event of an aggregate the projection follows, of a type it does not know.

    Skipping it silently would let the view drift from the aggregates, so it is an error
    (the policy decides): upgrade the projection, as a new version, to handle it.
    """


class MissingCipherError(ProjectionError, MapperDeserialisationError):
    """A replay met an encrypted or compressed event and was given no cipher settings.
    Also eventsourcing's :class:`~eventsourcing.persistence.MapperDeserialisationError`
    (what a tenant read without its key raises), so callers treat both alike: the
    command line says so in one line naming ``GRAPHSTORE_CIPHER_KEY`` (exit 5)."""


class ViewDivergedError(ProjectionError):
    """An event addresses a row the view does not have (or already has).

    The view no longer matches the stream: an earlier event was parked, or the tables
    were changed by hand. Replay the parked events, or rebuild the projection.
    """


class ViewNotBuiltError(ProjectionError, NotFoundError):
    """A read of views whose tables are not in the tenant file: no projector has built
    them there yet. Nothing was read or written.

    Also a :class:`domain.errors.NotFoundError` (``kind="view"``), so callers and the
    command line treat it as a named thing that does not exist (exit code 3). ``view``
    (the projection's name), ``tenant``, ``path`` (the tenant file) and ``tables`` (the
    missing ones) say what is missing; the message says how to build it.
    """

    def __init__(
        self,
        view: str,
        *,
        consumer: str,
        projection: str,
        tenant: str,
        path: str | Path,
        tables: Sequence[str],
    ) -> None:
        super().__init__(
            f"the {view} views of tenant {tenant!r} are not built yet: {path} has no "
            f"{', '.join(tables)} (the projector {consumer} has not run on it). Build them "
            f"with `graphstore projector catch-up --tenant {tenant}`, or keep them current "
            "with `graphstore projector run`; from Python: `with Runner(data_dir) as "
            f"runner: runner.wait_for({tenant!r}, head)`, or "
            f"`Projector.open(env, {projection}()).catch_up()`. Replay (history, as of an "
            "offset, export) reads the stream and needs no views.",
            kind="view",
            name=view,
        )
        self.view = view
        self.consumer = consumer
        self.tenant = tenant
        self.path = Path(path)
        self.tables = list(tables)
