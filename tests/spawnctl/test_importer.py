"""spawnctl.importer on real code: this repository's own sessions_app read with ``ast``,
re-imported after a module is added and one removed, and manifests checked row by row by the
server (a dry run asks it too), with nothing written when a row is bad."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components_app import services, test_paths
from components_app.models import Component
from components_app.services import InvalidRows, bulk_upsert_components
from core.errors import Conflict
from spawnctl import importer
from spawnctl.importer import (
    ImportRejected,
    ManifestError,
    format_plan,
    load_manifest,
    run_import,
    scan_python_repo,
)
from tests.api.conftest import client_for
from tests.factories import make_component, make_context_session

REPO = Path(__file__).resolve().parents[2]
PUBLIC_DEFINITION = re.compile(r"^(?:async def|def|class) [A-Za-z]", re.MULTILINE)


def expected_from_files(root: Path, package: str) -> dict[str, tuple[str | None, str, int]]:
    """module_name → (parent, type, priority) for ``root/package``, the tree worked out from
    the files with globs rather than with the importer's walk (the priority measure itself is
    ``priority_of``'s, checked on hand-counted modules below): a subpackage's context sits
    under its package's."""
    modules: dict[str, tuple[str | None, str, int]] = {}
    for init in sorted((root / package).rglob("__init__.py")):
        directory = init.parent
        parts = directory.relative_to(root).parts
        if {"migrations", "tests", "__pycache__"} & set(parts):
            continue
        dotted = ".".join(parts)
        files = [
            f
            for f in directory.glob("*.py")
            if f.name != "__init__.py" and not f.name.startswith("test_")
        ]
        for path in files:
            priority = importer.priority_of(ast.parse(path.read_bytes()))
            modules[f"{dotted}.{path.stem}"] = (dotted, "module", priority)
        if files:
            total = sum(modules[f"{dotted}.{f.stem}"][2] for f in files)
            # Under the nearest enclosing package that is a context (sorted: outermost first).
            enclosing = [
                ".".join(parts[:end])
                for end in range(len(parts) - 1, 0, -1)
                if modules.get(".".join(parts[:end]), (None, ""))[1] == "context"
            ]
            modules[dotted] = (enclosing[0] if enclosing else None, "context", total)
    return modules


def as_tree(rows: list[dict]) -> dict[str, tuple[str | None, str, int]]:
    return {r["module_name"]: (r["parent_module_name"], r["type"], r["priority"]) for r in rows}


def stored_tree(scope) -> dict[str, tuple[str | None, str, int]]:
    return {
        c.module_name: (
            c.parent_component.module_name if c.parent_component else None,
            c.type,
            c.priority,
        )
        for c in Component.objects.filter(project=scope.project).select_related("parent_component")
    }


@pytest.fixture
def sessions_app_copy(tmp_path) -> Path:
    """A copy of this repository's sessions_app in a directory that is no git work tree."""
    root = tmp_path / "repo"
    shutil.copytree(
        REPO / "sessions_app",
        root / "sessions_app",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


# --- this repository's sessions_app ---------------------------------------------------------


def test_this_repositorys_sessions_app_becomes_contexts_and_components(scope):
    scan = scan_python_repo(REPO)
    rows = [r for r in scan.rows if r["module_name"].split(".")[0] == "sessions_app"]

    tree = as_tree(rows)
    assert tree == expected_from_files(REPO, "sessions_app")
    # The facts the expectation rests on, spelled out.
    assert tree["sessions_app"][1] == "context"
    assert tree["sessions_app.models"][0] == "sessions_app"
    assert tree["sessions_app.workflows.steps.run_tests"][0] == "sessions_app.workflows.steps"
    assert tree["sessions_app.management.commands.spawn_sessions"][0] == (
        "sessions_app.management.commands"
    )
    assert not any(".migrations" in name for name in tree)
    assert tree["sessions_app.models"][2] > tree["sessions_app.apps"][2]
    # The whole repository's scan passes the server's rules.
    planned = bulk_upsert_components(scope=scope, rows=scan.rows, dry_run=True)
    assert planned.created == len(scan.rows)
    assert not Component.objects.exists()


QUOTES = '"' * 3


@pytest.mark.parametrize(
    ("docstring", "description"),
    [
        ("One line.", "One line."),
        # marshmallow.schema's: the sentence is kept whole, its parentheses and all.
        (
            "The :class:`Schema` class, including its metaclass and options (class Meta).\n\nMore.",
            "The :class:`Schema` class, including its metaclass and options (class Meta).",
        ),
        # A sentence over two lines, with an abbreviation inside.
        (
            "Reads a document, e.g. a TOML file, and\n    keeps its comments. Then more.",
            "Reads a document, e.g. a TOML file, and keeps its comments.",
        ),
        (
            "No full stop at all\nand a second line\n\nSecond paragraph.",
            "No full stop at all and a second line",
        ),
        ("Version 1.2 is read. 2 more follow.", "Version 1.2 is read."),
        ("\n\n   Leading blank lines. Then more.", "Leading blank lines."),
        ("", ""),
    ],
)
def test_a_description_is_the_docstrings_first_sentence_whole(tmp_path, docstring, description):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "m.py", f"{QUOTES}{docstring}{QUOTES}\n\nX = 1\n")

    rows = {r["module_name"]: r for r in scan_python_repo(tmp_path).rows}

    assert rows["pkg.m"]["description"] == description


def test_the_scan_goes_into_the_service_unchanged(scope, sessions_app_copy):
    rows = scan_python_repo(sessions_app_copy).rows

    result = bulk_upsert_components(scope=scope, rows=rows)

    assert result.created == len(rows)
    assert stored_tree(scope) == expected_from_files(sessions_app_copy, "sessions_app")


