"""An embedded, event-sourced, multi-tenant graph store: the public façade.

    import graphstore
    from domain import Actor

    with graphstore.open("data") as store:
        acme = store.tenant("acme")
        acme.define_graph_type("social", actor=Actor(scope="tenant"))

:func:`open` gives a :class:`Store` (a data directory); :meth:`Store.tenant` a tenant's
:class:`domain.Metagraph`. The command line is :mod:`graphstore.cli`.

Importing the package configures nothing (logging is the application's: README, "Logs")
and loads the store on first use of these names, so ``graphstore --help`` starts without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphstore.store import Store, open_store

    open = open_store  # graphstore.open(path), like sqlite3.connect(path)

__all__ = ["Store", "open", "open_store"]


def __getattr__(name: str) -> Any:
    """``Store``, ``open`` and ``open_store``: from :mod:`graphstore.store`, on first use."""
    if name not in __all__:
        raise AttributeError(f"module 'graphstore' has no attribute {name!r}")
    store = importlib.import_module("graphstore.store")
    value = store.open_store if name == "open" else getattr(store, name)
    globals()[name] = value  # later look-ups skip this function
    return value
