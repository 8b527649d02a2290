"""Doing it again over HTTP: spawn-missing, retry, retry-children, and the result check that
names stalled children and components without a child."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context_session
from tests.sessions_app.workflows.failures import INJECTED_DB_ERROR, rejected_inserts

COMMAND_KEYS = {"module", "command", "metadata", "execution_strategy", "timestamp"}
RECOVERY_ROUTES = ["spawn-missing/", "retry/", "retry-children/"]


def url(session_id, action=""):
    return f"/api/sessions/{session_id}/{action}"


def post(api, session_id, action, body=None):
    return api.post(url(session_id, action), body, format="json")


def spawn(api, session) -> dict[str, str]:
    """Spawn the children; their ids by component name."""
    response = post(api, session.pk, "spawn/")
    assert response.status_code == 200, response.content
    return children_ids(session)


def children_ids(session) -> dict[str, str]:
    rows = Session.objects.filter(parent_session=session).values_list("component__name", "id")
    return {name: str(pk) for name, pk in rows}


def set_status(session_id, status, **fields) -> None:
    Session.objects.filter(pk=session_id).update(status=status, **fields)


def report(api, session_id, interaction_id, **result):
    return api.post(
        f"/api/sessions/{session_id}/interactions/{interaction_id}/result/",
        {"status": "ok"} | result,
        format="json",
    )


# spawn-missing


def test_spawn_missing_answers_the_spawn_command_with_the_new_children(
    api, project, context, context_session
):
    old = spawn(api, context_session)
    make_component(project, "Zed", priority=20, parent_component=context)

    response = post(api, context_session.pk, "spawn-missing/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == COMMAND_KEYS
    assert (body["module"], body["command"]) == ("SpawnComponentTestingSessions", "spawn_sessions")
    ids = children_ids(context_session)
    assert body["metadata"]["child_session_ids"] == [ids[n] for n in ["Zed", *SPAWN_ORDER]]
    assert body["metadata"]["created_session_ids"] == [ids["Zed"]]
    assert body["metadata"]["failed_components"] == []
    assert {n: ids[n] for n in old} == old
    zed = Session.objects.get(pk=ids["Zed"])
    assert (zed.type, zed.execution_mode, zed.agent, zed.environment) == (
        COMPONENT_TEST_SESSIONS,
        "agentic",
        context_session.agent,
        context_session.environment,
    )


def test_spawn_missing_with_nothing_missing_has_no_created_ids(api, context_session):
    ids = spawn(api, context_session)

    body = post(api, context_session.pk, "spawn-missing/").json()

    assert body["metadata"]["child_session_ids"] == [ids[n] for n in SPAWN_ORDER]
    assert body["metadata"]["created_session_ids"] == []


def test_spawn_missing_lists_the_components_it_could_not_create(
    api, project, context, context_session
):
    spawn(api, context_session)
    late = make_component(project, "Late", parent_component=context)

    with rejected_inserts([late]):
        response = post(api, context_session.pk, "spawn-missing/")

    assert response.status_code == 200
    body = response.json()
    assert body["metadata"]["created_session_ids"] == []
    [failure] = body["metadata"]["failed_components"]
    assert (failure["component_id"], failure["name"]) == (str(late.pk), "Late")
    assert INJECTED_DB_ERROR in failure["reason"]
    assert len(body["metadata"]["child_session_ids"]) == 4


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_component", "Context component not found"),
        ("no_children", "No child components found for context"),
        (
            "wrong_child_type",
            "Invalid child session type: expected ComponentTestSessions, got "
            "ContextTestingSessions",
        ),
        ("all_fail", "Failed to spawn any child sessions"),
        (
            "not_a_context_session",
            "Only ContextTestingSessions sessions spawn child sessions, this one is "
            "ComponentTestSessions",
        ),
    ],
)
def test_spawn_missing_step_errors_are_422_with_the_exact_text(
    api, scope, project, context, setup, message
):
    session = make_context_session(scope, context)
    if setup == "no_component":
        session = make_context_session(scope, None)
    elif setup == "no_children":
        session = make_context_session(scope, make_component(project, type="context"))
    elif setup == "wrong_child_type":
        make_child(
            session, context.child_components.get(name="User"), type=CONTEXT_TESTING_SESSIONS
        )
    elif setup == "not_a_context_session":
        session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)
    rows = Session.objects.count()

    failing = rejected_inserts(context.child_components.all()) if setup == "all_fail" else None
    with failing or contextlib.nullcontext():
        response = post(api, session.pk, "spawn-missing/")

    assert response.status_code == 422
    assert response.json() == {"detail": message}
    assert Session.objects.count() == rows


@pytest.mark.parametrize("status", ["complete", "failed", "cancelled"])
def test_spawn_missing_of_a_finished_session_is_409(api, context_session, status):
    set_status(context_session.pk, status)

    response = post(api, context_session.pk, "spawn-missing/")

    assert response.status_code == 409
    assert response.json() == {"detail": f"Session is {status}; it cannot spawn child sessions"}
    assert not Session.objects.filter(parent_session=context_session).exists()


# retry


def test_retry_answers_the_reopened_session(api, context_session):
    ids = spawn(api, context_session)
    set_status(ids["Token"], SessionStatus.FAILED, state={"error": "RunTests: 3 failed"})

    response = post(api, ids["Token"], "retry/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["attempt"]) == (ids["Token"], "active", 2)
    assert body["state"] == {"previous_errors": ["RunTests: 3 failed"]}
    assert (body["runner"], body["leased_until"]) == (None, None)
    again = post(api, ids["Token"], "next-command/")
    assert (again.status_code, again.json()["step_name"]) == (201, "Initialize")


def test_a_late_report_of_a_superseded_interaction_is_409(api, context_session):
    ids = spawn(api, context_session)
    pending = post(api, ids["User"], "next-command/", {"runner": "ci-1"}).json()
    post(api, ids["User"], "cancel/")
    post(api, ids["User"], "retry/")

    response = report(api, ids["User"], pending["id"])

    assert response.status_code == 409
    assert response.json() == {"detail": "A result was already reported for this interaction"}
    history = api.get(url(ids["User"], "interactions/")).json()["results"]
    [closed] = [i for i in history if i["id"] == pending["id"]]
    assert (closed["result"]["status"], closed["result"]["error_message"]) == (
        "error",
        "Superseded by retry",
    )


@pytest.mark.parametrize("status", ["active", "complete"])
def test_retry_of_a_session_neither_failed_nor_cancelled_is_409(api, context_session, status):
    set_status(context_session.pk, status)

    response = post(api, context_session.pk, "retry/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Session is {status}; only failed or cancelled sessions can be retried"
    }


def test_retry_of_a_child_whose_parent_finished_is_409(api, context_session):
    ids = spawn(api, context_session)
    post(api, context_session.pk, "cancel/")

    response = post(api, ids["User"], "retry/")

    assert response.status_code == 409
    assert response.json() == {"detail": "Parent session is cancelled"}
    assert Session.objects.get(pk=ids["User"]).status == SessionStatus.CANCELLED


def test_retry_checks_the_sessions_own_status_before_its_parents(api, context_session):
    ids = spawn(api, context_session)
    set_status(ids["User"], SessionStatus.COMPLETE)
    set_status(context_session.pk, SessionStatus.FAILED)

    response = post(api, ids["User"], "retry/")

    assert response.json() == {
        "detail": "Session is complete; only failed or cancelled sessions can be retried"
    }


# retry-children


def test_retry_children_answers_the_retried_ids_in_spawn_order(api, context_session):
    ids = spawn(api, context_session)
    set_status(ids["Audit"], SessionStatus.FAILED)
    set_status(ids["User"], SessionStatus.CANCELLED)
    set_status(ids["Session"], SessionStatus.COMPLETE)

    response = post(api, context_session.pk, "retry-children/")

    assert response.status_code == 200
    assert response.json() == {"retried_session_ids": [ids["User"], ids["Audit"]]}
    children = api.get(url(context_session.pk, "children/")).json()["results"]
    assert [(c["component"]["name"], c["status"], c["attempt"]) for c in children] == [
        ("User", "active", 2),
        ("Session", "complete", 1),
        ("Token", "active", 1),
        ("Audit", "active", 2),
    ]


def test_retry_children_with_none_to_retry_is_an_empty_list(api, context_session):
    spawn(api, context_session)

    response = post(api, context_session.pk, "retry-children/")

    assert (response.status_code, response.json()) == (200, {"retried_session_ids": []})


def test_retry_children_of_a_component_session_is_422(api, context_session):
    ids = spawn(api, context_session)

    response = post(api, ids["User"], "retry-children/")

    assert response.status_code == 422
    assert response.json() == {
        "detail": "Only ContextTestingSessions sessions have child sessions, this one is "
        "ComponentTestSessions"
    }


@pytest.mark.parametrize("status", ["complete", "failed", "cancelled"])
def test_retry_children_of_a_finished_context_is_409(api, context_session, status):
    ids = spawn(api, context_session)
    set_status(ids["User"], SessionStatus.FAILED)
    set_status(context_session.pk, status)

    response = post(api, context_session.pk, "retry-children/")

    assert response.status_code == 409
    assert response.json() == {"detail": f"Session is {status}; its children cannot be retried"}
    assert Session.objects.get(pk=ids["User"]).status == SessionStatus.FAILED


# The result check, reported through the API


def test_the_spawn_steps_result_names_every_category_in_order(
    api, project, context, context_session
):
    init = post(api, context_session.pk, "next-command/").json()
    report(api, context_session.pk, init["id"])
    spawn_step = post(api, context_session.pk, "next-command/").json()
    ids = children_ids(context_session)
    Session.objects.filter(pk=ids["Session"]).update(
        runner="dead", leased_until=timezone.now() - timedelta(seconds=1)
    )
    set_status(ids["Token"], SessionStatus.FAILED, state={"error": "boom"})
    set_status(ids["Audit"], SessionStatus.CANCELLED)
    make_component(project, "Late", priority=1, parent_component=context)

    response = report(api, context_session.pk, spawn_step["id"])

    assert response.status_code == 200
    assert response.json()["interaction"]["result"]["error_message"] == (
        "Child sessions still running: User; Child sessions stalled: Session; "
        "Child sessions failed: Token (boom); Child sessions cancelled: Audit; "
        "Components without a child session: Late"
    )
    assert response.json()["session"]["status"] == "active"


# Who may call


@pytest.mark.parametrize("route", RECOVERY_ROUTES)
def test_no_credentials_is_401(anonymous, route):
    response = post(anonymous, uuid.uuid4(), route)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("route", RECOVERY_ROUTES)
def test_another_projects_session_is_404(api, stranger_api, context_session, route, unchanged_db):
    # Each route would succeed for the owner: the 404 is the stranger's alone.
    ids = spawn(api, context_session)
    set_status(ids["User"], SessionStatus.FAILED)
    target = context_session.pk if route != "retry/" else ids["User"]

    with unchanged_db():
        response = post(stranger_api, target, route)

    assert response.status_code == 404
    assert response.json() == {"detail": "Session not found"}


@pytest.mark.parametrize("route", RECOVERY_ROUTES)
def test_an_id_that_is_no_uuid_is_404(api, route):
    response = post(api, "not-a-uuid", route)

    assert response.status_code == 404
