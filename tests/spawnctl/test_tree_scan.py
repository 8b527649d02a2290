"""Importing Go, TypeScript/JavaScript and Elixir/Phoenix codebases: small trees written for the
tests, read with tree-sitter, and the rows they give accepted by the server's bulk import."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from components_app.services import bulk_upsert_components
from spawnctl import importer, tree_scan
from spawnctl.tree_scan import (
    ELIXIR,
    GO,
    PYTHON,
    TYPESCRIPT,
    detect_language,
    scan_elixir_repo,
    scan_go_repo,
    scan_typescript_repo,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["module_name"]: row for row in rows}


def shape(rows: list[dict]) -> dict[str, tuple]:
    """module name -> (type, parent, source_path)."""
    return {r["module_name"]: (r["type"], r["parent_module_name"], r["source_path"]) for r in rows}


# --- Go --------------------------------------------------------------------------------------

GO_TREE = {
    "go.mod": "module example.com/shop\n\ngo 1.22\n",
    "main.go": """
        package main

        func main() { run() }
    """,
    "store/doc.go": """
        // Package store keeps the shop's items. It is safe for concurrent use.
        package store
    """,
    "store/cache.go": """
        package store

        import "sync"

        // Cache holds items in memory.
        type Cache struct {
            mu sync.Mutex
            m  map[string]int
        }

        // Get returns an item and whether it was there.
        func (c *Cache) Get(k string) (int, bool) {
            c.mu.Lock()
            defer c.mu.Unlock()
            if v, ok := c.m[k]; ok && v > 0 {
                return v, true
            }
            for i := 0; i < 3; i++ {
                switch i {
                case 1:
                    return i, false
                }
            }
            return 0, false
        }
    """,
    "store/cache_test.go": "package store\n",
    "store/keys.go": """
        package store

        func Key(s string) string { return s }

        func helper() {}
    """,
    "vendor/x/x.go": "package x\n",
    "internal/pricing/price.go": """
        package pricing

        func Total(n int) int { return n }
    """,
    "internal/pricing/testdata/t.go": "package testdata\n",
}


def test_go_packages_are_contexts_and_their_files_components(tmp_path):
    repo = write(tmp_path, GO_TREE)

    scan = scan_go_repo(repo)

    assert shape(scan.rows) == {
        "main": ("context", None, None),
        "main.main": ("file", "main", "main.go"),
        "internal.pricing": ("context", None, None),
        "internal.pricing.price": ("file", "internal.pricing", "internal/pricing/price.go"),
        "store": ("context", None, "store/doc.go"),
        "store.cache": ("file", "store", "store/cache.go"),
        "store.keys": ("file", "store", "store/keys.go"),
    }
    rows = by_name(scan.rows)
    # The package comment (doc.go) describes the package; a file without one its exports.
    assert rows["store"]["description"] == "Package store keeps the shop's items."
    assert rows["store.keys"]["description"] == "Exports Key."
    assert rows["store.cache"]["existing_tests"] == ["store/cache_test.go"]
    assert rows["store.keys"]["existing_tests"] == []
    # Statements and branches: the cache's method outweighs two one-line functions.
    assert rows["store.cache"]["priority"] > rows["store.keys"]["priority"] > 0
    assert (
        rows["store"]["priority"]
        == rows["store.cache"]["priority"] + rows["store.keys"]["priority"]
    )


def test_go_files_built_only_on_some_platforms_are_named_in_a_warning(tmp_path):
    """google/uuid 1.3: node_js.go is //go:build js, node_net.go //go:build !js; a test of
    node_js.go neither runs nor measures on Linux."""
    repo = write(
        tmp_path,
        {
            "go.mod": "module github.com/google/uuid\n",
            "node_js.go": "//go:build js\n\npackage uuid\n\nfunc f() int { return 1 }\n",
            "node_net.go": "// +build !js\n\npackage uuid\n\nfunc g() int { return 1 }\n",
            "dce_windows.go": "package uuid\n\nfunc h() int { return 1 }\n",
            "time_linux_amd64.go": "package uuid\n\nfunc i() int { return 1 }\n",
            "hash_util.go": "package uuid\n\n// go:build is not a constraint here\nfunc j() {}\n",
        },
    )

    scan = scan_go_repo(repo)

    assert len(by_name(scan.rows)) == 6  # every file is still a component
    assert scan.warnings == [
        "files built only on some platforms (a build constraint): dce_windows.go (windows), "
        "node_js.go (js), node_net.go (!js), time_linux_amd64.go (linux_amd64); a test of one "
        "runs and measures only where it builds, so --exclude those the machine running the "
        "tests cannot build"
    ]


def test_a_go_branch_counts_as_the_grammar_names_it(tmp_path):
    def priority(body: str) -> int:
        write(tmp_path, {"p/a.go": f"package p\n\nfunc F(a, b bool) {{\n{body}\n}}\n"})
        return by_name(scan_go_repo(tmp_path).rows)["p.a"]["priority"]

    plain = priority("x := 1\n_ = x")
    assert priority("x := 1\nif a {\n_ = x\n}") == plain + 2  # the if: a statement and a branch
    assert priority("x := a && b\n_ = x") == plain + 1  # && is a branch


# --- TypeScript and JavaScript -----------------------------------------------------------

TS_TREE = {
    "package.json": '{"name": "@acme/shop", "version": "1.0.0"}',
    "tsconfig.json": "{}",
    "src/index.ts": """
        /** The shop's public API. Import from here. */
        export * from "./cart";
    """,
    "src/cart.ts": """
        /** A shopping cart. Items and totals. */
        export interface Item { price: number }
        export function total(items: Item[]): number {
            let sum = 0;
            for (const item of items) {
                sum += item.price > 0 ? item.price : 0;
            }
            return sum ?? 0;
        }
        export const EMPTY: Item[] = [], NONE = null;
    """,
    "src/cart.test.ts": "import { total } from './cart';\n",
    "src/utils/format.tsx": """
        import React from "react";
        export default function Price({ value }: { value: number }) {
            return <span>{value}</span>;
        }
    """,
    "src/utils/legacy.js": """
        function old(a) { if (a) { return 1 } return 2 }
        module.exports = { old };
    """,
    "src/utils/types.d.ts": "export type X = number;\n",
    "src/__tests__/x.test.ts": "test('x', () => {});\n",
    "vite.config.ts": "export default {};\n",
    "node_modules/dep/index.js": "module.exports = 1;\n",
    "dist/index.js": "exports.a = 1;\n",
}


def test_typescript_directories_are_contexts_and_their_files_components(tmp_path):
    repo = write(tmp_path, TS_TREE)

    scan = scan_typescript_repo(repo)

    assert shape(scan.rows) == {
        "acme.shop": ("context", None, None),
        "acme.shop.cart": ("file", "acme.shop", "src/cart.ts"),
        "acme.shop.index": ("file", "acme.shop", "src/index.ts"),
        "utils": ("context", None, None),
        "utils.format": ("file", "utils", "src/utils/format.tsx"),
        "utils.legacy": ("file", "utils", "src/utils/legacy.js"),
    }
    rows = by_name(scan.rows)
    assert rows["acme.shop.cart"]["description"] == "A shopping cart."
    assert rows["acme.shop"]["description"] == "The shop's public API."  # its index's
    assert rows["utils.format"]["description"] == "Exports Price."
    assert rows["acme.shop.cart"]["existing_tests"] == ["src/cart.test.ts"]
    assert rows["acme.shop.cart"]["priority"] > rows["acme.shop.index"]["priority"]
    assert scan.warnings == []


def test_typescript_exports_are_named_when_there_is_no_jsdoc(tmp_path):
    write(
        tmp_path,
        {
            "lib/a.ts": """
                export const one = 1, two = 2;
                export class Three {}
                export { four as five };
                export function six() {}
                export function seven() {}
            """
        },
    )

    (_, row) = scan_typescript_repo(tmp_path).rows

    assert row["description"] == "Exports one, two, Three, five, six and 1 more."


# --- Elixir / Phoenix ---------------------------------------------------------------------

ELIXIR_TREE = {
    "mix.exs": "defmodule Shop.MixProject do\nend\n",
    "lib/shop/accounts.ex": '''
        defmodule Shop.Accounts do
          @moduledoc """
          The Accounts context. Users and their tokens.
          """
          alias Shop.Accounts.User

          def get_user(id), do: Repo.get(User, id)
        end
    ''',
    "lib/shop/accounts/user.ex": '''
        defmodule Shop.Accounts.User do
          @moduledoc """
          A user of the shop: a name and an age.
          """
          use Ecto.Schema

          schema "users" do
            field :name, :string
            field :age, :integer
          end

          def adult?(user), do: user.age >= 18

          def greet(user) do
            case user do
              %{name: nil} -> "hello"
              %{name: name} -> if name != "" and true, do: "hi " <> name, else: "hi"
            end
          end
        end
    ''',
    "lib/shop/accounts/user_token.ex": """
        defmodule Shop.Accounts.UserToken do
          use Ecto.Schema

          schema "users_tokens" do
            field :token, :binary
          end
        end
    """,
    "lib/shop/accounts/notifier.ex": """
        defmodule Shop.Accounts.Notifier do
          def deliver(_user), do: :ok
        end
    """,
    "lib/shop/catalog/product.ex": """
        defmodule Shop.Catalog.Product do
          use Ecto.Schema
          schema "products" do
            field :title, :string
          end
        end
    """,
    "lib/shop/repo.ex": "defmodule Shop.Repo do\nend\n",
    "lib/shop/application.ex": "defmodule Shop.Application do\nend\n",
    "lib/shop_web/router.ex": "defmodule ShopWeb.Router do\nend\n",
    "test/shop/accounts/user_test.exs": "defmodule Shop.Accounts.UserTest do\nend\n",
}


def test_phoenix_contexts_and_their_schemas(tmp_path):
    repo = write(tmp_path, ELIXIR_TREE)

    scan = scan_elixir_repo(repo)

    assert shape(scan.rows) == {
        "Shop.Accounts": ("context", None, "lib/shop/accounts.ex"),
        "Shop.Accounts.Notifier": ("module", "Shop.Accounts", "lib/shop/accounts/notifier.ex"),
        "Shop.Accounts.User": ("schema", "Shop.Accounts", "lib/shop/accounts/user.ex"),
        "Shop.Accounts.UserToken": ("schema", "Shop.Accounts", "lib/shop/accounts/user_token.ex"),
        # No lib/shop/catalog.ex: the context is named from its directory.
        "Shop.Catalog": ("context", None, None),
        "Shop.Catalog.Product": ("schema", "Shop.Catalog", "lib/shop/catalog/product.ex"),
    }
    rows = by_name(scan.rows)
    assert rows["Shop.Accounts"]["description"] == "The Accounts context."
    assert rows["Shop.Accounts.User"]["description"] == "A user of the shop: a name and an age."
    assert rows["Shop.Accounts.User"]["existing_tests"] == ["test/shop/accounts/user_test.exs"]
    assert rows["Shop.Accounts.User"]["priority"] > rows["Shop.Accounts.UserToken"]["priority"]
    (warning,) = scan.warnings
    assert warning.startswith("not contexts: ")
    assert "lib/shop_web/ (the web layer)" in warning
    assert "lib/shop/repo.ex (no lib/shop/repo/ directory)" in warning


# --- choosing the language, and the server taking the rows -------------------------------


@pytest.mark.parametrize(
    ("marker", "language"),
    [("go.mod", GO), ("mix.exs", ELIXIR), ("package.json", TYPESCRIPT), ("setup.py", PYTHON)],
)
def test_the_language_is_what_the_repository_root_says(tmp_path, marker, language):
    (tmp_path / marker).write_text("")
    assert detect_language(tmp_path) == language


@pytest.mark.parametrize(
    ("tree", "language"), [(GO_TREE, GO), (TS_TREE, TYPESCRIPT), (ELIXIR_TREE, ELIXIR)]
)
def test_each_languages_rows_are_accepted_by_the_bulk_import(scope, tmp_path, tree, language):
    repo = write(tmp_path, tree)
    scan = importer.collect_rows(repo=repo, language="auto")

    result = bulk_upsert_components(scope=scope, rows=scan.rows)

    assert result.created == len(scan.rows) > 0
    assert tree_scan.detect_language(repo) == language


def test_a_missing_grammar_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(tree_scan._PACKAGES, GO, ("tree_sitter_nothing_here", "tree-sitter-go"))
    monkeypatch.setattr(tree_scan, "_parsers", {})
    write(tmp_path, {"a/a.go": "package a\n"})

    with pytest.raises(tree_scan.ScanError) as raised:
        scan_go_repo(tmp_path)

    assert raised.value.message == (
        "reading go needs tree-sitter and its grammar: pip install tree-sitter tree-sitter-go"
    )


def test_commonjs_exports_are_named_too(tmp_path):
    write(
        tmp_path,
        {
            "a.js": "class Range {}\nmodule.exports = Range;\n",
            "b.js": "const x = 1, y = 2;\nmodule.exports = { x, why: y };\n",
            "c.js": "exports.parse = function () {};\n",
        },
    )

    rows = by_name(scan_typescript_repo(tmp_path).rows)

    top = tree_scan._dotted(tmp_path.name)
    assert [rows[f"{top}.{name}"]["description"] for name in "abc"] == [
        "Exports Range.",
        "Exports x, why.",
        "Exports parse.",
    ]
