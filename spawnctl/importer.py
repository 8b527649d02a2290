"""``spawnctl import``: describe a codebase as component rows for ``POST /api/components/bulk/``.

Pure functions, no Django and no HTTP: the CLI hands ``run_import`` two callables that talk to
the server. A Python codebase is read with ``ast`` (never imported); any other codebase is
described by a manifest (JSON, or YAML when PyYAML is installed). The rows are checked here
by the server's rules so that a bad manifest fails before anything is sent; the server checks
them again and is the authority. See docs/import.md.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTEXT = "context"
MODULE = "module"
ROW_FIELDS = ("module_name", "name", "type", "priority", "description", "parent_module_name")

# The server's rules, mirrored (components_app.services and the Component model).
_MAX_LENGTH = {"module_name": 255, "name": 255, "type": 50}
_PRIORITY_RANGE = (-(2**31), 2**31 - 1)
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
BAD_MODULE_NAME = (
    "Use only letters, digits, _, . and - (not first), e.g. Shop.Accounts.User; the name "
    "becomes part of a file path and of commands."
)
REQUIRED = "This field is required."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
NOT_AN_INTEGER = "A valid integer is required."
NOT_AN_OBJECT = "Expected an object with module_name, name and type."
UNKNOWN_FIELD = "Unknown field; a row takes " + ", ".join(ROW_FIELDS) + "."
NULL_PARENT_HINT = "This field may not be blank; use null for a component without a parent."
NUL_IN_STRING = "JSON strings cannot contain the NUL character (\\u0000)."
DUPLICATE_ROW = "Row {first} has the same module name."
UNKNOWN_PARENT = "No row and no component of the project has this module name."
OWN_PARENT = "A component cannot be its own parent."
CYCLE = "A component cannot be placed under one of its descendants: {chain}."
PRUNED_PARENT = "The parent {parent} is not in the list, so prune would delete it."

RowErrors = dict[int, dict[str, list[str]]]

# Directories never scanned, whatever .gitignore says: tests and migrations are not
# components to write tests for; the others are not the project's code.
SKIPPED_DIRS = frozenset(
    {"tests", "test", "migrations", "__pycache__", "node_modules", "site-packages"}
)
# A virtualenv or conda environment, whatever its name, holds one of these.
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")


class ManifestError(Exception):
    """A manifest that cannot be read, or rows that break the rules (``row_errors``)."""

    def __init__(self, message: str, row_errors: RowErrors | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row_errors = row_errors or {}


class ImportRejected(Exception):
    """What ``post_bulk`` raises for the server's 400 or 409, with the answer's JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


# --- scanning a Python codebase ----------------------------------------------------------


@dataclass
class Scan:
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: Files read as a component of priority 0 (unparsable) or left out (not importable).
    warnings: list[str] = field(default_factory=list)


def priority_of(tree: ast.Module) -> int:
    """The documented measure: public top-level functions and classes of a module."""
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return sum(
        1 for node in tree.body if isinstance(node, definitions) and not node.name.startswith("_")
    )


