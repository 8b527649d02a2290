"""``spawnctl import``: describe a codebase as component rows for ``POST /api/components/bulk/``.

Pure functions, no Django and no HTTP: the CLI hands ``run_import`` the one callable that talks to
the server. A Python codebase is read with ``ast`` (never imported); any other codebase is
described by a manifest (JSON, or YAML when PyYAML is installed). The rows' rules live on the
server alone: a bad row comes back as its 400, and the dry run's plan is the server's answer to
the same import, rolled back. See docs/import.md.
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
DRY_RUN_ACTIONS = ("create", "update", "unchanged", "delete")

# Directories never scanned, whatever .gitignore says: tests and migrations are not
# components to write tests for; the others are not the project's code.
SKIPPED_DIRS = frozenset(
    {"tests", "test", "migrations", "__pycache__", "node_modules", "site-packages"}
)
# Directories read but left out by default (``--include`` keeps what matches): build
# outputs hold copies of the package (a second "click" under build/lib), examples are not the
# library's code.
DEFAULT_LEFT_OUT_DIRS = frozenset({"build", "dist", "examples"})
# Names a version-only module assigns (with ``__all__`` and ``TYPE_CHECKING`` beside them).
_VERSION_NAME = re.compile(r"version", re.IGNORECASE)
# How many left-out modules the warning names before it counts the rest.
LEFT_OUT_NAMED = 10
# A virtualenv or conda environment, whatever its name, holds one of these.
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")


class ManifestError(Exception):
    """A manifest that cannot be read or is not shaped as one; its rows are the server's to
    check."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


# The points where a module's code branches, each counting one (McCabe's decision points):
# an ``if`` or conditional expression, a loop, an ``except`` clause, a ``case``; a
# comprehension counts one per ``for`` and one per ``if`` in it, ``a and b or c`` one per
# operator.
_BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler)


def priority_of(tree: ast.Module) -> int:
    """The documented measure of how much a module's tests have to cover: its statements (every
    statement, nested ones too) plus its branches (``_BRANCHES``, comprehensions' loops and
    conditions, boolean operators, ``match`` cases). A 3,800-line module with eleven public
    classes outweighs a 1,100-line one with twenty-six small ones, as it should."""
    statements = branches = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            statements += 1
        if isinstance(node, _BRANCHES):
            branches += 1
        elif isinstance(node, ast.comprehension):
            branches += 1 + len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            branches += len(node.values) - 1
        elif isinstance(node, ast.match_case):
            branches += 1
    return statements + branches


# A sentence ends at ., ! or ? before a space and a capital, a digit or a quote, or at the
# paragraph's end; "e.g. the" and "v1.2" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'`(])")


def first_sentence(docstring: str | None) -> str:
    """A docstring's first sentence, whole: its first paragraph's lines joined, up to the end
    of its first sentence (the whole paragraph when no sentence ends in it)."""
    paragraph: list[str] = []
    for line in (docstring or "").splitlines():
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            break
    text = " ".join(paragraph)
    return _SENTENCE_END.split(text, maxsplit=1)[0] if text else ""


def only_sets_the_version(tree: ast.Module) -> bool:
    """True for a module that does nothing but name a version (``_version.py`` as
    setuptools-scm writes it, ``__version__ = "1.2"``): no function or class, and every name it
    assigns is a version's (or ``__all__``, ``TYPE_CHECKING``)."""
    assigned: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                for name in names:
                    if not isinstance(name, ast.Name):
                        return False
                    assigned.append(name.id)
    versions = [name for name in assigned if _VERSION_NAME.search(name)]
    others = set(assigned) - set(versions) - {"__all__", "TYPE_CHECKING"}
    return bool(versions) and not others


def _read_module(
    path: Path, relative: str, warnings: list[str]
) -> tuple[int, str, ast.Module | None]:
    """(priority, description, tree) of a module file; (0, "", None) and a warning when
    unparsable."""
    try:
        tree = ast.parse(path.read_bytes(), filename=relative)
    except (SyntaxError, ValueError) as error:
        warnings.append(f"{relative}: cannot parse ({type(error).__name__}: {error}); priority 0")
        return 0, "", None
    return priority_of(tree), first_sentence(ast.get_docstring(tree)), tree


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


# Directories a Python project puts its importable code in (besides the root): their own name
# is no part of a module's name.
IMPORT_ROOTS = ("src",)


