"""Schemathesis against the API's own OpenAPI schema, in-process through the WSGI app.

Whatever it generates from the schema, valid or not, no answer may be a server error and every
answer must match what the schema documents (status code, content type, headers, body).

Two of its checks are left out on purpose: ``positive_data_acceptance`` (a schema-valid body
can still name objects that do not exist, which is a 400) and ``negative_data_rejection``
(DRF is lenient by design: it takes ``0`` for a string field and reads an empty query
parameter as an absent one). About half the generated ids and session types are swapped
for real ones so that the run reaches past the 404s and 400s into the views and services.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from config.wsgi import application
from sessions_app import services
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS
from tests.api.conftest import client_for

# Loaded at collection, in-process: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
REFERENCES = ("project", "component", "parent_component", "parent_session")


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Calling the WSGI app directly fires the request signals, whose handler closes the
    connection mid-test; PostgreSQL then loses the test's transaction (SQLite's in-memory
    database ignores the close)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def real_ids(db, user, scope, context_session, context) -> dict[str, str]:
    client_for(user)
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    interaction, _ = services.next_command(scope=scope, session_id=context_session.pk)
    child_component = context.child_components.first()
    return {
        "token": user.auth_token.key,
        "session": str(context_session.pk),
        "interaction_id": str(interaction.pk),
        "component": str(child_component.pk),
        "parent_component": str(context.pk),
        "parent_session": str(context_session.pk),
        "project": str(scope.project.pk),
    }


def _coin(*values: Any) -> bool:
    """A fair coin decided by the generated values, so that Hypothesis can replay it."""
    return hashlib.sha256(repr(values).encode()).digest()[0] % 2 == 0


def aim_at_real_objects(case: schemathesis.Case, real: dict[str, str]) -> None:
    params = case.path_parameters or {}
    if "id" in params and _coin("id", params):
        is_component = case.path.startswith("/api/components/")
        params["id"] = real["component"] if is_component else real["session"]
    if "interaction_id" in params and _coin("interaction_id", params):
        params["id"], params["interaction_id"] = real["session"], real["interaction_id"]
    if isinstance(case.body, dict):
        generated = repr(case.body)
        for name in REFERENCES:
            if isinstance(case.body.get(name), str) and _coin(name, generated):
                case.body[name] = real[name]
        if case.path == "/api/sessions/" and _coin("type", generated):
            case.body["type"] = CONTEXT_TESTING_SESSIONS


@pytest.mark.schemathesis
@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema(case, real_ids):
    aim_at_real_objects(case, real_ids)

    case.call_and_validate(headers={"Authorization": f"Token {real_ids['token']}"}, checks=CHECKS)
