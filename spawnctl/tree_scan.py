"""Describing Go, TypeScript/JavaScript and Elixir codebases, read with tree-sitter.

Each language maps its own way of grouping code onto contexts and components (``docs/import.md``
has the table): a Go package is a context and its files are components; a TypeScript or
JavaScript directory is a context and its files are components; an Elixir/Phoenix context
(``lib/<app>/<context>.ex``) is a context and the modules under ``lib/<app>/<context>/`` (its
schemas) are its components. A row's priority counts the file's statements and branches as
its grammar names them, as ``priority_of`` does for Python with ``ast``; its description is
the first sentence of the file's documentation (a Go package comment, a JSDoc block, a
``@moduledoc``), else the names it exports.

The grammars are the official tree-sitter ones from PyPI (``tree-sitter-go``,
``tree-sitter-javascript``, ``tree-sitter-typescript``, ``tree-sitter-elixir``), each a small
wheel with the parser compiled in. ``tree-sitter-language-pack`` was compared: from 1.0 on it
downloads its parsers from GitHub the first time a language is used, which a runner without
network access (or a CI job limited to the package registries) cannot do, and its last
version with the parsers inside is a 20 MB wheel pinned to an older tree-sitter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spawnctl.importer import (
    CONTEXT,
    DEFAULT_LEFT_OUT_DIRS,
    IgnoreCheck,
    Scan,
    first_sentence,
    git_ignore_check,
    gitignore_fallback,
)

PYTHON, GO, TYPESCRIPT, ELIXIR = "python", "go", "typescript", "elixir"
LANGUAGES = (PYTHON, GO, TYPESCRIPT, ELIXIR)
FILE = "file"
SCHEMA = "schema"
MODULE = "module"
# How many exported names a description lists.
EXPORTS_NAMED = 5
# Files larger than this are not read (generated code, bundles): a warning names them.
MAX_FILE_BYTES = 2_000_000


class ScanError(Exception):
    """A scan that cannot run (a grammar not installed); the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def detect_language(repo: Path) -> str:
    """The language a repository's root says it is written in: ``go.mod`` is Go, ``mix.exs``
    Elixir, ``package.json`` or ``tsconfig.json`` TypeScript/JavaScript; anything else is
    read as Python."""
    for marker, language in (
        ("go.mod", GO),
        ("mix.exs", ELIXIR),
        ("tsconfig.json", TYPESCRIPT),
        ("package.json", TYPESCRIPT),
    ):
        if (repo / marker).is_file():
            return language
    return PYTHON


# --- grammars ------------------------------------------------------------------------------

_PACKAGES = {
    GO: ("tree_sitter_go", "tree-sitter-go"),
    "javascript": ("tree_sitter_javascript", "tree-sitter-javascript"),
    "typescript": ("tree_sitter_typescript", "tree-sitter-typescript"),
    "tsx": ("tree_sitter_typescript", "tree-sitter-typescript"),
    ELIXIR: ("tree_sitter_elixir", "tree-sitter-elixir"),
}
_parsers: dict[str, Any] = {}


def parser_for(grammar: str) -> Any:
    """A tree-sitter parser of ``grammar`` (``go``, ``javascript``, ``typescript``, ``tsx``,
    ``elixir``), made once."""
    if grammar in _parsers:
        return _parsers[grammar]
    module_name, package = _PACKAGES[grammar]
    try:
        import importlib

        import tree_sitter

        module = importlib.import_module(module_name)
    except ImportError:
        raise ScanError(
            f"reading {grammar} needs tree-sitter and its grammar: "
            f"pip install tree-sitter {package}"
        ) from None
    language = {"typescript": "language_typescript", "tsx": "language_tsx"}.get(grammar, "language")
    parser = tree_sitter.Parser(tree_sitter.Language(getattr(module, language)()))
    _parsers[grammar] = parser
    return parser


@dataclass(frozen=True)
class Counting:
    """What a grammar's priority counts: a node whose type is in ``statements`` (or ends
    with ``_statement``) is a statement, one in ``branches`` a branch; a binary operator
    node whose operator is in ``operators`` is a branch too (``a && b``)."""

    statements: frozenset[str]
    branches: frozenset[str]
    operator_nodes: frozenset[str]
    operators: frozenset[str]


