"""The house's dependency rules, read from the source with ``ast``: dependencies run one way.

spawnctl (the client, installable without the server) ← core (shared pieces) ← components_app
← sessions_app ← config. An import inside ``if TYPE_CHECKING:`` is a type annotation only,
never run, so it does not count.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "core", "components_app", "sessions_app", "spawnctl")
OUTSIDE_THE_HOUSE = ("django", "rest_framework", "drf_spectacular", "django_filters")


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int
    top_level: bool
    typing_only: bool

    @property
    def package(self) -> str:
        return self.target.split(".")[0]

    def __repr__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(path: Path, module: str | None = None) -> list[Import]:
    module = module or _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def resolve(node: ast.ImportFrom) -> list[str]:
        if node.level == 0:
            base = node.module or ""
        else:
            parts = module.split(".")
            anchor = parts if is_package else parts[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        return [base] if node.module else [f"{base}.{alias.name}" for alias in node.names]

    def visit(node: ast.AST, *, top_level: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                targets = resolve(child)
            else:
                targets = []
            for target in targets:
                found.append(Import(module, target, child.lineno, top_level, typing_only))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for branch in child.body:
                    visit_one(branch, top_level=top_level, typing_only=True)
                for branch in child.orelse:
                    visit_one(branch, top_level=top_level, typing_only=typing_only)
                continue
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, top_level=top_level and not inner, typing_only=typing_only)

    def visit_one(node: ast.AST, *, top_level: bool, typing_only: bool) -> None:
        wrapper = ast.Module(body=[node], type_ignores=[])
        visit(wrapper, top_level=top_level, typing_only=typing_only)

    visit(ast.parse(path.read_text(), str(path)), top_level=True, typing_only=False)
    return found


def _all_imports() -> list[Import]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.extend(_imports_of(path))
    return found


IMPORTS = _all_imports()
RUNTIME = [imp for imp in IMPORTS if not imp.typing_only]


def _from(package: str, imports: list[Import] = RUNTIME) -> list[Import]:
    return [imp for imp in imports if imp.module.split(".")[0] == package]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that starts and ends on one node, else None."""
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for following in sorted(graph[node]):
            if (found := walk(following)) is not None:
                return found
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if (found := walk(node)) is not None:
            return found
    return None


def test_the_map_sees_every_package_and_their_imports():
    # The checks below pass trivially on an empty map; it is not empty.
    modules = {imp.module.split(".")[0] for imp in IMPORTS}
    assert modules == set(PACKAGES)
    assert any(imp.target == "components_app.models" for imp in _from("sessions_app"))
    typing_only = [imp for imp in _from("core", IMPORTS) if imp.typing_only]
    assert any(imp.package == "components_app" for imp in typing_only)


def test_no_cycle_between_top_level_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    edges: dict[tuple[str, str], Import] = {}
    for imp in RUNTIME:
        source = imp.module.split(".")[0]
        graph[source]
        if imp.package in PACKAGES and imp.package != source:
            graph[source].add(imp.package)
            graph[imp.package]
            edges.setdefault((source, imp.package), imp)
    cycle = _cycle(graph)
    assert cycle is None, [edges[pair] for pair in itertools.pairwise(cycle)]


def test_components_app_never_imports_sessions_app():
    # Typing-only imports included: a component knows nothing of sessions.
    assert [imp for imp in _from("components_app", IMPORTS) if imp.package == "sessions_app"] == []


def test_core_imports_neither_app_at_module_level():
    offending = [
        imp
        for imp in _from("core")
        if imp.top_level and imp.package in ("components_app", "sessions_app")
    ]
    assert offending == []


def test_core_imports_no_app_at_all_but_for_types():
    # A function-level import of an app would still close core ↔ app at run time.
    assert [imp for imp in _from("core") if imp.package in ("components_app", "sessions_app")] == []


@pytest.mark.parametrize("forbidden", ["config", "core", "components_app", "sessions_app"])
def test_spawnctl_imports_nothing_of_the_server(forbidden):
    assert [imp for imp in _from("spawnctl", IMPORTS) if imp.package == forbidden] == []


@pytest.mark.parametrize("forbidden", OUTSIDE_THE_HOUSE)
def test_spawnctl_needs_no_django(forbidden):
    assert [imp for imp in _from("spawnctl", IMPORTS) if imp.package == forbidden] == []


def test_type_checking_and_function_level_imports_are_told_apart(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n"
        "    from components_app.models import Project\n"
        "def f():\n"
        "    from sessions_app import services\n"
    )
    by_target = {imp.target: imp for imp in _imports_of(probe, "core.api.probe")}
    assert by_target["components_app.models"].typing_only
    assert by_target["components_app.models"].top_level
    assert not by_target["sessions_app"].typing_only
    assert not by_target["sessions_app"].top_level
    assert by_target["core.api.sibling"].top_level
