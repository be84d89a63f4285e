"""The ``graphstore ops`` commands: the operation contracts (docs/operations.md).

Imports typer and the bottom of the command line only; the command loads the store
when it runs.
"""

# ruff: noqa: PLC0415

import sys
from typing import Annotated

import typer

from graphstore.cli.session import ExitCode, Session, run_action

__all__ = ["ops_app", "register"]

ops_app = typer.Typer(help="Operation contracts: export the OperationSpecs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``ops`` group to the ``graphstore`` app."""
    app.add_typer(ops_app, name="ops")


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

    run_action(ctx, action)
