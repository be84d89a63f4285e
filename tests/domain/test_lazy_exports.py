"""domain.calls re-exports its modules' names lazily (domain/lazy_exports.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import domain
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


def test_every_name_domain_exports_is_its_modules_own_object() -> None:
    lazy = domain._LAZY
    assert sorted(lazy.where) == sorted(domain.__all__)
    for name, module in lazy.where.items():
        assert getattr(domain, name) is getattr(importlib.import_module(module), name)


def test_importing_domain_defines_no_stored_class_until_one_is_used() -> None:
    """Reading the tenant registry needs the identity classes, not the graphs' (issue 17:
    the command line's start); the names of every class are known all the same."""
    script = (
        "import sys, domain\n"
        "from domain.names import canonical\n"
        "assert canonical('domain.graphs:Graph.NodeAdded') == 'Graph.NodeAdded'\n"
        "before = sorted(m for m in sys.modules if m.startswith('domain.'))\n"
        "domain.Principal\n"
        "after = sorted(m for m in sys.modules if m.startswith('domain.'))\n"
        "print(before, 'domain.graphs' in after, 'domain._identity_aggregates' in after)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "['domain.lazy_exports',",
        "'domain.names']",
        "False",
        "True",
    ]
