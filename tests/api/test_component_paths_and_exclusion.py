"""A component's source_path and excluded flag through every door (create, PATCH, bulk, the
admin's change form), no two components on one test file, and what excluding a component does
to runs: no child is spawned for it, its active child is cancelled, and the spawn step's result
check leaves it and its children out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from components_app import services as component_services
from components_app import test_paths
from components_app.models import Component
from core.errors import InvalidInput
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context, make_context_session

COMPONENTS = "/api/components/"
BULK = "/api/components/bulk/"
SNAKE_ONLY = "tests/test_{module_snake}.py"
TAKEN_BY_UTILS = "Test file tests/test_click_utils.py is already the test file of click.utils"
TAKEN_BY_UNDERSCORE = "Test file tests/test_click_utils.py is already the test file of click._utils"
NOT_A_PATH = "Must be a relative path inside the repository: "


def body(project, module_name, **fields) -> dict:
    return {
        "project": str(project.pk),
        "name": module_name.rsplit(".", 1)[-1],
        "module_name": module_name,
        "type": "module",
        **fields,
    }


def create(api, project, module_name, **fields):
    return api.post(COMPONENTS, body(project, module_name, **fields), format="json")


def patch(api, component, **changes):
    return api.patch(f"{COMPONENTS}{component.pk}/", changes, format="json")


def row(module_name: str, **fields) -> dict:
    fields.setdefault("name", module_name.rsplit(".", 1)[-1])
    fields.setdefault("type", "module")
    return {"module_name": module_name, **fields}


def bulk(api, project, rows, **options):
    payload = {"project": str(project.pk), "components": rows, **options}
    return api.post(BULK, json.dumps(payload), content_type="application/json")


def snake_only(project) -> None:
    project.test_path_template = SNAKE_ONLY
    project.save()


def children_by_name(session) -> dict[str, Session]:
    return {
        child.component.name: child
        for child in Session.objects.filter(parent_session=session).select_related("component")
    }


def statuses(session) -> dict[str, str]:
    return {name: child.status for name, child in children_by_name(session).items()}


# source_path


def test_source_path_is_null_unless_given(api, project):
    response = create(api, project, "shop.user")

    assert response.status_code == 201
    assert response.json()["source_path"] is None
    assert response.json()["excluded"] is False


def test_source_path_round_trips_through_create_read_and_patch(api, project):
    created = create(api, project, "shop.user", source_path="src/shop/user.py").json()
    assert created["source_path"] == "src/shop/user.py"
    component = Component.objects.get(pk=created["id"])
    assert api.get(f"{COMPONENTS}{component.pk}/").json()["source_path"] == "src/shop/user.py"

    moved = patch(api, component, source_path="lib/shop/user.py")
    assert (moved.status_code, moved.json()["source_path"]) == (200, "lib/shop/user.py")

    cleared = patch(api, component, source_path=None)
    assert (cleared.status_code, cleared.json()["source_path"]) == (200, None)
    component.refresh_from_db()
    assert component.source_path is None


HOSTILE_SOURCE_PATHS = [
    ("../x.py", NOT_A_PATH + 'it has a ".." part.'),
    ("src/../../etc/passwd", NOT_A_PATH + 'it has a ".." part.'),
    ("/etc/passwd", NOT_A_PATH + "it is an absolute path."),
    ("-rf", NOT_A_PATH + 'it starts with "-".'),
    ("src/-rf", NOT_A_PATH + 'a part of it starts with "-".'),
    ("a//b", NOT_A_PATH + 'it has an empty part between "/".'),
    ("./x.py", NOT_A_PATH + 'it has a "." part.'),
    (".git/config", NOT_A_PATH + "it points into .git."),
    ("src/a b.py", NOT_A_PATH + "use only letters, digits, _, . and - between the / separators."),
    ("src/$(id).py", NOT_A_PATH + "use only letters, digits, _, . and - between the / separators."),
    ("", "This field may not be blank."),
]


@pytest.mark.parametrize(("value", "message"), HOSTILE_SOURCE_PATHS)
def test_a_hostile_source_path_on_create_is_a_400_naming_it(
    api, project, unchanged_db, value, message
):
    with unchanged_db():
        response = create(api, project, "shop.user", source_path=value)

    assert response.status_code == 400
    assert response.json() == {"source_path": [message]}


@pytest.mark.parametrize(("value", "message"), HOSTILE_SOURCE_PATHS)
def test_a_hostile_source_path_on_patch_is_a_400_and_keeps_the_old_one(
    api, project, unchanged_db, value, message
):
    component = make_component(project, "User", source_path="src/user.py")

    with unchanged_db():
        response = patch(api, component, source_path=value)

    assert response.status_code == 400
    assert response.json() == {"source_path": [message]}


def test_a_source_path_that_is_not_a_string_is_400(api, project, unchanged_db):
    with unchanged_db():
        response = create(api, project, "shop.user", source_path=["src/user.py"])

    assert response.status_code == 400
    assert set(response.json()) == {"source_path"}


# Test files of their own: create and PATCH


def test_a_component_whose_test_file_is_another_components_is_400_on_create(
    api, project, unchanged_db
):
    snake_only(project)
    assert create(api, project, "click.utils").status_code == 201

    with unchanged_db():
        response = create(api, project, "click._utils")

    assert response.status_code == 400
    assert response.json() == {"module_name": [TAKEN_BY_UTILS]}


def test_the_default_template_refuses_two_modules_that_differ_only_in_case(api, project):
    assert create(api, project, "Shop.user").status_code == 201

    response = create(api, project, "shop.user")

    assert response.status_code == 400
    assert response.json() == {
        "module_name": [
            "Test file tests/test_shop_user_user.py is already the test file of Shop.user"
        ]
    }


def test_a_patch_of_module_name_onto_another_components_test_file_is_400(
    api, project, unchanged_db
):
    snake_only(project)
    make_component(project, "utils", module_name="click.utils")
    helpers = make_component(project, "helpers", module_name="click.helpers")

    with unchanged_db():
        response = patch(api, helpers, module_name="click._utils")

    assert response.status_code == 400
    assert response.json() == {"module_name": [TAKEN_BY_UTILS]}


def test_a_patch_that_keeps_a_components_own_test_file_is_fine(api, project):
    snake_only(project)
    utils = make_component(project, "utils", module_name="click.utils")

    response = patch(api, utils, name="Utilities", source_path="src/click/utils.py")

    assert response.status_code == 200


def test_a_patch_of_source_path_onto_another_components_test_file_is_400_naming_module_name(
    api, project, unchanged_db
):
    project.test_path_template = "tests/test_{source_path}"
    project.save()
    make_component(project, "b", module_name="pkg.b", source_path="pkg/b.py")
    a = make_component(project, "a", module_name="pkg.a", source_path="pkg/a.py")

    with unchanged_db():
        response = patch(api, a, source_path="pkg/b.py")

    assert response.status_code == 400
    assert response.json() == {
        "module_name": ["Test file tests/test_pkg/b.py is already the test file of pkg.b"]
    }


def test_under_a_source_path_template_components_without_one_do_not_collide(api, project):
    project.test_path_template = "tests/{source_path}"
    project.save()

    for module_name in ("pkg.a", "pkg.b", "pkg.c"):
        assert create(api, project, module_name).status_code == 201
    assert create(api, project, "pkg.d", source_path="pkg/d.py").status_code == 201
    assert create(api, project, "pkg.e", source_path="pkg/d.py").json() == {
        "module_name": ["Test file tests/pkg/d.py is already the test file of pkg.d"]
    }


def test_an_excluded_component_still_holds_its_test_file(api, project):
    snake_only(project)
    create(api, project, "click.utils", excluded=True)

    response = create(api, project, "click._utils")

    assert response.status_code == 400
    assert response.json() == {"module_name": [TAKEN_BY_UTILS]}


def test_the_service_refuses_a_colliding_component_with_the_same_text(scope, project):
    snake_only(project)
    component_services.create_component(
        scope=scope, name="utils", module_name="click.utils", type="module"
    )

    with pytest.raises(InvalidInput) as error:
        component_services.create_component(
            scope=scope, name="_utils", module_name="click._utils", type="module"
        )

    assert error.value.errors == {"module_name": [TAKEN_BY_UTILS]}
    assert not Component.objects.filter(module_name="click._utils").exists()


# Test files of their own: bulk


def test_a_bulk_row_colliding_with_an_existing_component_is_400_naming_its_index(
    api, project, unchanged_db
):
    snake_only(project)
    make_component(project, "utils", module_name="click.utils")

    with unchanged_db():
        response = bulk(api, project, [row("click.core"), row("click._utils")])

    assert response.status_code == 400
    assert response.json() == {"components": {"1": {"module_name": [TAKEN_BY_UTILS]}}}


def test_a_bulk_row_colliding_with_an_earlier_row_is_400_naming_the_later_row(
    api, project, unchanged_db
):
    snake_only(project)

    with unchanged_db():
        response = bulk(api, project, [row("click._utils"), row("click.core"), row("click.utils")])

    assert response.status_code == 400
    assert response.json() == {"components": {"2": {"module_name": [TAKEN_BY_UNDERSCORE]}}}


def test_a_bulk_dry_run_reports_the_same_collision(api, project, unchanged_db):
    snake_only(project)

    with unchanged_db():
        response = bulk(api, project, [row("click.utils"), row("click._utils")], dry_run=True)

    assert response.status_code == 400
    assert response.json() == {"components": {"1": {"module_name": [TAKEN_BY_UTILS]}}}


def test_a_bulk_row_may_take_the_test_file_of_a_component_it_renames_away(api, project):
    project.test_path_template = "tests/test_{source_path}"
    project.save()
    make_component(project, "a", module_name="pkg.a", source_path="pkg/old.py")

    response = bulk(
        api,
        project,
        [row("pkg.b", source_path="pkg/old.py"), row("pkg.a", source_path="pkg/new.py")],
    )

    assert response.status_code == 200, response.content
    assert dict(Component.objects.values_list("module_name", "source_path")) == {
        "pkg.a": "pkg/new.py",
        "pkg.b": "pkg/old.py",
    }


def test_a_bulk_prune_frees_the_test_file_of_what_it_deletes(api, project):
    snake_only(project)
    make_component(project, "utils", module_name="click.utils")

    response = bulk(api, project, [row("click._utils")], prune=True)

    assert response.status_code == 200, response.content
    assert list(Component.objects.values_list("module_name", flat=True)) == ["click._utils"]


def test_the_service_refuses_colliding_rows_and_writes_nothing(scope, project):
    snake_only(project)

    with pytest.raises(component_services.InvalidRows) as error:
        component_services.bulk_upsert_components(
            scope=scope, rows=[row("click.utils"), row("click._utils")], prune=False
        )

    assert error.value.row_errors == {1: {"module_name": [TAKEN_BY_UTILS]}}
    assert not Component.objects.exists()


# Test files of their own: two writers at once

REPO = Path(__file__).resolve().parents[2]
# Eight module names that {module_snake} folds into one test file, created by eight clients at
# once on a SQLite file (the suite's in-memory database refuses a second writer at once, see
# tests/concurrency/sqlite_file_races.py). The check is slowed down, so that every client
# checks before any writes unless the check and the write are one critical section.
CONCURRENT_CREATES = """
import os, sys, time
os.environ["DATABASE_URL"] = "sqlite:///" + sys.argv[1]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
call_command("migrate", verbosity=0, interactive=False)
from components_app import services, test_paths
from components_app.models import Component
from core.scope import Scope
from tests.concurrency.races import run_together
from tests.factories import make_project, make_user
checked = test_paths.collision_with
def slow_check(*args, **kwargs):
    answer = checked(*args, **kwargs)
    time.sleep(0.3)
    return answer
