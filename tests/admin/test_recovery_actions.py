"""The Session list's recovery actions and the change form's status rules: each action calls
the service once per selected session, with one message per session in the service's words."""

from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.admin.conftest import change_url, post_action
from tests.factories import make_component, make_session
from tests.sessions_app.workflows.failures import rejected_inserts

SPAWN_MISSING = "spawn_missing_child_sessions"
RETRY = "retry_sessions"
RETRY_CHILDREN = "retry_failed_children"


def spawned(scope, session) -> dict[str, Session]:
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return {c.component.name: c for c in Session.objects.filter(parent_session=session)}


def test_spawn_missing_creates_the_children_a_spawn_could_not(
    staff_client, scope, context, context_session
):
    with rejected_inserts([context.child_components.get(name="Token")]):
        services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    messages = post_action(staff_client, SPAWN_MISSING, context_session)

    assert messages == [("success", "Accounts: spawned 1 missing child session (4 in all).")]
    assert context_session.child_sessions.filter(component__name="Token").exists()


def test_spawn_missing_with_nothing_missing_says_so(staff_client, scope, context_session):
    spawned(scope, context_session)

    messages = post_action(staff_client, SPAWN_MISSING, context_session)

    assert messages == [("success", "Accounts: no child session was added.")]


def test_spawn_missing_warns_naming_what_it_could_not_create(
    staff_client, scope, project, context, context_session
):
    spawned(scope, context_session)
    late = make_component(project, "Late", parent_component=context)

    with rejected_inserts([late]):
        messages = post_action(staff_client, SPAWN_MISSING, context_session)

    assert messages[0] == ("success", "Accounts: no child session was added.")
    level, text = messages[1]
    assert level == "warning"
    assert text.startswith("Accounts: could not create child sessions for Late (")


def test_spawn_missing_of_a_component_session_is_the_services_error(staff_client, scope, context):
    session = make_session(scope, type=COMPONENT_TEST_SESSIONS, component=context)

    messages = post_action(staff_client, SPAWN_MISSING, session)

    assert messages == [
        (
            "error",
            "Accounts: Only ContextTestingSessions sessions spawn child sessions, this one is "
            "ComponentTestSessions",
        )
    ]


def test_retry_reopens_a_failed_session_and_reports_its_attempt(
    staff_client, scope, context, context_session
):
    children = spawned(scope, context_session)
    Session.objects.filter(pk=children["Token"].pk).update(
        status=SessionStatus.FAILED, state={"error": "tests fail"}
    )

    messages = post_action(staff_client, RETRY, children["Token"], children["User"])

    # One message per session, in the list's order: a run's children in spawn order.
    assert messages == [
        (
            "error",
            "User: Session is active; only failed or cancelled sessions can be retried",
        ),
        ("success", "Token: retried (attempt 2)."),
    ]
    token = Session.objects.get(pk=children["Token"].pk)
    assert (token.status, token.attempt, token.state) == (
        "active",
        2,
        {"previous_errors": ["tests fail"]},
    )


def test_retry_of_a_child_whose_parent_finished_is_refused(staff_client, scope, context_session):
    children = spawned(scope, context_session)
    services.cancel_session(scope=scope, session_id=context_session.pk)

    messages = post_action(staff_client, RETRY, children["User"])

    assert messages == [("error", "User: Parent session is cancelled")]


def test_retry_failed_children_names_them_in_spawn_order(staff_client, scope, context_session):
    children = spawned(scope, context_session)
    Session.objects.filter(pk__in=[children["Audit"].pk, children["User"].pk]).update(
        status=SessionStatus.FAILED
    )
    Session.objects.filter(pk=children["Token"].pk).update(status=SessionStatus.CANCELLED)

    messages = post_action(staff_client, RETRY_CHILDREN, context_session)

    assert messages == [("success", "Accounts: retried 3 child sessions: User, Token, Audit.")]
    assert set(
        Session.objects.filter(parent_session=context_session).values_list("status", flat=True)
    ) == {"active"}


