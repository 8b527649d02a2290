"""The seed's test list for SpawnComponentTestingSessions, one test per title.

Each test name is the seed's title in snake case, under a class named for the seed's
``describe`` block (``get_command/3`` → ``TestGetCommand``, ``handle_result/4`` →
``TestHandleResult``).
"""

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from components_app.models import Component
from core.errors import StepError
from sessions_app.models import ExecutionMode, Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import (
    COMPONENT_TEST_SESSIONS,
    CONTEXT_TESTING_SESSIONS,
)
from sessions_app.workflows.steps.spawn_component_testing_sessions import (
    SpawnComponentTestingSessions,
)
from sessions_app.workflows.types import Result
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context_session, make_project
from tests.sessions_app.workflows.failures import (
    INJECTED_DB_ERROR,
    INJECTED_VALIDATION_ERROR,
    invalid_children,
    rejected_inserts,
)

STEP_LOGGER = "sessions_app.workflows.steps.spawn_component_testing_sessions"

step = SpawnComponentTestingSessions()


def children_of(session: Session) -> list[Session]:
    return list(
        Session.objects.filter(parent_session=session)
        .select_related("component")
        .order_by("-component__priority", "component__name")
    )


def component_named(context: Component, name: str) -> Component:
    return context.child_components.get(name=name)


@pytest.fixture(params=["database", "validation"])
def creation_failure(request, monkeypatch, context):
    """Make creating children fail for the named components, through the database (a
    trigger rejects the INSERT) or through model validation."""

    def inject(names):
        if request.param == "database":
            return rejected_inserts([component_named(context, name) for name in names])
        return invalid_children(monkeypatch, names)

    inject.kind = request.param
    inject.detail = INJECTED_DB_ERROR if request.param == "database" else INJECTED_VALIDATION_ERROR
    return inject


@pytest.fixture(params=["deleted", "in_another_project"])
def lost_session(request, context_session, other_scope):
    """A session in hand whose row is gone from the scope's project since it was loaded."""
    rows = Session.objects.filter(pk=context_session.pk)
    if request.param == "deleted":
        rows.delete()
    else:
        rows.update(project=other_scope.project)
    return context_session


