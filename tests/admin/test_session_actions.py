"""The Session list's actions: each calls the service once per selected session and reports
what happened with the service's own texts."""

import pytest

from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.admin.conftest import post_action
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_context, make_context_session
from tests.sessions_app.workflows.failures import (
    INJECTED_DB_ERROR,
    INJECTED_VALIDATION_ERROR,
    invalid_children,
    rejected_inserts,
)

SPAWN = "spawn_child_sessions"
CANCEL = "cancel_sessions"


def children_of(session):
    return list(Session.objects.filter(parent_session=session))


def test_spawn_reports_the_number_of_children(staff_client, context_session):
    messages = post_action(staff_client, SPAWN, context_session)

    assert messages == [("success", "Accounts: spawned 4 child sessions.")]
    children = children_of(context_session)
    assert sorted(c.component.name for c in children) == sorted(SPAWN_ORDER)
    assert {c.execution_mode for c in children} == {"agentic"}


def test_spawn_says_when_the_children_already_existed(staff_client, context_session):
    post_action(staff_client, SPAWN, context_session)

    messages = post_action(staff_client, SPAWN, context_session)

    assert messages == [("success", "Accounts: 4 child sessions already existed; none were added.")]
    assert len(children_of(context_session)) == 4


@pytest.mark.parametrize("failure", ["database", "validation"])
def test_spawn_warns_naming_the_children_it_could_not_create(
    staff_client, context, context_session, monkeypatch, failure
):
    if failure == "database":
        injected = rejected_inserts([context.child_components.get(name="Token")])
        detail = INJECTED_DB_ERROR
    else:
        injected = invalid_children(monkeypatch, ["Token"])
        detail = INJECTED_VALIDATION_ERROR

    with injected:
        messages = post_action(staff_client, SPAWN, context_session)

    [success, warning] = messages
    assert success == ("success", "Accounts: spawned 3 child sessions.")
    level, text = warning
    assert level == "warning"
    assert text.startswith("Accounts: could not create child sessions for Token (")
    assert detail in text
    assert sorted(c.component.name for c in children_of(context_session)) == [
        "Audit",
        "Session",
        "User",
    ]


def test_spawn_shows_the_exact_step_error(staff_client, scope, project):
    empty_context = make_context(project, [])
    session = make_context_session(scope, empty_context)

    messages = post_action(staff_client, SPAWN, session)

    assert messages == [("error", "Accounts: No child components found for context")]


def test_spawn_shows_the_exact_error_for_a_session_that_does_not_spawn(
    staff_client, scope, context
):
    session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)

    messages = post_action(staff_client, SPAWN, session)

    assert messages == [
        (
            "error",
            "Accounts: Only ContextTestingSessions sessions spawn child sessions, "
            "this one is ComponentTestSessions",
        )
    ]
    assert children_of(session) == []


def test_spawn_reports_each_selected_session(staff_client, scope, project, context_session):
    failing = make_context_session(scope, make_context(project, []))

    messages = post_action(staff_client, SPAWN, context_session, failing)

    assert sorted(messages) == [
        ("error", "Accounts: No child components found for context"),
        ("success", "Accounts: spawned 4 child sessions."),
    ]


def test_cancel_cancels_the_session_and_its_active_children(staff_client, context, context_session):
    user_child = make_child(context_session, context.child_components.get(name="User"))
    done_child = make_child(
        context_session,
        context.child_components.get(name="Token"),
        status=SessionStatus.COMPLETE,
    )

    messages = post_action(staff_client, CANCEL, context_session)

    assert messages == [
        ("success", "Cancelled 1 session and their children that were still active.")
    ]
    for session, status in [
        (context_session, "cancelled"),
        (user_child, "cancelled"),
        (done_child, "complete"),
    ]:
        session.refresh_from_db()
        assert session.status == status


def test_cancel_shows_the_conflict_for_a_finished_session(staff_client, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    messages = post_action(staff_client, CANCEL, context_session)

    assert messages == [("error", "Accounts: Session is complete; it cannot be cancelled")]
    context_session.refresh_from_db()
    assert context_session.status == "complete"


def test_cancel_says_which_sessions_were_already_cancelled(
    staff_client, scope, context, context_session
):
    other = make_context_session(scope, context, status=SessionStatus.CANCELLED)

    messages = post_action(staff_client, CANCEL, context_session, other)

    assert messages == [
        ("success", "Cancelled 1 session and their children that were still active."),
        ("info", "1 session was already cancelled."),
    ]


def test_actions_need_the_change_permission(client, staff, context_session):
    staff.user_permissions.remove(*staff.user_permissions.filter(codename="change_session"))
    client.force_login(staff)

    response = client.get("/admin/sessions_app/session/")

    form = response.context["action_form"]
    action_names = [name for name, _ in form.fields["action"].choices] if form else []
    assert SPAWN not in action_names and CANCEL not in action_names
    post_action(client, SPAWN, context_session)
    assert children_of(context_session) == []
