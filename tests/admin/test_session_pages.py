"""What the Session list and a session's page show."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from tests.admin.conftest import CHANGELIST, change_url
from tests.conftest import SPAWN_ORDER
from tests.factories import make_component, make_context, make_context_session


def spawned(scope, session):
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return {c.component.name: c for c in Session.objects.filter(parent_session=session)}


def text_of(response) -> str:
    """The page's text without tags or runs of whitespace."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_list_shows_the_childrens_progress(staff_client, scope, context_session):
    children = spawned(scope, context_session)
    Session.objects.filter(pk=children["User"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Token"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Audit"].pk).update(status=SessionStatus.FAILED)

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    text = text_of(response)
    assert "2/4 complete, 1 failed" in text
    assert "ContextTestingSessions" in text and "ComponentTestSessions" in text
    # A child's row names its parent, linked to the parent's page.
    assert f'href="{change_url(context_session)}"' in response.content.decode()


def _sessions_with_children(scope, count: int, prefix: str) -> None:
    """``count`` context sessions with three children each, one of them failed."""
    project = scope.project
    for index in range(count):
        context = make_component(project, f"{prefix}{index}", type="context")
        for child in range(3):
            make_component(
                project, f"{prefix}{index}-{child}", priority=child, parent_component=context
            )
        session = make_context_session(scope, context)
        spawned(scope, session)
        Session.objects.filter(parent_session=session, component__priority=0).update(
            status=SessionStatus.FAILED
        )


def _changelist_queries(client, context_sessions: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4 * context_sessions
    assert text_of(response).count("0/3 complete, 1 failed") == context_sessions
    return len(queries)


def test_the_list_costs_the_same_queries_whatever_the_number_of_sessions(
    staff_client, scope, django_assert_max_num_queries
):
    _sessions_with_children(scope, 2, prefix="Small")
    small = _changelist_queries(staff_client, 2)
    _sessions_with_children(scope, 10, prefix="Large")
    large = _changelist_queries(staff_client, 12)

    assert small == large
    # Session, user and two for permissions; the page and its count; the filters' choices
    # (latest runs, contexts, runners, projects, types); for the page's rows, their children's
    # counts, their children's cost, and their own steps' times and cost.
    with django_assert_max_num_queries(15):
        staff_client.get(CHANGELIST)


def test_a_sessions_page_lists_its_children_in_spawn_order_with_failure_reasons(
    staff_client, scope, context_session
):
    children = spawned(scope, context_session)
    Session.objects.filter(pk=children["Session"].pk).update(
        status=SessionStatus.FAILED, state={"error": "3 tests failed"}
    )

    response = staff_client.get(change_url(context_session))

    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<td><a href="([^"]+)">(\w+)</a></td>', html)
    assert [name for _, name in rows] == SPAWN_ORDER
    assert [url for url, _ in rows] == [change_url(children[name]) for name in SPAWN_ORDER]
    text = text_of(response)
    assert "Failed 1 3 tests failed" in text
    assert "4 children: 0 complete, 3 active, 1 failed, 0 cancelled" in text


def test_a_sessions_page_lists_its_interactions_newest_first(staff_client, scope, context_session):
    older = Interaction.objects.create(
        session=context_session,
        step_name="Initialize",
        command={"module": "Initialize", "command": "initialize_session"},
        result={"status": "ok", "error_message": None},
        completed_at=timezone.now(),
    )
    newer = Interaction.objects.create(
        session=context_session,
        step_name="SpawnComponentTestingSessions",
        command={"module": "SpawnComponentTestingSessions", "command": "spawn_sessions"},
        result={"status": "error", "error_message": "Child sessions still running: User"},
        completed_at=timezone.now(),
    )

    response = staff_client.get(change_url(context_session))

    html = response.content.decode()
    assert html.index(str(newer.pk)) < html.index(str(older.pk))
    text = text_of(response)
    assert "spawn_sessions" in text and "initialize_session" in text
    assert "error Child sessions still running: User" in text


def test_a_sessions_page_does_not_offer_to_move_it(staff_client, context_session):
    response = staff_client.get(change_url(context_session))

    form = response.context["adminform"].form
    assert "status" in form.fields
    for fixed in ("project", "type", "component", "parent_session", "user"):
        assert fixed not in form.fields


def test_a_session_added_in_the_admin_belongs_to_whoever_added_it(
    staff_client, staff, project, context
):
    response = staff_client.post(
        "/admin/sessions_app/session/add/",
        {
            "project": str(project.pk),
            "type": "ContextTestingSessions",
            "component": str(context.pk),
            "status": "active",
            "execution_mode": "manual",
            "state": "{}",
            "external_conversation_id": "",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    session = Session.objects.get(component=context)
    assert session.user == staff


def test_the_list_finds_a_session_by_its_full_id(staff_client, scope, context_session):
    children = spawned(scope, context_session)

    response = staff_client.get(CHANGELIST, {"q": str(children["User"].pk)})

    assert list(response.context["cl"].result_list) == [children["User"]]


@pytest.mark.parametrize("params", [{"_facets": "1"}, {"status__exact": "active", "o": "2"}])
def test_the_list_takes_facets_filters_and_ordering(staff_client, scope, context_session, params):
    spawned(scope, context_session)

    response = staff_client.get(CHANGELIST, params)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 5


def test_deleting_selected_sessions_still_works(superuser_client, scope, context_session):
    spawned(scope, context_session)
    childless = make_context_session(scope, make_context(scope.project, []))

    response = superuser_client.post(
        CHANGELIST,
        {
            "action": "delete_selected",
            "_selected_action": [str(context_session.pk), str(childless.pk)],
            "post": "yes",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert not Session.objects.exists()


def test_state_the_api_would_refuse_is_a_form_error_not_a_crash(staff_client, context_session):
    response = staff_client.post(
        change_url(context_session),
        {
            "status": "active",
            "execution_mode": "manual",
            "state": '{"a": NaN}',
            "external_conversation_id": "",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["state"] == ["JSON numbers must be finite."]
    context_session.refresh_from_db()
    assert context_session.state == {}
