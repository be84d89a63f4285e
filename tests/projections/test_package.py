"""The ``projections`` package's public names: each declared once for type checkers,
listed in ``__all__``, and imported on first use from the module that declares it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import projections


def _declared() -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in the package."""
    tree = ast.parse(Path(projections.__file__).read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                for alias in statement.names:
                    found[alias.asname or alias.name] = statement.module
    return found


def test_the_declared_names_are_the_public_ones_and_each_resolves_from_its_module() -> None:
    declared = _declared()
    assert sorted(declared) == sorted(projections.__all__)
    for name, module in declared.items():
        assert getattr(projections, name) is getattr(importlib.import_module(module), name), name


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        projections.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