class TestGetCommand:
    def test_returns_spawn_sessions_command_with_child_session_ids_in_metadata(
        self, scope, context_session
    ):
        command = step.get_command(scope, context_session)

        assert command.module == "SpawnComponentTestingSessions"
        assert command.command == "spawn_sessions"
        ids = [str(child.pk) for child in children_of(context_session)]
        assert command.metadata["child_session_ids"] == ids
        assert len(ids) == 4

    def test_creates_child_sessions_for_each_component_with_correct_attributes(
        self, scope, context, context_session
    ):
        step.get_command(scope, context_session)

        children = children_of(context_session)
        assert {child.component_id for child in children} == set(
            context.child_components.values_list("pk", flat=True)
        )
        for child in children:
            assert child.type == COMPONENT_TEST_SESSIONS
            assert child.status == SessionStatus.ACTIVE
            assert child.project_id == scope.project.pk
            assert child.user_id == scope.user.pk
            assert child.state == {}

    def test_sets_execution_mode_to_agentic_for_all_child_sessions(self, scope, context_session):
        assert context_session.execution_mode == ExecutionMode.MANUAL

        step.get_command(scope, context_session)

        modes = {child.execution_mode for child in children_of(context_session)}
        assert modes == {ExecutionMode.AGENTIC}

    @pytest.mark.parametrize(
        ("agent", "environment"), [("claude_code", "vscode"), ("claude_code", "cli"), (None, None)]
    )
    def test_inherits_agent_and_environment_from_parent_session(
        self, scope, context, agent, environment
    ):
        parent = make_context_session(scope, context, agent=agent, environment=environment)

        step.get_command(scope, parent)

        children = children_of(parent)
        assert len(children) == 4
        assert {(c.agent, c.environment) for c in children} == {(agent, environment)}

    def test_establishes_parent_child_relationship_via_session_id_foreign_key(
        self, scope, context_session
    ):
        command = step.get_command(scope, context_session)

        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, session_id FROM {Session._meta.db_table} WHERE session_id = %s",
                [Session._meta.pk.get_db_prep_value(context_session.pk, connection)],
            )
            rows = cursor.fetchall()
        assert len(rows) == len(command.metadata["child_session_ids"]) == 4
        reloaded = Session.objects.get(pk=context_session.pk)
        assert sorted(str(c.pk) for c in reloaded.child_sessions.all()) == sorted(
            command.metadata["child_session_ids"]
        )
        assert all(c.parent_session_id == context_session.pk for c in children_of(reloaded))

    def test_orders_child_components_by_priority_descending_then_name_ascending(
        self, scope, context_session
    ):
        command = step.get_command(scope, context_session)

        by_id = {str(c.pk): c.component.name for c in children_of(context_session)}
        names = [by_id[pk] for pk in command.metadata["child_session_ids"]]
        assert names == SPAWN_ORDER

    def test_returns_error_when_context_component_has_no_children(self, scope, project):
        lonely = make_component(project, "Lonely", type="context")
        session = make_context_session(scope, lonely)

        with pytest.raises(StepError) as error:
            step.get_command(scope, session)

        assert error.value.message == "No child components found for context"
        assert not Session.objects.filter(parent_session=session).exists()

    @pytest.mark.parametrize("how", ["deleted", "in_another_project"])
    def test_returns_error_when_context_component_not_found(
        self, scope, context, context_session, other_scope, how
    ):
        if how == "deleted":
            # The session was loaded before its component went away.
            Component.objects.filter(pk=context.pk).delete()
        else:
            foreign = make_component(other_scope.project, "Foreign", type="context")
            make_component(other_scope.project, "ForeignChild", parent_component=foreign)
            Session.objects.filter(pk=context_session.pk).update(component=foreign)
            context_session.refresh_from_db()

        with pytest.raises(StepError) as error:
            step.get_command(scope, context_session)

        assert error.value.message == "Context component not found"
        assert not Session.objects.filter(parent_session=context_session).exists()

    def test_returns_error_when_session_component_is_nil(self, scope):
        session = make_context_session(scope, None)

        with pytest.raises(StepError) as error:
            step.get_command(scope, session)

        assert error.value.message == "Context component not found"

    def test_returns_error_when_parent_session_not_found(self, scope, lost_session):
        with pytest.raises(StepError) as error:
            step.get_command(scope, lost_session)

        assert error.value.message == "Session not found"
        assert not Session.objects.filter(parent_session_id=lost_session.pk).exists()

    def test_handles_partial_session_creation_failures_gracefully_logs_but_continues(
        self, scope, context, context_session, creation_failure, caplog
    ):
        with creation_failure(["Session"]), caplog.at_level(logging.WARNING, STEP_LOGGER):
            command = step.get_command(scope, context_session)

        survivors = children_of(context_session)
        assert [c.component.name for c in survivors] == ["User", "Token", "Audit"]
        assert command.metadata["child_session_ids"] == [str(c.pk) for c in survivors]
        [failure] = command.metadata["failed_components"]
        assert failure["name"] == "Session"
        assert creation_failure.detail in failure["reason"]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "Session" in errors[0].getMessage()
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "3 of 4" in warning.getMessage() and "Session" in warning.getMessage()
        # The surrounding transaction is still usable after the failed insert.
        assert Session.objects.filter(parent_session=context_session).count() == 3

    def test_returns_error_when_all_session_creations_fail(
        self, scope, context_session, creation_failure, caplog
    ):
        with (
            creation_failure(SPAWN_ORDER),
            caplog.at_level(logging.ERROR, STEP_LOGGER),
            pytest.raises(StepError) as error,
        ):
            step.get_command(scope, context_session)

        assert error.value.message == "Failed to spawn any child sessions"
        assert not Session.objects.filter(parent_session=context_session).exists()
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(logged) == 4
        for name, message in zip(SPAWN_ORDER, logged, strict=True):
            assert f"component {name} " in message

    def test_returns_existing_child_session_ids_when_child_sessions_already_exist_idempotent(
        self, scope, context_session
    ):
        first = step.get_command(scope, context_session)
        second = step.get_command(scope, context_session)

        assert second.metadata["child_session_ids"] == first.metadata["child_session_ids"]
        assert first.metadata["already_spawned"] is False
        assert second.metadata["already_spawned"] is True
        assert Session.objects.filter(parent_session=context_session).count() == 4

    def test_validates_existing_child_session_types_match_component_test_sessions(
        self, scope, context, context_session
    ):
        # Every existing child is checked, the last in spawn order too: while Audit's child
        # has another type the step refuses; once it is a ComponentTestSessions, the children
        # are handed out as they are and the other components get none behind the client's back.
        existing = [
            make_child(context_session, component_named(context, "Token")),
            make_child(context_session, component_named(context, "User")),
            make_child(
                context_session, component_named(context, "Audit"), type=CONTEXT_TESTING_SESSIONS
            ),
        ]
        with pytest.raises(StepError) as error:
            step.get_command(scope, context_session)
        assert error.value.message == (
            "Invalid child session type: expected ComponentTestSessions, got ContextTestingSessions"
        )

        Session.objects.filter(pk=existing[2].pk).update(type=COMPONENT_TEST_SESSIONS)
        command = step.get_command(scope, context_session)

        assert command.metadata["child_session_ids"] == [
            str(existing[1].pk),
            str(existing[0].pk),
            str(existing[2].pk),
        ]
        assert Session.objects.filter(parent_session=context_session).count() == 3

    def test_returns_error_when_existing_child_sessions_have_invalid_type(
        self, scope, context, context_session
    ):
        make_child(context_session, component_named(context, "User"))
        make_child(
            context_session, component_named(context, "Token"), type=CONTEXT_TESTING_SESSIONS
        )

        with pytest.raises(StepError) as error:
            step.get_command(scope, context_session)

        assert error.value.message == (
            "Invalid child session type: expected ComponentTestSessions, got ContextTestingSessions"
        )
        assert Session.objects.filter(parent_session=context_session).count() == 2

    def test_command_metadata_includes_timestamp(self, scope, context_session):
        before = timezone.now()
        command = step.get_command(scope, context_session)

        stamped = parse_datetime(command.metadata["timestamp"])
        assert timezone.is_aware(stamped)
        assert before <= stamped <= before + timedelta(seconds=30)
        # The metadata's timestamp is the command's own, as the JSON shows both.
        assert stamped == command.timestamp
        rendered = command.to_dict()
        assert parse_datetime(rendered["metadata"]["timestamp"]) == parse_datetime(
            rendered["timestamp"]
        )

    def test_logs_session_creation_failures_with_component_details(
        self, scope, context, context_session, creation_failure, caplog
    ):
        token = component_named(context, "Token")

        with creation_failure(["Token"]), caplog.at_level(logging.ERROR, STEP_LOGGER):
            step.get_command(scope, context_session)

        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        message = record.getMessage()
        assert record.name == STEP_LOGGER
        assert "Token" in message
        assert token.module_name in message
        assert str(token.pk) in message
        assert creation_failure.detail in message
        if creation_failure.kind == "validation":
            assert "component:" in message


