"""Staff who are not superusers see, open and choose only what belongs to their projects."""

import pytest
from django.utils import timezone

from core.scope import Scope
from sessions_app.models import Interaction, Session
from tests.admin.conftest import CHANGELIST, change_url, post_action
from tests.factories import make_context, make_context_session, make_project, make_user


@pytest.fixture
def foreign(db):
    """Another team's project, with a context, a session and an interaction."""
    stranger = make_user("mallory")
    project = make_project(stranger, name="Elsewhere")
    context = make_context(project, [("Ledger", 1)])
    session = make_context_session(Scope(user=stranger, project=project), context)
    interaction = Interaction.objects.create(
        session=session, step_name="Initialize", command={"command": "initialize_session"}
    )
    return {
        "project": project,
        "context": context,
        "component": context.child_components.get(),
        "session": session,
        "interaction": interaction,
    }


def listed(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


def test_staff_list_only_their_projects_objects(
    staff_client, project, context, context_session, foreign
):
    own_interaction = Interaction.objects.create(
        session=context_session,
        step_name="Initialize",
        command={},
        result={"status": "ok"},
        completed_at=timezone.now(),
    )

    assert listed(staff_client, "/admin/components_app/project/") == {project}
    assert listed(staff_client, "/admin/components_app/component/") == set(
        [context, *context.child_components.all()]
    )
    assert listed(staff_client, CHANGELIST) == {context_session}
    assert listed(staff_client, "/admin/sessions_app/interaction/") == {own_interaction}


def test_staff_cannot_open_another_projects_objects(staff_client, foreign):
    for url in [
        f"/admin/components_app/project/{foreign['project'].pk}/change/",
        f"/admin/components_app/component/{foreign['component'].pk}/change/",
        change_url(foreign["session"]),
        f"/admin/sessions_app/interaction/{foreign['interaction'].pk}/change/",
    ]:
        response = staff_client.get(url)
        # The admin answers an object it cannot find with a redirect to its index.
        assert response.status_code == 302, url
        assert response.url == "/admin/"


def test_staff_cannot_act_on_another_projects_session(staff_client, foreign):
    post_action(staff_client, "spawn_child_sessions", foreign["session"])
    post_action(staff_client, "cancel_sessions", foreign["session"])

    foreign["session"].refresh_from_db()
    assert foreign["session"].status == "active"
    assert not Session.objects.filter(parent_session=foreign["session"]).exists()


def test_staff_choose_only_their_projects_objects(
    staff_client, project, context, context_session, foreign
):
    session_form = staff_client.get("/admin/sessions_app/session/add/").context["adminform"].form
    component_form = (
        staff_client.get("/admin/components_app/component/add/").context["adminform"].form
    )

    own_components = {context, *context.child_components.all()}
    assert set(session_form.fields["project"].queryset) == {project}
    assert set(session_form.fields["component"].queryset) == own_components
    assert set(session_form.fields["parent_session"].queryset) == {context_session}
    assert set(component_form.fields["project"].queryset) == {project}
    assert set(component_form.fields["parent_component"].queryset) == own_components


def test_staff_cannot_submit_another_projects_objects(staff_client, project, foreign):
    response = staff_client.post(
        "/admin/sessions_app/session/add/",
        {
            "project": str(foreign["project"].pk),
            "type": "ContextTestingSessions",
            "component": str(foreign["context"].pk),
            "status": "active",
            "execution_mode": "manual",
            "state": "{}",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "project" in errors and "component" in errors
    assert Session.objects.filter(project=foreign["project"]).count() == 1


def test_staff_filter_choices_name_only_their_projects(
    staff_client, project, context_session, foreign
):
    response = staff_client.get(CHANGELIST)

    html = response.content.decode()
    assert "Shop" in html
    assert "Elsewhere" not in html


def test_superusers_see_every_project(superuser_client, project, context_session, foreign):
    assert listed(superuser_client, "/admin/components_app/project/") == {
        project,
        foreign["project"],
    }
    assert listed(superuser_client, CHANGELIST) == {context_session, foreign["session"]}