def test_a_re_import_creates_the_added_module_updates_what_changed_and_prunes_the_removed(
    scope, sessions_app_copy
):
    package = sessions_app_copy / "sessions_app"
    bulk_upsert_components(scope=scope, rows=scan_python_repo(sessions_app_copy).rows)
    removed_priority = importer.priority_of(ast.parse((package / "apps.py").read_bytes()))
    (package / "apps.py").unlink()
    (package / "extra.py").write_text(
        '"""Added after the first import."""\n\n\ndef a():\n    pass\n\n\n'
        "def b():\n    pass\n\n\nclass C:\n    pass\n\n\ndef _private():\n    pass\n"
    )
    selectors = package / "selectors.py"
    selectors.write_text('"""A new first line."""\n' + selectors.read_text())

    rows = scan_python_repo(sessions_app_copy).rows
    result = bulk_upsert_components(scope=scope, rows=rows, prune=True)

    # updated: selectors (description) and the sessions_app context (its priority sum)
    assert removed_priority != 9
    assert (result.created, result.updated, result.deleted) == (1, 2, 1)
    assert result.unchanged == len(rows) - 3
    tree = stored_tree(scope)
    # Its docstring, four definitions and their bodies: nine statements, no branch.
    assert tree["sessions_app.extra"] == ("sessions_app", "module", 9)
    assert "sessions_app.apps" not in tree
    assert Component.objects.get(module_name="sessions_app.selectors").description == (
        "A new first line."
    )
    assert tree == expected_from_files(sessions_app_copy, "sessions_app")


def test_a_re_import_does_not_prune_a_module_that_has_sessions(scope, sessions_app_copy):
    bulk_upsert_components(scope=scope, rows=scan_python_repo(sessions_app_copy).rows)
    make_context_session(scope, Component.objects.get(module_name="sessions_app.apps"))
    (sessions_app_copy / "sessions_app" / "apps.py").unlink()
    before = stored_tree(scope)

    with pytest.raises(Conflict) as error:
        bulk_upsert_components(
            scope=scope, rows=scan_python_repo(sessions_app_copy).rows, prune=True
        )

    assert error.value.message == "Components with sessions cannot be deleted: sessions_app.apps"
    assert stored_tree(scope) == before


# --- what the scan leaves out ----------------------------------------------------------------


def write(path: Path, text: str = '"""Doc."""\n\n\ndef f():\n    pass\n') -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def small_repo(tmp_path) -> Path:
    root = tmp_path / "small"
    write(root / "app" / "__init__.py", '"""The app."""\n')
    write(root / "app" / "core.py")
    write(root / "app" / "test_core.py")
    write(root / "app" / "core_test.py")
    write(root / "app" / "conftest.py")
    write(root / "app" / "tests" / "__init__.py", "")
    write(root / "app" / "tests" / "helpers.py")
    write(root / "app" / "migrations" / "__init__.py", "")
    write(root / "app" / "migrations" / "0001_initial.py")
    write(root / "app" / ".hidden" / "__init__.py", "")
    write(root / "app" / ".hidden" / "thing.py")
    write(root / "app" / "generated" / "__init__.py", "")
    write(root / "app" / "generated" / "stub.py")
    write(root / "app" / "secret_keys.py")
    write(root / "env" / "pyvenv.cfg", "home = /usr/bin\n")
    write(root / "env" / "lib" / "pkg" / "__init__.py", "")
    write(root / "env" / "lib" / "pkg" / "vendored.py")
    write(root / "manage.py")
    write(root / ".gitignore", "# generated code\ngenerated/\n/app/secret_*.py\n")
    return root


def test_tests_migrations_hidden_virtualenvs_and_gitignored_files_are_left_out(small_repo):
    # No git work tree here: the simple reading of .gitignore decides.
    assert importer.git_ignore_check(small_repo) is None

    assert sorted(r["module_name"] for r in scan_python_repo(small_repo).rows) == [
        "app",
        "app.core",
    ]


def test_in_a_git_work_tree_git_decides_what_is_ignored(small_repo):
    subprocess.run(["git", "init", "-q", str(small_repo)], check=True)
    # A rule the simple fallback does not read (negation): only git would keep keep.py.
    write(small_repo / "app" / "keep.py")
    write(small_repo / "app" / "drop.py")
    (small_repo / "app" / ".gitignore").write_text("*.py\n!keep.py\n!core.py\n")

    assert importer.git_ignore_check(small_repo) is not None
    assert sorted(r["module_name"] for r in scan_python_repo(small_repo).rows) == [
        "app",
        "app.core",
        "app.keep",
    ]


def test_the_code_is_parsed_never_imported_and_a_broken_module_is_kept_at_priority_0(tmp_path):
    marker = tmp_path / "imported"
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "loud.py", f"open({str(marker)!r}, 'w').write('x')\n\ndef f(): ...\n")
    write(tmp_path / "pkg" / "broken.py", "def (:\n")

    scan = scan_python_repo(tmp_path)

    assert not marker.exists()
    rows = {r["module_name"]: r for r in scan.rows}
    # loud.py: the call, the def and its body; three statements.
    assert (rows["pkg.loud"]["priority"], rows["pkg.broken"]["priority"]) == (3, 0)
    assert rows["pkg"]["priority"] == 3
    assert len(scan.warnings) == 1
    assert scan.warnings[0].startswith("pkg/broken.py: cannot parse (SyntaxError")


