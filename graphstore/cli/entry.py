"""The top of the command line: the ``graphstore`` app with its global options, every
command group added to it, and :func:`main`, the console script's entry point.

This module imports the groups; no group imports it (they import
:mod:`graphstore.cli.session` and :mod:`graphstore.cli.options`, below them).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from graphstore.cli.backup import register as register_backup
from graphstore.cli.calls import register as register_ingest
from graphstore.cli.changes import register as register_tail
from graphstore.cli.graphs import graph_app, graph_type_app
from graphstore.cli.identity import account_app, key_app, tenant_app
from graphstore.cli.identity import register as register_identity
from graphstore.cli.ops import ops_app
from graphstore.cli.options import a_directory, one_of
from graphstore.cli.projector import projector_app
from graphstore.cli.relay import relay_app
from graphstore.cli.remote import register as register_remote
from graphstore.cli.runs import runs_app
from graphstore.cli.serve import register as register_serve
from graphstore.cli.session import ExitCode, Session
from graphstore.cli.verify import register as register_verify

__all__ = ["app", "main"]

app = typer.Typer(
    name="graphstore",
    help="An embedded, event-sourced, multi-tenant graph store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The order of `graphstore --help`: the commands, then the groups, each as added.
for register in (
    register_remote,
    register_backup,
    register_verify,
    register_identity,
    register_ingest,
    register_tail,
    register_serve,
):
    register(app)
for name, group in (
    ("tenant", tenant_app),
    ("account", account_app),
    ("key", key_app),
    ("graph-type", graph_type_app),
    ("graph", graph_app),
    ("runs", runs_app),
    ("projector", projector_app),
    ("ops", ops_app),
    ("relay", relay_app),
):
    app.add_typer(group, name=name)


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="GRAPHSTORE_DATA_DIR", help="The data directory.", callback=a_directory
        ),
    ] = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON on stdout.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="GRAPHSTORE_API_KEY", help="Act as this key's account."),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            help="debug, info or warning (logs go to stderr).",
            callback=one_of("debug", "info", "warning"),
        ),
    ] = "warning",
) -> None:
    """The global options: where the data is, how to print, who acts, how loud."""
    session = Session(data_dir, as_json, api_key, log_level)
    ctx.obj = session
    ctx.call_on_close(session.close)


@contextlib.contextmanager
def _no_broken_pipe() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:  # `graphstore ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(ExitCode.OK) from None


def main() -> None:
    """The console script's entry point: a wrong command line is one line on stderr
    (what was wrong and what was expected) and exit 2, never a usage box or a traceback."""
    with _no_broken_pipe():
        try:
            code = app(prog_name="graphstore", standalone_mode=False)
        except typer.TyperException as exc:  # typer's (vendored click's) usage errors
            raise SystemExit(_usage_error(exc)) from None
        except typer.Abort:
            typer.echo("aborted", err=True)
            raise SystemExit(ExitCode.REFUSED) from None
        raise SystemExit(code if isinstance(code, int) else ExitCode.OK)


def _usage_error(exc: typer.TyperException) -> int:
    """Print a command-line error as one line naming the command's help; its exit code."""
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as typer does
        typer.echo(text, err=True)
        return code
    message = " ".join(text.split())
    context = getattr(exc, "ctx", None)
    if context is not None:
        message += f" (see `{context.command_path} --help`)"
    typer.echo(f"error: {message}", err=True)
    return code
