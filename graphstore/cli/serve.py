"""The ``serve`` command: the HTTP API and the live run view (docs/http.md).

Imports typer and the bottom of the command line only; the command loads the server
when it runs.
"""

# ruff: noqa: PLC0415

import contextlib
from typing import Annotated

import typer

from graphstore.cli.session import ExitCode, Session, run_action

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``graphstore`` app."""
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8080,
    heartbeat: Annotated[
        float, typer.Option(min=0.01, help="Seconds between keep-alive comments of an SSE stream.")
    ] = 15.0,
    max_body: Annotated[int, typer.Option(min=1, help="Bytes a request body may have.")] = 16
    * 1024
    * 1024,
    projectors: Annotated[
        bool, typer.Option(help="Run every tenant's projectors in this process too.")
    ] = True,
) -> None:
    """Serve the HTTP API (operations, call ingestion, SSE changes, /openapi.json) and the
    live run view at / until interrupted. Requests authenticate with `Authorization:
    Bearer <API key>` (`graphstore key create`)."""

    def action(session: Session) -> None:
        from graphstore.http.server import serve as run_server

        session.require_store()
        taken = _address_taken(host, port)
        if taken is not None:
            session.output.error(
                f"cannot serve on {host}:{port}: {taken}; stop the process listening there "
                "or pick another --port"
            )
            raise typer.Exit(ExitCode.ADDRESS_IN_USE)
        session.output.err.print(
            f"serving {session.data_dir} on http://{host}:{port}/ ; Ctrl-C stops", markup=False
        )
        # Ctrl-C or SIGTERM: uvicorn shuts down gracefully, then raises it again here.
        with contextlib.suppress(KeyboardInterrupt):
            run_server(
                session.data_dir,
                host=host,
                port=port,
                heartbeat=heartbeat,
                max_body=max_body,
                projectors=projectors,
            )

    run_action(ctx, action)


def _address_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (the OS's reason), or None if it can: a
    bind probe, with the same address reuse as the server, closed at once."""
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"no such address ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
