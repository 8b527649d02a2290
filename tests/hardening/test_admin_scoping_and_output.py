"""A staff member who is not a superuser sees and adds only colleagues as a project's
members; text from clients in admin messages and command output cannot drive a screen."""

from __future__ import annotations

import pytest

from components_app.models import Project
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.admin.conftest import change_url, post_action
from tests.commands.conftest import run
from tests.factories import make_child, make_component, make_project, make_session, make_user

HOSTILE = "Evil\x1b[2J\u202eeman\r"
SHOWN = "Evil\\u001b[2J\\u202eeman\\u000d"


def project_page(project: Project) -> str:
    return f"/admin/components_app/project/{project.pk}/change/"


def member_choices(client, url: str) -> set[str]:
    response = client.get(url)
    [inline] = response.context["inline_admin_formsets"]
    field = inline.formset.empty_form.fields["user"]
    return {user.username for user in field.queryset}


@pytest.fixture
def colleagues(staff, project):
    """bob shares Shop with alice; carol shares another of alice's projects; mallory none."""
    bob, carol = make_user("bob"), make_user("carol")
    project.members.add(bob)
    make_project(staff, carol, name="Billing")
    make_user("mallory")
    return bob, carol


def test_staff_see_only_colleagues_as_possible_members(staff_client, project, colleagues):
    assert member_choices(staff_client, project_page(project)) == {"alice", "bob", "carol"}
    assert member_choices(staff_client, "/admin/components_app/project/add/") == {
        "alice",
        "bob",
        "carol",
    }


def test_a_superuser_sees_everyone(superuser_client, project, colleagues):
    assert member_choices(superuser_client, project_page(project)) >= {
        "alice",
        "bob",
        "carol",
        "mallory",
        "root",
    }


def test_staff_cannot_add_a_stranger_by_posting_their_id(staff_client, project, colleagues):
    stranger = make_user("eve")
    members = list(project.members.through.objects.filter(project=project))
    data = {
        "name": project.name,
        "test_command_template": project.test_command_template,
        "test_path_template": project.test_path_template,
        "Project_members-TOTAL_FORMS": str(len(members) + 1),
        "Project_members-INITIAL_FORMS": str(len(members)),
        f"Project_members-{len(members)}-user": str(stranger.pk),
    }
    for index, membership in enumerate(members):
        data[f"Project_members-{index}-id"] = str(membership.pk)
        data[f"Project_members-{index}-user"] = str(membership.user_id)
        data[f"Project_members-{index}-project"] = str(project.pk)

    response = staff_client.post(project_page(project), data)

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert "Select a valid choice" in str(inline.formset.errors)
    assert not project.members.filter(pk=stranger.pk).exists()


def test_admin_messages_show_control_characters_as_escapes(superuser_client, scope, project):
    context = make_component(project, "Accounts", type="context")
    make_component(project, HOSTILE, parent_component=context)
    session = make_session(scope, component=context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(status=SessionStatus.FAILED)

    [(level, text)] = post_action(superuser_client, "retry_failed_children", session)

    assert level == "success"
    assert text.endswith(f"retried 1 child session: {SHOWN}.")
    assert "\x1b" not in text and "\u202e" not in text


def test_djangos_own_messages_keep_their_links(superuser_client, context_session):
    url = change_url(context_session)
    form = superuser_client.get(url).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}

    response = superuser_client.post(url, data, follow=True)

    [message] = list(response.context["messages"])
    assert f'<a href="{url}">' in response.content.decode()
    assert "was changed successfully" in message.message


def test_spawn_sessions_prints_a_step_error_with_escapes(scope, context, context_session):
    child_component = context.child_components.first()
    make_child(context_session, child_component, type=HOSTILE)

    status, stdout, stderr = run("spawn_sessions", str(context_session.pk))

    assert (status, stdout) == (1, "")
    assert stderr.strip() == (
        f"Invalid child session type: expected ComponentTestSessions, got {SHOWN}"
    )


def test_retry_sessions_prints_an_error_with_escapes(scope):
    session = make_session(scope, type=HOSTILE, status=SessionStatus.FAILED)

    status, _, stderr = run("retry_sessions", str(session.pk), "--children")

    assert status == 1
    assert stderr.strip() == (
        f"Only ContextTestingSessions sessions have child sessions, this one is {SHOWN}"
    )
