"""``graphstore serve``: the HTTP API, the live view and the projector runner of a data
directory, in one process.

The runner keeps every tenant's projections up to date (the live view and the queries
read them); uvicorn serves the application. Both stop on SIGINT or SIGTERM: uvicorn
finishes its streams, then the application closes its files, then the runner stops.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from graphstore.http.app import DEFAULT_MAX_BODY, create_app
from projections import Runner

__all__ = ["serve"]


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    heartbeat: float = 15.0,
    max_body: int = DEFAULT_MAX_BODY,
    projectors: bool = True,
) -> None:
    """Serve the data directory at ``path`` until interrupted (see the module)."""
    app = create_app(path, heartbeat=heartbeat, max_body=max_body)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # the command line configured logging
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if not projectors:
        server.run()
        return
    with Runner(Path(path)):
        server.run()
