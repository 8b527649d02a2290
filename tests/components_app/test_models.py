import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from components_app import services
from components_app.models import MODULE_NAME_TAKEN, Component
from core.errors import Conflict
from tests.factories import make_child, make_component, make_project


def test_module_name_is_unique_within_a_project_in_the_database(project):
    make_component(project, "User", module_name="Shop.User")

    with pytest.raises(IntegrityError), transaction.atomic():
        Component.objects.create(project=project, name="Other", module_name="Shop.User", type="x")


def test_the_same_module_name_may_live_in_two_projects(project, user):
    make_component(project, "User", module_name="Shop.User")
    other = make_project(user)

    make_component(other, "User", module_name="Shop.User")

    assert Component.objects.filter(module_name="Shop.User").count() == 2


def test_full_clean_reports_a_taken_module_name(project):
    make_component(project, "User", module_name="Shop.User")
    duplicate = Component(project=project, name="Again", module_name="Shop.User", type="x")

    with pytest.raises(ValidationError) as error:
        duplicate.full_clean()

    assert MODULE_NAME_TAKEN in error.value.messages


def test_a_component_is_never_its_own_parent_in_the_database(project):
    component = make_component(project, "Loop")

    with pytest.raises(IntegrityError), transaction.atomic():
        Component.objects.filter(pk=component.pk).update(parent_component=component)


@pytest.mark.parametrize("field", ["name", "module_name"])
def test_empty_names_are_refused_by_the_database(project, field):
    values = {"name": "A", "module_name": "App.A", "type": "x", field: ""}

    with pytest.raises(IntegrityError), transaction.atomic():
        Component.objects.create(project=project, **values)


def test_clean_refuses_a_parent_from_another_project(project, user):
    foreign_parent = make_component(make_project(user), "Foreign")
    component = Component(
        project=project, name="A", module_name="App.A", type="x", parent_component=foreign_parent
    )

    with pytest.raises(ValidationError) as error:
        component.full_clean()

    assert error.value.message_dict["parent_component"] == [
        "The parent component must belong to the same project."
    ]


def test_clean_refuses_the_component_itself_as_parent(project):
    component = make_component(project, "A")
    component.parent_component = component

    with pytest.raises(ValidationError) as error:
        component.full_clean()

    assert "parent_component" in error.value.message_dict


def test_clean_refuses_a_descendant_as_parent(project):
    root = make_component(project, "Root")
    middle = make_component(project, "Middle", parent_component=root)
    leaf = make_component(project, "Leaf", parent_component=middle)
    root.parent_component = leaf

    with pytest.raises(ValidationError) as error:
        root.full_clean()

    assert error.value.message_dict["parent_component"] == [
        "A component cannot be placed under one of its descendants."
    ]


def test_clean_accepts_a_parent_in_the_same_project(project):
    root = make_component(project, "Root")
    child = Component(
        project=project, name="C", module_name="App.C", type="x", parent_component=root
    )

    child.full_clean()


def test_deleting_a_parent_leaves_its_children_without_one(project):
    root = make_component(project, "Root")
    child = make_component(project, "Child", parent_component=root)

    root.delete()

    child.refresh_from_db()
    assert child.parent_component is None


def test_components_are_listed_in_spawn_order(project):
    for name, priority in [("b", 1), ("a", 1), ("z", 9), ("m", 0)]:
        make_component(project, name, priority=priority)

    assert [c.name for c in Component.objects.filter(project=project)] == ["z", "a", "b", "m"]


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("test_path_template", "tests/{oops}.py"),
        ("test_path_template", "tests/{"),
        ("test_path_template", "tests/{0}.py"),
        ("test_path_template", "tests/{module_snake.upper}.py"),
        ("test_command_template", "pytest {test_path}"),
        ("test_command_template", "pytest }"),
    ],
)
def test_a_project_template_with_unknown_placeholders_is_refused(project, field, template):
    setattr(project, field, template)

    with pytest.raises(ValidationError) as error:
        project.full_clean()

    assert list(error.value.message_dict) == [field]
    assert "Use only the placeholders" in error.value.message_dict[field][0]


@pytest.mark.parametrize(
    ("field", "template"),
    [
        ("test_path_template", "spec/{module}/{module_snake}_spec.py"),
        ("test_command_template", "make test FILE={test_file} ARGS='{{-x}}'"),
    ],
)
def test_a_project_template_with_known_placeholders_is_accepted(project, field, template):
    setattr(project, field, template)

    project.full_clean()


def test_a_component_cannot_move_to_another_project(project, user):
    context = make_component(project, "Context")
    make_component(project, "Child", parent_component=context)
    context.project = make_project(user)

    with pytest.raises(ValidationError) as error:
        context.full_clean()

    assert error.value.message_dict["project"] == ["A component cannot move to another project."]


def test_the_service_keeps_a_component_that_has_sessions(scope, context, context_session):
    child = context.child_components.get(name="Token")
    make_child(context_session, child)

    with pytest.raises(Conflict) as error:
        services.delete_component(scope=scope, component_id=child.pk)

    assert error.value.message == f"Components with sessions cannot be deleted: {child.module_name}"
    assert Component.objects.filter(pk=child.pk).exists()
