import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions_app.models import Interaction, Session
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.factories import make_child, make_component, make_project, make_session


@pytest.fixture
def child_component(context):
    return context.child_components.first()


def test_one_child_session_per_parent_and_component(context_session, child_component):
    make_child(context_session, child_component)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_child(context_session, child_component)


def test_the_same_component_may_have_children_under_two_parents(
    scope, context, context_session, child_component
):
    other_parent = make_session(scope, component=context)

    make_child(context_session, child_component)
    make_child(other_parent, child_component)

    assert Session.objects.filter(component=child_component).count() == 2


def test_parent_child_foreign_key_lives_in_column_session_id():
    field = Session._meta.get_field("parent_session")

    assert field.column == "session_id"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "done"),
        ("execution_mode", "turbo"),
        ("agent", "cursor"),
        ("environment", "emacs"),
        ("type", ""),
    ],
)
def test_the_database_refuses_values_outside_the_choices(scope, field, value):
    session = make_session(scope)

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(**{field: value})


def test_a_session_is_never_its_own_parent_in_the_database(scope):
    session = make_session(scope)

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(parent_session=session)


def test_defaults(scope):
    session = make_session(scope)

    assert (session.status, session.execution_mode, session.state) == ("active", "manual", {})
    assert session.agent is None and session.environment is None


def test_clean_refuses_an_unregistered_type(scope):
    session = Session(project=scope.project, user=scope.user, type="NoSuchWorkflow")

    with pytest.raises(ValidationError) as error:
        session.full_clean()

    assert error.value.message_dict["type"] == ["Unknown session type: NoSuchWorkflow"]


def test_clean_refuses_state_that_is_not_an_object(scope):
    session = Session(
        project=scope.project,
        user=scope.user,
        type=COMPONENT_TEST_SESSIONS,
        state=["not", "an", "object"],
    )

    with pytest.raises(ValidationError) as error:
        session.full_clean()

    assert "state" in error.value.message_dict


def test_clean_refuses_a_component_or_parent_from_another_project(scope, user):
    elsewhere = make_project(user)
    foreign_component = make_component(elsewhere, "Foreign")
    foreign_parent = Session.objects.create(project=elsewhere, user=user, type="x")
    session = Session(
        project=scope.project,
        user=scope.user,
        type=COMPONENT_TEST_SESSIONS,
        component=foreign_component,
        parent_session=foreign_parent,
    )

    with pytest.raises(ValidationError) as error:
        session.full_clean()

    assert set(error.value.message_dict) == {"component", "parent_session"}


def test_deleting_a_parent_session_deletes_its_children(context_session, child_component):
    child = make_child(context_session, child_component)

    context_session.delete()

    assert not Session.objects.filter(pk=child.pk).exists()


def test_an_interaction_result_comes_with_its_completion_time(context_session):
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(
            session=context_session, step_name="Initialize", command={}, result={"status": "ok"}
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(
            session=context_session,
            step_name="Initialize",
            command={},
            completed_at=timezone.now(),
        )


def test_at_most_one_pending_interaction_per_session(context_session):
    Interaction.objects.create(session=context_session, step_name="Initialize", command={})

    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(session=context_session, step_name="Initialize", command={})
