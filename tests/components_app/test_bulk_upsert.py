"""The bulk import's service: create or update by module name, parents by module name, every
row checked before anything is written, prune that never deletes a tested component."""

from __future__ import annotations

import pytest
from django.db import transaction

from components_app import services
from components_app.models import Component
from components_app.services import ROW_FIELDS, InvalidRows, bulk_upsert_components
from core.errors import Conflict
from tests.factories import make_component, make_context_session, make_project


def row(module_name: str, parent: str | None = None, **fields) -> dict:
    fields.setdefault("name", module_name.rsplit(".", 1)[-1])
    fields.setdefault("type", "module")
    return {"module_name": module_name, "parent_module_name": parent, **fields}


def tree(scope) -> dict[str, tuple[str | None, int, str]]:
    """module_name → (parent's module_name, priority, type) for the whole project."""
    components = Component.objects.filter(project=scope.project).select_related("parent_component")
    return {
        c.module_name: (
            c.parent_component.module_name if c.parent_component else None,
            c.priority,
            c.type,
        )
        for c in components
    }


def row_errors(scope, rows, **kwargs) -> dict[int, dict[str, list[str]]]:
    before = tree(scope)
    with pytest.raises(InvalidRows) as error:
        bulk_upsert_components(scope=scope, rows=rows, **kwargs)
    assert tree(scope) == before
    return error.value.row_errors


def test_creates_contexts_and_children_named_by_module_name(scope):
    # Children come before their context on purpose: the rows' order is free.
    rows = [
        row("shop.accounts.user", "shop.accounts", priority=10),
        row("shop.accounts.token", "shop.accounts", priority=5),
        row("shop.accounts", type="context"),
    ]

    result = bulk_upsert_components(scope=scope, rows=rows)

    assert (result.created, result.updated, result.unchanged, result.deleted) == (3, 0, 0, 0)
    assert [c.module_name for c in result.components] == [r["module_name"] for r in rows]
    assert tree(scope) == {
        "shop.accounts": (None, 0, "context"),
        "shop.accounts.user": ("shop.accounts", 10, "module"),
        "shop.accounts.token": ("shop.accounts", 5, "module"),
    }


def test_a_second_import_updates_what_changed_and_counts_the_rest_unchanged(scope):
    rows = [row("a", type="context"), row("a.x", "a", priority=1), row("a.y", "a")]
    bulk_upsert_components(scope=scope, rows=rows)
    before = {c.module_name: c.updated_at for c in Component.objects.filter(project=scope.project)}

    rows[1] = row("a.x", "a", priority=7, description="Now described")
    result = bulk_upsert_components(scope=scope, rows=[*rows, row("a.z", "a")])

    assert (result.created, result.updated, result.unchanged, result.deleted) == (1, 1, 2, 0)
    x = Component.objects.get(project=scope.project, module_name="a.x")
    assert (x.priority, x.description) == (7, "Now described")
    assert x.updated_at > before["a.x"]
    y = Component.objects.get(project=scope.project, module_name="a.y")
    assert y.updated_at == before["a.y"]


def test_a_left_out_key_keeps_the_current_value_and_a_new_component_gets_the_default(scope):
    context = make_component(scope.project, "Ctx", module_name="ctx", type="context")
    make_component(
        scope.project,
        "Kept",
        module_name="ctx.kept",
        priority=9,
        description="hand-written",
        parent_component=context,
    )

    result = bulk_upsert_components(
        scope=scope,
        rows=[
            {"module_name": "ctx.kept", "name": "Kept", "type": "module"},
            {"module_name": "ctx.new", "name": "New", "type": "module"},
        ],
    )

    assert (result.updated, result.unchanged, result.created) == (0, 1, 1)
    kept = Component.objects.get(module_name="ctx.kept")
    assert (kept.priority, kept.description, kept.parent_component_id) == (
        9,
        "hand-written",
        context.pk,
    )
    new = Component.objects.get(module_name="ctx.new")
    assert (new.priority, new.description, new.parent_component_id) == (0, "", None)


def test_a_parent_may_be_a_component_already_in_the_project(scope):
    make_component(scope.project, "Billing", module_name="billing", type="context")

    bulk_upsert_components(scope=scope, rows=[row("billing.invoice", "billing")])

    assert tree(scope)["billing.invoice"][0] == "billing"