def count_priority(root: Any, counting: Counting, source: bytes) -> int:
    """Statements plus branches under ``root``, walked without recursion."""
    total = 0
    stack = [root]
    while stack:
        node = stack.pop()
        kind = node.type
        if kind in counting.statements or kind.endswith("_statement"):
            total += 1
        if kind in counting.branches:
            total += 1
        elif kind in counting.operator_nodes:
            operator = node.child_by_field_name("operator")
            if operator is not None and _text(operator, source) in counting.operators:
                total += 1
        stack.extend(node.named_children)
    return total


def _text(node: Any, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


_COMMENT_LINE = re.compile(r"^\s*(?://+|/\*+|\*+/?|\*)\s?")


def comment_text(comments: list[str]) -> str:
    """The text of ``//`` or ``/* */`` comment blocks, their markers taken off."""
    lines = []
    for comment in comments:
        for line in comment.splitlines():
            stripped = _COMMENT_LINE.sub("", line).rstrip()
            lines.append(stripped.removesuffix("*/").rstrip())
    return "\n".join(lines).strip()


def _leading_comments(node: Any, source: bytes) -> list[str]:
    """The comments right above ``node`` (no blank line between)."""
    found: list[str] = []
    previous = node.prev_named_sibling
    line = node.start_point[0]
    while previous is not None and previous.type == "comment" and previous.end_point[0] >= line - 1:
        found.insert(0, _text(previous, source))
        line = previous.start_point[0]
        previous = previous.prev_named_sibling
    return found


def _described(doc: str, exports: list[str]) -> str:
    if sentence := first_sentence(doc):
        return sentence
    if exports:
        shown = ", ".join(exports[:EXPORTS_NAMED])
        more = len(exports) - EXPORTS_NAMED
        return f"Exports {shown}{f' and {more} more' if more > 0 else ''}."
    return ""


# --- walking a repository ------------------------------------------------------------------


def _files(
    repo: Path,
    ignored: IgnoreCheck,
    *,
    keep: Callable[[str], bool],
    skip_dirs: frozenset[str],
    under: str = "",
) -> list[Path]:
    """The files under ``repo`` (or its ``under`` directory) that ``keep`` takes by name,
    sorted; hidden directories, ``skip_dirs`` and what git ignores left out."""
    start = repo / under if under else repo
    if not start.is_dir():
        return []
    found = []
    for directory, dirs, names in os.walk(start):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in skip_dirs)
        for name in sorted(names):
            if keep(name):
                found.append(Path(directory) / name)
    left_out = ignored([_rel(repo, path) for path in found])
    return [path for path in found if _rel(repo, path) not in left_out]


def _rel(repo: Path, path: Path) -> str:
    return path.relative_to(repo).as_posix() or "."


def _read(path: Path, repo: Path, warnings: list[str]) -> bytes | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            warnings.append(f"{_rel(repo, path)}: larger than {MAX_FILE_BYTES} bytes; left out")
            return None
        return path.read_bytes()
    except OSError as error:
        warnings.append(f"{_rel(repo, path)}: cannot read ({error}); left out")
        return None


def _read_parsed(
    path: Path, repo: Path, parser: Any, warnings: list[str]
) -> tuple[bytes, str, Any] | None:
    """A file's bytes, its path in the repository and its parsed root; None (and a warning)
    when it cannot be read."""
    source = _read(path, repo, warnings)
    if source is None:
        return None
    relative = _rel(repo, path)
    return source, relative, _parsed(parser, source, relative, warnings)


def _parsed(parser: Any, source: bytes, relative: str, warnings: list[str]) -> Any:
    tree = parser.parse(source)
    if tree.root_node.has_error:
        warnings.append(f"{relative}: has syntax errors; read as far as the grammar could")
    return tree.root_node


def _dotted(relative_dir: str) -> str:
    """``internal/store`` → ``internal.store``; every character a module name refuses
    becomes ``_``."""
    parts = [re.sub(r"[^A-Za-z0-9_-]", "_", part) for part in relative_dir.split("/") if part]
    dotted = ".".join(parts)
    return f"_{dotted[1:]}" if dotted.startswith("-") else dotted