def test_the_priority_counts_statements_and_branches(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    source = """\
import os                                  # 1 statement
def f(items, flag):                        # 1
    if flag and items or None:             # 1, a branch, two boolean operators
        return [x for x in items if x]     # 1, a comprehension: its for and its if
    for item in items:                     # 1, a branch
        try:                               # 1
            os.remove(item)                # 1
        except OSError:                    # a branch
            pass                           # 1
    while False:                           # 1, a branch
        break                              # 1
    return 1 if flag else 2                # 1, a branch
"""
    write(tmp_path / "pkg" / "m.py", source)

    (row,) = [r for r in scan_python_repo(tmp_path).rows if r["module_name"] == "pkg.m"]

    assert row["priority"] == 11 + 1 + 2 + 2 + 1 + 1 + 1 + 1


def _module_of_size(classes: int, methods: int, branches_each: int) -> str:
    """A module of ``classes`` public classes of ``methods`` methods, each method with
    ``branches_each`` ifs: the shape of a real module, its sizes chosen."""
    lines = ['"""A module."""']
    for c in range(classes):
        lines.append(f"class C{c}:")
        for m in range(methods):
            lines.append(f"    def m{m}(self, x):")
            for b in range(branches_each):
                lines += [f"        if x == {b}:", f"            x = x + {b}"]
            lines.append("        return x")
    return "\n".join(lines) + "\n"


def test_click_s_core_outweighs_its_types_as_their_sizes_say(tmp_path):
    """click 8.1.7: core.py is 3,042 lines in eleven public classes (the old count of public
    definitions gave it 11), types.py 1,089 lines in twenty-six (26): the new measure on
    modules of those shapes (1,597 and 535 on click itself) puts core first."""
    write(tmp_path / "click" / "__init__.py", "")
    write(tmp_path / "click" / "core.py", _module_of_size(classes=11, methods=14, branches_each=4))
    write(tmp_path / "click" / "types.py", _module_of_size(classes=26, methods=2, branches_each=3))
    for name in ("core", "types"):
        assert len(PUBLIC_DEFINITION.findall((tmp_path / "click" / f"{name}.py").read_text())) == (
            11 if name == "core" else 26
        )

    rows = {r["module_name"]: r for r in scan_python_repo(tmp_path).rows}

    assert rows["click.core"]["priority"] > rows["click.types"]["priority"]
    # 11 classes x 14 methods x (def + 4 ifs + 4 assignments + return + 4 branches) + 11 + 1.
    assert rows["click.core"]["priority"] == 11 * 14 * 14 + 11 + 1
    assert rows["click.types"]["priority"] == 26 * 2 * 11 + 26 + 1


def _two_modules(tmp_path: Path) -> Path:
    write(tmp_path / "shop" / "__init__.py", "")
    write(tmp_path / "shop" / "core.py")
    write(tmp_path / "shop" / "types.py")
    return tmp_path


def test_an_override_manifest_puts_a_teams_fields_over_the_scan(tmp_path):
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"version": 1, "components": [
        {"module_name": "shop.types", "priority": 5000, "description": "The parameter types."},
        {"module_name": "shop", "excluded": True},
    ]}))  # fmt: skip

    scan = importer.collect_rows(repo=_two_modules(tmp_path), override=overrides)

    rows = {row["module_name"]: row for row in scan.rows}
    assert (rows["shop.types"]["priority"], rows["shop.types"]["description"]) == (
        5000,
        "The parameter types.",
    )
    assert rows["shop.core"]["priority"] == 3  # what the scan said
    assert rows["shop"]["excluded"] is True
    assert rows["shop.types"]["source_path"] == "shop/types.py"  # untouched


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            [{"module_name": "shop.typos", "priority": 1}],
            "override 1 (shop.typos): no such module in the scan",
        ),
        ([{"priority": 1}], "override 1: needs a module_name"),
        (
            [{"module_name": "shop.core"}, {"module_name": "shop.core", "priority": 2}],
            "override 2 (shop.core): given twice",
        ),
        (
            [{"module_name": "shop.core", "source_path": "x.py", "parent_module_name": None}],
            "override 1 (shop.core): cannot change parent_module_name, source_path (only name, "
            "type, description, priority, excluded)",
        ),
        (["shop.core"], "override 1: needs a module_name"),
    ],
)
def test_an_override_that_cannot_apply_is_refused_naming_it(tmp_path, overrides, problem):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"components": overrides}))

    with pytest.raises(ManifestError) as error:
        importer.collect_rows(repo=_two_modules(tmp_path), override=path)

    assert error.value.message.splitlines() == ["The overrides cannot be applied:", problem]


def test_a_subpackage_is_a_context_under_its_packages_context(tmp_path):
    """marshmallow 3.21: marshmallow.experimental is a context under marshmallow's; a
    package between them without modules is skipped over, a namespace is no parent."""
    write(tmp_path / "src" / "marshmallow" / "__init__.py", "")
    write(tmp_path / "src" / "marshmallow" / "schema.py")
    write(tmp_path / "src" / "marshmallow" / "experimental" / "__init__.py", "")
    write(tmp_path / "src" / "marshmallow" / "experimental" / "context.py")
    write(tmp_path / "src" / "marshmallow" / "_vendor" / "__init__.py", "")
    write(tmp_path / "src" / "marshmallow" / "_vendor" / "deep" / "__init__.py", "")
    write(tmp_path / "src" / "marshmallow" / "_vendor" / "deep" / "lib.py")
    write(tmp_path / "src" / "jaraco" / "text" / "__init__.py", "")
    write(tmp_path / "src" / "jaraco" / "text" / "layouts.py")

    tree = {
        r["module_name"]: r["parent_module_name"]
        for r in scan_python_repo(tmp_path).rows
        if r["type"] == "context"
    }

    assert tree == {
        "marshmallow": None,
        "marshmallow.experimental": "marshmallow",
        "marshmallow._vendor.deep": "marshmallow",
        "jaraco.text": None,
    }


def test_an_override_read_from_yaml_with_keys_that_are_not_text_is_refused_not_a_crash():
    rows = [{"module_name": "shop.core", "priority": 3}]

    with pytest.raises(ManifestError) as error:
        importer.apply_overrides(rows, [{"module_name": "shop.core", 1: "x", None: "y"}])

    assert error.value.message.splitlines()[1] == (
        "override 1 (shop.core): cannot change 1, None (only name, type, description, "
        "priority, excluded)"
    )
    assert rows == [{"module_name": "shop.core", "priority": 3}]


