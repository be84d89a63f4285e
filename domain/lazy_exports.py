"""A package's public names, each imported from its module when first used (PEP 562).

A package whose ``__init__`` re-exports names from several modules pays for importing
all of them, though a command may need one (issue 17: the command line's start). With
:class:`LazyExports`, the package's ``__getattr__`` imports a name's module on first use
and keeps the name in the package, so the next use costs nothing::

    _LAZY = LazyExports(__name__, {"pkg.parts": ("Part", "make_part")})

    def __getattr__(name: str) -> Any:
        return _LAZY.attribute(name)

    def __dir__() -> list[str]:
        return _LAZY.names()

Type checkers see the names through the package's ``if TYPE_CHECKING:`` imports and
its ``__all__``, which must list the same names (the package's tests check it).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LazyExports"]


class LazyExports:
    """The names ``package`` re-exports, by the module that defines them."""

    def __init__(self, package: str, where: Mapping[str, Iterable[str]]) -> None:
        self.package = package
        self.where: dict[str, str] = {
            name: module for module, names in where.items() for name in names
        }
        """Each exported name's module."""

    def attribute(self, name: str) -> Any:
        """``name`` from its module, kept in the package for the next use; an
        ``AttributeError`` if the package exports no such name."""
        module = self.where.get(name)
        if module is None:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[self.package], name, value)
        return value

    def names(self) -> list[str]:
        """The package's names for ``dir()``: those already there and the exported ones."""
        return sorted(set(vars(sys.modules[self.package])) | set(self.where))
