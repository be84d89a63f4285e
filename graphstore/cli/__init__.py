"""The operator's command line: ``graphstore`` (or ``python -m graphstore``).

Every command takes ``--data-dir`` (default ``./data``, or ``GRAPHSTORE_DATA_DIR``) and
``--json`` (machine-readable output on stdout). Messages and logs go to stderr. Only
``init`` creates a store; every other command refuses a directory that holds none
(exit 3, naming the path), so a mistyped ``--data-dir`` never answers an empty table.

Exit codes (:class:`ExitCode`):

====  =============================================================================
0     done
1     refused by a rule of the store (invalid input, conflict, forbidden): nothing
      was written
2     the command line itself is wrong (unknown option, missing argument)
3     something named does not exist (tenant, account, graph, key, file)
4     not allowed: authentication failed (unknown, revoked or expired API key;
      inactive account), or the key's account may not do this in this tenant
      (docs/identity.md, "Who may do what in a tenant"); nothing was written
5     the storage failed (e.g. the file stayed locked past the busy timeout)
6     the address to serve on is taken (another process listens on the port)
====  =============================================================================

Who acts: with ``--api-key`` (or ``GRAPHSTORE_API_KEY``) the key's account, every
tenant command authorized against the permission model and its writes audited; without
one, the local operator, who has the files anyway and acts as the system principal.

The package, from the bottom up: :mod:`~graphstore.cli.session` (the exit codes, the
:class:`Session` every command shares, :func:`~graphstore.cli.session.run_action`, the
command runner) and :mod:`~graphstore.cli.options` (shared option callbacks); then one
module per command group (``identity``, ``graphs``, ``calls``, ``runs``, ``projector``,
``changes``, ``serve``, ``relay``, ``remote``, ``backup``, ``verify``, ``ops``,
``archive``), with
``output`` and ``render`` for what they print; at the top :mod:`~graphstore.cli.entry`,
the app that adds every group, and :func:`main`. A quick front door: ``graphstore
--help`` imports typer and nothing of the store; each command imports what it needs when
it runs, so the imports inside functions are on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphstore.cli.entry import full_app, main
from graphstore.cli.session import ExitCode, Session

if TYPE_CHECKING:
    import typer

__all__ = ["ExitCode", "Session", "app", "main"]


def __getattr__(name: str) -> typer.Typer:
    """``app``: the app with every command, built on first use (a command builds only
    its own group: :func:`graphstore.cli.entry.build_app`)."""
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