def test_a_package_without_modules_is_no_context_and_its_subpackages_still_are(tmp_path):
    write(tmp_path / "outer" / "__init__.py", "")
    write(tmp_path / "outer" / "inner" / "__init__.py", "")
    write(tmp_path / "outer" / "inner" / "mod.py")
    write(tmp_path / "scripts" / "tool.py")  # outside any package

    rows = scan_python_repo(tmp_path).rows

    assert as_tree(rows) == {
        "outer.inner": (None, "context", 3),
        "outer.inner.mod": ("outer.inner", "module", 3),
    }


# --- manifests ---------------------------------------------------------------------------------


def manifest(tmp_path: Path, components, name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "components": components}))
    return path


def test_a_json_manifest_describes_another_language(tmp_path, scope):
    rows = [
        {"module_name": "Shop.Accounts", "name": "Accounts", "type": "context"},
        {
            "module_name": "Shop.Accounts.User",
            "name": "User",
            "type": "schema",
            "priority": 10,
            "description": "A customer.",
            "parent_module_name": "Shop.Accounts",
        },
    ]

    loaded = load_manifest(manifest(tmp_path, rows))

    assert loaded == rows
    bulk_upsert_components(scope=scope, rows=loaded)
    assert stored_tree(scope) == {
        "Shop.Accounts": (None, "context", 0),
        "Shop.Accounts.User": ("Shop.Accounts", "schema", 10),
    }


def test_a_yaml_manifest_is_read_when_pyyaml_is_installed(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "components:\n"
        "  - {module_name: Shop.Billing, name: Billing, type: context}\n"
        "  - module_name: Shop.Billing.Invoice\n"
        "    name: Invoice\n"
        "    type: schema\n"
        "    parent_module_name: Shop.Billing\n"
    )

    assert [r["module_name"] for r in load_manifest(path)] == [
        "Shop.Billing",
        "Shop.Billing.Invoice",
    ]


def test_a_yaml_manifest_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now fails
    path = tmp_path / "manifest.yml"
    path.write_text("components: []\n")

    with pytest.raises(ManifestError) as error:
        load_manifest(path)

    assert "needs PyYAML (pip install pyyaml)" in error.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "is not valid JSON"),
        ("[]", 'must be an object with a "components" list'),
        ('{"components": {}}', 'must be an object with a "components" list'),
        ('{"components": [], "extra": 1}', "has unknown keys: extra"),
        ('{"components": [], "version": 2}', "only 1 is read"),
    ],
)
def test_a_manifest_of_the_wrong_shape_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "manifest.json"
    path.write_text(text)

    with pytest.raises(ManifestError) as error:
        load_manifest(path)

    assert message in error.value.message


def ctx(module_name: str = "A") -> dict:
    return {"module_name": module_name, "name": module_name, "type": "context"}


def child(module_name: str, parent: str | None, **fields) -> dict:
    return {
        "module_name": module_name,
        "name": module_name.rsplit(".", 1)[-1],
        "type": "module",
        "parent_module_name": parent,
        **fields,
    }


BAD_MANIFESTS = {
    "a cycle": [ctx("A"), child("A.x", "A.y"), child("A.y", "A.x")],
    "an unknown parent": [ctx("A"), child("A.x", "B")],
    "duplicate module names": [ctx("A"), child("A.x", "A"), child("A.x", "A", priority=2)],
    "wrong types": [
        ctx("A"),
        child("A.x", "A", priority="high"),
        child("A.y", ["A"]),
        {"module_name": 7, "name": "N", "type": "module"},
        "not a row",
    ],
    "missing and blank fields": [
        {"module_name": "A"},
        {"module_name": "B", "name": " ", "type": ""},
    ],
    "an unknown field": [{**ctx("A"), "parent": "B"}],
    "a bad module name": [ctx("A"), child("A/../x", "A")],
}


class Server:
    """post_bulk over the real route, as the CLI's one HTTP call is."""

    def __init__(self, scope) -> None:
        self.scope = scope
        self.client = client_for(scope.user)
        #: dry_run of each post, in order.
        self.posts: list[bool] = []

    def post_bulk(self, rows: list[dict], prune: bool, dry_run: bool) -> dict:
        self.posts.append(dry_run)
        body = {"project": str(self.scope.project_id), "components": rows, "prune": prune}
        response = self.client.post(
            "/api/components/bulk/",
            json.dumps({**body, "dry_run": dry_run}),
            content_type="application/json",
        )
        if response.status_code in (400, 409):
            raise ImportRejected(response.status_code, response.json())
        assert response.status_code == 200, response.content
        return response.json()


def stored(scope) -> list[dict]:
    return list(Component.objects.filter(project=scope.project).order_by("module_name").values())


