"""The service functions every door calls for spawning and for checking children."""

import pytest

from core.errors import NotFound, StepError
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.conftest import SPAWN_ORDER
from tests.factories import make_component, make_context, make_context_session, make_project


def test_spawn_child_sessions_returns_the_command(scope, context_session):
    command = services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    assert command.command == "spawn_sessions"
    assert len(command.metadata["child_session_ids"]) == 4


def test_spawn_child_sessions_does_not_see_another_projects_session(context_session, other_scope):
    with pytest.raises(NotFound) as error:
        services.spawn_child_sessions(scope=other_scope, session_id=context_session.pk)

    assert error.value.message == "Session not found"
    assert not Session.objects.filter(parent_session=context_session).exists()


def test_only_context_sessions_spawn(scope, context):
    session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)

    with pytest.raises(StepError) as error:
        services.spawn_child_sessions(scope=scope, session_id=session.pk)

    assert error.value.message == (
        "Only ContextTestingSessions sessions spawn child sessions, this one is "
        "ComponentTestSessions"
    )


def test_check_child_sessions_names_unfinished_children(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session, component__name="User").update(
        status=SessionStatus.COMPLETE
    )

    result = services.check_child_sessions(scope=scope, session_id=context_session.pk)

    assert result.status == "error"
    assert result.error_message == "Child sessions still running: " + ", ".join(SPAWN_ORDER[1:])


def test_check_child_sessions_is_ok_when_all_complete(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)

    assert services.check_child_sessions(scope=scope, session_id=context_session.pk).status == "ok"


def _wide_context(scope, size):
    project = scope.project
    context = make_context(project, [])
    for index in range(size):
        make_component(project, f"C{index:04d}", priority=index % 7, parent_component=context)
    return make_context_session(scope, context)


# 30 children fit one INSERT on SQLite (999 variables, 28 columns a row); more take one
# INSERT per batch.
@pytest.mark.parametrize("size", [5, 30])
def test_spawn_costs_the_same_queries_whatever_the_number_of_children(
    scope, size, django_assert_num_queries
):
    session = _wide_context(scope, size)

    # session, savepoint, context, locked parent, existing children, child components,
    # savepoint + bulk insert + release, the children's ids read back and kept, release.
    with django_assert_num_queries(12):
        command = services.spawn_child_sessions(scope=scope, session_id=session.pk)

    assert len(command.metadata["child_session_ids"]) == size


@pytest.mark.parametrize("size", [5, 60])
def test_result_check_costs_the_same_queries_whatever_the_number_of_children(
    scope, size, django_assert_max_num_queries
):
    session = _wide_context(scope, size)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(status=SessionStatus.FAILED)

    with django_assert_max_num_queries(4):
        result = services.check_child_sessions(scope=scope, session_id=session.pk)

    assert result.error_message.count("(no reason recorded)") == size


def test_spawned_children_are_scoped_to_the_callers_project(scope, context_session, user):
    make_project(user)  # a second project of the same user changes nothing

    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)

    assert set(
        Session.objects.filter(parent_session=context_session).values_list("project", flat=True)
    ) == {scope.project.pk}