def test_a_component_can_move_under_a_new_parent_and_back_to_the_root(scope):
    bulk_upsert_components(scope=scope, rows=[row("a"), row("b")])

    bulk_upsert_components(scope=scope, rows=[row("a", "c"), row("c", type="context")])
    assert tree(scope)["a"][0] == "c"

    result = bulk_upsert_components(scope=scope, rows=[row("a", None)])
    assert result.updated == 1
    assert tree(scope)["a"][0] is None


def test_strings_are_trimmed_as_the_single_create_trims_them(scope):
    bulk_upsert_components(
        scope=scope, rows=[row(" a ", type=" context "), row("a.b", " a ", name=" B ")]
    )

    assert tree(scope) == {"a": (None, 0, "context"), "a.b": ("a", 0, "module")}
    assert Component.objects.get(module_name="a.b").name == "B"


def test_the_same_module_name_in_another_project_is_another_component(scope, user):
    other = make_project(user)
    make_component(other, "Shared", module_name="shared")

    result = bulk_upsert_components(scope=scope, rows=[row("shared")])

    assert result.created == 1
    assert Component.objects.filter(module_name="shared").count() == 2


# --- bad rows: named by index and field, nothing written ------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "field", "message"),
    [
        ({"name": "A", "type": "module"}, "module_name", services.REQUIRED),
        ({"module_name": "a", "type": "module"}, "name", services.REQUIRED),
        ({"module_name": "a", "name": "A"}, "type", services.REQUIRED),
        (row("  ", name="A"), "module_name", services.BLANK),
        (row("a", name=""), "name", services.BLANK),
        (row("a", name=5), "name", services.NOT_A_STRING),
        (row("a", type=["context"]), "type", services.NOT_A_STRING),
        (row("a", description=None), "description", services.NOT_A_STRING),
        (row("a", priority="high"), "priority", services.NOT_AN_INTEGER),
        (row("a", priority=True), "priority", services.NOT_AN_INTEGER),
        (row("a", priority=1.5), "priority", services.NOT_AN_INTEGER),
        (
            row("a", priority=2**31),
            "priority",
            "Ensure this value is less than or equal to 2147483647.",
        ),
        (
            row("a", priority=-(2**31) - 1),
            "priority",
            "Ensure this value is greater than or equal to -2147483648.",
        ),
        (
            row("m" * 256, name="M"),
            "module_name",
            "Ensure this value has at most 255 characters (it has 256).",
        ),
        (
            row("a", type="t" * 51),
            "type",
            "Ensure this value has at most 50 characters (it has 51).",
        ),
        (
            row("a", name="bad\x00name"),
            "name",
            "JSON strings cannot contain the NUL character (\\u0000).",
        ),
        (row("a", "  "), "parent_module_name", services.NULL_PARENT_HINT),
        (row("a", 7), "parent_module_name", services.NOT_A_STRING),
        ({**row("a"), "parent": "b"}, "parent", services.UNKNOWN_FIELD),
        ("a", "non_field_errors", services.NOT_AN_OBJECT),
        (None, "non_field_errors", services.NOT_AN_OBJECT),
    ],
)
def test_a_bad_row_is_named_by_index_and_field(scope, bad_row, field, message):
    errors = row_errors(scope, [row("ok.first"), bad_row, row("ok.last")])

    assert errors == {1: {field: [message]}}


def test_every_bad_row_is_reported_at_once(scope):
    errors = row_errors(scope, [row("a", priority="x"), row("b"), row("c", name="", type="")])

    assert errors == {
        0: {"priority": [services.NOT_AN_INTEGER]},
        2: {"name": [services.BLANK], "type": [services.BLANK]},
    }


def test_a_duplicate_module_name_names_the_first_row(scope):
    errors = row_errors(scope, [row("a"), row("b"), row("a", name="Again"), row("a")])

    expected = {"module_name": ["Row 0 has the same module name."]}
    assert errors == {2: expected, 3: expected}


def test_an_unknown_parent_is_refused(scope, other_scope):
    # A parent in another project is as unknown as one that exists nowhere.
    make_component(other_scope.project, "Foreign", module_name="foreign")

    errors = row_errors(scope, [row("a", "nowhere"), row("b", "foreign")])

    unknown = {"parent_module_name": [services.UNKNOWN_PARENT]}
    assert errors == {0: unknown, 1: unknown}


def test_a_row_cannot_be_its_own_parent(scope):
    assert row_errors(scope, [row("a", "a")]) == {0: {"parent_module_name": [services.OWN_PARENT]}}