#: The (row, field) pairs each bad manifest is refused for.
BAD_FIELDS = {
    "a cycle": {(1, "parent_module_name"), (2, "parent_module_name")},
    "an unknown parent": {(1, "parent_module_name")},
    "duplicate module names": {(2, "module_name")},
    "wrong types": {
        (1, "priority"),
        (2, "parent_module_name"),
        (3, "module_name"),
        (4, "non_field_errors"),
    },
    "missing and blank fields": {(0, "name"), (0, "type"), (1, "name"), (1, "type")},
    "an unknown field": {(0, "parent")},
    "a bad module name": {(1, "module_name")},
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_bad_manifest_is_read_here_and_refused_row_by_row_by_the_server(tmp_path, scope, case):
    # Reading the file is the client's; the rows' rules are the server's alone.
    rows = load_manifest(manifest(tmp_path, BAD_MANIFESTS[case]))
    make_component(scope.project, "Kept", module_name="kept")
    before = stored(scope)

    with pytest.raises(InvalidRows) as dry:
        bulk_upsert_components(scope=scope, rows=rows, prune=True, dry_run=True)
    with pytest.raises(InvalidRows) as real:
        bulk_upsert_components(scope=scope, rows=rows, prune=True)

    assert dry.value.row_errors == real.value.row_errors
    fields = {(i, f) for i, errors in dry.value.row_errors.items() for f in errors}
    assert fields == BAD_FIELDS[case]
    assert stored(scope) == before


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_servers_row_errors_are_printed_by_row_and_field(scope, dry_run):
    server = Server(scope)
    rows = BAD_MANIFESTS["a cycle"] + [child("A.z", "B")]
    lines: list[str] = []

    code = run_import(rows=rows, post_bulk=server.post_bulk, dry_run=dry_run, out=lines.append)

    assert (code, server.posts) == (1, [dry_run])
    assert lines == [
        f"row 1 (A.x): parent_module_name: {services.CYCLE.format(chain='A.x → A.y → A.x')}",
        f"row 2 (A.y): parent_module_name: {services.CYCLE.format(chain='A.y → A.x → A.y')}",
        f"row 3 (A.z): parent_module_name: {services.UNKNOWN_PARENT}",
        "Nothing imported: 3 bad rows.",
    ]
    assert not Component.objects.exists()


def test_a_dry_run_checks_parents_and_cycles_against_the_projects_components(scope):
    context = make_component(scope.project, "A", module_name="A", type="context")
    make_component(scope.project, "x", module_name="A.x", parent_component=context)
    server = Server(scope)
    before = stored(scope)

    def dry_run_lines(rows: list[dict], *, prune: bool = False) -> list[str]:
        lines: list[str] = []
        run_import(
            rows=rows, post_bulk=server.post_bulk, dry_run=True, prune=prune, out=lines.append
        )
        return lines

    (table,) = dry_run_lines([child("A.y", "A")])
    # The new module's parent is the project's A, named as the row names it.
    assert '          parent_module_name: "A"' in table.splitlines()
    assert [line for line in table.splitlines()[1:] if line[0] != " "] == [
        "create  A.y",
        "1 to create, 0 to update, 0 unchanged, 0 to delete (dry run: nothing was written)",
    ]
    assert dry_run_lines([child("A", "A.x")]) == [
        f"row 0 (A): parent_module_name: {services.CYCLE.format(chain='A → A.x → A')}",
        "Nothing imported: 1 bad row.",
    ]
    assert dry_run_lines([child("A.y", "A")], prune=True) == [
        f"row 0 (A.y): parent_module_name: {services.PRUNED_PARENT.format(parent='A')}",
        "Nothing imported: 1 bad row.",
    ]
    assert server.posts == [True, True, True]
    assert stored(scope) == before


def test_a_manifest_that_is_no_list_of_rows_is_refused_before_anything_is_sent(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"components": {"module_name": "A"}}))

    with pytest.raises(ManifestError) as error:
        importer.collect_rows(repo=tmp_path, manifest=path)

    assert error.value.message == f'{path} must be an object with a "components" list.'


# --- the dry run and run_import ------------------------------------------------------------------

ROWS = [
    {**ctx("A"), "priority": 0, "description": ""},
    child("A.same", "A", priority=1, description=""),
    child("A.changed", "A", priority=5, description="Now documented."),
    child("A.new", "A"),
]


@pytest.fixture
def current(scope) -> None:
    """A project with A, A.same, A.changed and A.gone, which ROWS leaves, keeps, changes and
    (with prune) deletes."""
    context = make_component(scope.project, "A", module_name="A", type="context")
    for name, priority in (("same", 1), ("changed", 1), ("gone", 0)):
        make_component(
            scope.project,
            name,
            module_name=f"A.{name}",
            type="module",
            priority=priority,
            parent_component=context,
        )


def test_the_dry_run_table_is_the_servers_plan_and_nothing_is_written(scope, current):
    server = Server(scope)
    before = stored(scope)
    lines: list[str] = []

    code = run_import(
        rows=ROWS, post_bulk=server.post_bulk, dry_run=True, prune=True, out=lines.append
    )

    assert (code, server.posts) == (0, [True])
    (table,) = lines
    assert table.splitlines() == [
        "action     module_name",
        "unchanged  A",
        "unchanged  A.same",
        "update     A.changed  (priority, description)",
        "             priority: 1 -> 5",
        '             description: "" -> "Now documented."',
        "create     A.new",
        '             name: "new"',
        '             type: "module"',
        "             priority: 0",
        '             description: ""',
        '             parent_module_name: "A"',
        "             source_path: null",
        "             excluded: false",
        "             existing_tests: []",
        "delete     A.gone",
        "1 to create, 1 to update, 2 unchanged, 1 to delete (dry run: nothing was written)",
    ]
    assert stored(scope) == before
    # And it is what the import then does.
    nothing = {"changes": [], "before": {}, "after": {}}
    assert server.post_bulk(ROWS, True, False)["actions"] == [
        {"module_name": "A", "action": "unchanged", **nothing},
        {"module_name": "A.same", "action": "unchanged", **nothing},
        {
            "module_name": "A.changed",
            "action": "update",
            "changes": ["priority", "description"],
            "before": {"priority": 1, "description": ""},
            "after": {"priority": 5, "description": "Now documented."},
        },
        {
            "module_name": "A.new",
            "action": "create",
            "changes": [],
            "before": {},
            "after": {
                "name": "new",
                "type": "module",
                "priority": 0,
                "description": "",
                "parent_module_name": "A",
                "source_path": None,
                "excluded": False,
                "existing_tests": [],
            },
        },
        {"module_name": "A.gone", "action": "delete", **nothing},
    ]


def test_the_plan_shows_a_moved_parent_by_name_and_hostile_text_escaped(scope, current):
    rows = [
        {**ctx("A"), "priority": 0, "description": ""},
        {**ctx("B"), "description": "Red \x1b[31m\nnext line"},
        child("A.same", "A", priority=1, description=""),
        child("A.changed", "B", priority=1, description=""),
    ]
    lines: list[str] = []

    run_import(rows=rows, post_bulk=Server(scope).post_bulk, dry_run=True, out=lines.append)

    table = lines[0].splitlines()
    assert '             description: "Red \\u001b[31m\\nnext line"' in table
    assert '             parent_module_name: "A" -> "B"' in table
    assert not any("\x1b" in line for line in table)


