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

from graphstore.http._protocol import guarded_protocol
from graphstore.http.app import DEFAULT_MAX_BODY, create_app
from graphstore.http.limits import Limits
from graphstore.retention import RetentionSchedule
from graphstore.store import Store
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
    limits: Limits | None = None,
) -> None:
    """Serve the data directory at ``path`` until interrupted (see the module).

    ``limits`` (default: :meth:`Limits.from_env`, the ``GRAPHSTORE_HTTP_*`` variables)
    bound what clients may hold: connections at once, idle keep-alive time, header
    bytes, body time, SSE streams per key, refusals per key (docs/http.md, "Limits").
    """
    limits = limits or Limits.from_env()
    runner = Runner(Path(path)) if projectors else None
    app = create_app(
        path,
        heartbeat=heartbeat,
        max_body=max_body,
        limits=limits,
        statuses=None if runner is None else runner.status,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # the command line configured logging
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=int(max(1, limits.keep_alive)),
        http=guarded_protocol(limits.header_timeout, limits.max_header_bytes),
    )
    server = uvicorn.Server(config)
    schedule = _retention_schedule(path)  # GRAPHSTORE_RETENTION_INTERVAL (docs/retention.md)
    try:
        if runner is None:
            server.run()
            return
        with runner:
            server.run()
    finally:
        if schedule is not None:
            schedule.stop()
            schedule.store.close()


def _retention_schedule(path: str | os.PathLike[str]) -> RetentionSchedule | None:
    """The retention passes on a schedule, when the interval setting asks for them."""
    store = Store(path)
    schedule = RetentionSchedule.from_env(store)
    if schedule is None:
        store.close()
        return None
    return schedule.start()