def test_a_cycle_among_the_rows_is_named_on_each_of_its_rows(scope):
    errors = row_errors(scope, [row("a", "b"), row("b", "c"), row("c", "a"), row("d", "a")])

    assert errors == {
        0: {"parent_module_name": [services.CYCLE.format(chain="a → b → c → a")]},
        1: {"parent_module_name": [services.CYCLE.format(chain="b → c → a → b")]},
        2: {"parent_module_name": [services.CYCLE.format(chain="c → a → b → c")]},
    }


def test_a_cycle_through_a_component_already_in_the_project_is_refused(scope):
    # x stays under a (it is not in the list); putting a under x closes the loop.
    a = make_component(scope.project, "A", module_name="a")
    make_component(scope.project, "X", module_name="x", parent_component=a)

    errors = row_errors(scope, [row("a", "x")])

    assert errors == {0: {"parent_module_name": [services.CYCLE.format(chain="a → x → a")]}}


def test_rows_that_reverse_a_parent_and_child_at_once_are_accepted(scope):
    a = make_component(scope.project, "A", module_name="a")
    make_component(scope.project, "B", module_name="b", parent_component=a)

    result = bulk_upsert_components(scope=scope, rows=[row("a", "b"), row("b", None)])

    assert result.updated == 2
    assert tree(scope)["a"][0] == "b"
    assert tree(scope)["b"][0] is None


def test_rows_must_be_a_list_no_longer_than_the_limit(scope, monkeypatch):
    with pytest.raises(services.InvalidInput) as error:
        bulk_upsert_components(scope=scope, rows={"module_name": "a"})
    assert error.value.errors == {"components": [services.NOT_A_LIST]}

    monkeypatch.setattr(services, "BULK_MAX_ROWS", 2)
    with pytest.raises(services.InvalidInput) as error:
        bulk_upsert_components(scope=scope, rows=[row("a"), row("b"), row("c")])
    assert error.value.errors == {"components": [services.TOO_MANY_ROWS]}
    assert not Component.objects.exists()


def test_an_empty_list_changes_nothing(scope):
    make_component(scope.project, "A", module_name="a")

    result = bulk_upsert_components(scope=scope, rows=[])

    assert (result.created, result.updated, result.unchanged, result.deleted) == (0, 0, 0, 0)
    assert list(tree(scope)) == ["a"]


# --- prune ------------------------------------------------------------------------------------


def test_prune_deletes_the_components_the_rows_do_not_name(scope, other_scope):
    make_component(scope.project, "Gone", module_name="gone")
    make_component(scope.project, "Kept", module_name="kept")
    make_component(other_scope.project, "Foreign", module_name="foreign")

    result = bulk_upsert_components(
        scope=scope, rows=[row("kept", name="Kept"), row("new")], prune=True
    )

    assert (result.created, result.unchanged, result.deleted) == (1, 1, 1)
    assert sorted(tree(scope)) == ["kept", "new"]
    assert Component.objects.filter(module_name="foreign").exists()


def test_without_prune_the_other_components_stay(scope):
    make_component(scope.project, "Other", module_name="other")

    result = bulk_upsert_components(scope=scope, rows=[row("new")])

    assert result.deleted == 0
    assert sorted(tree(scope)) == ["new", "other"]


def test_prune_never_deletes_a_component_that_has_sessions(scope):
    tested = make_component(scope.project, "Tested", module_name="tested", type="context")
    make_context_session(scope, tested)
    also = make_component(scope.project, "Also", module_name="also.tested", type="context")
    make_context_session(scope, also)
    make_component(scope.project, "Untested", module_name="untested")
    before = tree(scope)

    with pytest.raises(Conflict) as error:
        bulk_upsert_components(scope=scope, rows=[row("new")], prune=True)

    assert error.value.message == (
        "Components with sessions cannot be deleted: also.tested, tested"
    )
    assert tree(scope) == before


def test_prune_refuses_to_leave_a_row_under_a_deleted_parent(scope):
    context = make_component(scope.project, "Ctx", module_name="ctx", type="context")
    make_component(scope.project, "Child", module_name="ctx.child", parent_component=context)
    pruned = services.PRUNED_PARENT.format(parent="ctx")

    # Named, or kept by leaving the key out: either way the parent would be deleted.
    assert row_errors(scope, [row("ctx.child", "ctx")], prune=True) == {
        0: {"parent_module_name": [pruned]}
    }
    assert row_errors(
        scope, [{"module_name": "ctx.child", "name": "Child", "type": "module"}], prune=True
    ) == {0: {"parent_module_name": [pruned]}}


