"""The assertion check: which test functions of a Python test file assert nothing. The file is
parsed (``ast``), never imported: it is the agent's code, and running it is the test run's
job, not the check's."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import TypeGuard

# Calls of these pytest functions assert (an exception or a warning expected, a failure).
PYTEST_ASSERTING = ("raises", "warns", "fail")
# A call of a function or method named so asserts: unittest's assertEqual, mock's
# assert_called_once_with, Playwright's and expect-style libraries' expect(x).to_...
ASSERTING_PREFIXES = ("assert", "expect")
# Whose bodies run only when called: what they assert is not the enclosing test's.
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def assertionless_tests(source: str | bytes) -> list[str] | None:
    """The names of the file's test functions that assert nothing, in the file's order
    (``Class.test_name`` for a method); None when the file does not parse (which of its tests
    assert cannot be known then).

    A test function is a top-level ``def test*`` (or ``async def``) or a ``test*`` method of a
    top-level ``Test*`` class. It asserts when its body, nested statements included but not
    nested functions, lambdas or classes, has an ``assert`` statement or calls
    ``pytest.raises``, ``pytest.warns`` or ``pytest.fail`` (also imported under another name)
    or any function or method whose name starts with ``assert`` or ``expect``."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    names = _pytest_names(module)
    # A name defined again replaces the first definition, as it does when the module runs.
    asserts: dict[str, bool] = {}
    for name, function in _tests(module):
        asserts[name] = _asserts(function, names)
    return [name for name, found in asserts.items() if not found]


def _tests(module: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in module.body:
        if _is_test(node):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for member in node.body:
                if _is_test(member):
                    yield f"{node.name}.{member.name}", member


def _is_test(node: ast.stmt) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


class _PytestNames:
    def __init__(self) -> None:
        self.modules = {"pytest"}
        self.functions: set[str] = set()


def _pytest_names(module: ast.Module) -> _PytestNames:
    """What the file calls pytest and its asserting functions (``import pytest as pt``,
    ``from pytest import raises``)."""
    names = _PytestNames()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "pytest":
                    names.modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "pytest":
            for alias in node.names:
                if alias.name in PYTEST_ASSERTING:
                    names.functions.add(alias.asname or alias.name)
    return names


def _asserts(function: ast.FunctionDef | ast.AsyncFunctionDef, names: _PytestNames) -> bool:
    pending = [node for node in function.body if not isinstance(node, _NESTED_SCOPES)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call) and _asserting_call(node.func, names):
            return True
        pending.extend(
            child for child in ast.iter_child_nodes(node) if not isinstance(child, _NESTED_SCOPES)
        )
    return False


def _asserting_call(func: ast.expr, names: _PytestNames) -> bool:
    if isinstance(func, ast.Name):
        name = func.id
        if name in names.functions:
            return True
    elif isinstance(func, ast.Attribute):
        name = func.attr
        if (
            name in PYTEST_ASSERTING
            and isinstance(func.value, ast.Name)
            and func.value.id in names.modules
        ):
            return True
    else:
        return False
    return name.startswith(ASSERTING_PREFIXES)