def _walk(repo: Path, ignored: IgnoreCheck, warnings: list[str]) -> Iterable[tuple[str, Path]]:
    """(dotted package name, directory) of every package to read, breadth first: one
    ignore check per depth, not per file. Directories left out by default are read too; the
    scan decides.

    A package's name is what ``import`` would call it with the repository (or its ``src/``) on
    the path: a directory without ``__init__.py`` between them is a namespace package (PEP
    420), so ``jaraco/functools/`` is ``jaraco.functools``, not ``functools``. A directory
    whose name Python cannot import starts the naming again below it."""
    # (directory, its dotted name when it is a package or a namespace, "" at an import root)
    level: list[tuple[Path, str]] = [(repo, "")]
    while level:
        candidates: list[tuple[Path, str]] = []
        for directory, dotted in level:
            is_package = directory != repo and (directory / "__init__.py").is_file()
            if is_package:
                if not directory.name.isidentifier():
                    warnings.append(f"{_rel(repo, directory)}/: not an importable name; left out")
                    continue
                yield dotted, directory
            for child in sorted(directory.iterdir()):
                if not child.is_dir() or child.is_symlink():
                    continue
                if child.name.startswith(".") or child.name in SKIPPED_DIRS:
                    continue
                if _is_environment(child):
                    continue
                if (
                    directory == repo
                    and child.name in IMPORT_ROOTS
                    and not (child / "__init__.py").is_file()
                ):
                    candidates.append((child, ""))
                elif child.name.isidentifier():
                    candidates.append((child, f"{dotted}.{child.name}" if dotted else child.name))
                elif (child / "__init__.py").is_file():
                    candidates.append((child, child.name))  # warned about, then left out
                else:
                    candidates.append((child, ""))
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


# At most this many existing test files are named per component (the server's limit).
MAX_EXISTING_TESTS = 50


def _test_files(repo: Path, ignored: IgnoreCheck) -> list[Path]:
    """The repository's Python test files: ``test_*.py``, ``*_test.py`` and whatever sits
    under a ``tests``/``test`` directory; hidden directories, environments and what git
    ignores left out."""
    found = []
    for path in sorted(repo.rglob("*.py")):
        parts = path.relative_to(repo).parts
        if any(p.startswith(".") or p in ("node_modules", "site-packages") for p in parts[:-1]):
            continue
        if any(_is_environment(repo.joinpath(*parts[:i])) for i in range(1, len(parts))):
            continue
        in_tests = any(p in ("tests", "test") for p in parts[:-1])
        if in_tests or _is_test_file(path.name):
            found.append(path)
    left_out = ignored([_rel(repo, path) for path in found])
    return [path for path in found if _rel(repo, path) not in left_out]