def test_a_concurrent_create_of_the_same_module_name_is_a_conflict(scope, monkeypatch):
    # The import read the project before another writer took "a": the insert then fails on
    # the unique constraint, and nothing of the import stays.
    make_component(scope.project, "A", module_name="a")
    monkeypatch.setattr(services.selectors, "components_by_module_name", lambda **_: {})

    with pytest.raises(Conflict) as error:
        bulk_upsert_components(scope=scope, rows=[row("b"), row("a")])

    assert error.value.message == services.CHANGED_CONCURRENTLY
    assert sorted(tree(scope)) == ["a"]


# --- dry run ----------------------------------------------------------------------------------


def stored(scope) -> list[dict]:
    """Every column of every component of the project: what a dry run must leave alone."""
    return list(Component.objects.filter(project=scope.project).order_by("module_name").values())


def test_a_dry_run_answers_what_the_import_would_do_and_writes_nothing(scope):
    context = make_component(scope.project, "Ctx", module_name="ctx", type="context")
    make_component(scope.project, "Same", module_name="ctx.same", parent_component=context)
    make_component(scope.project, "Old", module_name="ctx.old", parent_component=context)
    make_component(scope.project, "Gone", module_name="gone")
    make_component(scope.project, "Also gone", module_name="also.gone")
    rows = [
        row("ctx.new", "ctx"),
        row("ctx.old", None, name="Old", priority=7, description="Now documented."),
        row("ctx.same", "ctx", name="Same"),
        {"module_name": "ctx", "name": "Ctx", "type": "context"},
    ]
    before = stored(scope)

    dry = bulk_upsert_components(scope=scope, rows=rows, prune=True, dry_run=True)

    assert stored(scope) == before
    assert dry.dry_run is True
    assert [action[:3] for action in dry.actions] == [
        ("ctx.new", "create", ()),
        ("ctx.old", "update", ("priority", "description", "parent_module_name")),
        ("ctx.same", "unchanged", ()),
        ("ctx", "unchanged", ()),
        ("also.gone", "delete", ()),
        ("gone", "delete", ()),
    ]
    # An update's values before and after, the parent by module name; a create's every field.
    moved = dry.actions[1]
    assert (moved.before, moved.after) == (
        {"priority": 0, "description": "", "parent_module_name": "ctx"},
        {"priority": 7, "description": "Now documented.", "parent_module_name": None},
    )
    assert dry.actions[0].before is None
    assert dry.actions[0].after["parent_module_name"] == "ctx"
    assert set(dry.actions[0].after) == set(ROW_FIELDS) - {"module_name"}
    real = bulk_upsert_components(scope=scope, rows=rows, prune=True)
    assert real.dry_run is False
    counts = ("created", "updated", "unchanged", "deleted")
    assert [getattr(dry, k) for k in counts] == [getattr(real, k) for k in counts] == [1, 1, 2, 2]
    assert real.actions == dry.actions
    assert [c.module_name for c in dry.components] == [c.module_name for c in real.components]
    assert sorted(tree(scope)) == ["ctx", "ctx.new", "ctx.old", "ctx.same"]


def test_a_dry_run_refuses_bad_rows_and_a_blocked_prune_as_the_import_does(scope):
    tested = make_component(scope.project, "Tested", module_name="tested", type="context")
    make_context_session(scope, tested)
    before = stored(scope)

    with pytest.raises(InvalidRows) as error:
        bulk_upsert_components(scope=scope, rows=[row("a", "nowhere")], dry_run=True)
    assert error.value.row_errors == {0: {"parent_module_name": [services.UNKNOWN_PARENT]}}
    with pytest.raises(Conflict) as conflict:
        bulk_upsert_components(scope=scope, rows=[row("new")], prune=True, dry_run=True)
    assert conflict.value.message == "Components with sessions cannot be deleted: tested"
    assert stored(scope) == before


def test_a_dry_run_inside_a_callers_transaction_undoes_only_itself(scope):
    # The rollback is the dry run's own savepoint: what the caller wrote before stays.
    with transaction.atomic():
        make_component(scope.project, "Mine", module_name="mine")
        bulk_upsert_components(scope=scope, rows=[row("dry")], dry_run=True)
        make_component(scope.project, "After", module_name="after")

    assert sorted(tree(scope)) == ["after", "mine"]