def test_without_prune_the_plan_deletes_nothing(scope, current):
    lines: list[str] = []

    run_import(rows=ROWS, post_bulk=Server(scope).post_bulk, dry_run=True, out=lines.append)

    (table,) = lines
    assert [line.split()[0] for line in table.splitlines()[1:-1] if line[0] != " "] == [
        "unchanged",
        "unchanged",
        "update",
        "create",
    ]
    assert table.splitlines()[-1].startswith("1 to create, 1 to update, 2 unchanged, 0 to")


def test_the_plan_of_nothing_is_its_header_and_totals():
    assert format_plan([]).splitlines() == [
        "action  module_name",
        "0 to create, 0 to update, 0 unchanged, 0 to delete (dry run: nothing was written)",
    ]


def test_run_import_sends_the_rows_and_reports_the_counts(scope, sessions_app_copy):
    server = Server(scope)
    rows = scan_python_repo(sessions_app_copy).rows
    lines: list[str] = []

    code = run_import(rows=rows, post_bulk=server.post_bulk, out=lines.append)

    assert (code, server.posts) == (0, [False])
    assert lines == [
        f"Imported {len(rows)} rows: {len(rows)} created, 0 updated, 0 unchanged, 0 deleted."
    ]
    assert Component.objects.filter(project=scope.project).count() == len(rows)


def test_a_dry_run_of_a_scan_prints_the_plan_and_writes_nothing(scope, sessions_app_copy):
    server = Server(scope)
    rows = scan_python_repo(sessions_app_copy).rows
    lines: list[str] = []

    code = run_import(rows=rows, post_bulk=server.post_bulk, dry_run=True, out=lines.append)

    assert (code, server.posts) == (0, [True])
    assert not Component.objects.exists()
    (table,) = lines
    assert f"{len(rows)} to create, 0 to update, 0 unchanged, 0 to delete" in table
    assert "create  sessions_app.models" in table.splitlines()


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_servers_refusal_is_printed(scope, dry_run):
    tested = Component.objects.create(project=scope.project, name="T", module_name="T", type="x")
    make_context_session(scope, tested)
    lines: list[str] = []

    code = run_import(
        rows=[ctx("B")],
        post_bulk=Server(scope).post_bulk,
        dry_run=dry_run,
        prune=True,
        out=lines.append,
    )

    assert code == 1
    assert lines == ["Components with sessions cannot be deleted: T", "Nothing imported."]
    assert list(Component.objects.values_list("module_name", flat=True)) == ["T"]


def test_too_many_rows_is_printed_as_the_servers_answer(scope):
    rows = [ctx(f"A{i}") for i in range(services.BULK_MAX_ROWS + 1)]
    lines: list[str] = []

    code = run_import(rows=rows, post_bulk=Server(scope).post_bulk, dry_run=True, out=lines.append)

    assert code == 1
    assert lines == [f"components: {services.TOO_MANY_ROWS}", "Nothing imported."]


# --- source paths and exclusions -------------------------------------------------------------


