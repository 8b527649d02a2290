"""/api/sessions/: create, list with filters, read, change."""

import uuid

import pytest

from core.scope import Scope
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_project, make_session

SESSION_KEYS = {
    "id",
    "project",
    "user",
    "type",
    "status",
    "execution_mode",
    "agent",
    "environment",
    "state",
    "component",
    "parent_session",
    "child_session_ids",
    "external_conversation_id",
    "branch",
    "verification",
    "attempt",
    "runner",
    "leased_until",
    "stalled",
    "max_parallel_children",
    "max_cost_usd",
    "usage",
    "run_usage",
    "created_at",
    "updated_at",
}


def test_create_a_context_testing_session(api, user, project, context):
    response = api.post(
        "/api/sessions/",
        {
            "project": str(project.pk),
            "type": CONTEXT_TESTING_SESSIONS,
            "component": str(context.pk),
            "agent": "claude_code",
            "environment": "cli",
            "state": {"note": "first run"},
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SESSION_KEYS
    assert body["component"] == {
        "id": str(context.pk),
        "name": "Accounts",
        "module_name": context.module_name,
        "type": "context",
        "priority": 0,
    }
    assert (body["status"], body["execution_mode"], body["state"]) == (
        "active",
        "manual",
        {"note": "first run"},
    )
    session = Session.objects.get(pk=body["id"])
    assert (session.user, session.project) == (user, project)


def test_create_with_only_project_and_type(api, project):
    body = api.post(
        "/api/sessions/", {"project": str(project.pk), "type": CONTEXT_TESTING_SESSIONS}, "json"
    ).json()

    assert (body["component"], body["parent_session"], body["agent"], body["state"]) == (
        None,
        None,
        None,
        {},
    )


def test_an_unknown_type_is_400_on_type(api, project, unchanged_db):
    with unchanged_db():
        response = api.post(
            "/api/sessions/", {"project": str(project.pk), "type": "Whatever"}, format="json"
        )

    assert response.status_code == 400
    assert response.json() == {"type": ["Unknown session type: Whatever"]}


def test_a_component_of_another_of_my_projects_is_400(api, user, project, unchanged_db):
    elsewhere = make_component(make_project(user), "Elsewhere")

    with unchanged_db():
        response = api.post(
            "/api/sessions/",
            {
                "project": str(project.pk),
                "type": CONTEXT_TESTING_SESSIONS,
                "component": str(elsewhere.pk),
            },
            format="json",
        )

    assert response.status_code == 400
    assert response.json() == {"component": ["The component must belong to the session's project."]}


def test_a_parent_session_of_another_of_my_projects_is_400(api, user, scope, unchanged_db):
    other_project = make_project(user)
    parent = make_session(scope)

    with unchanged_db():
        response = api.post(
            "/api/sessions/",
            {
                "project": str(other_project.pk),
                "type": COMPONENT_TEST_SESSIONS,
                "parent_session": str(parent.pk),
            },
            format="json",
        )

    assert response.status_code == 400
    assert response.json() == {
        "parent_session": ["The parent session must belong to the same project."]
    }


@pytest.mark.parametrize("field", ["project", "component", "parent_session"])
def test_a_reference_outside_my_projects_is_400(api, project, other_scope, field, unchanged_db):
    foreign = {
        "project": other_scope.project,
        "component": make_component(other_scope.project),
        "parent_session": make_session(other_scope),
    }[field]
    body = {"project": str(project.pk), "type": CONTEXT_TESTING_SESSIONS, field: str(foreign.pk)}

    with unchanged_db():
        response = api.post("/api/sessions/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {field: [f'Invalid pk "{foreign.pk}" - object does not exist.']}


def test_read_shows_children_in_spawn_order(api, scope, context_session):
    api.post(f"/api/sessions/{context_session.pk}/spawn/")

    body = api.get(f"/api/sessions/{context_session.pk}/").json()

    children = Session.objects.filter(parent_session=context_session)
    by_id = {str(child.pk): child.component.name for child in children}
    assert [by_id[child_id] for child_id in body["child_session_ids"]] == SPAWN_ORDER


@pytest.fixture
def listed(scope, context, context_session):
    child = make_child(context_session, context, status=SessionStatus.FAILED)
    other_project = make_project(scope.user)
    elsewhere = make_session(Scope(user=scope.user, project=other_project))
    return {"context": context_session, "child": child, "elsewhere": elsewhere}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["elsewhere", "child", "context"]),
        ("status=failed", ["child"]),
        ("status=active", ["elsewhere", "context"]),
        (f"type={COMPONENT_TEST_SESSIONS}", ["child"]),
        ("type=Unregistered", []),
    ],
)
def test_list_filters(api, listed, query, expected):
    response = api.get(f"/api/sessions/?{query}")

    assert response.status_code == 200
    names = {str(session.pk): name for name, session in listed.items()}
    assert [names[s["id"]] for s in response.json()["results"]] == expected


