"""An embedded, event-sourced, multi-tenant graph store: the public façade.

    import graphstore

    with graphstore.open("data", api_key=key) as store:   # acting as the key's account
        acme = store.tenant("acme")                      # authorized at each operation
        acme.define_graph_type("social")                 # scope from the account's role
        graphstore.ingest(acme, events)                  # call events, one transaction

:func:`open` gives a :class:`Store` (a data directory); :meth:`Store.tenant` a tenant's
:class:`domain.Metagraph`, :meth:`Store.views`, :meth:`Store.replay`,
:meth:`Store.subscribe` and :meth:`Store.runner` its read side. The names a program
needs besides are here too (:data:`__all__`), so one import line is enough. The command
line is the package :mod:`graphstore.cli`.

Importing the package configures nothing (logging is the application's: README, "Logs")
and loads the store on first use of these names, so ``graphstore --help`` starts without it.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from domain import Principal
    from domain.calls import get_call, ingest, ingest_jsonl
    from domain.errors import (
        AccessDeniedError,
        AuthenticationError,
        DomainError,
        ForbiddenError,
        NotFoundError,
        ValidationError,
    )
    from graphstore.errors import GraphstoreError
    from graphstore.store import Store, open_store

    open = open_store  # graphstore.open(path), like sqlite3.connect(path)

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "DomainError",
    "ForbiddenError",
    "GraphstoreError",
    "NotFoundError",
    "Principal",
    "Store",
    "ValidationError",
    "get_call",
    "ingest",
    "ingest_jsonl",
    "open",
    "open_store",
]

# Quiet unless the application configures logging (README, "Logs"): the server, the
# relay, the remote projector and the ingester log under "graphstore.*".
logging.getLogger(__name__).addHandler(logging.NullHandler())

_FROM: Final = {
    "Store": ("graphstore.store", "Store"),
    "open": ("graphstore.store", "open_store"),
    "open_store": ("graphstore.store", "open_store"),
    "Principal": ("domain", "Principal"),
    "get_call": ("domain.calls", "get_call"),
    "ingest": ("domain.calls", "ingest"),
    "ingest_jsonl": ("domain.calls", "ingest_jsonl"),
    "AccessDeniedError": ("domain.errors", "AccessDeniedError"),
    "AuthenticationError": ("domain.errors", "AuthenticationError"),
    "DomainError": ("domain.errors", "DomainError"),
    "ForbiddenError": ("domain.errors", "ForbiddenError"),
    "NotFoundError": ("domain.errors", "NotFoundError"),
    "ValidationError": ("domain.errors", "ValidationError"),
    "GraphstoreError": ("graphstore.errors", "GraphstoreError"),
}


def __getattr__(name: str) -> Any:
    """The names of :data:`__all__`, imported from where they live on first use."""
    if name not in _FROM:
        raise AttributeError(f"module 'graphstore' has no attribute {name!r}")
    module, attribute = _FROM[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value
