"""The project page's component tree with each component's session history, and the
"Import components" form, which goes through the bulk import's service."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from components_app import selectors, services
from components_app.admin import NOT_A_MANIFEST
from components_app.models import Component
from sessions_app.models import SessionStatus
from tests.factories import make_child, make_component, make_context_session, make_project


def change_url(project) -> str:
    return f"/admin/components_app/project/{project.pk}/change/"


def import_url(project) -> str:
    return f"/admin/components_app/project/{project.pk}/import-components/"


def upload(document, name: str = "manifest.json") -> SimpleUploadedFile:
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    return SimpleUploadedFile(name, content, content_type="application/json")


def post_manifest(client, project, document, **data):
    return client.post(import_url(project), {"manifest": upload(document), **data}, follow=True)


def messages_of(response) -> list[str]:
    return [m.message for m in response.context["messages"]]


MANIFEST = {
    "version": 1,
    "components": [
        {"module_name": "Shop.Billing", "name": "Billing", "type": "context"},
        {
            "module_name": "Shop.Billing.Invoice",
            "name": "Invoice",
            "type": "schema",
            "priority": 4,
            "parent_module_name": "Shop.Billing",
        },
    ],
}


# --- the tree ---------------------------------------------------------------------------


def test_the_project_page_shows_contexts_then_their_components_in_spawn_order(
    staff_client, project, context
):
    response = staff_client.get(change_url(project))

    assert response.status_code == 200
    tree = response.context["component_tree"]
    assert [(row.component.name, row.depth) for row in tree] == [
        ("Accounts", 0),
        ("User", 1),
        ("Session", 1),
        ("Token", 1),
        ("Audit", 1),
    ]
    html = response.content.decode()
    assert html.index(">Accounts</a>") < html.index(">User</a>") < html.index(">Audit</a>")


def test_each_component_shows_its_last_run_and_status(staff_client, scope, project, context):
    context_session = make_context_session(scope, context)
    user = context.child_components.get(name="User")
    make_child(context_session, user, status=SessionStatus.FAILED)
    context_session.status = SessionStatus.CANCELLED
    context_session.save()

    response = staff_client.get(change_url(project))

    rows = {row.component.name: row for row in response.context["component_tree"]}
    assert (rows["Accounts"].session_count, rows["Accounts"].last_status) == (1, "cancelled")
    assert (rows["User"].session_count, rows["User"].last_status) == (1, "failed")
    assert (rows["Token"].session_count, rows["Token"].last_status) == (0, None)
    assert rows["User"].last_run_at is not None
    html = response.content.decode()
    assert f"/admin/sessions_app/session/{rows['User'].last_session_id}/change/" in html
    assert "never" in html


def test_each_component_shows_its_last_measured_coverage(staff_client, scope, project, context):
    from sessions_app.models import Interaction, Session, Verification

    context_session = make_context_session(scope, context)
    user = context.child_components.get(name="User")
    child = make_child(context_session, user, status=SessionStatus.COMPLETE)
    step = Interaction.objects.create(session=child, step_name="VerifyTests", command={})
    measured = Verification.objects.create(
        session=child, interaction=step, passed=True, runs=[0], line_coverage=91.6
    )
    Session.objects.filter(pk=child.pk).update(latest_verification=measured)

    response = staff_client.get(change_url(project))

    rows = {row.component.name: row for row in response.context["component_tree"]}
    assert float(rows["User"].last_line_coverage) == 91.6
    assert rows["Token"].last_line_coverage is None
    assert '<td class="component-coverage">91.6%</td>' in response.content.decode()


def test_the_newest_session_is_the_one_shown(staff_client, scope, project, context):
    make_context_session(scope, context, status=SessionStatus.FAILED)
    newest = make_context_session(scope, context, status=SessionStatus.COMPLETE)

    response = staff_client.get(change_url(project))

    (accounts,) = [r for r in response.context["component_tree"] if r.depth == 0]
    assert (accounts.session_count, accounts.last_session_id, accounts.last_status) == (
        2,
        newest.pk,
        "complete",
    )


@pytest.mark.parametrize("children", [2, 40])
def test_the_tree_costs_one_query_whatever_its_size(
    staff_client, scope, project, children, django_assert_num_queries
):
    root = make_component(project, "Root", module_name="root", type="context")
    for i in range(children):
        child = make_component(project, f"C{i}", module_name=f"root.c{i}", parent_component=root)
        make_context_session(scope, child)
    staff_client.get(change_url(project))  # warm the session and permission caches

    with django_assert_num_queries(1):
        rows = selectors.component_tree(scope=scope)

    assert len(rows) == children + 1
    assert all(row.session_count == 1 for row in rows[1:])


# --- the import form ----------------------------------------------------------------------


def test_the_project_page_links_to_the_import_form(staff_client, project):
    response = staff_client.get(change_url(project))

    assert import_url(project) in response.content.decode()
    assert staff_client.get(import_url(project)).status_code == 200


def test_a_manifest_is_imported_through_the_service(staff_client, project):
    response = post_manifest(staff_client, project, MANIFEST)

    assert response.redirect_chain[-1][0] == change_url(project)
    assert messages_of(response) == ["Imported: 2 created, 0 updated, 0 unchanged, 0 deleted."]
    invoice = Component.objects.get(project=project, module_name="Shop.Billing.Invoice")
    assert (invoice.parent_component.module_name, invoice.priority) == ("Shop.Billing", 4)

    again = post_manifest(staff_client, project, MANIFEST)
    assert messages_of(again) == ["Imported: 0 created, 0 updated, 2 unchanged, 0 deleted."]


def test_prune_deletes_what_the_manifest_does_not_name(staff_client, staff, project):
    staff.user_permissions.add(Permission.objects.get(codename="delete_component"))
    make_component(project, "Old", module_name="old")

    response = post_manifest(staff_client, project, MANIFEST, prune="on")

    assert messages_of(response) == ["Imported: 2 created, 0 updated, 0 unchanged, 1 deleted."]
    assert not Component.objects.filter(module_name="old").exists()


def test_prune_needs_the_permission_to_delete_components(staff_client, project):
    make_component(project, "Old", module_name="old")

    response = post_manifest(staff_client, project, MANIFEST, prune="on")

    assert response.status_code == 403
    assert Component.objects.filter(project=project).count() == 1


def bad_manifest(*rows) -> dict:
    return {"components": list(rows)}


@pytest.mark.parametrize(
    ("document", "shown"),
    [
        (
            bad_manifest(
                {"module_name": "A", "name": "A", "type": "context", "parent_module_name": "B"},
                {"module_name": "B", "name": "B", "type": "context", "parent_module_name": "A"},
            ),
            [
                "Row 0, parent_module_name: " + services.CYCLE.format(chain="A → B → A"),
                "Row 1, parent_module_name: " + services.CYCLE.format(chain="B → A → B"),
            ],
        ),
        (
            bad_manifest({"module_name": "A", "name": "A", "type": "x", "parent_module_name": "Z"}),
            [f"Row 0, parent_module_name: {services.UNKNOWN_PARENT}"],
        ),
        (
            bad_manifest(
                {"module_name": "A", "name": "A", "type": "x"},
                {"module_name": "A", "name": "A2", "type": "x"},
            ),
            ["Row 1, module_name: Row 0 has the same module name."],
        ),
        (
            bad_manifest({"module_name": "A", "name": "A", "type": "x", "priority": "high"}),
            [f"Row 0, priority: {services.NOT_AN_INTEGER}"],
        ),
        (b"{not json", None),
        (b"\xff\xfe", None),
        ({"rows": []}, [NOT_A_MANIFEST]),
        ({"components": [], "version": 2}, [NOT_A_MANIFEST]),
    ],
)
def test_a_bad_manifest_is_shown_row_by_row_and_nothing_is_written(
    staff_client, project, document, shown
):
    response = post_manifest(staff_client, project, document)

    assert response.status_code == 200
    errors = response.context["form"].errors["manifest"]
    if shown is not None:
        assert errors == shown
    else:
        assert len(errors) == 1
    assert not Component.objects.filter(project=project).exists()


def test_a_prune_that_would_delete_a_tested_component_is_refused(superuser_client, scope, project):
    tested = make_component(project, "Tested", module_name="tested", type="context")
    make_context_session(scope, tested)

    response = post_manifest(superuser_client, project, MANIFEST, prune="on")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Components with sessions cannot be deleted: tested"
    ]
    assert list(Component.objects.values_list("module_name", flat=True)) == ["tested"]


def test_another_projects_import_form_is_a_404_for_staff(staff_client, user):
    foreign = make_project(name="Elsewhere")

    assert staff_client.get(import_url(foreign)).status_code == 404
    response = staff_client.post(import_url(foreign), {"manifest": upload(MANIFEST)})
    assert response.status_code == 404
    assert not Component.objects.exists()


def test_staff_without_component_permissions_cannot_import(client, staff, project):
    staff.user_permissions.remove(Permission.objects.get(codename="add_component"))
    client.force_login(staff)

    response = client.post(import_url(project), {"manifest": upload(MANIFEST)})

    assert response.status_code == 403
    assert not Component.objects.exists()