class TestHandleResult:
    @pytest.fixture
    def spawned(self, scope, context_session):
        step.get_command(scope, context_session)
        return {c.component.name: c for c in children_of(context_session)}

    def set_status(self, child, status, **state):
        child.status = status
        child.state = state
        child.save()

    def test_returns_success_when_all_child_sessions_complete(
        self, scope, context_session, spawned
    ):
        for child in spawned.values():
            self.set_status(child, SessionStatus.COMPLETE)

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.status == "ok"
        assert outcome.result.error_message is None

    def test_returns_error_when_child_sessions_still_active_with_component_names(
        self, scope, context_session, spawned
    ):
        self.set_status(spawned["User"], SessionStatus.COMPLETE)
        self.set_status(spawned["Audit"], SessionStatus.COMPLETE)

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.status == "error"
        assert outcome.result.error_message == "Child sessions still running: Session, Token"

    def test_returns_error_when_any_child_session_failed_with_failure_details(
        self, scope, context_session, spawned
    ):
        for child in spawned.values():
            self.set_status(child, SessionStatus.COMPLETE)
        self.set_status(spawned["Token"], SessionStatus.FAILED, error="tests do not compile")

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.status == "error"
        assert outcome.result.error_message == (
            "Child sessions failed: Token (tests do not compile)"
        )

    def test_returns_error_when_any_child_session_cancelled_with_component_names(
        self, scope, context_session, spawned
    ):
        for child in spawned.values():
            self.set_status(child, SessionStatus.CANCELLED)
        self.set_status(spawned["Session"], SessionStatus.COMPLETE)

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.status == "error"
        assert outcome.result.error_message == "Child sessions cancelled: User, Token, Audit"

    def test_returns_error_when_parent_session_not_found(self, scope, lost_session):
        with pytest.raises(StepError) as error:
            step.handle_result(scope, lost_session, Result(status="ok"))

        assert error.value.message == "Session not found"

    def test_returns_no_session_updates_when_validation_succeeds(
        self, scope, context_session, spawned
    ):
        for child in spawned.values():
            self.set_status(child, SessionStatus.COMPLETE)
        before = Session.objects.get(pk=context_session.pk)

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.session_updates == {}
        after = Session.objects.get(pk=context_session.pk)
        assert (after.status, after.state, after.updated_at) == (
            before.status,
            before.state,
            before.updated_at,
        )

    @pytest.mark.parametrize("reported", ["error", "warning"])
    def test_updates_result_status_to_ok_when_all_validations_pass(
        self, scope, context_session, spawned, reported
    ):
        for child in spawned.values():
            self.set_status(child, SessionStatus.COMPLETE)
        result = Result(status=reported, error_message="stale", stdout="spawned 4", code=0)

        outcome = step.handle_result(scope, context_session, result)

        assert outcome.result.status == "ok"
        assert outcome.result.error_message is None
        assert outcome.result.stdout == "spawned 4"
        assert outcome.result.timestamp == result.timestamp

    def test_updates_result_status_to_error_when_validations_fail(
        self, scope, context_session, spawned
    ):
        result = Result(status="ok", stdout="spawned 4", duration_ms=120)

        outcome = step.handle_result(scope, context_session, result)

        assert outcome.result.status == "error"
        assert outcome.result.error_message.startswith("Child sessions still running: ")
        assert (outcome.result.stdout, outcome.result.duration_ms) == ("spawned 4", 120)
        assert outcome.session_updates == {}

    def test_includes_detailed_error_messages_with_component_names_and_reasons(
        self, scope, context_session, spawned
    ):
        # Reasons come from the child's state, else its latest errored interaction, else
        # the message says none was recorded.
        # User has both a state error and an errored interaction: the state's error wins.
        self.set_status(spawned["User"], SessionStatus.FAILED, error="fixture import error")
        self.set_status(spawned["Session"], SessionStatus.FAILED)
        now = timezone.now()
        Interaction.objects.create(
            session=spawned["User"],
            step_name="RunTests",
            command={"module": "RunTests", "command": "pytest"},
            result={"status": "error", "error_message": "interaction's message"},
            completed_at=now,
        )
        for minutes, message in [(2, "older failure"), (1, "RunTests: 3 tests failed")]:
            Interaction.objects.create(
                session=spawned["Session"],
                step_name="RunTests",
                command={"module": "RunTests", "command": "pytest"},
                result={"status": "error", "error_message": message},
                completed_at=now,
            )
            Interaction.objects.filter(
                session=spawned["Session"], result__error_message=message
            ).update(created_at=now - timedelta(minutes=minutes))
        self.set_status(spawned["Token"], SessionStatus.FAILED)
        self.set_status(spawned["Audit"], SessionStatus.COMPLETE)

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.error_message == (
            "Child sessions failed: User (fixture import error), "
            "Session (RunTests: 3 tests failed), Token (no reason recorded)"
        )

    def test_handles_multiple_failure_types_in_single_error_message(
        self, scope, context_session, spawned
    ):
        self.set_status(spawned["User"], SessionStatus.CANCELLED)
        self.set_status(spawned["Session"], SessionStatus.FAILED, error="timeout")
        self.set_status(spawned["Audit"], SessionStatus.FAILED, error="no tests collected")

        outcome = step.handle_result(scope, context_session, Result(status="ok"))

        assert outcome.result.status == "error"
        assert outcome.result.error_message == (
            "Child sessions still running: Token; "
            "Child sessions failed: Session (timeout), Audit (no tests collected); "
            "Child sessions cancelled: User"
        )


