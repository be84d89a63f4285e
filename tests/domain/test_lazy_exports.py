"""domain.calls re-exports its modules' names lazily (domain/lazy_exports.py)."""

from __future__ import annotations

import importlib

import pytest

import domain.calls
from domain.lazy_exports import LazyExports


def test_every_name_domain_calls_exports_is_its_modules_own_object() -> None:
    lazy = domain.calls._LAZY
    assert isinstance(lazy, LazyExports)
    assert sorted(lazy.where) == sorted(domain.calls.__all__)
    for name, module in lazy.where.items():
        assert getattr(domain.calls, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    with pytest.raises(AttributeError, match=r"'domain\.calls' has no attribute 'nope'"):
        _ = domain.calls.nope


def test_dir_lists_the_exported_names_before_their_first_use() -> None:
    assert set(domain.calls.__all__) <= set(dir(domain.calls))
