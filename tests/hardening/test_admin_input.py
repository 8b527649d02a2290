"""Input the admin cannot take is a 400 or a form error, never a 500."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.utils.html import escape

from core.json_values import LONE_SURROGATE, TOO_DEEP
from sessions_app.models import Session
from tests.admin.conftest import CHANGELIST, change_url

ADD = "/admin/sessions_app/session/add/"


@pytest.fixture
def admin_page(superuser_client):
    """The test client with the request's exceptions turned into answers, as in production."""
    superuser_client.raise_request_exception = False
    return superuser_client


def form_data(client: Client, url: str, **changes: str) -> dict[str, str]:
    """What the page's form would post unchanged, with ``changes`` applied."""
    form = client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        data[name] = "" if value is None else str(field.prepare_value(value))
    return {**data, **changes}


@pytest.mark.parametrize(
    "selected", ["not-a-uuid", "", "1 OR 1=1", "4b0c2f5e-0000-4000-8000-00000000000"]
)
@pytest.mark.parametrize("action", ["spawn_child_sessions", "cancel_sessions", "delete_selected"])
def test_an_action_on_an_id_that_is_no_uuid_is_a_400(admin_page, context_session, action, selected):
    response = admin_page.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(context_session.pk), selected], "index": 0},
    )

    assert response.status_code == 400
    assert "which is not an id of this list" in response.content.decode()
    assert Session.objects.get(pk=context_session.pk).status == "active"


def test_an_action_on_a_real_id_still_runs(admin_page, context_session):
    response = admin_page.post(
        CHANGELIST,
        {"action": "cancel_sessions", "_selected_action": [str(context_session.pk)], "index": 0},
    )

    assert response.status_code == 302
    assert Session.objects.get(pk=context_session.pk).status == "cancelled"


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("[" * 100_000, TOO_DEEP),
        ('{"x": ' + "[" * 900 + "]" * 900 + "}", TOO_DEEP),
        ('{"a": "\\ud800"}', LONE_SURROGATE),
    ],
    ids=["unclosed, 100000 deep", "900 deep", "lone surrogate"],
)
def test_a_state_the_change_form_cannot_take_is_a_form_error(
    admin_page, context_session, state, error
):
    url = change_url(context_session)

    response = admin_page.post(url, form_data(admin_page, url, state=state))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["state"] == [error]
    # The page shows back what was typed.
    assert escape(state[:50]) in response.content.decode()
    context_session.refresh_from_db()
    assert context_session.state == {}


def test_the_add_page_refuses_a_state_900_deep(admin_page, project, context):
    data = form_data(
        admin_page,
        ADD,
        project=str(project.pk),
        type="ContextTestingSessions",
        component=str(context.pk),
        state="[" * 900 + "]" * 900,
    )

    response = admin_page.post(ADD, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["state"] == [TOO_DEEP]
    assert not Session.objects.exists()


def test_a_state_at_the_limit_saves(admin_page, context_session):
    url = change_url(context_session)
    state = {"x": json.loads("[" * 31 + "]" * 31)}

    response = admin_page.post(url, form_data(admin_page, url, state=json.dumps(state)))

    assert response.status_code == 302, response.context["adminform"].form.errors
    context_session.refresh_from_db()
    assert context_session.state == state


@pytest.mark.skipif(
    connection.vendor == "postgresql", reason="PostgreSQL refuses unpaired surrogates itself"
)
def test_a_stored_lone_surrogate_still_renders(admin_page, context_session):
    # SQLite stores what the ORM hands it; rows written before the checks existed may hold one.
    Session.objects.filter(pk=context_session.pk).update(state={"a": "\ud800"})

    response = admin_page.get(change_url(context_session))

    assert response.status_code == 200
    assert "\\ud800" in response.content.decode()