def _first_line(docstring: str | None) -> str:
    for line in (docstring or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _read_module(path: Path, relative: str, warnings: list[str]) -> tuple[int, str]:
    """(priority, description) of a module file; (0, "") and a warning when unparsable."""
    try:
        tree = ast.parse(path.read_bytes(), filename=relative)
    except (SyntaxError, ValueError) as error:
        warnings.append(f"{relative}: cannot parse ({type(error).__name__}: {error}); priority 0")
        return 0, ""
    return priority_of(tree), _first_line(ast.get_docstring(tree))


def _is_test_file(name: str) -> bool:
    return (
        name in ("conftest.py", "tests.py") or name.startswith("test_") or name.endswith("_test.py")
    )


def _is_environment(path: Path) -> bool:
    return any((path / marker).exists() for marker in ENVIRONMENT_MARKERS)


IgnoreCheck = Callable[[list[str]], set[str]]


def git_ignore_check(repo: Path) -> IgnoreCheck | None:
    """Which of some paths (relative to ``repo``) git ignores, through ``git check-ignore
    --stdin``; None when ``repo`` is not in a git work tree or git is missing."""
    try:
        inside = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None

    def check(paths: list[str]) -> set[str]:
        if not paths:
            return set()
        answer = subprocess.run(
            ["git", "-C", str(repo), "check-ignore", "--stdin", "-z"],
            input="\0".join(paths).encode(),
            capture_output=True,
            check=False,
        )
        # 0: some are ignored, 1: none is; anything else is git failing, and nothing is
        # taken as ignored rather than the whole codebase.
        if answer.returncode != 0:
            return set()
        return {p for p in answer.stdout.decode(errors="surrogateescape").split("\0") if p}

    return check


def gitignore_fallback(repo: Path) -> IgnoreCheck:
    """A simple reading of ``repo/.gitignore`` alone, for a directory that is no git work
    tree: ``#`` comments, ``name``/``*.glob`` at any depth, ``/anchored`` and ``dir/`` patterns;
    negations (``!``) and nested .gitignore files are not read."""
    patterns: list[tuple[str, bool, bool]] = []  # (glob, anchored, directories only)
    gitignore = repo / ".gitignore"
    if gitignore.is_file():
        for raw in gitignore.read_text(errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            only_dirs = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            patterns.append((line.lstrip("/"), anchored, only_dirs))

    def check(paths: list[str]) -> set[str]:
        ignored = set()
        for path in paths:
            is_dir = (repo / path).is_dir()
            name = path.rsplit("/", 1)[-1]
            for glob, anchored, only_dirs in patterns:
                if only_dirs and not is_dir:
                    continue
                if fnmatch.fnmatchcase(path if anchored else name, glob):
                    ignored.add(path)
                    break
        return ignored

    return check


def _walk(repo: Path, ignored: IgnoreCheck, warnings: list[str]) -> Iterable[tuple[str, Path]]:
    """(dotted package name, directory) of every package to read, breadth first: one
    ignore check per depth, not per file."""
    level: list[tuple[Path, str | None]] = [(repo, None)]
    while level:
        candidates: list[tuple[Path, str | None]] = []
        for directory, dotted in level:
            is_package = (directory / "__init__.py").is_file()
            if is_package:
                name = directory.name if dotted is None else dotted
                if not name.split(".")[-1].isidentifier():
                    warnings.append(f"{_rel(repo, directory)}/: not an importable name; left out")
                    continue
                yield name, directory
            for child in sorted(directory.iterdir()):
                if not child.is_dir() or child.is_symlink():
                    continue
                if child.name.startswith(".") or child.name in SKIPPED_DIRS:
                    continue
                if _is_environment(child):
                    continue
                child_dotted = None
                if is_package and (child / "__init__.py").is_file():
                    child_dotted = f"{name}.{child.name}"
                candidates.append((child, child_dotted))
        left_out = ignored([_rel(repo, child) for child, _ in candidates])
        level = [(c, d) for c, d in candidates if _rel(repo, c) not in left_out]


def _rel(repo: Path, path: Path) -> str:
    return path.relative_to(repo).as_posix() or "."


def _module_files(directory: Path) -> list[Path]:
    return sorted(
        child
        for child in directory.iterdir()
        if child.suffix == ".py"
        and child.is_file()
        and child.name != "__init__.py"
        and not child.name.startswith(".")
        and not _is_test_file(child.name)
    )


def scan_python_repo(repo: Path, *, ignored: IgnoreCheck | None = None) -> Scan:
    """Rows for a Python codebase: each package (a directory with ``__init__.py``) that has
    modules is a context, each of its modules a component under it.

    A context's module_name is the package's dotted name, a module's the module's; the name is
    the last part, the description the docstring's first line, the priority ``priority_of``
    (a context: the sum of its modules'). Left out: tests (``tests/``, ``test/``,
    ``test_*.py``, ``*_test.py``, ``conftest.py``, ``tests.py``), ``migrations/``, hidden
    directories, virtualenvs, ``__init__.py`` itself, files outside packages, and what
    .gitignore ignores (``git check-ignore`` in a git work tree, else ``gitignore_fallback``).
    """
    repo = repo.resolve()
    check = ignored or git_ignore_check(repo) or gitignore_fallback(repo)
    scan = Scan()
    packages = [
        (package, directory, _module_files(directory))
        for package, directory in _walk(repo, check, scan.warnings)
    ]
    left_out = check([_rel(repo, f) for _, _, files in packages for f in files])
    for package, directory, all_files in packages:
        files = [f for f in all_files if _rel(repo, f) not in left_out]
        modules = []
        for path in files:
            if not path.stem.isidentifier():
                scan.warnings.append(f"{_rel(repo, path)}: not an importable name; left out")
                continue
            priority, description = _read_module(path, _rel(repo, path), scan.warnings)
            modules.append(
                {
                    "module_name": f"{package}.{path.stem}",
                    "name": path.stem,
                    "type": MODULE,
                    "priority": priority,
                    "description": description,
                    "parent_module_name": package,
                }
            )
        if not modules:
            # A context without components could never spawn a child session.
            continue
        init = directory / "__init__.py"
        _, description = _read_module(init, _rel(repo, init), scan.warnings)
        context = {
            "module_name": package,
            "name": package.rsplit(".", 1)[-1],
            "type": CONTEXT,
            "priority": sum(m["priority"] for m in modules),
            "description": description,
            "parent_module_name": None,
        }
        scan.rows += [context, *modules]
    return scan


# --- manifests ---------------------------------------------------------------------------


def load_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of a manifest file: ``{"version": 1, "components": [row, ...]}`` as JSON, or as
    YAML (``.yaml``/``.yml``) when PyYAML is installed. Rows are checked by ``check_rows``;
    a ``ManifestError`` says what is wrong, naming each bad row's index and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"Cannot read the manifest {path}: {error}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ManifestError(
                f"{path} is YAML, and reading YAML needs PyYAML (pip install pyyaml); "
                "or write the manifest as JSON."
            ) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ManifestError(f"{path} is not valid YAML: {error}") from None
    else:
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ManifestError(f"{path} is not valid JSON: {error}") from None
    rows = manifest_rows(document, source=str(path))
    errors = check_rows(rows)
    if errors:
        raise ManifestError(f"{path} has bad rows", errors)
    return rows


def manifest_rows(document: Any, *, source: str = "the manifest") -> list[dict[str, Any]]:
    """The ``components`` list of a parsed manifest, after checking the document's shape."""
    if not isinstance(document, dict) or not isinstance(document.get("components"), list):
        raise ManifestError(f'{source} must be an object with a "components" list.')
    unknown = sorted(set(document) - {"version", "components"})
    if unknown:
        raise ManifestError(f"{source} has unknown keys: {', '.join(map(str, unknown))}.")
    if document.get("version", 1) != 1:
        raise ManifestError(f"{source} has version {document['version']!r}; only 1 is read.")
    return document["components"]


# --- checking rows as the server does ------------------------------------------------------


def _clean_text(row: Mapping[str, Any], key: str, errors: dict[str, list[str]]) -> str | None:
    value = row[key]
    if not isinstance(value, str):
        errors[key] = [NOT_A_STRING]
        return None
    value = value.strip()
    if "\x00" in value:
        errors[key] = [NUL_IN_STRING]
        return None
    if not value and key != "description":
        errors[key] = [NULL_PARENT_HINT if key == "parent_module_name" else BLANK]
        return None
    limit = _MAX_LENGTH.get(key)
    if limit is not None and len(value) > limit:
        errors[key] = [f"Ensure this value has at most {limit} characters (it has {len(value)})."]
        return None
    if key == "module_name" and not _MODULE_NAME.fullmatch(value):
        errors[key] = [BAD_MODULE_NAME]
        return None
    return value


def clean_row(row: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A row trimmed as the server trims it, and its errors by field."""
    if not isinstance(row, Mapping):
        return {}, {"non_field_errors": [NOT_AN_OBJECT]}
    errors = {str(key): [UNKNOWN_FIELD] for key in row if key not in ROW_FIELDS}
    clean: dict[str, Any] = {}
    for key in ("module_name", "name", "type"):
        if key not in row:
            errors[key] = [REQUIRED]
        else:
            clean[key] = _clean_text(row, key, errors)
    if "description" in row:
        clean["description"] = _clean_text(row, "description", errors)
    if row.get("parent_module_name") is not None:
        clean["parent_module_name"] = _clean_text(row, "parent_module_name", errors)
    elif "parent_module_name" in row:
        clean["parent_module_name"] = None
    if "priority" in row:
        priority, (low, high) = row["priority"], _PRIORITY_RANGE
        if not isinstance(priority, int) or isinstance(priority, bool):
            errors["priority"] = [NOT_AN_INTEGER]
        elif priority < low:
            errors["priority"] = [f"Ensure this value is greater than or equal to {low}."]
        elif priority > high:
            errors["priority"] = [f"Ensure this value is less than or equal to {high}."]
        else:
            clean["priority"] = priority
    return clean, errors


def _parents_by_module(current: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    module_of = {c["id"]: c["module_name"] for c in current}
    return {c["module_name"]: module_of.get(c.get("parent_component")) for c in current}


def _cycles(parent_of: Mapping[str, str | None]) -> dict[str, list[str]]:
    on_cycle: dict[str, list[str]] = {}
    done: set[str] = set()
    for start in parent_of:
        path: list[str] = []
        position: dict[str, int] = {}
        current: str | None = start
        while current is not None and current not in done and current not in position:
            position[current] = len(path)
            path.append(current)
            current = parent_of.get(current)
        if current is not None and current in position:
            loop = path[position[current] :]
            for offset, name in enumerate(loop):
                on_cycle[name] = [*loop[offset:], *loop[:offset], name]
        done.update(path)
    return on_cycle


def check_rows(
    rows: Sequence[Any], *, current: Sequence[Mapping[str, Any]] = (), prune: bool = False
) -> RowErrors:
    """Every bad row by index, then field, as the server would answer it. ``current`` is the
    project's components as the API lists them (``id``, ``module_name``,
    ``parent_component``), so parents and cycles are checked against the project too."""
    parent_of = _parents_by_module(current)
    existing = set(parent_of)
    cleaned: list[dict[str, Any]] = []
    errors_by_row: RowErrors = {}
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows):
        clean, errors = clean_row(row)
        module_name = clean.get("module_name")
        if module_name is not None:
            if module_name in first_row:
                errors["module_name"] = [DUPLICATE_ROW.format(first=first_row[module_name])]
            else:
                first_row[module_name] = index
        cleaned.append(clean)
        if errors:
            errors_by_row[index] = errors
    checked: dict[str, int] = {}
    for index, clean in enumerate(cleaned):
        module_name = clean.get("module_name")
        if index in errors_by_row or module_name is None:
            continue
        parent = clean.get("parent_module_name", parent_of.get(module_name))
        problem = None
        if parent == module_name:
            problem = OWN_PARENT
        elif parent is not None and parent not in first_row:
            if parent not in existing:
                problem = UNKNOWN_PARENT
            elif prune:
                problem = PRUNED_PARENT.format(parent=parent)
        if problem is not None:
            errors_by_row[index] = {"parent_module_name": [problem]}
            continue
        parent_of[module_name] = parent
        checked[module_name] = index
    for module_name, chain in _cycles(parent_of).items():
        if module_name in checked:
            message = CYCLE.format(chain=" → ".join(chain))
            errors_by_row[checked[module_name]] = {"parent_module_name": [message]}
    return dict(sorted(errors_by_row.items()))


def format_row_errors(errors: Mapping[Any, Any], rows: Sequence[Any] = ()) -> list[str]:
    """One line per bad field: ``row 3 (shop.user): parent_module_name: <message>``. Takes
    ``check_rows``' answer or the server's 400 body's ``components`` (indexes as strings)."""
    lines = []
    for index, fields in sorted(errors.items(), key=lambda item: int(item[0])):
        position = int(index)
        row = rows[position] if position < len(rows) else None
        module = row.get("module_name") if isinstance(row, Mapping) else None
        label = f"row {position}" + (f" ({module})" if isinstance(module, str) else "")
        if not isinstance(fields, Mapping):
            fields = {"non_field_errors": fields}
        for key, messages in fields.items():
            messages = messages if isinstance(messages, list) else [messages]
            lines.extend(f"{label}: {key}: {message}" for message in messages)
    return lines


# --- the plan and the run ------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRow:
    action: str  # "create", "update", "unchanged" or "delete"
    module_name: str
    #: The fields an update changes.
    changes: tuple[str, ...] = ()


def plan_import(
    rows: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], *, prune: bool
) -> list[PlannedRow]:
    """What the import would do to the project, row by row, then the deletions of a prune.
    The rows must have passed ``check_rows``; a key left out of a row is not compared, as the
    server keeps its value."""
    by_module = {c["module_name"]: c for c in current}
    parent_of = _parents_by_module(current)
    plan = []
    for row in rows:
        clean, _ = clean_row(row)
        module_name = clean["module_name"]
        component = by_module.get(module_name)
        if component is None:
            plan.append(PlannedRow("create", module_name))
            continue
        changes = [
            key
            for key in ("name", "type", "priority", "description")
            if key in clean and clean[key] != component.get(key)
        ]
        if "parent_module_name" in clean and clean["parent_module_name"] != parent_of.get(
            module_name
        ):
            changes.append("parent_module_name")
        plan.append(PlannedRow("update" if changes else "unchanged", module_name, tuple(changes)))
    if prune:
        named = {p.module_name for p in plan}
        plan += [PlannedRow("delete", m) for m in sorted(by_module) if m not in named]
    return plan