def _scan(repo: Path, ignored: IgnoreCheck | None) -> tuple[Path, IgnoreCheck, Scan]:
    repo = repo.resolve()
    return repo, ignored or git_ignore_check(repo) or gitignore_fallback(repo), Scan()


def _add_context(scan: Scan, context: dict, children: list[dict]) -> None:
    """Add a context row and its children, each child named under it."""
    scan.rows.append(context)
    for child in children:
        child["module_name"] = f"{context['module_name']}.{_dotted(child['name'])}"
        child["parent_module_name"] = context["module_name"]
        scan.rows.append(child)


def _context_row(module_name: str, name: str, children: list[dict], **fields: Any) -> dict:
    return {
        "module_name": module_name,
        "name": name,
        "type": CONTEXT,
        "priority": sum(child["priority"] for child in children),
        "description": fields.get("description", ""),
        "parent_module_name": None,
        "source_path": fields.get("source_path"),
    }


# --- Go ------------------------------------------------------------------------------------

GO_COUNTING = Counting(
    statements=frozenset(
        {
            "function_declaration",
            "method_declaration",
            "type_declaration",
            "var_declaration",
            "const_declaration",
            "short_var_declaration",
            "assignment_statement",
        }
    ),
    branches=frozenset(
        {"if_statement", "for_statement", "expression_case", "type_case", "communication_case"}
    ),
    operator_nodes=frozenset({"binary_expression"}),
    operators=frozenset({"&&", "||"}),
)
GO_SKIPPED_DIRS = frozenset({"vendor", "testdata", "node_modules"}) | DEFAULT_LEFT_OUT_DIRS


def _go_first_doc(root: Any, source: bytes) -> str:
    """The doc comment of a file's first exported declaration: what the file is about (its
    package comment describes the package)."""
    for node in root.named_children:
        if node.type in ("package_clause", "import_declaration", "comment"):
            continue
        if _go_exports(_Only(node), source) and (
            doc := comment_text(_leading_comments(node, source))
        ):
            return doc
    return ""


class _Only:
    """A stand-in root with one child, to ask ``_go_exports`` about one declaration."""

    def __init__(self, node: Any) -> None:
        self.named_children = [node]


def _go_exports(root: Any, source: bytes) -> list[str]:
    names = []
    for node in root.named_children:
        if node.type in ("function_declaration", "method_declaration"):
            name = node.child_by_field_name("name")
            if name is not None and _text(name, source)[:1].isupper():
                names.append(_text(name, source))
        elif node.type in ("type_declaration", "var_declaration", "const_declaration"):
            for spec in node.named_children:
                name = spec.child_by_field_name("name")
                if name is not None and _text(name, source)[:1].isupper():
                    names.append(_text(name, source))
    return names