def _imported_modules(path: Path) -> set[str]:
    """The dotted names a file imports (``from a.b import c`` names ``a.b`` and ``a.b.c``);
    nothing when it does not parse."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def existing_tests(repo: Path, modules: Iterable[str], ignored: IgnoreCheck) -> dict[str, list]:
    """For each module name, the test files that import it (or something inside it)."""
    wanted = set(modules)
    found: dict[str, list[str]] = {module: [] for module in wanted}
    for path in _test_files(repo, ignored):
        for name in _imported_modules(path):
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                module = ".".join(parts[:end])
                if module in wanted:
                    relative = _rel(repo, path)
                    if relative not in found[module]:
                        found[module].append(relative)
                    break
    return {module: sorted(paths)[:MAX_EXISTING_TESTS] for module, paths in found.items()}


def _left_out_by_default(repo: Path, path: Path, tree: ast.Module | None) -> str | None:
    """Why ``path`` is left out unless ``--include`` names it; None when it is not."""
    for part in path.relative_to(repo).parts[:-1]:
        if part in DEFAULT_LEFT_OUT_DIRS:
            return f"under {part}/"
    if path.stem == "__main__":
        return "a __main__ module"
    if tree is not None and only_sets_the_version(tree):
        return "only sets the version"
    return None


def _matches(row: Mapping[str, Any], globs: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(row["module_name"], glob)
        or fnmatch.fnmatchcase(row["source_path"], glob)
        for glob in globs
    )


def scan_python_repo(
    repo: Path, *, ignored: IgnoreCheck | None = None, include: Sequence[str] = ()
) -> Scan:
    """Rows for a Python codebase: each package (a directory with ``__init__.py``) that has
    modules is a context, each of its modules a component under it.

    A context's module_name is the package's dotted name, a module's the module's; the name is
    the last part, the description the docstring's first line, the priority ``priority_of``
    (a context: the sum of its modules'), the source_path the file's path in the repository
    (a context's: its ``__init__.py``), and a module's existing_tests the test files that
    import it (read with ``ast`` too). Left out: tests (``tests/``, ``test/``,
    ``test_*.py``, ``*_test.py``, ``conftest.py``, ``tests.py``), ``migrations/``, hidden
    directories, virtualenvs, ``__init__.py`` itself, files outside packages (but for a
    project without a package of modules: its top-level modules and its ``__init__``-only
    packages are one context of its own, ``_project_context``), and what .gitignore ignores
    (``git check-ignore`` in a git work tree, else ``gitignore_fallback``).
    Left out by default, and kept when an ``include`` glob matches the module name or the
    path: modules under ``build/``, ``dist/`` or ``examples/``, ``__main__`` modules and
    modules that only set the version (one warning names them).
    """
    repo = repo.resolve()
    check = ignored or git_ignore_check(repo) or gitignore_fallback(repo)
    scan = Scan()
    packages = [
        (package, directory, _module_files(directory))
        for package, directory in _walk(repo, check, scan.warnings)
    ]
    left_out = check([_rel(repo, f) for _, _, files in packages for f in files])
    by_default: list[tuple[str, str]] = []
    init_only: list[dict[str, Any]] = []
    contexts: set[str] = set()
    for package, directory, all_files in packages:
        files = [f for f in all_files if _rel(repo, f) not in left_out]
        modules = []
        for path in files:
            if not path.stem.isidentifier():
                scan.warnings.append(f"{_rel(repo, path)}: not an importable name; left out")
                continue
            priority, description, tree = _read_module(path, _rel(repo, path), scan.warnings)
            row = {
                "module_name": f"{package}.{path.stem}",
                "name": path.stem,
                "type": MODULE,
                "priority": priority,
                "description": description,
                "parent_module_name": package,
                "source_path": _rel(repo, path),
            }
            reason = _left_out_by_default(repo, path, tree)
            if reason is not None and not _matches(row, include):
                by_default.append((row["source_path"], reason))
                continue
            modules.append(row)
        init = directory / "__init__.py"
        if not modules:
            # A context without components could never spawn a child session. A package
            # whose code is all in __init__.py is one module of its own (below).
            init_priority, init_description, _ = _read_module(init, _rel(repo, init), [])
            if init_priority:
                init_only.append(
                    {
                        "module_name": package,
                        "name": package.rsplit(".", 1)[-1],
                        "type": MODULE,
                        "priority": init_priority,
                        "description": init_description,
                        "source_path": _rel(repo, init),
                    }
                )
            continue
        _, description, _ = _read_module(init, _rel(repo, init), scan.warnings)
        context = {
            "module_name": package,
            "name": package.rsplit(".", 1)[-1],
            "type": CONTEXT,
            "priority": sum(m["priority"] for m in modules),
            "description": description,
            # A subpackage's context sits under its nearest enclosing package's (packages
            # come outermost first); a namespace or a package without modules is none.
            "parent_module_name": _enclosing(package, contexts),
            "source_path": _rel(repo, init),
        }
        contexts.add(package)
        scan.rows += [context, *modules]
    if not scan.rows:
        # No package with modules: a project of top-level modules (six) or of packages whose
        # code is all in __init__.py is one context of the project's own.
        top_level = _top_level_modules(repo, check, scan.warnings)
        kept = []
        for row in top_level:
            reason = _left_out_by_default(repo, repo / row["source_path"], row.pop("_tree"))
            if reason is not None and not _matches(row, include):
                by_default.append((row["source_path"], reason))
            else:
                kept.append(row)
        taken = {row["module_name"] for row in kept}
        for row in init_only:
            if row["module_name"] in taken:
                scan.warnings.append(
                    f"{row['source_path']}: the module {row['module_name']} is read already; "
                    "left out"
                )
        init_only = [row for row in init_only if row["module_name"] not in taken]
        scan.rows += _project_context(repo, kept + init_only)
        init_only = []
    for row in init_only:
        scan.warnings.append(
            f"{row['source_path']}: the package's code is all in __init__.py (priority "
            f"{row['priority']}) and it has no modules, so it is no context; describe it "
            "with --override or --manifest"
        )
    if not scan.rows:
        scan.warnings.append(
            "no package with modules and no top-level module found: nothing to import "
            "(describe the code with --manifest)"
        )
    if by_default:
        by_default.sort()
        named = ", ".join(f"{name} ({reason})" for name, reason in by_default[:LEFT_OUT_NAMED])
        more = len(by_default) - LEFT_OUT_NAMED
        scan.warnings.append(
            f"left out by default: {named}{f' and {more} more' if more > 0 else ''}; "
            "--include GLOB keeps a module or path that matches"
        )
    tests = existing_tests(repo, [row["module_name"] for row in scan.rows], check)
    for row in scan.rows:
        if row["type"] == MODULE:
            row["existing_tests"] = tests[row["module_name"]]
    return scan


def _enclosing(package: str, contexts: set[str]) -> str | None:
    """The nearest package enclosing ``package`` that is a context, or None."""
    parts = package.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if (candidate := ".".join(parts[:end])) in contexts:
            return candidate
    return None


# Files at an import root that are a project's tooling, not its code.
TOOLING_FILES = frozenset(
    {"setup.py", "noxfile.py", "fabfile.py", "tasks.py", "manage.py", "dodo.py", "conf.py"}
    | {"versioneer.py", "pavement.py"}
)
PROJECT_CONTEXT_SUFFIX = "-project"


def _top_level_modules(repo: Path, ignored: IgnoreCheck, warnings: list[str]) -> list[dict]:
    """The modules at the repository's top (or its ``src/``): a single-module project's code.
    Tests, tooling (``setup.py``, ``noxfile.py``, ...) and what git ignores are left out."""
    files = []
    for root in (repo, *(repo / name for name in IMPORT_ROOTS)):
        if root.is_dir() and not (root / "__init__.py").exists():
            files += [f for f in _module_files(root) if f.name not in TOOLING_FILES]
    left_out = ignored([_rel(repo, f) for f in files])
    rows = []
    for path in files:
        relative = _rel(repo, path)
        if relative in left_out:
            continue
        if not path.stem.isidentifier():
            warnings.append(f"{relative}: not an importable name; left out")
            continue
        if any(row["module_name"] == path.stem for row in rows):
            warnings.append(f"{relative}: the module {path.stem} is read already; left out")
            continue
        priority, description, tree = _read_module(path, relative, warnings)
        rows.append(
            {
                "module_name": path.stem,
                "name": path.stem,
                "type": MODULE,
                "priority": priority,
                "description": description,
                "source_path": relative,
                "_tree": tree,
            }
        )
    return rows


def _project_context(repo: Path, modules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One context for the project's loose modules, named from its distribution (pyproject,
    setup.cfg, setup.py, PKG-INFO, else the directory) with ``-project`` after it, a name no
    Python module can have, so it never meets one of its components' (six's context is
    ``six-project``, its module ``six``)."""
    if not modules:
        return []
    name, description = distribution_of(repo)
    context_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "project"
    context = {
        "module_name": f"{context_name}{PROJECT_CONTEXT_SUFFIX}",
        "name": name,
        "type": CONTEXT,
        "priority": sum(m["priority"] for m in modules),
        "description": description,
        "parent_module_name": None,
        "source_path": None,
    }
    return [context, *({**m, "parent_module_name": context["module_name"]} for m in modules)]


def distribution_of(repo: Path) -> tuple[str, str]:
    """The project's distribution name and one-sentence description, from the first of
    ``pyproject.toml``'s ``[project]``, ``setup.cfg``'s ``[metadata]``, ``setup.py``'s
    ``setup(name=..., description=...)`` literals and ``PKG-INFO`` that names it; else the
    directory's name and no description."""
    import configparser
    import tomllib
    from email.parser import HeaderParser

    def read(name: str) -> str | None:
        try:
            return (repo / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    found: list[tuple[Any, Any]] = []
    if (text := read("pyproject.toml")) is not None:
        try:
            project = tomllib.loads(text).get("project") or {}
            found.append((project.get("name"), project.get("description")))
        except (tomllib.TOMLDecodeError, AttributeError):
            pass
    if (text := read("setup.cfg")) is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
            found.append(
                (parser.get("metadata", "name", fallback=None),
                 parser.get("metadata", "description", fallback=None))
            )  # fmt: skip
        except configparser.Error:
            pass
    if (text := read("setup.py")) is not None:
        found.append(_setup_call_literals(text))
    if (text := read("PKG-INFO")) is not None:
        headers = HeaderParser().parsestr(text)
        found.append((headers.get("Name"), headers.get("Summary")))
    for name, description in found:
        if isinstance(name, str) and name.strip():
            return name.strip(), first_sentence(description if isinstance(description, str) else "")
    return repo.name, ""


def _setup_call_literals(text: str) -> tuple[Any, Any]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None, None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "setup"
        ):
            given = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg in ("name", "description") and isinstance(k.value, ast.Constant)
            }
            return given.get("name"), given.get("description")
    return None, None


# --- manifests ---------------------------------------------------------------------------


def load_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of a manifest file: ``{"version": 1, "components": [row, ...]}`` as JSON, or as
    YAML (``.yaml``/``.yml``) when PyYAML is installed. A ``ManifestError`` says why the file
    cannot be read as one; the rows themselves are checked by the server."""
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
    return manifest_rows(document, source=str(path))


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


# What an override manifest may change of a scanned row: what a team knows better than a
# scan (how much a module matters, what it is), not where it is or what it is called.
OVERRIDABLE = ("name", "type", "description", "priority", "excluded")


def apply_overrides(rows: Sequence[dict[str, Any]], overrides: Sequence[Any]) -> None:
    """The scanned ``rows`` with an override manifest's fields put over them, matched by
    ``module_name``. A ``ManifestError`` names an override that matches no scanned row (a
    typo would otherwise change nothing, silently), one given twice, or a field that is not
    one of ``OVERRIDABLE``; the values themselves are checked by the server."""
    by_module = {row.get("module_name"): row for row in rows if isinstance(row, dict)}
    seen: set[str] = set()
    problems: list[str] = []
    for position, override in enumerate(overrides, start=1):
        module_name = override.get("module_name") if isinstance(override, dict) else None
        if not isinstance(module_name, str) or not module_name:
            problems.append(f"override {position}: needs a module_name")
            continue
        if module_name in seen:
            problems.append(f"override {position} ({module_name}): given twice")
            continue
        seen.add(module_name)
        unknown = sorted(map(str, set(override) - {"module_name", *OVERRIDABLE}))
        if unknown:
            problems.append(
                f"override {position} ({module_name}): cannot change {', '.join(unknown)} "
                f"(only {', '.join(OVERRIDABLE)})"
            )
            continue
        row = by_module.get(module_name)
        if row is None:
            problems.append(f"override {position} ({module_name}): no such module in the scan")
            continue
        row.update({key: value for key, value in override.items() if key != "module_name"})
    if problems:
        raise ManifestError("\n".join(["The overrides cannot be applied:", *problems]))


def mark_excluded(rows: Sequence[dict[str, Any]], globs: Sequence[str]) -> list[str]:
    """Mark the rows whose module name matches one of ``globs`` (``fnmatch``, case-sensitive:
    ``pkg._win*``, ``*.windows``) ``excluded``; the others are left as they are, so an
    exclusion made in the admin survives a re-import. The warnings for globs that matched
    nothing."""
    matched = dict.fromkeys(globs, False)
    for row in rows:
        module_name = row.get("module_name") if isinstance(row, dict) else None
        if not isinstance(module_name, str):
            continue
        for glob in globs:
            if fnmatch.fnmatchcase(module_name, glob):
                row["excluded"] = True
                matched[glob] = True
    return [f"--exclude {glob!r} matched no module" for glob, hit in matched.items() if not hit]


# --- the server's answers ------------------------------------------------------------------


def format_row_errors(errors: Mapping[Any, Any], rows: Sequence[Any] = ()) -> list[str]:
    """One line per bad field: ``row 3 (shop.user): parent_module_name: <message>``, from the
    server's 400 body's ``components`` (indexes as strings)."""
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


def _shown(value: Any) -> str:
    """A field's value as the plan prints it: JSON, so text is quoted and a control character
    a row carried is an escape, never a terminal command."""
    return json.dumps(value, ensure_ascii=False)


def format_plan(actions: Sequence[Mapping[str, Any]]) -> str:
    """The dry run's table from the server's ``actions``: action and module_name (and the
    fields an update changes), under a create each field it will have, under an update each
    changed field's ``old -> new``; then totals."""
    width = max([len("action"), *(len(str(a["action"])) for a in actions)])
    lines = [f"{'action':<{width}}  module_name"]
    indent = " " * (width + 4)
    for planned in actions:
        changes = planned.get("changes") or ()
        listed = f"  ({', '.join(changes)})" if changes else ""
        lines.append(f"{planned['action']:<{width}}  {planned['module_name']}{listed}")
        before, after = planned.get("before") or {}, planned.get("after") or {}
        for field_name, value in after.items():
            if planned["action"] == "update":
                old = _shown(before.get(field_name))
                lines.append(f"{indent}{field_name}: {old} -> {_shown(value)}")
            else:
                lines.append(f"{indent}{field_name}: {_shown(value)}")
    count = {a: sum(p["action"] == a for p in actions) for a in DRY_RUN_ACTIONS}
    lines.append(
        f"{count['create']} to create, {count['update']} to update, "
        f"{count['unchanged']} unchanged, {count['delete']} to delete "
        "(dry run: nothing was written)"
    )
    return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------------


def collect_rows(
    *,
    repo: Path,
    manifest: Path | None = None,
    exclude: Sequence[str] = (),
    include: Sequence[str] = (),
    language: str = "python",
    override: Path | None = None,
) -> Scan:
    """The rows to import: the manifest's when one is given, else a scan of ``repo`` in its
    ``language`` (``auto``: what the repository's root says, ``tree_scan.detect_language``;
    Go, TypeScript/JavaScript and Elixir are read by ``spawnctl.tree_scan``); what a Python
    scan leaves out by default kept where ``include`` matches; the fields of the ``override``
    manifest put over the scanned rows; the modules matching ``exclude`` marked excluded."""
    if manifest is not None:
        scan = Scan(rows=load_manifest(manifest))
    else:
        from spawnctl import tree_scan

        if language == "auto":
            language = tree_scan.detect_language(repo)
        if language == tree_scan.PYTHON:
            scan = scan_python_repo(repo, include=include)
        else:
            scan = tree_scan.scan_repo(repo, language)
        if override is not None:
            apply_overrides(scan.rows, load_manifest(override))
    scan.warnings += mark_excluded(scan.rows, exclude)
    return scan


def run_import(
    *,
    rows: Sequence[dict[str, Any]],
    post_bulk: Callable[[list[dict[str, Any]], bool, bool], Mapping[str, Any]],
    dry_run: bool = False,
    prune: bool = False,
    out: Callable[[str], object] = print,
) -> int:
    """Send the rows, then print the counts, or for a dry run the server's plan.

    ``post_bulk(rows, prune, dry_run)`` sends ``POST /api/components/bulk/`` and returns the
    200 body, raising ``ImportRejected`` for a 400 or 409 (other errors pass through to the
    caller). A dry run is the same request, which the server checks and applies and then
    rolls back, so its plan and its errors are the import's. Returns the exit code: 0
    imported (or planned), 1 refused.
    """
    try:
        result = post_bulk(list(rows), prune, dry_run)
    except ImportRejected as rejected:
        body = rejected.body if isinstance(rejected.body, Mapping) else {}
        bad_rows = body.get("components")
        if isinstance(bad_rows, Mapping):
            for line in format_row_errors(bad_rows, rows):
                out(line)
            out(f"Nothing imported: {len(bad_rows)} bad row{'s' if len(bad_rows) != 1 else ''}.")
            return 1
        if isinstance(bad_rows, list):
            # The list as a whole is refused (too many rows).
            for message in bad_rows:
                out(f"components: {message}")
        else:
            out(str(body.get("detail") or body or f"HTTP {rejected.status}"))
        out("Nothing imported.")
        return 1
    if dry_run:
        out(format_plan(result["actions"]))
        return 0
    out(
        f"Imported {len(rows)} row{'s' if len(rows) != 1 else ''}: {result['created']} created, "
        f"{result['updated']} updated, {result['unchanged']} unchanged, "
        f"{result['deleted']} deleted."
    )
    return 0
