"""The workflow's own state is the workflow's: a client cannot name the test file that runs
and is committed (``.gitmodules``, a CI workflow), nor reset a fix loop's count, through the
API or the admin; a PATCH that leaves those keys out keeps them."""

from __future__ import annotations

import json

import pytest

from sessions_app.models import Session
from tests.admin.conftest import change_url
from tests.admin.test_recovery_actions import form_data

REFUSED = 'state["test_file"] is written by the workflow; a client cannot set it.'


def url(session) -> str:
    return f"/api/sessions/{session.pk}/"


@pytest.mark.parametrize("path", [".gitmodules", ".github/workflows/x.yml", "tests/test_a.py"])
def test_a_patch_cannot_name_the_test_file(api, context_session, path):
    response = api.patch(url(context_session), {"state": {"test_file": path}}, format="json")

    assert response.status_code == 400
    assert response.json() == {"state": [REFUSED]}
    assert Session.objects.get(pk=context_session.pk).state == {}


def test_a_create_cannot_name_the_test_file(api, project, context):
    response = api.post(
        "/api/sessions/",
        {
            "project": str(project.pk),
            "type": "ComponentTestSessions",
            "component": str(context.pk),
            "state": {"test_file": ".gitmodules", "fix_attempts": 0},
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["state"] == [
        REFUSED,
        'state["fix_attempts"] is written by the workflow; a client cannot set it.',
    ]
    assert not Session.objects.filter(type="ComponentTestSessions").exists()


def test_a_patch_replaces_the_client_s_keys_and_keeps_the_workflow_s(api, context_session):
    Session.objects.filter(pk=context_session.pk).update(
        state={"test_file": "tests/test_a.py", "last_test_output": "1 failed", "note": "x"}
    )

    response = api.patch(url(context_session), {"state": {"other": 1}}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == {
        "other": 1,
        "test_file": "tests/test_a.py",
        "last_test_output": "1 failed",
    }


def test_the_admin_form_keeps_to_the_same_rule(staff_client, context_session):
    response = staff_client.post(
        change_url(context_session),
        form_data(context_session, state=json.dumps({"test_file": ".gitmodules"})),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["state"] == [REFUSED]
    assert Session.objects.get(pk=context_session.pk).state == {}