def write_src_layout(root: Path) -> None:
    """A src/ layout with click's shapes: utils beside _utils, a Windows-only module."""
    package = root / "src" / "clicky"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A clicky package."""\n')
    for name in ("utils", "_utils", "core", "_winconsole"):
        (package / f"{name}.py").write_text(f"def {name.strip('_')}():\n    return 1\n")


def test_a_scan_gives_every_component_its_source_path(tmp_path):
    write_src_layout(tmp_path)

    rows = {row["module_name"]: row for row in scan_python_repo(tmp_path).rows}

    assert {module: row["source_path"] for module, row in rows.items()} == {
        "clicky": "src/clicky/__init__.py",
        "clicky._utils": "src/clicky/_utils.py",
        "clicky._winconsole": "src/clicky/_winconsole.py",
        "clicky.core": "src/clicky/core.py",
        "clicky.utils": "src/clicky/utils.py",
    }


def test_utils_and_underscore_utils_import_with_test_files_of_their_own(tmp_path, scope):
    write_src_layout(tmp_path)
    scan = importer.collect_rows(repo=tmp_path)

    bulk_upsert_components(scope=scope, rows=scan.rows)

    stored = {c.module_name: c for c in Component.objects.filter(project=scope.project)}
    assert stored["clicky._utils"].source_path == "src/clicky/_utils.py"
    template = scope.project.test_path_template
    files = {m: test_paths.test_file_of(template, c) for m, c in stored.items()}
    assert files["clicky.utils"] == "tests/test_clicky_utils_utils.py"
    assert files["clicky._utils"] == "tests/test_clicky_utils__utils.py"
    assert len(set(files.values())) == len(files)


def test_exclude_globs_mark_the_matching_modules_excluded(tmp_path, scope):
    write_src_layout(tmp_path)

    scan = importer.collect_rows(repo=tmp_path, exclude=["clicky._win*", "nothing.*"])
    bulk_upsert_components(scope=scope, rows=scan.rows)

    excluded = set(
        Component.objects.filter(project=scope.project, excluded=True).values_list(
            "module_name", flat=True
        )
    )
    assert excluded == {"clicky._winconsole"}
    assert scan.warnings == ["--exclude 'nothing.*' matched no module"]


def test_a_re_import_without_exclude_keeps_an_exclusion(tmp_path, scope):
    write_src_layout(tmp_path)
    bulk_upsert_components(
        scope=scope, rows=importer.collect_rows(repo=tmp_path, exclude=["clicky.core"]).rows
    )

    bulk_upsert_components(scope=scope, rows=importer.collect_rows(repo=tmp_path).rows)

    assert Component.objects.get(project=scope.project, module_name="clicky.core").excluded


def test_exclude_applies_to_a_manifest_s_rows(tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text(
        json.dumps(
            {
                "components": [
                    {"module_name": "app", "name": "app", "type": "context"},
                    {"module_name": "app.win", "name": "win", "type": "module"},
                ]
            }
        )
    )

    scan = importer.collect_rows(repo=tmp_path, manifest=manifest, exclude=["*.win"])

    assert [row.get("excluded") for row in scan.rows] == [None, True]


def test_spawnctl_import_takes_exclude_on_its_command_line():
    from spawnctl.cli import build_parser

    args = build_parser().parse_args(
        ["import", "--repo", ".", "--project", "p", "--exclude", "a.*", "--exclude", "b"]
    )
    assert args.exclude == ["a.*", "b"]


def test_a_scan_names_the_tests_that_already_exercise_each_module(tmp_path, scope):
    write_src_layout(tmp_path)
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_helpers.py").write_text(
        "from clicky import utils\nfrom clicky._utils import x\n"
    )
    (tests / "test_core.py").write_text("import clicky.core\n")
    (tests / "conftest.py").write_text("from clicky.utils import helper\n")
    (tests / "broken.py").write_text("def (:\n")
    (tmp_path / "src" / "clicky" / "check_test.py").write_text("import os\n")

    rows = {row["module_name"]: row for row in scan_python_repo(tmp_path).rows}

    assert rows["clicky.utils"]["existing_tests"] == ["tests/conftest.py", "tests/test_helpers.py"]
    assert rows["clicky._utils"]["existing_tests"] == ["tests/test_helpers.py"]
    assert rows["clicky.core"]["existing_tests"] == ["tests/test_core.py"]
    assert rows["clicky._winconsole"]["existing_tests"] == []
    assert "existing_tests" not in rows["clicky"]
    bulk_upsert_components(scope=scope, rows=list(rows.values()))
    stored = Component.objects.get(project=scope.project, module_name="clicky.core")
    assert stored.existing_tests == ["tests/test_core.py"]


# --- left out by default ------------------------------------------------------------------


def test_build_copies_examples_main_and_version_modules_are_left_out_by_default(tmp_path):
    for root in ("src/lib", "build/lib/lib", "examples/demo/demo"):
        write(tmp_path / root / "__init__.py", "")
        write(tmp_path / root / "core.py")
    write(tmp_path / "src/lib/__main__.py", "from lib.core import f\nf()\n")
    write(
        tmp_path / "src/lib/_version.py",
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from typing import Tuple\n"
        "__all__ = ['__version__']\nversion: str\n__version__ = version = '1.2.3'\n"
        "__version_tuple__ = version_tuple = (1, 2, 3)\n",
    )
    # Not version-only: it computes something besides.
    write(tmp_path / "src/lib/meta.py", "__version__ = '1'\nNAME = 'lib'\n")

    scan = scan_python_repo(tmp_path)

    assert sorted(r["module_name"] for r in scan.rows) == ["lib", "lib.core", "lib.meta"]
    assert scan.warnings == [
        "left out by default: build/lib/lib/core.py (under build/), "
        "examples/demo/demo/core.py (under examples/), src/lib/__main__.py (a __main__ module), "
        "src/lib/_version.py (only sets the version); "
        "--include GLOB keeps a module or path that matches"
    ]


def test_include_keeps_what_matches_by_module_name_or_path(tmp_path):
    write(tmp_path / "src/lib/__init__.py", "")
    write(tmp_path / "src/lib/__main__.py", "print(1)\n")
    write(tmp_path / "examples/demo/__init__.py", "")
    write(tmp_path / "examples/demo/run.py")

    scan = scan_python_repo(tmp_path, include=["lib.__main__", "examples/*"])

    # examples/ holds no __init__.py: a namespace, as Python would import it from the root.
    assert sorted(r["module_name"] for r in scan.rows) == [
        "examples.demo",
        "examples.demo.run",
        "lib",
        "lib.__main__",
    ]
    assert scan.warnings == []


def test_a_single_package_of_build_copies_is_no_duplicate_module_name(scope, tmp_path):
    """A built tree beside the source used to give a second row of every module name."""
    for root in ("src/lib", "build/lib/lib"):
        write(tmp_path / root / "__init__.py", "")
        write(tmp_path / root / "core.py")

    rows = scan_python_repo(tmp_path).rows
    planned = bulk_upsert_components(scope=scope, rows=rows, dry_run=True)

    assert planned.created == 2
    assert [r["source_path"] for r in rows] == ["src/lib/__init__.py", "src/lib/core.py"]


@pytest.mark.parametrize(
    ("source", "version_only"),
    [
        ("__version__ = '1.0'\n", True),
        ('"""Doc."""\nVERSION = (1, 0)\n__all__ = ["VERSION"]\n', True),
        ("X = 1\n", False),
        ("__version__ = '1'\ndef bump(): ...\n", False),
        ("import sys\n", False),
        ("", False),
        ("obj.version = 2\n", False),
    ],
)
def test_only_sets_the_version(source, version_only):
    assert importer.only_sets_the_version(ast.parse(source)) is version_only


# --- names as Python imports them -----------------------------------------------------------


def test_a_namespace_package_is_named_as_python_imports_it(tmp_path):
    """jaraco.functools' layout: jaraco/ has no __init__.py (PEP 420)."""
    write(tmp_path / "jaraco" / "functools" / "__init__.py", '"""Functools like those."""\n')
    write(tmp_path / "jaraco" / "functools" / "helpers.py")
    write(tmp_path / "src" / "jaraco" / "text" / "__init__.py", "")
    write(tmp_path / "src" / "jaraco" / "text" / "layouts.py")

    rows = {r["module_name"]: r for r in scan_python_repo(tmp_path).rows}

    assert sorted(rows) == [
        "jaraco.functools",
        "jaraco.functools.helpers",
        "jaraco.text",  # under src/: the layout directory is no part of the name
        "jaraco.text.layouts",
    ]
    assert rows["jaraco.functools"]["name"] == "functools"
    assert rows["jaraco.functools.helpers"]["parent_module_name"] == "jaraco.functools"
    assert rows["jaraco.text.layouts"]["source_path"] == "src/jaraco/text/layouts.py"


