"""The Project and Component pages."""

import re

from django.contrib.auth.models import Permission

from components_app.models import Component, Project
from tests.factories import make_child, make_user


def test_a_project_page_lists_its_members(staff_client, project, staff):
    colleague = make_user("bob")
    project.members.add(colleague)

    response = staff_client.get(f"/admin/components_app/project/{project.pk}/change/")

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert {form.instance.user for form in inline.formset.forms if form.instance.pk} == {
        staff,
        colleague,
    }


def test_the_project_list_counts_every_member_and_component(staff_client, project, context):
    project.members.add(make_user("bob"), make_user("carol"))

    response = staff_client.get("/admin/components_app/project/")

    [row] = response.context["cl"].result_list
    assert (row.members_count, row.components_count) == (3, 5)


def test_whoever_adds_a_project_in_the_admin_is_a_member(staff_client, staff, project):
    colleague = make_user("bob")
    project.members.add(colleague)  # a staff member may add only people they work with

    response = staff_client.post(
        "/admin/components_app/project/add/",
        {
            "name": "Billing",
            "test_command_template": "pytest {test_file}",
            "test_path_template": "tests/test_{module_snake}.py",
            "agent_command_template": "claude -p {prompt}",
            "base_branch": "main",
            "max_step_attempts": "3",
            "min_line_coverage": "80",
            "test_runs": "3",
            "max_improve_attempts": "3",
            "coverage_command_template": "python -m coverage run -m pytest {test_file}",
            "coverage_report_format": "coverage.py-json",
            "max_mutants": "20",
            "mutant_timeout_seconds": "60",
            "agent_resume_template": "claude -p {prompt} --resume {conversation_id}",
            "agent_timeout_seconds": "1800",
            "test_timeout_seconds": "600",
            "Project_members-TOTAL_FORMS": "1",
            "Project_members-INITIAL_FORMS": "0",
            "Project_members-0-user": str(colleague.pk),
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert set(Project.objects.get(name="Billing").members.all()) == {staff, colleague}


def test_the_component_list_runs_in_spawn_order(staff_client, context):
    response = staff_client.get("/admin/components_app/component/")

    names = [c.name for c in response.context["cl"].result_list]
    assert names == ["User", "Session", "Token", "Accounts", "Audit"]


def test_a_context_page_shows_its_child_components_in_spawn_order(staff_client, context):
    response = staff_client.get(f"/admin/components_app/component/{context.pk}/change/")

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert [form.instance.name for form in inline.formset.forms] == [
        "User",
        "Session",
        "Token",
        "Audit",
    ]
    assert not inline.has_add_permission
    html = response.content.decode()
    assert re.search(r"child components \(spawn order\)", html, re.IGNORECASE)


def test_the_component_list_searches_names_and_modules(staff_client, context):
    response = staff_client.get("/admin/components_app/component/", {"q": "Tok"})

    assert [c.name for c in response.context["cl"].result_list] == ["Token"]


def test_a_components_page_does_not_offer_to_move_it_to_another_project(staff_client, context):
    response = staff_client.get(f"/admin/components_app/component/{context.pk}/change/")

    assert "project" not in response.context["adminform"].form.fields
    add = staff_client.get("/admin/components_app/component/add/")
    assert "project" in add.context["adminform"].form.fields


def test_a_project_template_with_an_unknown_placeholder_is_a_form_error(staff_client, project):
    response = staff_client.post(
        f"/admin/components_app/project/{project.pk}/change/",
        {
            "name": project.name,
            "test_command_template": "pytest {test_file}",
            "test_path_template": "tests/{oops}.py",
            "Project_members-TOTAL_FORMS": "0",
            "Project_members-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Use only the placeholders" in errors["test_path_template"][0]
    project.refresh_from_db()
    assert project.test_path_template == "tests/test_{module_snake}_{module_last}.py"


def test_a_component_that_has_sessions_is_kept_by_the_delete_page_and_action(
    staff_client, staff, context, context_session
):
    staff.user_permissions.add(Permission.objects.get(codename="delete_component"))
    child = context.child_components.get(name="User")
    make_child(context_session, child)

    page = staff_client.post(f"/admin/components_app/component/{child.pk}/delete/", {"post": "yes"})
    action = staff_client.post(
        "/admin/components_app/component/",
        {"action": "delete_selected", "_selected_action": [str(child.pk)], "post": "yes"},
    )

    for response in (page, action):
        assert response.status_code == 200
        assert "it has sessions" in response.content.decode()
    assert Component.objects.filter(pk=child.pk).exists()
    # A component no session tests is deleted as before.
    untested = context.child_components.get(name="Audit")
    staff_client.post(f"/admin/components_app/component/{untested.pk}/delete/", {"post": "yes"})
    assert not Component.objects.filter(pk=untested.pk).exists()
