"""An embedded, event-sourced, multi-tenant graph store: the public façade.

    import graphstore
    from domain import Actor

    with graphstore.open("data") as store:
        acme = store.tenant("acme")
        acme.define_graph_type("social", actor=Actor(scope="tenant"))

:func:`open` gives a :class:`Store` (a data directory); :meth:`Store.tenant` a tenant's
:class:`domain.Metagraph`. The command line is :mod:`graphstore.cli`.
"""

import structlog

from graphstore import logs
from graphstore.store import Store, open_store

if not structlog.is_configured():
    # Unconfigured structlog prints every debug record to stdout; the store's own logs
    # go to stderr from WARNING up until the application configures logging itself.
    logs.configure("warning")

open = open_store  # graphstore.open(path), like sqlite3.connect(path)

__all__ = ["Store", "open", "open_store"]
