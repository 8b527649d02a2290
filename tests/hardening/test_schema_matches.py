"""The OpenAPI schema says what the API does: unknown body fields are refused (and the schema
takes no additional properties), empty filters are refused, and every operation documents the
answers any request can get (413, 414, 429, 503, ...)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from core.api.docs import ANY_REQUEST_ERRORS
from core.api.serializers import UNKNOWN_FIELD
from core.api.viewsets import EMPTY_FILTER
from sessions_app.api.serializers import CANNOT_CHANGE


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def request_schemas(openapi: dict):
    schemas = openapi["components"]["schemas"]
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "$ref" in body["schema"]:
                yield path, method, schemas[body["schema"]["$ref"].rsplit("/", 1)[-1]]


def test_every_request_body_takes_no_additional_properties(openapi):
    found = list(request_schemas(openapi))

    assert len(found) >= 10
    for path, method, schema in found:
        assert schema.get("additionalProperties") is False, (path, method)


def test_responses_keep_their_open_shape(openapi):
    assert "additionalProperties" not in openapi["components"]["schemas"]["Session"]


def test_every_operation_documents_what_any_request_can_get(openapi):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if not path.startswith("/api/") or path.startswith("/api/schema"):
                continue
            assert {str(code) for code in ANY_REQUEST_ERRORS} <= set(operation["responses"]), (
                path,
                method,
            )


def test_writes_document_413(openapi):
    assert "413" in openapi["paths"]["/api/projects/"]["post"]["responses"]
    assert "413" in openapi["paths"]["/api/sessions/{id}/"]["patch"]["responses"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/projects/", {"name": "Shop", "owner": "me"}),
        ("/api/sessions/", {"type": "ContextTestingSessions", "max_paralel_children": 2}),
        ("/api/components/", {"name": "Cart", "modul_name": "Shop.Cart"}),
    ],
)
def test_an_unknown_field_in_a_create_body_is_a_400_naming_it(api, project, path, body):
    body = {"project": str(project.pk), **body}
    unknown = {"owner", "max_paralel_children", "modul_name"} & set(body)

    response = api.post(path, body, format="json")

    assert response.status_code == 400
    errors = response.json()
    for name in unknown:
        assert errors[name] == [UNKNOWN_FIELD]


def test_an_unknown_field_is_named_beside_the_other_errors(api, context_session):
    interaction = api.post(f"/api/sessions/{context_session.pk}/next-command/").json()["id"]

    response = api.post(
        f"/api/sessions/{context_session.pk}/interactions/{interaction}/result/",
        {"status": "done", "exit_code": 0},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()) == {"status", "exit_code"}
    assert response.json()["exit_code"] == [UNKNOWN_FIELD]


def test_a_field_that_cannot_change_keeps_its_message(api, context_session):
    response = api.patch(
        f"/api/sessions/{context_session.pk}/", {"type": "X", "status": "failed"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"type": [CANNOT_CHANGE]}


def test_a_runner_body_with_a_misspelt_key_is_a_400(api, context_session):
    response = api.post(
        f"/api/sessions/{context_session.pk}/heartbeat/",
        {"runner": "ci-1", "lease_second": 60},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"lease_second": [UNKNOWN_FIELD]}


@pytest.mark.parametrize(
    "query",
    ["status=", "type=", "project=", "parent_session=", "status=active&status="],
)
def test_an_empty_filter_is_a_400_naming_it(api, context_session, query):
    name = query.split("=")[0]

    response = api.get(f"/api/sessions/?{query}")

    assert response.status_code == 400
    assert response.json()[name] == [EMPTY_FILTER]


def test_an_empty_component_filter_is_a_400(api, context):
    response = api.get("/api/components/?parent_component=")

    assert response.status_code == 400
    assert response.json() == {"parent_component": [EMPTY_FILTER]}


def test_filters_with_values_still_filter(api, context_session):
    response = api.get("/api/sessions/?status=active")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(context_session.pk)]
