"""Who may call the API: a token or a session, and only within the caller's projects."""

import uuid

import pytest
from rest_framework.test import APIClient

from sessions_app.models import Session

ANY_ID = uuid.uuid4()
EVERY_ENDPOINT = [
    ("get", "/api/projects/"),
    ("post", "/api/projects/"),
    ("get", "/api/components/"),
    ("post", "/api/components/"),
    ("get", f"/api/components/{ANY_ID}/"),
    ("patch", f"/api/components/{ANY_ID}/"),
    ("delete", f"/api/components/{ANY_ID}/"),
    ("get", "/api/sessions/"),
    ("post", "/api/sessions/"),
    ("get", f"/api/sessions/{ANY_ID}/"),
    ("patch", f"/api/sessions/{ANY_ID}/"),
    ("post", f"/api/sessions/{ANY_ID}/spawn/"),
    ("get", f"/api/sessions/{ANY_ID}/children/"),
    ("post", f"/api/sessions/{ANY_ID}/next-command/"),
    ("post", f"/api/sessions/{ANY_ID}/interactions/{ANY_ID}/result/"),
    ("get", f"/api/sessions/{ANY_ID}/interactions/"),
    ("post", f"/api/sessions/{ANY_ID}/cancel/"),
]


@pytest.mark.parametrize(("method", "path"), EVERY_ENDPOINT)
def test_no_credentials_is_401(anonymous, method, path):
    response = getattr(anonymous, method)(path, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize(
    "header", ["Token nonsense", "Token ", "Bearer abc", "Token a b", "Token \u00e9\u00e9"]
)
def test_a_bad_token_is_401(anonymous, header):
    anonymous.credentials(HTTP_AUTHORIZATION=header)

    response = anonymous.get("/api/sessions/")

    assert response.status_code == 401


def test_the_django_session_authenticates_too(anonymous, user, context_session):
    anonymous.force_login(user)

    response = anonymous.get(f"/api/sessions/{context_session.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == str(context_session.pk)


def test_a_session_login_must_send_the_csrf_token_to_write(user, project):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)

    response = browser.post("/api/projects/", {"name": "Nope"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def _paths_for(session, interaction_id, component):
    return [
        ("get", f"/api/sessions/{session.pk}/"),
        ("patch", f"/api/sessions/{session.pk}/"),
        ("post", f"/api/sessions/{session.pk}/spawn/"),
        ("get", f"/api/sessions/{session.pk}/children/"),
        ("post", f"/api/sessions/{session.pk}/next-command/"),
        ("post", f"/api/sessions/{session.pk}/interactions/{interaction_id}/result/"),
        ("get", f"/api/sessions/{session.pk}/interactions/"),
        ("post", f"/api/sessions/{session.pk}/cancel/"),
        ("get", f"/api/components/{component.pk}/"),
        ("patch", f"/api/components/{component.pk}/"),
        ("delete", f"/api/components/{component.pk}/"),
    ]


def test_another_projects_objects_are_404_never_403(
    api, stranger_api, context_session, context, unchanged_db
):
    interaction = api.post(f"/api/sessions/{context_session.pk}/next-command/").json()

    with unchanged_db():
        for method, path in _paths_for(context_session, interaction["id"], context):
            body = {"status": "ok"} if path.endswith("/result/") else {}
            response = getattr(stranger_api, method)(path, body, format="json")
            assert response.status_code == 404, (method, path, response.content)


def test_lists_show_only_the_callers_projects(api, stranger_api, context_session, context):
    assert stranger_api.get("/api/sessions/").json()["count"] == 0
    assert stranger_api.get("/api/components/").json()["count"] == 0
    assert [p["name"] for p in stranger_api.get("/api/projects/").json()["results"]] == [
        "Elsewhere"
    ]
    assert api.get("/api/sessions/").json()["count"] == Session.objects.count()


def test_a_project_filter_naming_another_project_finds_nothing(
    stranger_api, context_session, project
):
    response = stranger_api.get(f"/api/sessions/?project={project.pk}")

    assert response.status_code == 200
    assert response.json()["results"] == []
