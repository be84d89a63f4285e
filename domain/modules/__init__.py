"""Built-in graph modules: system-scope graph types every tenant file can hold.

The call graph's type lives with the rest of the call protocol (:mod:`domain.calls.graph`).
Each module defines its graph type with a :class:`~domain.install.GraphTypeSpec`
and installs it idempotently (:func:`~domain.install.ensure_graph_type`).
"""

from __future__ import annotations

from domain.application import Metagraph
from domain.calls import graph as call_graph
from domain.modules import acl_graph, secret_graph

__all__ = ["install_builtin_modules"]


def install_builtin_modules(app: Metagraph) -> None:
    """Install (or bring up to date) every built-in module's system-scope graph type.

    Idempotent: a second call writes nothing.
    """
    with app.transaction():
        for module in (call_graph, acl_graph, secret_graph):
            module.install(app)