def scan_go_repo(repo: Path, *, ignored: IgnoreCheck | None = None) -> Scan:
    """A Go module's packages as contexts (the directory's dotted path; the root package by
    its package name), their files as components (``<package>.<file>``); test files
    (``_test.go``), ``vendor/``, ``testdata/``, ``build/``, ``dist/``, ``examples/`` and
    what git ignores left out."""
    repo, check, scan = _scan(repo, ignored)
    parser = parser_for(GO)
    by_dir: dict[str, list[Path]] = {}
    files = _files(
        repo,
        check,
        keep=lambda name: name.endswith(".go") and not name.endswith("_test.go"),
        skip_dirs=GO_SKIPPED_DIRS,
    )
    for path in files:
        by_dir.setdefault(_rel(repo, path.parent), []).append(path)
    constrained: list[str] = []
    for directory, paths in sorted(by_dir.items()):
        children, package, package_doc, doc_file = [], None, "", None
        for path in paths:
            if (read := _read_parsed(path, repo, parser, scan.warnings)) is None:
                continue
            source, relative, root = read
            clause = next((n for n in root.named_children if n.type == "package_clause"), None)
            doc = comment_text(_leading_comments(clause, source)) if clause is not None else ""
            if clause is not None and package is None:
                package = _text(clause.named_children[0], source) if clause.named_children else None
            if doc and (not package_doc or path.name == "doc.go"):
                package_doc, doc_file = doc, relative
            if path.name == "doc.go":
                continue  # a package's documentation, no code to test
            if (constraint := go_build_constraint(path.name, source)) is not None:
                constrained.append(f"{relative} ({constraint})")
            test_file = path.with_name(f"{path.stem}_test.go")
            children.append(
                {
                    "name": path.stem,
                    "type": FILE,
                    "priority": count_priority(root, GO_COUNTING, source),
                    "description": _described(
                        _go_first_doc(root, source), _go_exports(root, source)
                    ),
                    "source_path": relative,
                    "existing_tests": [_rel(repo, test_file)] if test_file.is_file() else [],
                }
            )
        if not children:
            continue
        context = _dotted(directory) if directory != "." else (package or repo.name)
        _add_context(
            scan,
            _context_row(
                context,
                package or directory.rsplit("/", 1)[-1],
                children,
                description=first_sentence(package_doc),
                source_path=doc_file,
            ),
            children,
        )
    if constrained:
        scan.warnings.append(
            "files built only on some platforms (a build constraint): "
            + ", ".join(constrained)
            + "; a test of one runs and measures only where it builds, so --exclude those "
            "the machine running the tests cannot build"
        )
    _say_when_empty(scan, "no Go package with files found")
    return scan


# Go's GOOS and GOARCH values a file name can end in (name_GOOS.go, name_GOARCH.go,
# name_GOOS_GOARCH.go): such a file is built only there.
_GOOS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    ]
)
_GOARCH = frozenset(
    [
        "386",
        "amd64",
        "arm",
        "arm64",
        "loong64",
        "mips",
        "mips64",
        "mips64le",
        "mipsle",
        "ppc64",
        "ppc64le",
        "riscv64",
        "s390x",
        "wasm",
    ]
)
_GO_BUILD_LINE = re.compile(rb"^//go:build\s+(.+?)\s*$|^// \+build\s+(.+?)\s*$", re.M)


def go_build_constraint(name: str, source: bytes) -> str | None:
    """The file's build constraint as written (``//go:build js``, or its name's ``_windows``),
    or None when it builds everywhere. Read from the lines before the package clause."""
    header = source.split(b"\npackage ", 1)[0]
    found = _GO_BUILD_LINE.search(header)
    if found:
        return (found.group(1) or found.group(2)).decode("utf-8", errors="replace")
    parts = name.removesuffix(".go").split("_")[1:]
    tail = [part for part in parts[-2:] if part in _GOOS or part in _GOARCH]
    if tail and parts[-1] in (_GOOS | _GOARCH):
        return "_".join(tail)
    return None


# --- TypeScript and JavaScript -----------------------------------------------------------

TS_EXTENSIONS = {".ts": "typescript", ".tsx": "tsx", ".js": "javascript", ".jsx": "javascript"}
TS_EXTENSIONS |= {".mjs": "javascript", ".cjs": "javascript", ".mts": "typescript"}
TS_SKIPPED_DIRS = (
    frozenset({"node_modules", "__tests__", "__mocks__", "coverage", "out", "test", "tests", "e2e"})
    | DEFAULT_LEFT_OUT_DIRS
)
_TS_TEST_FILE = re.compile(r"\.(test|spec)\.[cm]?[jt]sx?$")
_TS_CONFIG_FILE = re.compile(r"(^|\.)config\.[cm]?[jt]s$|^\.|rc\.[cm]?js$")
TS_COUNTING = Counting(
    statements=frozenset(
        {
            "lexical_declaration",
            "variable_declaration",
            "function_declaration",
            "generator_function_declaration",
            "class_declaration",
            "method_definition",
            "arrow_function",
            "interface_declaration",
            "type_alias_declaration",
            "enum_declaration",
        }
    ),
    branches=frozenset(
        {
            "if_statement",
            "for_statement",
            "for_in_statement",
            "while_statement",
            "do_statement",
            "switch_case",
            "catch_clause",
            "ternary_expression",
        }
    ),
    operator_nodes=frozenset({"binary_expression"}),
    operators=frozenset({"&&", "||", "??"}),
)
# A directory whose name is no part of a module's name (as src/ in Python).
TS_IMPORT_ROOTS = ("src", "lib")