def test_list_filters_by_project_and_parent(api, listed, project):
    by_project = api.get(f"/api/sessions/?project={project.pk}").json()["results"]
    by_parent = api.get(f"/api/sessions/?parent_session={listed['context'].pk}").json()["results"]

    assert {s["id"] for s in by_project} == {str(listed["context"].pk), str(listed["child"].pk)}
    assert [s["id"] for s in by_parent] == [str(listed["child"].pk)]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("status=done", {"status": ['"done" is not a valid choice.']}),
        ("project=42", {"project": ["Must be a valid UUID."]}),
        ("parent_session=nope", {"parent_session": ["Must be a valid UUID."]}),
        ("type=" + "x" * 101, {"type": ["Ensure this field has no more than 100 characters."]}),
    ],
)
def test_a_bad_filter_is_400(api, project, query, errors):
    response = api.get(f"/api/sessions/?{query}")

    assert response.status_code == 400
    assert response.json() == errors


def test_list_is_paginated(api, scope):
    for _ in range(3):
        make_session(scope)

    first = api.get("/api/sessions/?page_size=2").json()

    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"].endswith("/api/sessions/?page=2&page_size=2")
    assert api.get("/api/sessions/?page=9").status_code == 404


def test_list_costs_the_same_queries_for_many_sessions(
    api, scope, context, django_assert_max_num_queries
):
    for _ in range(15):
        parent = make_session(scope, component=context)
        make_child(parent, make_component(scope.project))

    with django_assert_max_num_queries(5):
        response = api.get("/api/sessions/")

    assert len(response.json()["results"]) == 30


def test_patch_changes_status_and_state(api, context_session):
    response = api.patch(
        f"/api/sessions/{context_session.pk}/",
        {"status": "complete", "state": {"k": 1}, "external_conversation_id": "conv-1"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["state"], body["external_conversation_id"]) == (
        "complete",
        {"k": 1},
        "conv-1",
    )
    context_session.refresh_from_db()
    assert context_session.status == "complete"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"type": COMPONENT_TEST_SESSIONS}, {"type": ["This field cannot be changed."]}),
        ({"project": str(uuid.uuid4())}, {"project": ["This field cannot be changed."]}),
        ({"status": "paused"}, {"status": ['"paused" is not a valid choice.']}),
        ({"state": [1, 2]}, {"state": ['Expected a dictionary of items but got type "list".']}),
        ({"execution_mode": None}, {"execution_mode": ["This field may not be null."]}),
    ],
)
def test_patch_rejects(api, context_session, body, errors, unchanged_db):
    with unchanged_db():
        response = api.patch(f"/api/sessions/{context_session.pk}/", body, format="json")

    assert response.status_code == 400
    assert response.json() == errors


def test_put_is_not_offered(api, context_session):
    assert api.put(f"/api/sessions/{context_session.pk}/", {}, format="json").status_code == 405
    assert api.delete(f"/api/sessions/{context_session.pk}/").status_code == 405


def test_a_second_child_for_the_same_component_is_400(api, project, context, context_session):
    make_child(context_session, context)
    body = {
        "project": str(project.pk),
        "type": COMPONENT_TEST_SESSIONS,
        "parent_session": str(context_session.pk),
        "component": str(context.pk),
    }

    response = api.post("/api/sessions/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Session with this Parent session and Component already exists."]
    }
