"""The top of the command line: the ``graphstore`` app with its global options, every
command group added to it, and :func:`main`, the console script's entry point.

This module imports the group modules (by name, listed in :data:`GROUPS`: a command
imports only its own); no group imports it (they import :mod:`graphstore.cli.session`
and :mod:`graphstore.cli.options`, below them). The command modules leave out
``from __future__ import annotations`` on purpose: their annotations are evaluated once
at import, instead of typer compiling each from a string when it builds the command.
"""

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Annotated, Final

import typer

from graphstore.cli.options import a_directory, one_of
from graphstore.cli.running import sigterm_interrupts
from graphstore.cli.session import ExitCode, Session

__all__ = ["GROUPS", "build_app", "command_named", "full_app", "main", "root"]

GROUPS: Final = (
    ("remote", ("project-remote", "ingest-nats")),
    ("backup", ("backup", "restore")),
    ("verify", ("verify",)),
    ("identity", ("init", "whoami", "audit", "tenant", "account", "key")),
    ("calls", ("ingest",)),
    ("changes", ("tail",)),
    ("serve", ("serve",)),
    ("graphs", ("graph-type", "graph")),
    ("runs", ("runs",)),
    ("archive", ("archive",)),
    ("retention", ("retention",)),
    ("projector", ("projector",)),
    ("ops", ("ops",)),
    ("relay", ("relay",)),
)
"""Each group module of :mod:`graphstore.cli` and the commands its ``register`` adds, in
the order of ``graphstore --help`` (its commands first, then its groups, each as added)."""

_ROOT_OPTIONS_WITH_VALUES = ("--data-dir", "--api-key", "--log-level")


def build_app(command: str | None = None) -> typer.Typer:
    """The ``graphstore`` app: every command, or only the group module adding
    ``command`` when it names one: a command imports only its own group's module, and
    typer turns only that group's signatures into options."""
    built = typer.Typer(
        name="graphstore",
        help="An embedded, event-sourced, multi-tenant graph store.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,  # click's plain help: typer's rich help imports ~50 ms more
    )
    built.callback()(root)
    chosen = [module for module, names in GROUPS if command in names]
    for module in chosen or [module for module, _ in GROUPS]:
        register: Callable[[typer.Typer], None] = import_module(f"graphstore.cli.{module}").register
        register(built)
    return built


def command_named(args: list[str]) -> str | None:
    """The command (or group) a command line names: its first word that is neither a
    global option nor the value of one; None if there is none."""
    words = iter(args)
    for word in words:
        if word in _ROOT_OPTIONS_WITH_VALUES:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


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


@functools.cache
def full_app() -> typer.Typer:
    """The app with every command (what ``graphstore --help`` shows), built once."""
    return build_app()


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
    (what was wrong and what was expected) and exit 2, never a usage box or a traceback.
    SIGTERM stops a command as Ctrl-C does (:mod:`graphstore.cli.running`)."""
    sigterm_interrupts()
    with _no_broken_pipe():
        try:
            chosen = build_app(command_named(sys.argv[1:]))
            code = chosen(prog_name="graphstore", standalone_mode=False)
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