def test_step_reads_and_writes_nothing_outside_the_scope_project(
    scope, context_session, other_scope, caplog
):
    """A foreign project's components under the same context id are never spawned, tried, or
    named (not even as a failure, which would leak their names to this project's users)."""
    foreign_project = make_project(other_scope.user)
    make_component(foreign_project, "Intruder", parent_component=context_session.component)

    with caplog.at_level(logging.INFO, STEP_LOGGER):
        command = step.get_command(scope, context_session)

    names = [c.component.name for c in children_of(context_session)]
    assert names == SPAWN_ORDER
    assert len(command.metadata["child_session_ids"]) == 4
    assert command.metadata["failed_components"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Intruder" not in caplog.text


def test_failures_are_listed_in_spawn_order_however_they_were_found(
    scope, context, context_session, monkeypatch
):
    """Validation failures are found before the insert and database failures during it; the
    command lists both kinds together, in spawn order."""
    with (
        invalid_children(monkeypatch, ["Audit"]),
        rejected_inserts([component_named(context, "User")]),
    ):
        command = step.get_command(scope, context_session)

    assert [f["name"] for f in command.metadata["failed_components"]] == ["User", "Audit"]
    assert INJECTED_DB_ERROR in command.metadata["failed_components"][0]["reason"]
    assert INJECTED_VALIDATION_ERROR in command.metadata["failed_components"][1]["reason"]
    assert [c.component.name for c in children_of(context_session)] == ["Session", "Token"]