def _ts_keep(name: str) -> bool:
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return (
        suffix in TS_EXTENSIONS
        and not name.endswith((".d.ts", ".d.mts"))
        and not _TS_TEST_FILE.search(name)
        and not _TS_CONFIG_FILE.search(name)
    )


def _ts_exports(root: Any, source: bytes) -> list[str]:
    names: list[str] = []
    for node in root.named_children:
        if node.type == "expression_statement":
            names += _commonjs_exports(node, source)
            continue
        if node.type != "export_statement":
            continue
        if node.child_by_field_name("value") is not None or _text(node, source).startswith(
            "export default"
        ):
            declared = node.child_by_field_name("declaration")
            name = declared.child_by_field_name("name") if declared is not None else None
            names.append(_text(name, source) if name is not None else "default")
            continue
        declared = node.child_by_field_name("declaration")
        if declared is not None:
            name = declared.child_by_field_name("name")
            if name is not None:
                names.append(_text(name, source))
            for child in declared.named_children:
                if child.type == "variable_declarator":
                    name = child.child_by_field_name("name")
                    if name is not None:
                        names.append(_text(name, source))
        for child in node.named_children:
            if child.type == "export_clause":
                for specifier in child.named_children:
                    alias = specifier.child_by_field_name("alias")
                    name = alias or specifier.child_by_field_name("name")
                    if name is not None:
                        names.append(_text(name, source))
    return names


def _commonjs_exports(statement: Any, source: bytes) -> list[str]:
    """``module.exports = Name``, ``module.exports = { a, b: c }`` and ``exports.x = ...``."""
    assignment = statement.named_children[0] if statement.named_children else None
    if assignment is None or assignment.type != "assignment_expression":
        return []
    left = _text(assignment.child_by_field_name("left"), source)
    right = assignment.child_by_field_name("right")
    if left.startswith("exports.") or left.startswith("module.exports."):
        return [left.rsplit(".", 1)[-1]]
    if left != "module.exports" or right is None:
        return []
    if right.type == "identifier":
        return [_text(right, source)]
    if right.type == "object":
        names = []
        for entry in right.named_children:
            key = entry.child_by_field_name("key") if entry.type == "pair" else entry
            if key is not None and key.type in (
                "identifier",
                "shorthand_property_identifier",
                "property_identifier",
            ):
                names.append(_text(key, source))
        return names
    return []


def _ts_doc(root: Any, source: bytes) -> str:
    """A file's JSDoc: the ``/** */`` block that opens it, else the one above its first
    export."""
    first = root.named_children[0] if root.named_children else None
    if first is not None and first.type == "comment" and _text(first, source).startswith("/**"):
        return comment_text([_text(first, source)])
    for node in root.named_children:
        if node.type == "export_statement":
            docs = [c for c in _leading_comments(node, source) if c.startswith("/**")]
            return comment_text(docs[-1:])
    return ""


