"""POST /api/components/bulk/: the HTTP door onto the bulk import."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings

from components_app import services
from components_app.api.parsers import BULK_MAX_BODY_BYTES
from components_app.models import Component
from tests.factories import make_component, make_context_session

BULK = "/api/components/bulk/"


def row(module_name: str, parent: str | None = None, **fields) -> dict:
    fields.setdefault("name", module_name.rsplit(".", 1)[-1])
    fields.setdefault("type", "module")
    return {"module_name": module_name, "parent_module_name": parent, **fields}


def post(client, body):
    return client.post(BULK, json.dumps(body), content_type="application/json")


def test_creates_and_answers_the_counts_and_the_components_in_row_order(api, project):
    response = post(
        api,
        {
            "project": str(project.pk),
            "components": [
                row("shop.user", "shop", priority=10, description="Who buys."),
                row("shop", type="context"),
            ],
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("created", "updated", "unchanged", "deleted")} == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
    }
    user, shop = body["components"]
    assert (user["module_name"], shop["module_name"]) == ("shop.user", "shop")
    assert user["parent_component"] == shop["id"]
    assert (user["priority"], user["description"], user["project"]) == (
        10,
        "Who buys.",
        str(project.pk),
    )
    stored = Component.objects.get(pk=user["id"])
    assert stored.parent_component_id == uuid.UUID(shop["id"])
    assert {"created_at", "updated_at"} <= set(user)


def test_a_re_import_answers_updated_and_unchanged(api, project):
    rows = [row("a", type="context"), row("a.b", "a"), row("a.c", "a")]
    post(api, {"project": str(project.pk), "components": rows})

    rows[2] = row("a.c", "a", priority=4)
    body = post(api, {"project": str(project.pk), "components": rows}).json()

    assert (body["created"], body["updated"], body["unchanged"]) == (0, 1, 2)
    assert body["components"][2]["priority"] == 4


def test_a_bad_row_is_a_400_naming_its_index_and_field_and_nothing_is_written(
    api, project, unchanged_db
):
    make_component(project, "A", module_name="a")
    rows = [row("a", priority=1), row("b", "nowhere"), row("c", priority="high"), row("a")]

    with unchanged_db():
        response = post(api, {"project": str(project.pk), "components": rows})

    assert response.status_code == 400
    assert response.json() == {
        "components": {
            "1": {"parent_module_name": [services.UNKNOWN_PARENT]},
            "2": {"priority": [services.NOT_AN_INTEGER]},
            "3": {"module_name": ["Row 0 has the same module name."]},
        }
    }


def test_a_row_that_is_no_object_is_named_by_its_index(api, project, unchanged_db):
    with unchanged_db():
        response = post(api, {"project": str(project.pk), "components": [row("a"), "b"]})

    assert response.status_code == 400
    assert response.json() == {"components": {"1": {"non_field_errors": [services.NOT_AN_OBJECT]}}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"components": []}, "project"),
        ({"project": "not-a-uuid", "components": []}, "project"),
        ({"components": "nope"}, "components"),
        ({}, "components"),
        ({"components": [], "prune": "sometimes"}, "prune"),
        ({"components": [], "dry_run": "maybe"}, "dry_run"),
    ],
)
def test_a_bad_envelope_is_a_400_for_its_field(api, project, unchanged_db, body, field):
    body = {"project": str(project.pk), **body} if field != "project" else body

    with unchanged_db():
        response = post(api, body)

    assert response.status_code == 400
    assert field in response.json()


def test_prune_deletes_the_others_and_counts_them(api, project):
    make_component(project, "Old", module_name="old")

    body = post(api, {"project": str(project.pk), "components": [row("new")], "prune": True})

    assert (body.json()["created"], body.json()["deleted"]) == (1, 1)
    assert list(
        Component.objects.filter(project=project).values_list("module_name", flat=True)
    ) == ["new"]


def test_prune_of_a_component_with_sessions_is_a_409_naming_it(api, project, scope, unchanged_db):
    tested = make_component(project, "Tested", module_name="tested", type="context")
    make_context_session(scope, tested)

    with unchanged_db():
        response = post(
            api, {"project": str(project.pk), "components": [row("new")], "prune": True}
        )

    assert response.status_code == 409
    assert response.json() == {"detail": "Components with sessions cannot be deleted: tested"}


def test_another_users_project_is_a_404_whatever_the_rows(stranger_api, project, unchanged_db):
    with unchanged_db():
        response = post(stranger_api, {"project": str(project.pk), "components": [{}]})

    assert response.status_code == 404
    assert response.json() == {"detail": "Project not found"}


def test_an_unknown_project_is_a_404(api):
    response = post(api, {"project": str(uuid.uuid4()), "components": []})

    assert response.status_code == 404


def test_no_credentials_is_a_401(anonymous, project, unchanged_db):
    with unchanged_db():
        response = post(anonymous, {"project": str(project.pk), "components": [row("a")]})

    assert response.status_code == 401


def five_thousand_rows() -> list[dict]:
    # Descriptions of 400 characters put the body past the global upload limit, as a real
    # codebase's long docstrings or a hand-written manifest can.
    rows = [row(f"area{i}", type="context") for i in range(50)]
    rows += [
        row(f"area{i % 50}.module_{i:04d}", f"area{i % 50}", priority=i % 7, description="d" * 400)
        for i in range(4950)
    ]
    return rows


def test_five_thousand_rows_in_one_request(api, project):
    body = json.dumps({"project": str(project.pk), "components": five_thousand_rows()})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api.post(BULK, body, content_type="application/json")

    assert response.status_code == 200
    assert response.json()["created"] == 5000
    assert Component.objects.filter(project=project, parent_component__isnull=False).count() == 4950

    again = api.post(BULK, body, content_type="application/json")
    assert again.json()["unchanged"] == 5000


def test_a_body_past_the_routes_limit_is_a_413(api, project, unchanged_db):
    body = json.dumps(
        {
            "project": str(project.pk),
            "components": [row("a", description="x" * BULK_MAX_BODY_BYTES)],
        }
    )

    with unchanged_db():
        response = api.post(BULK, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large."}


def test_the_routes_parser_keeps_the_apis_json_rules(api, project):
    body = '{"project": "%s", "components": [{"module_name": "a\\u0000"}]}'
    response = api.post(BULK, body.replace("%s", str(project.pk)), content_type="application/json")

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()

    not_json = api.post(BULK, "{nope", content_type="application/json")
    assert not_json.status_code == 400

    as_form = api.post(BULK, {"project": str(project.pk)})
    assert as_form.status_code == 415


@pytest.mark.parametrize("size", [5, 70])
def test_the_query_count_does_not_grow_with_the_rows(api, project, size, django_assert_num_queries):
    rows = [row("pkg", type="context")] + [row(f"pkg.m{i}", "pkg") for i in range(size)]

    # the token, the project, then the service's five (see tests/components_app)
    with django_assert_num_queries(7):
        response = post(api, {"project": str(project.pk), "components": rows})

    assert response.json()["created"] == size + 1


# --- dry run ----------------------------------------------------------------------------------


def test_a_dry_run_answers_as_the_import_would_and_writes_nothing(api, project, unchanged_db):
    make_component(project, "Ctx", module_name="ctx", type="context")
    make_component(project, "Old", module_name="old")
    rows = [row("ctx.new", "ctx"), row("ctx", name="Ctx", type="context", priority=2)]
    body = {"project": str(project.pk), "components": rows, "prune": True}

    with unchanged_db():
        dry = post(api, {**body, "dry_run": True})

    assert dry.status_code == 200
    assert dry.json()["dry_run"] is True
    assert [
        {key: action[key] for key in ("module_name", "action", "changes")}
        for action in dry.json()["actions"]
    ] == [
        {"module_name": "ctx.new", "action": "create", "changes": []},
        {"module_name": "ctx", "action": "update", "changes": ["priority"]},
        {"module_name": "old", "action": "delete", "changes": []},
    ]
    created, updated, deleted = dry.json()["actions"]
    assert created["before"] == {} and created["after"]["parent_module_name"] == "ctx"
    assert (updated["before"], updated["after"]) == ({"priority": 0}, {"priority": 2})
    assert deleted["before"] == deleted["after"] == {}
    real = post(api, body).json()
    assert real["dry_run"] is False
    assert real["actions"] == dry.json()["actions"]
    counts = ("created", "updated", "unchanged", "deleted")
    assert [dry.json()[k] for k in counts] == [real[k] for k in counts] == [1, 1, 0, 1]
    assert [c["module_name"] for c in dry.json()["components"]] == ["ctx.new", "ctx"]


def test_a_dry_run_gives_the_imports_400_and_409(api, project, scope, unchanged_db):
    tested = make_component(project, "Tested", module_name="tested", type="context")
    make_context_session(scope, tested)
    envelope = {"project": str(project.pk), "dry_run": True}

    with unchanged_db():
        bad = post(api, {**envelope, "components": [row("a", "nowhere")]})
        blocked = post(api, {**envelope, "components": [row("new")], "prune": True})

    assert (bad.status_code, blocked.status_code) == (400, 409)
    assert bad.json() == {"components": {"0": {"parent_module_name": [services.UNKNOWN_PARENT]}}}
    assert blocked.json() == {"detail": "Components with sessions cannot be deleted: tested"}


@pytest.mark.parametrize("size", [5, 70])
def test_a_dry_runs_query_count_does_not_grow_with_the_rows(
    api, project, size, django_assert_num_queries
):
    rows = [row("pkg", type="context")] + [row(f"pkg.m{i}", "pkg") for i in range(size)]

    # the token, the project, then the service's six (its savepoint is rolled back, then
    # released; see tests/components_app)
    with django_assert_num_queries(8):
        response = post(api, {"project": str(project.pk), "components": rows, "dry_run": True})

    assert (response.json()["created"], response.json()["dry_run"]) == (size + 1, True)
    assert not Component.objects.exists()
