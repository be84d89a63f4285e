"""The ``graphstore ops`` commands: the operation contracts (docs/operations.md).

Imports typer and nothing of the store at module level, so registering it in
:mod:`graphstore.cli` keeps ``graphstore --help`` fast; the command imports the store
when it runs, and the command line's helpers from :mod:`graphstore.cli` then (that
module imports this one while it is being built).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["ops_app"]

ops_app = typer.Typer(help="Operation contracts: export the OperationSpecs.", no_args_is_help=True)


@ops_app.command("export")
def ops_export(
    ctx: typer.Context,
    tenant: Annotated[
        str | None,
        typer.Option(help="Add this tenant's graph type operations (org id)."),
    ] = None,
) -> None:
    """Print every operation's spec as one JSON array on stdout: the store's own, and with
    --tenant each of the tenant's graph types' (needs read on it)."""
    from graphstore.cli import ExitCode, Session, _run

    def action(session: Session) -> None:
        from graphstore.operations import Executor, OperationError, encode_specs

        exits = {"ACCESS_DENIED": ExitCode.UNAUTHENTICATED, "NOT_FOUND": ExitCode.NOT_FOUND}
        try:
            with Executor(session.store) as executor:
                specs = executor.specs(tenant)
        except OperationError as exc:
            session.output.error(str(exc))
            raise typer.Exit(exits.get(exc.code, ExitCode.REFUSED)) from None
        sys.stdout.buffer.write(encode_specs(specs) + b"\n")
        sys.stdout.flush()

    _run(ctx, action)
