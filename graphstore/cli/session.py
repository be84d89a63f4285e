"""The bottom of the command line: the exit codes, the :class:`Session` every command
shares, and :func:`run_action`, which runs a command's action and maps the store's
errors to one line on stderr and an exit code (the table in :mod:`graphstore.cli`).

Every command group imports this module; it imports no group. It loads typer only:
the store, the output and the logs are loaded when a command first needs them, so a
``--help`` needs none of them.
"""

# The imports inside functions are on purpose: a command loads what it runs.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from domain import Metagraph, Principal
    from graphstore.cli.output import Output
    from graphstore.data import DataDirectory
    from graphstore.store import Store

__all__ = ["ExitCode", "Session", "run_action", "session_of"]

_R = TypeVar("_R")


class ExitCode(IntEnum):
    """The process exit codes, as documented in :mod:`graphstore.cli`."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAUTHENTICATED = 4
    STORAGE = 5
    ADDRESS_IN_USE = 6


@dataclass
class Session:
    """What every command shares: where the data is, how to print, who acts.

    The output, the store and the logs are set up when a command first needs them: a
    ``--help`` needs none of them.
    """

    data_dir: Path
    as_json: bool
    api_key: str | None
    log_level: str = "warning"
    creates_store: bool = False  # `init` only: every other command needs a store there
    closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _output: Output | None = field(default=None, repr=False)

    @property
    def output(self) -> Output:
        if self._output is None:
            from graphstore.cli.output import Output

            self._output = Output(as_json=self.as_json)
        return self._output

    @property
    def store(self) -> Store:
        if self._store is None:
            from domain import Principal
            from graphstore.store import Store

            self.require_store()

            if self.api_key is None:  # the local operator: allowed everything, audited
                self._store = Store(self.data_dir, principal=Principal.system())
            else:
                self._store = Store(self.data_dir, api_key=self.api_key)
        return self._store

    def require_store(self) -> None:
        """Refuse (NotFoundError, naming the path) a data directory that holds no store,
        unless the command creates one (``init``): a mistyped ``--data-dir`` must not
        answer an empty table, nor leave an empty store behind."""
        from domain.errors import NotFoundError
        from streams.directory import SYSTEM_FILE

        if not self.creates_store and not (self.data_dir / SYSTEM_FILE).is_file():
            where = self.data_dir.resolve()
            raise NotFoundError(
                f"no store in {where} (no {SYSTEM_FILE}): pass the right --data-dir (or "
                f"GRAPHSTORE_DATA_DIR), or create one there with `graphstore --data-dir "
                f"{self.data_dir} init`",
                kind="data directory",
                name=str(where),
            )

    @property
    def data(self) -> DataDirectory:
        return self.store.data

    def principal(self) -> Principal:
        """The key's principal, or the local operator's (system) without a key."""
        return self.store.principal

    def tenant(self, org_id: str) -> Metagraph:
        """The metagraph of a registered tenant, acting for the key's account (each of
        its operations authorized, its writes audited); NotFoundError for an unknown one."""
        return self.store.tenant(org_id)

    def close_store(self) -> None:
        """Close the store now (opened again on next use), e.g. before another library
        reads its files (``graphstore backup``)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        if self._store is not None:
            self._store.close()


def session_of(ctx: typer.Context) -> Session:
    """The session the root command made for this invocation (``ctx.obj``)."""
    session = ctx.obj
    assert isinstance(session, Session)
    return session


def run_action(ctx: typer.Context, action: Callable[[Session], _R]) -> _R:
    """Run a command with logs configured; map the store's errors to a message on stderr
    and an exit code."""
    from eventsourcing.persistence import MapperDeserialisationError, PersistenceError

    from domain.errors import (
        AccessDeniedError,
        AuthenticationError,
        DomainError,
        NotFoundError,
    )
    from graphstore import logs
    from projections.errors import ProjectionError
    from streams.errors import ConfigurationError

    session = session_of(ctx)
    logs.configure(session.log_level)
    try:
        return action(session)
    except (AuthenticationError, AccessDeniedError) as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.UNAUTHENTICATED) from None
    except NotFoundError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.NOT_FOUND) from None
    except DomainError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.REFUSED) from None
    except PersistenceError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.STORAGE) from None
    except OSError as exc:  # a file or directory the system refused: say which, no traceback
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.STORAGE) from None
    except MapperDeserialisationError as exc:  # most often a tenant read without its key
        session.output.error(
            f"{exc}. An encrypted or compressed tenant is read with the writers' settings: "
            "GRAPHSTORE_CIPHER_KEY / GRAPHSTORE_COMPRESSOR_TOPIC (docs/retention.md)"
        )
        raise typer.Exit(ExitCode.STORAGE) from None
    except ConfigurationError as exc:  # a setting (e.g. GRAPHSTORE_CIPHER_KEY): named, not shown
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.USAGE) from None
    except ProjectionError as exc:  # views that no longer match the stream: says what to do
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.STORAGE) from None