def _package_name(repo: Path) -> str | None:
    import json

    try:
        name = json.loads((repo / "package.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return _dotted(name.lstrip("@")) if isinstance(name, str) and name.strip("@/") else None


def _ts_module_dir(relative_dir: str) -> str:
    parts = relative_dir.split("/") if relative_dir != "." else []
    if parts and parts[0] in TS_IMPORT_ROOTS:
        parts = parts[1:]
    return "/".join(parts)


def scan_typescript_repo(repo: Path, *, ignored: IgnoreCheck | None = None) -> Scan:
    """Directories as contexts and their TypeScript or JavaScript files as components; a
    leading ``src/`` or ``lib/`` is no part of a name, and the files at the top are the
    package's (its package.json name). Tests (``*.test.ts``, ``*.spec.ts``, ``__tests__/``,
    ``test/``), declaration files, config files, ``node_modules/``, ``dist/``, ``build/``,
    ``coverage/``, ``examples/`` and what git ignores are left out."""
    repo, check, scan = _scan(repo, ignored)
    by_dir: dict[str, list[Path]] = {}
    for path in _files(repo, check, keep=_ts_keep, skip_dirs=TS_SKIPPED_DIRS):
        by_dir.setdefault(_rel(repo, path.parent), []).append(path)
    top = _package_name(repo) or _dotted(repo.name) or "app"
    for directory, paths in sorted(by_dir.items()):
        children = []
        for path in paths:
            grammar = TS_EXTENSIONS["." + path.name.rsplit(".", 1)[-1]]
            if (read := _read_parsed(path, repo, parser_for(grammar), scan.warnings)) is None:
                continue
            source, relative, root = read
            stem = path.name.rsplit(".", 1)[0]
            ext = path.name.rsplit(".", 1)[-1]
            tests = [
                path.with_name(f"{stem}.test.{ext}"),
                path.with_name(f"{stem}.spec.{ext}"),
                path.parent / "__tests__" / f"{stem}.test.{ext}",
            ]
            children.append(
                {
                    "name": stem,
                    "type": FILE,
                    "priority": count_priority(root, TS_COUNTING, source),
                    "description": _described(_ts_doc(root, source), _ts_exports(root, source)),
                    "source_path": relative,
                    "existing_tests": [_rel(repo, t) for t in tests if t.is_file()],
                }
            )
        if not children:
            continue
        module_dir = _ts_module_dir(directory)
        context = _dotted(module_dir) if module_dir else top
        index = next((c for c in children if c["name"] == "index"), None)
        _add_context(
            scan,
            _context_row(
                context,
                module_dir.rsplit("/", 1)[-1] if module_dir else top,
                children,
                description=index["description"] if index else "",
            ),
            children,
        )
    _say_when_empty(scan, "no TypeScript or JavaScript file found")
    return scan


# --- Elixir / Phoenix ------------------------------------------------------------------------

ELIXIR_COUNTING = Counting(
    statements=frozenset({"call", "binary_operator"}),
    branches=frozenset({"stab_clause"}),
    operator_nodes=frozenset({"binary_operator"}),
    operators=frozenset({"and", "or", "&&", "||"}),
)
_ELIXIR_BRANCH_CALLS = frozenset({"if", "unless", "cond", "case", "with", "receive"})


def _elixir_priority(root: Any, source: bytes) -> int:
    """Calls and operators are Elixir's statements; a clause (``->``) of a ``case``,
    ``cond``, ``with`` or function head is a branch, and so is an ``if``/``unless``."""
    total = count_priority(root, ELIXIR_COUNTING, source)
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "call":
            target = node.child_by_field_name("target")
            if target is not None and _text(target, source) in ("if", "unless"):
                total += 1
        stack.extend(node.named_children)
    return total


def _elixir_module(root: Any, source: bytes) -> tuple[str | None, Any]:
    """The first ``defmodule`` of a file: its name and its ``do`` block."""
    for node in root.named_children:
        if node.type != "call":
            continue
        target = node.child_by_field_name("target")
        if target is None or _text(target, source) != "defmodule":
            continue
        arguments = next((c for c in node.named_children if c.type == "arguments"), None)
        alias = arguments.named_children[0] if arguments and arguments.named_children else None
        block = next((c for c in node.named_children if c.type == "do_block"), None)
        return (_text(alias, source) if alias is not None else None), block
    return None, None


def _elixir_doc_and_kind(block: Any, source: bytes) -> tuple[str, str]:
    """A module's ``@moduledoc`` text and whether it is an Ecto schema."""
    doc, kind = "", MODULE
    for node in block.named_children if block is not None else []:
        text = _text(node, source)
        if node.type == "unary_operator" and text.startswith("@moduledoc"):
            body = text.removeprefix("@moduledoc").strip()
            if body.startswith(("false", "nil")):
                continue
            doc = body.strip("~SsB").strip('"').strip("'").strip()
        elif node.type == "call" and (
            text.startswith("use Ecto.Schema") or text.startswith("schema ")
        ):
            kind = SCHEMA
    return doc, kind


def _camelize(part: str) -> str:
    return "".join(piece[:1].upper() + piece[1:] for piece in part.split("_"))


def scan_elixir_repo(repo: Path, *, ignored: IgnoreCheck | None = None) -> Scan:
    """Phoenix contexts: for each ``lib/<app>/<context>/`` directory, the context is the
    module of ``lib/<app>/<context>.ex`` (or the directory's name camelized when there is
    none) and its components the modules of the files under the directory (its schemas, type
    ``schema`` when they use Ecto.Schema). ``lib/<app>_web/`` (the web layer) and
    ``lib/<app>/*.ex`` files without a directory (the repo, the application) are no
    contexts; one warning names what was left out."""
    repo, check, scan = _scan(repo, ignored)
    parser = parser_for(ELIXIR)
    lib = repo / "lib"
    left_out: list[str] = []
    if not lib.is_dir():
        _say_when_empty(scan, "no lib/ directory: not a Mix project")
        return scan
    for app in sorted(p for p in lib.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if app.name.endswith("_web"):
            left_out.append(f"{_rel(repo, app)}/ (the web layer)")
            continue
        for context_dir in sorted(p for p in app.iterdir() if p.is_dir()):
            files = _files(
                repo,
                check,
                keep=lambda name: name.endswith(".ex"),
                skip_dirs=frozenset(),
                under=_rel(repo, context_dir),
            )
            children = []
            for path in files:
                if (read := _read_parsed(path, repo, parser, scan.warnings)) is None:
                    continue
                source, relative, root = read
                name, block = _elixir_module(root, source)
                if name is None:
                    scan.warnings.append(f"{relative}: no defmodule; left out")
                    continue
                doc, kind = _elixir_doc_and_kind(block, source)
                test = repo / "test" / path.relative_to(lib).with_name(f"{path.stem}_test.exs")
                children.append(
                    {
                        "module_name": name,
                        "name": name.rsplit(".", 1)[-1],
                        "type": kind,
                        "priority": _elixir_priority(root, source),
                        "description": first_sentence(doc),
                        "source_path": relative,
                        "existing_tests": [_rel(repo, test)] if test.is_file() else [],
                    }
                )
            if not children:
                continue
            context_file = app / f"{context_dir.name}.ex"
            context_name, description, source_path = None, "", None
            if context_file.is_file() and (source := _read(context_file, repo, scan.warnings)):
                root = _parsed(parser, source, _rel(repo, context_file), scan.warnings)
                context_name, block = _elixir_module(root, source)
                description = first_sentence(_elixir_doc_and_kind(block, source)[0])
                source_path = _rel(repo, context_file)
            context_name = context_name or f"{_camelize(app.name)}.{_camelize(context_dir.name)}"
            scan.rows.append(
                _context_row(
                    context_name,
                    context_name.rsplit(".", 1)[-1],
                    children,
                    description=description,
                    source_path=source_path,
                )
            )
            for child in children:
                child["parent_module_name"] = context_name
                scan.rows.append(child)
        loose = sorted(_rel(repo, p) for p in app.glob("*.ex") if not (app / p.stem).is_dir())
        left_out += [f"{path} (no {path[:-3]}/ directory)" for path in loose]
    if left_out:
        scan.warnings.append(
            "not contexts: "
            + ", ".join(left_out[:10])
            + (f" and {len(left_out) - 10} more" if len(left_out) > 10 else "")
        )
    _say_when_empty(scan, "no Phoenix context (lib/<app>/<context>/ with modules) found")
    return scan


def _say_when_empty(scan: Scan, message: str) -> None:
    if not scan.rows:
        scan.warnings.append(f"{message}: nothing to import (describe it with --manifest)")


SCANNERS: dict[str, Callable[..., Scan]] = {
    GO: scan_go_repo,
    TYPESCRIPT: scan_typescript_repo,
    ELIXIR: scan_elixir_repo,
}


def scan_repo(repo: Path, language: str, *, ignored: IgnoreCheck | None = None) -> Scan:
    """The rows of ``repo`` read as ``language`` (one of ``SCANNERS``)."""
    return SCANNERS[language](repo, ignored=ignored)
