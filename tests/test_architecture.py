"""The shape of the code, checked: layers, circles, private names and module sizes.

The store is four floors: ``domain`` and ``streams`` at the bottom, ``projections`` on
them, ``graphstore`` on top. These tests read every module's imports (module level,
``TYPE_CHECKING`` blocks and function bodies alike: a function-local import is still a
dependency) and hold the rules that keep each capability in one home:

- every arrow points down a floor, never up or sideways between the bottom two;
- no import circle between modules;
- no private name (``_x``) is imported from another module, and a private module
  (``pkg/_m.py``) is imported only from inside ``pkg``;
- only ``streams._honker`` imports Honker;
- no module is over 1,000 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "streams", "projections", "graphstore")

#: What each floor may import from the project, besides itself.
BELOW: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "streams": frozenset(),
    "projections": frozenset({"domain", "streams"}),
    "graphstore": frozenset({"domain", "streams", "projections"}),
}

MAX_LINES = 1_000


@dataclass(frozen=True)
class Import:
    """One imported name, resolved to the project module that provides it."""

    importer: str
    line: int
    module: str
    name: str | None  # the name taken from ``module``; None for ``import module``


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports() -> Iterator[Import]:
    for module, path in MODULES.items():
        package = _package_of(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, node.lineno, alias.name, None)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in MODULES:
                        # ``from pkg import submodule`` depends on the submodule
                        yield Import(module, node.lineno, submodule, None)
                    else:
                        yield Import(module, node.lineno, base, alias.name)


IMPORTS = list(_imports())


def _project_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for found in IMPORTS:
        target = _project_module(found.module)
        if target is not None and target != found.importer:
            edges[found.importer].add(target)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for start, first in edges.items():
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(first)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_the_import_scan_sees_the_project() -> None:
    # Guards the tests below against passing vacuously on an empty scan.
    assert {"domain.application", "streams.persistence", "projections.projector"} <= set(MODULES)
    assert any(
        i.importer == "projections.projector" and i.module.startswith("streams") for i in IMPORTS
    )


def test_every_arrow_points_down() -> None:
    offenders = [
        f"{found.importer}:{found.line} imports {found.module}"
        for found in IMPORTS
        if (target := _project_module(found.module)) is not None
        and (floor := target.split(".")[0]) != found.importer.split(".")[0]
        and floor not in BELOW[found.importer.split(".")[0]]
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_circle_between_modules() -> None:
    circles = _circles(_edges())
    assert not circles, "\n".join(" <-> ".join(circle) for circle in circles)


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [
        f"{found.importer}:{found.line} takes {found.name} from {found.module}"
        for found in IMPORTS
        if found.name is not None
        and _private(found.name)
        and _project_module(found.module) is not None
    ]
    assert not offenders, "\n".join(offenders)


def test_a_private_module_is_imported_only_inside_its_package() -> None:
    offenders: set[str] = set()
    for found in IMPORTS:
        if _project_module(found.module) is None:
            continue
        parts = found.module.split(".")
        for depth, part in enumerate(parts):
            owner = ".".join(parts[:depth])
            importer_package = _package_of(found.importer)
            if _private(part) and not (
                importer_package == owner or importer_package.startswith(f"{owner}.")
            ):
                offenders.add(f"{found.importer}:{found.line} imports {found.module}")
    assert not offenders, "\n".join(sorted(offenders))


def test_only_streams_honker_module_imports_honker() -> None:
    importers = {
        found.importer
        for found in IMPORTS
        if found.module == "honker" or found.module.startswith("honker.")
    }
    assert importers == {"streams._honker"}


def test_no_module_is_over_a_thousand_lines() -> None:
    sizes = {module: path.read_text().count("\n") for module, path in MODULES.items()}
    assert {module: lines for module, lines in sizes.items() if lines > MAX_LINES} == {}
