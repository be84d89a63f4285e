"""One exception root per package (issue 18): every exception class a package defines
derives from that package's root, so ``except GraphstoreError`` (or ``DomainError``,
``StreamsError``, ``ProjectionError``) catches everything the package raises itself.

The modules are walked, not listed: a new module's new error is checked without anyone
remembering to add it here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

from domain.errors import DomainError
from graphstore.errors import GraphstoreError
from graphstore.nats.spoke import SpokeClosedError, SpokePublishError
from projections.call_intake import CallIntakeError
from projections.errors import ProjectionError
from streams.errors import StreamsError
from streams.replication import ReplicationError

ROOTS: dict[str, type[Exception]] = {
    "domain": DomainError,
    "streams": StreamsError,
    "projections": ProjectionError,
    "graphstore": GraphstoreError,
}


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not info.name.endswith(".__main__"):  # runs its program when imported
            found.append(importlib.import_module(info.name))
    return found


def _exceptions(package: str) -> list[type[BaseException]]:
    """Every exception class defined (not imported) in the package's modules."""
    classes: dict[str, type[BaseException]] = {}
    for module in _modules(package):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return [classes[name] for name in sorted(classes)]


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_exception_of_a_package_derives_from_its_root(package: str) -> None:
    found = _exceptions(package)
    assert ROOTS[package] in found
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in found
        if not issubclass(cls, ROOTS[package])
    ]
    assert strays == [], f"derive these from {ROOTS[package].__name__}"


def test_the_roots_stay_apart_but_the_builtins_still_catch() -> None:
    """Errors callers caught as builtins before they had a root still are those."""
    assert issubclass(CallIntakeError, ProjectionError) and issubclass(CallIntakeError, ValueError)
    assert issubclass(ReplicationError, StreamsError) and issubclass(ReplicationError, ValueError)
    assert issubclass(SpokeClosedError, GraphstoreError) and issubclass(
        SpokeClosedError, RuntimeError
    )
    assert issubclass(SpokePublishError, RuntimeError)
    assert not issubclass(DomainError, (StreamsError, ProjectionError, GraphstoreError))