def test_a_directory_python_cannot_import_starts_the_naming_again(tmp_path):
    write(tmp_path / "my-tools" / "pkg" / "__init__.py", "")
    write(tmp_path / "my-tools" / "pkg" / "m.py")
    write(tmp_path / "src" / "lib" / "__init__.py", "")
    write(tmp_path / "src" / "lib" / "data" / "inner" / "__init__.py", "")
    write(tmp_path / "src" / "lib" / "data" / "inner" / "x.py")

    names = sorted(r["module_name"] for r in scan_python_repo(tmp_path).rows)

    # lib/data/ has no __init__.py: a namespace portion inside lib.
    assert names == ["lib.data.inner", "lib.data.inner.x", "pkg", "pkg.m"]


def _tree(rows):
    return {r["module_name"]: (r["parent_module_name"], r["type"], r["source_path"]) for r in rows}


def test_a_single_module_project_is_one_context_named_from_its_distribution(tmp_path):
    """six 1.16: six.py and test_six.py at the root, setup.py and setup.cfg beside them."""
    write(
        tmp_path / "six.py",
        '"""Utilities for writing code that runs on Python 2 and 3."""\n\n\n'
        "def b(s):\n    return s\n",
    )
    write(tmp_path / "test_six.py", "import six\n\n\ndef test_b():\n    assert six.b(1) == 1\n")
    write(tmp_path / "setup.py", "from setuptools import setup\n\nsetup(name='six')\n")
    write(
        tmp_path / "setup.cfg",
        "[metadata]\nname = six\ndescription = Python 2 and 3 compatibility utilities\n",
    )
    write(tmp_path / "noxfile.py", "def tests(session):\n    pass\n")
    write(tmp_path / "docs" / "conf.py", "project = 'six'\n")

    scan = scan_python_repo(tmp_path)

    assert scan.warnings == []
    assert _tree(scan.rows) == {
        "six-project": (None, "context", None),
        "six": ("six-project", "module", "six.py"),
    }
    context, six = scan.rows
    assert (context["name"], context["description"]) == (
        "six",
        "Python 2 and 3 compatibility utilities",
    )
    assert context["priority"] == six["priority"] == 3
    assert six["existing_tests"] == ["test_six.py"]


def test_a_package_whose_code_is_all_in_init_is_a_module_of_the_projects_context(tmp_path):
    """jaraco.functools 4: a namespace package whose code is jaraco/functools/__init__.py."""
    write(tmp_path / "jaraco" / "functools" / "__init__.py", "def f(x):\n    return x\n")
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "jaraco.functools"\n'
        'description = "Functools like those found in stdlib"\n',
    )

    scan = scan_python_repo(tmp_path)

    assert scan.warnings == []
    assert _tree(scan.rows) == {
        "jaraco.functools-project": (None, "context", None),
        "jaraco.functools": (
            "jaraco.functools-project", "module", "jaraco/functools/__init__.py"
        ),
    }  # fmt: skip
    assert scan.rows[0]["description"] == "Functools like those found in stdlib"


def test_a_src_single_module_is_read_and_its_version_module_left_out(tmp_path):
    write(tmp_path / "src" / "tinylib.py", "def go():\n    return 1\n")
    write(tmp_path / "src" / "_version.py", "__version__ = '1.0'\n")
    write(
        tmp_path / "PKG-INFO", "Metadata-Version: 2.1\nName: tiny-lib\nSummary: A tiny library.\n"
    )

    scan = scan_python_repo(tmp_path)

    assert _tree(scan.rows) == {
        "tiny-lib-project": (None, "context", None),
        "tinylib": ("tiny-lib-project", "module", "src/tinylib.py"),
    }
    assert scan.warnings == [
        "left out by default: src/_version.py (only sets the version); --include GLOB keeps "
        "a module or path that matches"
    ]
    kept = scan_python_repo(tmp_path, include=["_version"]).rows
    assert "_version" in {r["module_name"] for r in kept}


def test_without_any_distribution_the_directory_names_the_projects_context(tmp_path):
    project = tmp_path / "my tools!"
    write(project / "helpers.py")

    rows = scan_python_repo(project).rows

    assert [r["module_name"] for r in rows] == ["my-tools-project", "helpers"]
    assert rows[0]["name"] == "my tools!"


def test_loose_modules_beside_packages_stay_left_out_and_init_only_packages_said(tmp_path):
    write(tmp_path / "shop" / "__init__.py", "")
    write(tmp_path / "shop" / "cart.py")
    write(tmp_path / "tools" / "__init__.py", "def f(x):\n    return x\n")
    write(tmp_path / "script.py")

    scan = scan_python_repo(tmp_path)

    assert sorted(r["module_name"] for r in scan.rows) == ["shop", "shop.cart"]
    assert scan.warnings == [
        "tools/__init__.py: the package's code is all in __init__.py (priority 2) and it has "
        "no modules, so it is no context; describe it with --override or --manifest"
    ]


def test_a_tree_with_no_python_code_says_there_is_nothing_to_import(tmp_path):
    write(tmp_path / "setup.py", "from setuptools import setup\n\nsetup()\n")
    write(tmp_path / "test_it.py")

    scan = scan_python_repo(tmp_path)

    assert scan.rows == []
    assert scan.warnings == [
        "no package with modules and no top-level module found: nothing to import (describe "
        "the code with --manifest)"
    ]


def test_a_single_module_projects_rows_go_into_the_service(scope, tmp_path):
    write(tmp_path / "six.py")
    write(
        tmp_path / "setup.py",
        "from setuptools import setup\n\nsetup(name='six', description='Py2/3.')\n",
    )

    rows = scan_python_repo(tmp_path).rows
    result = bulk_upsert_components(scope=scope, rows=rows)

    assert result.created == 2
    six = Component.objects.get(project_id=scope.project_id, module_name="six")
    assert six.parent_component.module_name == "six-project"
    assert six.source_path == "six.py"