def format_plan(plan: Sequence[PlannedRow]) -> str:
    """The dry run's table: action, module_name (and what an update changes), then totals."""
    width = max([len("action"), *(len(p.action) for p in plan)])
    lines = [f"{'action':<{width}}  module_name"]
    for planned in plan:
        changes = f"  ({', '.join(planned.changes)})" if planned.changes else ""
        lines.append(f"{planned.action:<{width}}  {planned.module_name}{changes}")
    counts = {a: sum(p.action == a for p in plan) for a in ("create", "update", "unchanged")}
    deletes = sum(p.action == "delete" for p in plan)
    lines.append(
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged, {deletes} to delete (dry run: nothing was sent)"
    )
    return "\n".join(lines)


def collect_rows(*, repo: Path, manifest: Path | None = None) -> Scan:
    """The rows to import: the manifest's when one is given, else a scan of ``repo``."""
    if manifest is not None:
        return Scan(rows=load_manifest(manifest))
    return scan_python_repo(repo)


def run_import(
    *,
    rows: Sequence[dict[str, Any]],
    post_bulk: Callable[[list[dict[str, Any]], bool], Mapping[str, Any]],
    list_components: Callable[[], Sequence[Mapping[str, Any]]],
    dry_run: bool = False,
    prune: bool = False,
    out: Callable[[str], object] = print,
) -> int:
    """Check the rows against the project, then print the dry run's plan or send them.

    ``list_components()`` returns the project's components as the API lists them (every
    page); ``post_bulk(rows, prune)`` sends ``POST /api/components/bulk/`` and returns the
    200 body, raising ``ImportRejected`` for a 400 or 409 (other errors pass through to the
    caller). Returns the exit code: 0 imported (or planned), 1 refused.
    """
    current = list_components()
    errors = check_rows(rows, current=current, prune=prune)
    if errors:
        for line in format_row_errors(errors, rows):
            out(line)
        out(f"Nothing imported: {len(errors)} bad row{'s' if len(errors) != 1 else ''}.")
        return 1
    if dry_run:
        out(format_plan(plan_import(rows, current, prune=prune)))
        return 0
    try:
        result = post_bulk(list(rows), prune)
    except ImportRejected as rejected:
        body = rejected.body if isinstance(rejected.body, Mapping) else {}
        if isinstance(body.get("components"), Mapping):
            for line in format_row_errors(body["components"], rows):
                out(line)
        else:
            out(str(body.get("detail") or body or f"HTTP {rejected.status}"))
        out("Nothing imported.")
        return 1
    out(
        f"Imported {len(rows)} row{'s' if len(rows) != 1 else ''}: {result['created']} created, "
        f"{result['updated']} updated, {result['unchanged']} unchanged, "
        f"{result['deleted']} deleted."
    )
    return 0
