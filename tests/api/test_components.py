"""/api/components/: list, create, read, change, delete; all within the caller's projects."""

import uuid

import pytest

from components_app.models import MODULE_NAME_TAKEN, Component
from tests.factories import make_child, make_component, make_project

COMPONENT_KEYS = {
    "id",
    "project",
    "name",
    "module_name",
    "type",
    "description",
    "priority",
    "parent_component",
    "source_path",
    "excluded",
    "existing_tests",
    "created_at",
    "updated_at",
}


def _body(project, **fields):
    body = {"project": str(project.pk), "name": "Cart", "module_name": "Shop.Cart"}
    return {**body, "type": "context", **fields}


def test_list_filters_by_parent_in_spawn_order(api, context, project):
    response = api.get(f"/api/components/?parent_component={context.pk}")

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["User", "Session", "Token", "Audit"]


def test_list_filters_by_project(api, user, context, project):
    other = make_project(user)
    make_component(other, "Elsewhere")

    names = [c["name"] for c in api.get(f"/api/components/?project={other.pk}").json()["results"]]

    assert names == ["Elsewhere"]


@pytest.mark.parametrize("query", ["project=abc", "parent_component=1", "project=%00"])
def test_a_malformed_filter_is_400(api, project, query):
    response = api.get(f"/api/components/?{query}")

    assert response.status_code == 400
    assert response.json() == {query.split("=")[0]: ["Must be a valid UUID."]}


def test_create_and_read(api, project, context):
    response = api.post(
        "/api/components/",
        _body(project, priority=7, parent_component=str(context.pk), description="A cart."),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == COMPONENT_KEYS
    assert (body["priority"], body["parent_component"]) == (7, str(context.pk))
    assert api.get(f"/api/components/{body['id']}/").json() == body


def test_create_defaults(api, project):
    body = api.post("/api/components/", _body(project), format="json").json()

    assert (body["priority"], body["description"], body["parent_component"]) == (0, "", None)


def test_module_name_is_unique_within_a_project(api, project, unchanged_db):
    make_component(project, "Cart", module_name="Shop.Cart")

    with unchanged_db():
        response = api.post("/api/components/", _body(project), format="json")

    assert response.status_code == 400
    assert response.json() == {"module_name": [MODULE_NAME_TAKEN]}


def test_a_parent_from_another_of_my_projects_is_400(api, user, project, unchanged_db):
    foreign_parent = make_component(make_project(user), "Elsewhere")

    with unchanged_db():
        response = api.post(
            "/api/components/",
            _body(project, parent_component=str(foreign_parent.pk)),
            format="json",
        )

    assert response.status_code == 400
    assert response.json() == {
        "parent_component": ["The parent component must belong to the same project."]
    }


def test_a_project_i_am_not_in_is_400(api, other_scope, unchanged_db):
    with unchanged_db():
        response = api.post("/api/components/", _body(other_scope.project), format="json")

    assert response.status_code == 400
    assert response.json() == {
        "project": [f'Invalid pk "{other_scope.project.pk}" - object does not exist.']
    }


def test_patch_changes_the_given_fields(api, context):
    response = api.patch(
        f"/api/components/{context.pk}/", {"priority": 3, "name": "Accounts2"}, format="json"
    )

    assert response.status_code == 200
    context.refresh_from_db()
    assert (context.priority, context.name) == (3, "Accounts2")


@pytest.mark.parametrize("field", ["project", "id", "created_at"])
def test_patch_refuses_fields_that_cannot_change(api, context, field, unchanged_db):
    with unchanged_db():
        response = api.patch(f"/api/components/{context.pk}/", {field: "x"}, format="json")

    assert response.status_code == 400
    assert response.json() == {field: ["This field cannot be changed."]}


def test_patch_cannot_put_a_component_under_its_descendant(api, context, unchanged_db):
    child = Component.objects.filter(parent_component=context).first()

    with unchanged_db():
        response = api.patch(
            f"/api/components/{context.pk}/", {"parent_component": str(child.pk)}, format="json"
        )

    assert response.status_code == 400
    assert response.json() == {
        "parent_component": ["A component cannot be placed under one of its descendants."]
    }


def test_delete(api, context):
    response = api.delete(f"/api/components/{context.pk}/")

    assert response.status_code == 204
    assert not Component.objects.filter(pk=context.pk).exists()


@pytest.mark.parametrize("component_id", [uuid.uuid4(), "not-a-uuid", "1"])
def test_unknown_component_is_404(api, project, component_id):
    response = api.get(f"/api/components/{component_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Component not found"}


def test_a_component_that_has_sessions_is_not_deleted(api, context, context_session):
    child = context.child_components.get(name="User")
    make_child(context_session, child)

    for component in (context, child):
        response = api.delete(f"/api/components/{component.pk}/")

        assert response.status_code == 409
        assert response.json() == {
            "detail": f"Components with sessions cannot be deleted: {component.module_name}"
        }
        assert Component.objects.filter(pk=component.pk).exists()
    # One no session tests is deleted as before.
    untested = context.child_components.get(name="Audit")
    assert api.delete(f"/api/components/{untested.pk}/").status_code == 204