def test_retry_failed_children_with_none_failed_says_so(staff_client, scope, context_session):
    spawned(scope, context_session)

    messages = post_action(staff_client, RETRY_CHILDREN, context_session)

    assert messages == [("success", "Accounts: no child session was failed or cancelled.")]


def test_retry_failed_children_of_a_finished_context_is_refused(
    staff_client, scope, context_session
):
    services.cancel_session(scope=scope, session_id=context_session.pk)

    messages = post_action(staff_client, RETRY_CHILDREN, context_session)

    assert messages == [("error", "Accounts: Session is cancelled; its children cannot be retried")]


def form_data(session: Session, **changes) -> dict[str, str]:
    data = {
        "status": session.status,
        "execution_mode": session.execution_mode,
        "agent": session.agent or "",
        "environment": session.environment or "",
        "max_parallel_children": "",
        "max_cost_usd": "",
        "external_conversation_id": session.external_conversation_id,
        "state": "{}",
    }
    data.update(changes)
    return data


def test_a_complete_sessions_form_shows_its_status_and_state_and_changes_neither(
    staff_client, scope, context_session
):
    Session.objects.filter(pk=context_session.pk).update(
        status=SessionStatus.COMPLETE, state={"branch_name": "agentic-tests/x"}
    )
    context_session.refresh_from_db()

    page = staff_client.get(change_url(context_session))
    response = staff_client.post(
        change_url(context_session), form_data(context_session, status="active", state="{}")
    )

    form = page.context["adminform"].form
    assert "status" not in form.fields and "state" not in form.fields
    assert "&quot;branch_name&quot;: &quot;agentic-tests/x&quot;" in page.content.decode()
    assert response.status_code == 302
    context_session.refresh_from_db()
    assert context_session.status == SessionStatus.COMPLETE
    assert context_session.state == {"branch_name": "agentic-tests/x"}


def test_the_change_form_refuses_failed_to_active(staff_client, scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.FAILED)
    context_session.refresh_from_db()

    response = staff_client.post(
        change_url(context_session), form_data(context_session, status="active")
    )

    assert response.status_code == 200
    assert (
        response.context["adminform"]
        .form.errors["status"][0]
        .startswith("Session is failed; it can only be marked complete.")
    )


def test_cancelling_in_the_change_form_cancels_running_children_and_drops_leases(
    staff_client, scope, context_session
):
    children = spawned(scope, context_session)
    services.claim_child(scope=scope, session_id=context_session.pk, runner="r1")
    Session.objects.filter(pk=children["Audit"].pk).update(status=SessionStatus.COMPLETE)

    response = staff_client.post(
        change_url(context_session),
        form_data(context_session, status="cancelled", external_conversation_id="conv-9"),
    )

    assert response.status_code == 302
    context_session.refresh_from_db()
    assert (context_session.status, context_session.external_conversation_id) == (
        "cancelled",
        "conv-9",
    )
    statuses = dict(
        Session.objects.filter(parent_session=context_session).values_list(
            "component__name", "status"
        )
    )
    assert statuses == {
        "User": "cancelled",
        "Session": "cancelled",
        "Token": "cancelled",
        "Audit": "complete",
    }
    assert not Session.objects.filter(runner__isnull=False).exists()


def test_the_change_form_shows_attempt_and_lease(staff_client, scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(attempt=3)
    services.next_command(scope=scope, session_id=context_session.pk, runner="laptop-7")

    response = staff_client.get(change_url(context_session))

    content = response.content.decode()
    assert "laptop-7" in content
    assert Interaction.objects.filter(session=context_session, attempt=3).count() == 1


def test_the_change_form_sets_a_context_sessions_budget_and_refuses_a_childs(
    staff_client, scope, context_session
):
    response = staff_client.post(
        change_url(context_session), form_data(context_session, max_cost_usd="7.5")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    context_session.refresh_from_db()
    assert str(context_session.max_cost_usd) == "7.5000"
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = Session.objects.filter(parent_session=context_session).first()
    refused = staff_client.post(change_url(child), form_data(child, max_cost_usd="1"))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["max_cost_usd"] == [
        "Only ContextTestingSessions sessions have a budget."
    ]
