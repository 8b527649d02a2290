"""Who owns the children a spawn creates: the parent session's owner, whoever spawns them and
through whichever door (children belong to the run)."""

import pytest
from django.contrib.auth.models import Permission

from core.scope import Scope
from sessions_app import services
from sessions_app.models import Session
from tests.admin.conftest import post_action
from tests.api.conftest import client_for
from tests.commands.conftest import run
from tests.factories import make_component, make_user


@pytest.fixture
def colleague(project):
    """Bob: a member of alice's project and a staff operator, who spawns her session."""
    bob = make_user("bob", is_staff=True)
    bob.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["sessions_app", "components_app"],
            codename__regex=r"^(view|change|add)_",
        )
    )
    project.members.add(bob)
    return bob


def spawn_through_the_service(session, colleague, missing):
    scope = Scope(user=colleague, project=session.project)
    spawn = services.spawn_missing_child_sessions if missing else services.spawn_child_sessions
    spawn(scope=scope, session_id=session.pk)


def spawn_through_the_api(session, colleague, missing):
    path = "spawn-missing" if missing else "spawn"
    response = client_for(colleague).post(f"/api/sessions/{session.pk}/{path}/")
    assert response.status_code == 200, response.content


def spawn_through_the_admin(session, colleague, missing, client):
    client.force_login(colleague)
    action = "spawn_missing_child_sessions" if missing else "spawn_child_sessions"
    [(level, _)] = post_action(client, action, session)
    assert level == "success"


def spawn_through_the_command_line(session, colleague, missing):
    status, _, stderr = run("spawn_sessions", str(session.pk), *(["--missing"] if missing else []))
    assert (status, stderr) == (0, "")


DOORS = {
    "service": spawn_through_the_service,
    "api": spawn_through_the_api,
    "admin": spawn_through_the_admin,
    "command line": spawn_through_the_command_line,
}


@pytest.mark.parametrize("missing", [False, True], ids=["spawn", "spawn missing"])
@pytest.mark.parametrize("door", DOORS)
def test_children_belong_to_the_parents_owner(
    door, missing, user, context, context_session, colleague, client
):
    if missing:
        # A first spawn by the owner, then a component added later: only its child is new.
        services.spawn_child_sessions(
            scope=Scope(user=user, project=context_session.project), session_id=context_session.pk
        )
        make_component(context_session.project, "Late", parent_component=context)
    before = set(
        Session.objects.filter(parent_session=context_session).values_list("pk", flat=True)
    )
    extra = {"client": client} if door == "admin" else {}

    DOORS[door](context_session, colleague, missing, **extra)

    created = Session.objects.filter(parent_session=context_session).exclude(pk__in=before)
    assert created.count() == (1 if missing else 4)
    assert set(created.values_list("user_id", flat=True)) == {context_session.user_id}
    assert context_session.user_id == user.pk != colleague.pk