test_paths.collision_with = slow_check
names = ["click.utils", "click._utils", "click.__utils", "click.utils_",
         "Click.utils", "click.Utils", "click._utils_", "CLICK.utils"]
user = make_user("alice")
project = make_project(user, name="Shop")
project.test_path_template = "tests/test_{module_snake}.py"
project.save()
scope = Scope(user=user, project=project)
run_together(len(names), lambda i: services.create_component(
    scope=scope, name=f"c{i}", module_name=names[i], type="module"))
print("created", Component.objects.filter(project=project).count())
"""


@pytest.mark.skipif(connection.vendor != "sqlite", reason="runs on a SQLite file")
def test_concurrent_creates_never_give_two_components_one_test_file(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", CONCURRENT_CREATES, str(tmp_path / "races.sqlite3")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "created 1"


# source_path and excluded: bulk


def test_bulk_rows_take_source_path_and_excluded_and_keep_them_when_left_out(api, project):
    first = bulk(
        api,
        project,
        [row("shop.user", source_path="src/shop/user.py", excluded=True), row("shop.cart")],
    )
    assert first.status_code == 200, first.content
    user, cart = first.json()["components"]
    assert (user["source_path"], user["excluded"]) == ("src/shop/user.py", True)
    assert (cart["source_path"], cart["excluded"]) == (None, False)

    again = bulk(api, project, [row("shop.user"), row("shop.cart")])
    assert [a["action"] for a in again.json()["actions"]] == ["unchanged", "unchanged"]
    stored = Component.objects.get(module_name="shop.user")
    assert (stored.source_path, stored.excluded) == ("src/shop/user.py", True)


def test_bulk_rows_change_and_clear_source_path_and_excluded(api, project):
    make_component(project, "user", module_name="shop.user", source_path="src/user.py")
    make_component(project, "cart", module_name="shop.cart", excluded=True)

    response = bulk(
        api,
        project,
        [row("shop.user", source_path=None, excluded=True), row("shop.cart", excluded=False)],
    )

    assert response.status_code == 200, response.content
    assert [(a["action"], a["changes"]) for a in response.json()["actions"]] == [
        ("update", ["source_path", "excluded"]),
        ("update", ["excluded"]),
    ]
    assert dict(Component.objects.values_list("module_name", "source_path")) == {
        "shop.user": None,
        "shop.cart": None,
    }
    assert dict(Component.objects.values_list("module_name", "excluded")) == {
        "shop.user": True,
        "shop.cart": False,
    }


BAD_BULK_VALUES = [
    (
        "source_path",
        "",
        "This field may not be blank; use null for a component without a source path.",
    ),
    (
        "source_path",
        "   ",
        "This field may not be blank; use null for a component without a source path.",
    ),
    ("source_path", 5, "Not a valid string."),
    ("source_path", ["a.py"], "Not a valid string."),
    ("source_path", "../x.py", NOT_A_PATH + 'it has a ".." part.'),
    ("source_path", "/etc/passwd", NOT_A_PATH + "it is an absolute path."),
    ("source_path", "-rf", NOT_A_PATH + 'it starts with "-".'),
    ("source_path", "a//b", NOT_A_PATH + 'it has an empty part between "/".'),
    ("excluded", "yes", "Must be a valid boolean."),
    ("excluded", "true", "Must be a valid boolean."),
    ("excluded", 1, "Must be a valid boolean."),
    ("excluded", 0, "Must be a valid boolean."),
    ("excluded", None, "Must be a valid boolean."),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_BULK_VALUES)
def test_a_bad_source_path_or_excluded_in_a_bulk_row_is_400_naming_row_and_field(
    api, project, unchanged_db, field, value, message
):
    with unchanged_db():
        response = bulk(api, project, [row("shop.cart"), row("shop.user", **{field: value})])

    assert response.status_code == 400
    assert response.json() == {"components": {"1": {field: [message]}}}


# excluded: create and PATCH


def test_excluded_round_trips_through_create_and_patch(api, project):
    created = create(api, project, "shop.user", excluded=True).json()
    assert created["excluded"] is True
    component = Component.objects.get(pk=created["id"])

    response = patch(api, component, excluded=False)

    assert (response.status_code, response.json()["excluded"]) == (200, False)
    assert Component.objects.get(pk=component.pk).excluded is False


@pytest.mark.parametrize("value", ["maybe", None, [], 2])
def test_an_excluded_that_is_not_a_boolean_is_400(api, project, unchanged_db, value):
    component = make_component(project, "User")

    with unchanged_db():
        response = patch(api, component, excluded=value)

    assert response.status_code == 400
    assert set(response.json()) == {"excluded"}


# excluded: spawn


def exclude(project_or_context, name):
    component = Component.objects.get(name=name, parent_component=project_or_context)
    component.excluded = True
    component.save()
    return component


def test_spawn_creates_no_child_for_an_excluded_component(api, context, context_session):
    patch(api, context.child_components.get(name="Token"), excluded=True)

    response = api.post(f"/api/sessions/{context_session.pk}/spawn/")

    assert response.status_code == 200
    assert set(statuses(context_session)) == {"User", "Session", "Audit"}
    assert len(response.json()["metadata"]["child_session_ids"]) == 3


def test_spawn_missing_creates_no_child_for_an_excluded_component(
    api, project, context, context_session
):
    api.post(f"/api/sessions/{context_session.pk}/spawn/")
    make_component(project, "Late", parent_component=context, excluded=True)
    make_component(project, "Later", parent_component=context)

    response = api.post(f"/api/sessions/{context_session.pk}/spawn-missing/")

    assert response.status_code == 200
    assert len(response.json()["metadata"]["created_session_ids"]) == 1
    assert set(statuses(context_session)) == {*SPAWN_ORDER, "Later"}


def test_a_context_whose_children_are_all_excluded_has_none_to_spawn(api, context, context_session):
    context.child_components.update(excluded=True)

    response = api.post(f"/api/sessions/{context_session.pk}/spawn/")

    assert response.status_code == 422
    assert response.json() == {"detail": "No child components found for context"}
    assert not Session.objects.filter(parent_session=context_session).exists()


def test_the_run_spawns_no_child_for_an_excluded_component(api, context, context_session):
    exclude(context, "User")
    initialize = api.post(f"/api/sessions/{context_session.pk}/next-command/").json()
    api.post(
        f"/api/sessions/{context_session.pk}/interactions/{initialize['id']}/result/",
        {"status": "ok"},
        format="json",
    )

    spawn = api.post(f"/api/sessions/{context_session.pk}/next-command/").json()

    assert spawn["step_name"] == "SpawnComponentTestingSessions"
    assert len(spawn["command"]["metadata"]["child_session_ids"]) == 3
    assert "User" not in statuses(context_session)


# excluded: its active child is cancelled


def spawned(scope, context_session) -> dict[str, Session]:
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    children = children_by_name(context_session)
    Session.objects.filter(pk=children["Session"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["User"].pk).update(
        runner="ci-1", leased_until=timezone.now() + timedelta(minutes=5)
    )
    return children


def test_excluding_a_component_by_patch_cancels_its_active_child(
    api, scope, context, context_session
):
    children = spawned(scope, context_session)

    response = patch(api, context.child_components.get(name="User"), excluded=True)

    assert response.status_code == 200
    assert statuses(context_session) == {
        "User": "cancelled",
        "Session": "complete",
        "Token": "active",
        "Audit": "active",
    }
    user = Session.objects.get(pk=children["User"].pk)
    assert (user.runner, user.leased_until) == (None, None)


def test_excluding_a_component_by_patch_leaves_its_complete_child_alone(
    api, scope, context, context_session
):
    spawned(scope, context_session)

    response = patch(api, context.child_components.get(name="Session"), excluded=True)

    assert response.status_code == 200
    assert statuses(context_session)["Session"] == "complete"
    assert set(statuses(context_session).values()) == {"active", "complete"}


def test_excluding_a_component_by_bulk_cancels_its_active_child(
    api, scope, project, context, context_session
):
    spawned(scope, context_session)
    user, session = (context.child_components.get(name=n) for n in ("User", "Session"))

    response = bulk(
        api,
        project,
        [
            row(user.module_name, name="User", excluded=True),
            row(session.module_name, name="Session", excluded=True),
        ],
    )

    assert response.status_code == 200, response.content
    assert statuses(context_session) == {
        "User": "cancelled",
        "Session": "complete",
        "Token": "active",
        "Audit": "active",
    }


def test_a_bulk_dry_run_that_excludes_cancels_nothing(
    api, scope, project, context, context_session
):
    spawned(scope, context_session)
    user = context.child_components.get(name="User")

    response = bulk(api, project, [row(user.module_name, name="User", excluded=True)], dry_run=True)

    assert response.status_code == 200
    assert statuses(context_session)["User"] == "active"
    assert Component.objects.get(pk=user.pk).excluded is False


def test_a_refused_bulk_that_would_exclude_cancels_nothing(
    api, scope, project, context, context_session
):
    spawned(scope, context_session)
    user = context.child_components.get(name="User")

    response = bulk(
        api,
        project,
        [row(user.module_name, name="User", excluded=True), row("shop.x", excluded="no")],
    )

    assert response.status_code == 400
    assert statuses(context_session)["User"] == "active"


@pytest.fixture
def component_admin(client, user):
    user.is_staff = True
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["sessions_app", "components_app"],
            codename__regex=r"^(view|change|add)_",
        )
    )
    client.force_login(user)
    return client


def admin_form(component, **changes) -> dict:
    form = {
        "name": component.name,
        "module_name": component.module_name,
        "type": component.type,
        "priority": str(component.priority),
        "parent_component": str(component.parent_component_id or ""),
        "source_path": component.source_path or "",
        "description": component.description,
        "child_components-TOTAL_FORMS": "0",
        "child_components-INITIAL_FORMS": "0",
    }
    if component.excluded:
        form["excluded"] = "on"
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def admin_url(component) -> str:
    return f"/admin/components_app/component/{component.pk}/change/"


def test_excluding_a_component_in_the_admin_cancels_its_active_child(
    component_admin, scope, context, context_session
):
    spawned(scope, context_session)
    user = context.child_components.get(name="User")

    response = component_admin.post(admin_url(user), admin_form(user, excluded="on"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Component.objects.get(pk=user.pk).excluded is True
    assert statuses(context_session) == {
        "User": "cancelled",
        "Session": "complete",
        "Token": "active",
        "Audit": "active",
    }


def test_excluding_a_component_in_the_admin_leaves_its_complete_child_alone(
    component_admin, scope, context, context_session
):
    spawned(scope, context_session)
    session = context.child_components.get(name="Session")

    response = component_admin.post(admin_url(session), admin_form(session, excluded="on"))

    assert response.status_code == 302
    assert statuses(context_session)["Session"] == "complete"
    assert set(statuses(context_session).values()) == {"active", "complete"}


def test_changing_an_excluded_component_in_the_admin_cancels_nothing_new(
    component_admin, scope, context, context_session
):
    spawned(scope, context_session)
    token = exclude(context, "Token")  # through the ORM: its child stays active

    response = component_admin.post(admin_url(token), admin_form(token, description="Kept out"))

    assert response.status_code == 302
    assert statuses(context_session)["Token"] == "active"


def test_the_admin_component_form_takes_source_path_and_refuses_a_hostile_one(
    component_admin, project
):
    component = make_component(project, "User")

    kept = component_admin.post(admin_url(component), admin_form(component, source_path="src/u.py"))
    refused = component_admin.post(admin_url(component), admin_form(component, source_path="../x"))

    assert kept.status_code == 302
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["source_path"] == [
        NOT_A_PATH + 'it has a ".." part.'
    ]
    assert Component.objects.get(pk=component.pk).source_path == "src/u.py"


def test_the_admin_component_form_refuses_another_components_test_file(component_admin, project):
    snake_only(project)
    make_component(project, "utils", module_name="click.utils")
    helpers = make_component(project, "helpers", module_name="click.helpers")

    response = component_admin.post(
        admin_url(helpers), admin_form(helpers, module_name="click._utils")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["module_name"] == [TAKEN_BY_UTILS]


def test_the_admin_component_list_shows_and_filters_excluded(component_admin, context):
    exclude(context, "Token")

    response = component_admin.get("/admin/components_app/component/", {"excluded__exact": "1"})

    assert response.status_code == 200
    assert [c.name for c in response.context["cl"].result_list] == ["Token"]
    assert "excluded" in response.context["cl"].list_display


def test_excluding_cancels_only_children_not_the_context_session(
    api, scope, context, context_session
):
    spawned(scope, context_session)

    response = patch(api, context, excluded=True)

    assert response.status_code == 200
    assert Session.objects.get(pk=context_session.pk).status == SessionStatus.ACTIVE
    assert set(statuses(context_session).values()) == {"active", "complete"}


def test_excluding_an_already_excluded_component_again_changes_nothing(
    api, scope, context, context_session
):
    spawned(scope, context_session)
    token = exclude(context, "Token")  # through the ORM: its child stays active

    response = patch(api, token, excluded=True)

    assert response.status_code == 200
    assert statuses(context_session)["Token"] == "active"


def test_the_exclusion_and_the_cancellation_are_one_transaction(
    scope, context, context_session, monkeypatch
):
    spawned(scope, context_session)
    user = context.child_components.get(name="User")

    def fail(**_):
        raise RuntimeError("cancellation failed")

    monkeypatch.setattr(services, "cancel_children_of_excluded", fail)
    with pytest.raises(RuntimeError):
        component_services.update_component(scope=scope, component_id=user.pk, excluded=True)

    assert Component.objects.get(pk=user.pk).excluded is False
    assert statuses(context_session)["User"] == "active"


def test_another_projects_sessions_are_not_cancelled(scope, other_scope, context, context_session):
    spawned(scope, context_session)
    theirs = make_context(other_scope.project, [("User", 1)])
    their_session = make_context_session(other_scope, theirs)
    services.spawn_child_sessions(scope=other_scope, session_id=their_session.pk)
    their_child = Session.objects.get(parent_session=their_session)

    # Called with this project's scope and the other project's component id.
    services.cancel_children_of_excluded(scope=scope, component_ids=[their_child.component_id])

    assert Session.objects.get(pk=their_child.pk).status == SessionStatus.ACTIVE


# excluded: the spawn step's result check


def test_the_check_leaves_out_an_excluded_components_failed_child(
    api, scope, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(parent_session=context_session, component__name="Token").update(
        status=SessionStatus.FAILED, state={"error": "tests fail"}
    )
    before = services.check_child_sessions(scope=scope, session_id=context_session.pk)
    assert before.error_message == "Child sessions failed: Token (tests fail)"

    patch(api, context.child_components.get(name="Token"), excluded=True)

    result = services.check_child_sessions(scope=scope, session_id=context_session.pk)
    assert (result.status, result.error_message) == ("ok", None)
    assert statuses(context_session)["Token"] == "failed"


def test_the_check_leaves_out_the_child_an_exclusion_cancelled(
    api, scope, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).exclude(component__name="Audit").update(
        status=SessionStatus.COMPLETE
    )

    patch(api, context.child_components.get(name="Audit"), excluded=True)

    assert statuses(context_session)["Audit"] == "cancelled"
    assert services.check_child_sessions(scope=scope, session_id=context_session.pk).status == "ok"


def test_the_check_still_names_the_rest_when_one_component_is_excluded(
    api, scope, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session, component__name="User").update(
        status=SessionStatus.FAILED, state={"error": "boom"}
    )
    exclude(context, "Token")

    result = services.check_child_sessions(scope=scope, session_id=context_session.pk)

    assert result.error_message == (
        "Child sessions still running: Session, Audit; Child sessions failed: User (boom)"
    )


def test_the_check_does_not_list_an_excluded_component_without_a_child(
    scope, project, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)
    make_component(project, "Windows", parent_component=context, excluded=True)

    ok = services.check_child_sessions(scope=scope, session_id=context_session.pk)
    make_component(project, "Late", parent_component=context)
    missing = services.check_child_sessions(scope=scope, session_id=context_session.pk)

    assert (ok.status, ok.error_message) == ("ok", None)
    assert missing.error_message == "Components without a child session: Late"


def test_a_run_whose_failing_child_is_excluded_goes_on_to_finalize(
    api, scope, context, context_session
):
    sid = context_session.pk
    initialize = api.post(f"/api/sessions/{sid}/next-command/").json()
    api.post(
        f"/api/sessions/{sid}/interactions/{initialize['id']}/result/",
        {"status": "ok"},
        format="json",
    )
    spawn = api.post(f"/api/sessions/{sid}/next-command/").json()
    assert spawn["step_name"] == "SpawnComponentTestingSessions"
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)
    make_child(
        context_session,
        make_component(scope.project, "Flaky", parent_component=context),
        status=SessionStatus.FAILED,
        state={"error": "flaky"},
    )
    patch(api, Component.objects.get(name="Flaky"), excluded=True)

    response = api.post(
        f"/api/sessions/{sid}/interactions/{spawn['id']}/result/", {"status": "ok"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["interaction"]["result"]["status"] == "ok"
    following = api.post(f"/api/sessions/{sid}/next-command/").json()
    assert following["step_name"] == "Finalize"


# The test file a child is handed


@pytest.mark.parametrize(
    ("module_name", "snake", "last"),
    [
        ("Shop.Accounts.UserToken", "shop_accounts_user_token", "UserToken"),
        ("click._utils", "click_utils", "_utils"),
        ("click.utils", "click_utils", "utils"),
        ("pkg.fooBar", "pkg_foo_bar", "fooBar"),
        ("HTTPServer.v2", "http_server_v2", "v2"),
        ("a--b..c", "a_b_c", "c"),
        ("single", "single", "single"),
    ],
)
def test_module_snake_and_module_last_read_a_module_name(module_name, snake, last):
    assert test_paths.module_snake(module_name) == snake
    assert test_paths.module_last(module_name) == last
    rendered = test_paths.render(
        "{module}|{module_snake}|{module_last}|{source_path}",
        module_name=module_name,
        source_path="src/x.py",
    )
    assert rendered == f"{module_name}|{snake}|{last}|src/x.py"


def generate_command(api, scope, context_session, component_name) -> dict:
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = children_by_name(context_session)[component_name]
    initialize = api.post(f"/api/sessions/{child.pk}/next-command/").json()
    api.post(
        f"/api/sessions/{child.pk}/interactions/{initialize['id']}/result/",
        {"status": "ok"},
        format="json",
    )
    command = api.post(f"/api/sessions/{child.pk}/next-command/").json()
    assert command["step_name"] == "GenerateTestsAndFixtures"
    return command["command"]


@pytest.mark.parametrize(
    ("module_name", "test_file"),
    [
        ("click.utils", "tests/test_click_utils_utils.py"),
        ("click._utils", "tests/test_click_utils__utils.py"),
        ("Shop.Accounts.UserToken", "tests/test_shop_accounts_user_token_UserToken.py"),
        ("pkg.__main__", "tests/test_pkg_main___main__.py"),
    ],
)
def test_a_child_is_handed_its_test_file_by_the_default_template(
    api, scope, context, context_session, module_name, test_file
):
    Component.objects.filter(parent_component=context).exclude(name="User").delete()
    Component.objects.filter(name="User").update(module_name=module_name)

    command = generate_command(api, scope, context_session, "User")

    assert command["metadata"]["test_file"] == test_file


def test_a_child_is_handed_the_test_file_its_source_path_names(
    api, scope, project, context, context_session
):
    project.test_path_template = "tests/{module_last}/test_{source_path}"
    project.save()
    Component.objects.filter(name="User").update(
        module_name="shop.user", source_path="src/shop/user.py"
    )

    command = generate_command(api, scope, context_session, "User")

    assert command["metadata"]["test_file"] == "tests/user/test_src/shop/user.py"


def test_a_source_path_template_without_a_source_path_is_the_steps_error(
    api, scope, project, context, context_session
):
    project.test_path_template = "tests/test_{source_path}"
    project.save()
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = children_by_name(context_session)["User"]
    initialize = api.post(f"/api/sessions/{child.pk}/next-command/").json()
    api.post(
        f"/api/sessions/{child.pk}/interactions/{initialize['id']}/result/",
        {"status": "ok"},
        format="json",
    )

    response = api.post(f"/api/sessions/{child.pk}/next-command/")

    module_name = context.child_components.get(name="User").module_name
    assert response.status_code == 422
    assert response.json() == {
        "detail": f"Component {module_name} has no source_path, which the project's test "
        "path template {source_path} needs"
    }


# The admin's import and the change form's empty source path


def test_excluding_a_component_by_the_admin_import_cancels_its_active_child(
    component_admin, scope, project, context, context_session
):
    spawned(scope, context_session)
    user = context.child_components.get(name="User")
    manifest = {"components": [row(user.module_name, name="User", excluded=True)]}
    upload = SimpleUploadedFile("manifest.json", json.dumps(manifest).encode())

    response = component_admin.post(
        f"/admin/components_app/project/{project.pk}/import-components/", {"manifest": upload}
    )

    assert response.status_code == 302
    assert Component.objects.get(pk=user.pk).excluded is True
    assert statuses(context_session)["User"] == "cancelled"


def test_clearing_source_path_in_the_admin_stores_null(component_admin, project):
    component = make_component(project, "User", source_path="src/user.py")

    response = component_admin.post(admin_url(component), admin_form(component, source_path=""))

    assert response.status_code == 302
    assert Component.objects.get(pk=component.pk).source_path is None


@pytest.mark.parametrize(
    ("template", "module_name", "source_path", "expected"),
    [
        # Go: beside the file.
        (
            "{source_dir}/{source_stem}_test.go",
            "store.cache",
            "store/cache.go",
            "store/cache_test.go",
        ),
        ("{source_dir}/{source_stem}_test.go", "main.main", "main.go", "main_test.go"),
        # TypeScript: beside the file, its own extension.
        (
            "{source_dir}/{source_stem}.test{source_ext}",
            "utils.format",
            "src/utils/format.tsx",
            "src/utils/format.test.tsx",
        ),
        (
            "{source_dir}/{source_stem}.test{source_ext}",
            "app.module",
            "src/app.module.ts",
            "src/app.module.test.ts",
        ),
        # Elixir: test/ mirrors the module's name.
        (
            "test/{module_path}_test.exs",
            "Shop.Accounts.UserToken",
            "lib/shop/accounts/user_token.ex",
            "test/shop/accounts/user_token_test.exs",
        ),
        ("test/{module_path}_test.exs", "Shop.Accounts", None, "test/shop/accounts_test.exs"),
        # Without a source path, a template that reads it names no file.
        ("{source_dir}/{source_stem}_test.go", "store.cache", None, None),
        ("t/{source_stem}{source_ext}", "x", None, None),
    ],
)
def test_the_source_and_module_path_placeholders(template, module_name, source_path, expected):
    assert test_paths.render(template, module_name=module_name, source_path=source_path) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{source_dir}/{source_stem}_test.go",
        "{source_dir}/{source_stem}.test{source_ext}",
        "test/{module_path}_test.exs",
    ],
)
def test_each_languages_test_path_template_is_accepted(api, project, template):
    response = api.patch(
        f"/api/projects/{project.pk}/", {"test_path_template": template}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["test_path_template"] == template
