"""The OpenAPI schema at /api/schema/ and the interactive docs at /api/docs/."""

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.validation import validate_schema


@pytest.fixture
def openapi(anonymous):
    response = anonymous.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(openapi):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_schema_is_valid_openapi_3(openapi):
    assert openapi["openapi"].startswith("3.")
    validate_schema(openapi)


def test_the_schema_is_served_as_yaml_by_default(anonymous):
    response = anonymous.get("/api/schema/")

    assert response.status_code == 200
    assert yaml.safe_load(response.content)["info"]["title"]


def test_every_contract_route_is_documented(openapi):
    documented = {(path, method) for path, method, _ in operations(openapi)}

    assert documented == {
        ("/api/projects/", "get"),
        ("/api/projects/", "post"),
        ("/api/projects/{id}/", "get"),
        ("/api/projects/{id}/", "patch"),
        ("/api/components/", "get"),
        ("/api/components/", "post"),
        ("/api/components/{id}/", "get"),
        ("/api/components/{id}/", "patch"),
        ("/api/components/{id}/", "delete"),
        ("/api/components/bulk/", "post"),
        ("/api/sessions/", "get"),
        ("/api/sessions/", "post"),
        ("/api/sessions/{id}/", "get"),
        ("/api/sessions/{id}/", "patch"),
        ("/api/sessions/{id}/spawn/", "post"),
        ("/api/sessions/{id}/children/", "get"),
        ("/api/sessions/{id}/report/", "get"),
        ("/api/sessions/{id}/next-command/", "post"),
        ("/api/sessions/{id}/interactions/{interaction_id}/result/", "post"),
        ("/api/sessions/{id}/interactions/", "get"),
        ("/api/sessions/{id}/cancel/", "post"),
        ("/api/sessions/{id}/spawn-missing/", "post"),
        ("/api/sessions/{id}/retry/", "post"),
        ("/api/sessions/{id}/retry-children/", "post"),
        ("/api/sessions/{id}/heartbeat/", "post"),
        ("/api/sessions/{id}/release/", "post"),
        ("/api/sessions/{id}/claim-child/", "post"),
    }


def test_every_operation_documents_its_error_answers(openapi):
    for path, method, operation in operations(openapi):
        codes = set(operation["responses"])
        assert "401" in codes, (path, method)
        if "{id}" in path:
            assert "404" in codes, (path, method)
        if "requestBody" in operation:
            assert {"400", "415"} <= codes, (path, method)
        for code in codes - {"200", "201", "204"}:
            assert operation["responses"][code]["description"], (path, method, code)


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/api/sessions/{id}/spawn/", {"200", "401", "404", "409", "422"}),
        (
            "/api/sessions/{id}/next-command/",
            {"200", "201", "400", "401", "404", "409", "413", "415", "422"},
        ),
        ("/api/sessions/{id}/cancel/", {"200", "401", "404", "409"}),
    ],
)
def test_actions_document_their_step_errors_and_conflicts(openapi, path, codes):
    # Any request can also be refused for its charset or coding, throttled, or meet the
    # database away (core.api.docs.ANY_REQUEST_ERRORS); any POST can meet its Idempotency-Key
    # in progress (409) or used for another request (422).
    any_request = {"400", "414", "415", "429", "503", "409", "422"}
    assert set(openapi["paths"][path]["post"]["responses"]) == codes | any_request


def test_request_bodies_are_described(openapi):
    schemas = openapi["components"]["schemas"]
    result_body = openapi["paths"]["/api/sessions/{id}/interactions/{interaction_id}/result/"]
    ref = result_body["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    result = schemas[ref.rsplit("/", 1)[-1]]
    assert result["required"] == ["status"]
    assert result["properties"]["code"]["maximum"] == 2**31 - 1
    assert set(result["properties"]) == {
        "status",
        "data",
        "code",
        "error_message",
        "stdout",
        "stderr",
        "duration_ms",
    }
    assert schemas["SessionCreateRequest"]["required"] == ["project", "type"]
    assert schemas["ComponentCreateRequest"]["properties"]["priority"]["minimum"] == -(2**31)


def test_the_interactive_docs(anonymous):
    response = anonymous.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "/api/schema/" in page


def test_an_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/nothing-here/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_missing_trailing_slash_is_a_json_404_that_says_so(api, project):
    response = api.post("/api/projects", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found. API paths end with a slash: /api/projects/"}


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", tmp_path / "api.yml")

    assert (tmp_path / "api.yml").read_text().startswith("openapi: 3")


def test_the_browsable_api_renders_for_a_logged_in_browser(anonymous, user, context_session):
    anonymous.force_login(user)
    anonymous.post(f"/api/sessions/{context_session.pk}/spawn/")

    for path in ["", f"{context_session.pk}/", f"{context_session.pk}/children/"]:
        response = anonymous.get(f"/api/sessions/{path}", HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html")


def test_every_post_documents_the_idempotency_key(openapi):
    posts = [(path, op) for path, method, op in operations(openapi) if method == "post"]

    assert posts
    for path, operation in posts:
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert headers == ["Idempotency-Key"], path
