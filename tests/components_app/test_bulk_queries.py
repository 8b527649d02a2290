"""The bulk import's queries do not grow with its rows: the same count at two sizes, for a
first import, a re-import that changes every row, and a prune."""

from __future__ import annotations

import pytest

from components_app.models import Component
from components_app.services import bulk_upsert_components
from tests.factories import make_component

# Both sizes fit in one of the database's insert batches (SQLite: 999 parameters, 76 rows of
# this model's 13 columns); past that Django adds one INSERT per batch, which no design avoids.
SIZES = (3, 70)


def rows(count: int, *, priority: int = 0) -> list[dict]:
    context = {"module_name": "pkg", "name": "pkg", "type": "context", "priority": priority}
    modules = [
        {
            "module_name": f"pkg.mod{i}",
            "name": f"mod{i}",
            "type": "module",
            "priority": priority,
            "description": f"Module {i}.",
            "parent_module_name": "pkg",
        }
        for i in range(count - 1)
    ]
    return [*modules, context]


@pytest.mark.parametrize("size", SIZES)
def test_a_first_import_makes_the_same_queries_at_any_size(scope, size, django_assert_num_queries):
    # savepoint, project lock, read of the project, one insert, release
    with django_assert_num_queries(5):
        result = bulk_upsert_components(scope=scope, rows=rows(size))

    assert result.created == size


@pytest.mark.parametrize("size", SIZES)
def test_a_re_import_that_changes_every_row_makes_the_same_queries(
    scope, size, django_assert_num_queries
):
    bulk_upsert_components(scope=scope, rows=rows(size))

    # savepoint, lock, read, one update, release
    with django_assert_num_queries(5):
        result = bulk_upsert_components(scope=scope, rows=rows(size, priority=3))

    assert result.updated == size


@pytest.mark.parametrize("size", SIZES)
def test_an_unchanged_re_import_writes_nothing(scope, size, django_assert_num_queries):
    bulk_upsert_components(scope=scope, rows=rows(size))

    with django_assert_num_queries(4):
        result = bulk_upsert_components(scope=scope, rows=rows(size))

    assert result.unchanged == size


@pytest.mark.parametrize("size", SIZES)
def test_a_prune_makes_the_same_queries_however_many_it_deletes(
    scope, size, django_assert_num_queries
):
    for i in range(size):
        make_component(scope.project, f"Old{i}", module_name=f"old.{i}")

    # savepoint, lock, read, components with sessions, one insert, and Django's delete: read
    # what it deletes, detach their children and sessions, delete; release
    with django_assert_num_queries(10):
        result = bulk_upsert_components(scope=scope, rows=rows(2), prune=True)

    assert result.deleted == size
    assert Component.objects.filter(project=scope.project).count() == 2


@pytest.mark.parametrize("size", SIZES)
def test_a_dry_run_makes_the_same_queries_as_the_import(scope, size, django_assert_num_queries):
    # savepoint, lock, read, one insert, then a rollback to the savepoint before its release
    with django_assert_num_queries(6):
        result = bulk_upsert_components(scope=scope, rows=rows(size), dry_run=True)

    assert (result.created, result.dry_run) == (size, True)
    assert not Component.objects.exists()
