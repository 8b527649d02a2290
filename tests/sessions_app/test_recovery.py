"""Recovery through the service layer: the result check's completeness (stalled children,
components without a child), spawning the missing children, and retrying sessions."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, NotFound, StepError
from sessions_app import selectors, services
from sessions_app.models import ExecutionMode, Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS
from sessions_app.workflows.types import Result
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context_session
from tests.sessions_app.workflow_driver import drive_to_end, history_of, step_once
from tests.sessions_app.workflows.failures import (
    INJECTED_DB_ERROR,
    INJECTED_VALIDATION_ERROR,
    invalid_children,
    rejected_inserts,
)

STEP_LOGGER = "sessions_app.workflows.steps.spawn_component_testing_sessions"


def spawned(scope, session: Session) -> dict[str, Session]:
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return children_by_name(session)


def children_by_name(session: Session) -> dict[str, Session]:
    return {c.component.name: c for c in selectors.spawned_children(session=session)}


def spawn_order_ids(session: Session) -> list[str]:
    return [str(c.pk) for c in selectors.spawned_children(session=session)]


def set_status(session: Session, status: str, **fields) -> None:
    Session.objects.filter(pk=session.pk).update(status=status, **fields)


def stall(session: Session) -> None:
    Session.objects.filter(pk=session.pk).update(
        runner="dead", leased_until=timezone.now() - timedelta(seconds=1)
    )


def check(scope, session: Session) -> Result:
    return services.check_child_sessions(scope=scope, session_id=session.pk)


def at_spawn_step(scope, session: Session) -> Interaction:
    """Run Initialize, then take the spawn step's command: its pending interaction."""
    step_once(scope, session)
    interaction, created = services.next_command(scope=scope, session_id=session.pk)
    assert created and interaction.step_name == "SpawnComponentTestingSessions"
    return interaction


@pytest.fixture(params=["database", "validation"])
def creation_failure(request, monkeypatch, context):
    """Make creating a child fail for the named components, through the database (a trigger
    rejects the INSERT) or through model validation, as the seed tests do."""

    def inject(names):
        if request.param == "database":
            return rejected_inserts(context.child_components.filter(name__in=names))
        return invalid_children(monkeypatch, names)

    inject.detail = INJECTED_DB_ERROR if request.param == "database" else INJECTED_VALIDATION_ERROR
    return inject


# Completeness of the result check


def test_stalled_children_have_their_own_category_and_are_not_still_running(scope, context_session):
    children = spawned(scope, context_session)
    stall(children["Token"])
    stall(children["User"])
    # A live lease is running, not stalled.
    Session.objects.filter(pk=children["Audit"].pk).update(
        runner="alive", leased_until=timezone.now() + timedelta(minutes=5)
    )

    result = check(scope, context_session)

    assert result.status == "error"
    assert result.error_message == (
        "Child sessions still running: Session, Audit; Child sessions stalled: User, Token"
    )


def test_a_stalled_child_that_finished_is_judged_by_its_status(scope, context_session):
    children = spawned(scope, context_session)
    for kid in children.values():
        set_status(kid, SessionStatus.COMPLETE)
    # A finished session holding an expired lease (written by hand) is not stalled.
    stall(children["User"])
    set_status(children["Token"], SessionStatus.FAILED, state={"error": "boom"})
    stall(children["Token"])

    assert check(scope, context_session).error_message == "Child sessions failed: Token (boom)"


def test_every_category_in_order_joined_by_semicolons(scope, project, context, context_session):
    children = spawned(scope, context_session)
    stall(children["Session"])
    set_status(children["Token"], SessionStatus.FAILED, state={"error": "fixtures missing"})
    set_status(children["Audit"], SessionStatus.CANCELLED)
    # Added after the spawn; spawn order puts the higher priority first whatever the name.
    make_component(project, "Beta", priority=0, parent_component=context)
    make_component(project, "Zed", priority=20, parent_component=context)

    result = check(scope, context_session)

    assert result.error_message == "; ".join(
        [
            "Child sessions still running: User",
            "Child sessions stalled: Session",
            "Child sessions failed: Token (fixtures missing)",
            "Child sessions cancelled: Audit",
            "Components without a child session: Zed, Beta",
        ]
    )


def test_components_without_a_child_keep_a_context_with_complete_children_from_ending(
    scope, project, context, context_session
):
    spawn = at_spawn_step(scope, context_session)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)
    make_component(project, "Cart", priority=3, parent_component=context)
    make_component(project, "Basket", priority=3, parent_component=context)

    answered, session = services.submit_result(
        scope=scope, session_id=context_session.pk, interaction_id=spawn.pk, result=Result("ok")
    )

    assert answered.result["status"] == "error"
    assert answered.result["error_message"] == "Components without a child session: Basket, Cart"
    assert session.status == SessionStatus.ACTIVE
    # The workflow loops back to the spawn step, not on to Finalize.
    again, _ = services.next_command(scope=scope, session_id=context_session.pk)
    assert again.step_name == "SpawnComponentTestingSessions"


def test_a_component_whose_child_could_not_be_created_is_named(
    scope, context, context_session, creation_failure
):
    with creation_failure(["Token"]):
        services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)

    assert check(scope, context_session).error_message == (
        "Components without a child session: Token"
    )


def test_a_component_of_another_context_is_not_missing(scope, project, context, context_session):
    spawned(scope, context_session)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.COMPLETE)
    other = make_component(project, "Billing", type="context")
    make_component(project, "Invoice", parent_component=other)

    assert check(scope, context_session).status == "ok"


# Spawn missing


def test_spawn_missing_creates_children_for_the_components_without_one(
    scope, project, context, context_session
):
    before = spawned(scope, context_session)
    make_component(project, "Zed", priority=20, parent_component=context)
    make_component(project, "Beta", priority=0, parent_component=context)

    command = services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    children = children_by_name(context_session)
    assert list(children) == ["Zed", *SPAWN_ORDER, "Beta"]
    assert command.metadata["child_session_ids"] == [str(c.pk) for c in children.values()]
    assert command.metadata["created_session_ids"] == [
        str(children["Zed"].pk),
        str(children["Beta"].pk),
    ]
    assert command.metadata["failed_components"] == []
    assert command.metadata["max_parallel"] is None
    assert (command.module, command.command) == ("SpawnComponentTestingSessions", "spawn_sessions")
    # The old children are the same rows.
    assert {name: children[name].pk for name in before} == {n: c.pk for n, c in before.items()}
    for name in ("Zed", "Beta"):
        new = children[name]
        assert (new.type, new.execution_mode, new.status) == (
            COMPONENT_TEST_SESSIONS,
            ExecutionMode.AGENTIC,
            SessionStatus.ACTIVE,
        )
        assert (new.agent, new.environment) == (context_session.agent, context_session.environment)
        assert (new.parent_session_id, new.project_id, new.user_id) == (
            context_session.pk,
            scope.project.pk,
            scope.user.pk,
        )


def test_spawn_missing_with_nothing_missing_creates_nothing(scope, context_session):
    spawned(scope, context_session)
    ids = spawn_order_ids(context_session)

    command = services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    assert command.metadata["child_session_ids"] == ids
    assert command.metadata["created_session_ids"] == []
    assert command.metadata["failed_components"] == []
    assert Session.objects.filter(parent_session=context_session).count() == 4


def test_spawn_missing_before_any_spawn_creates_every_child(scope, context_session):
    command = services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    ids = spawn_order_ids(context_session)
    assert [c.component.name for c in selectors.spawned_children(session=context_session)] == (
        SPAWN_ORDER
    )
    assert command.metadata["child_session_ids"] == command.metadata["created_session_ids"] == ids


def test_spawn_missing_carries_the_cap(scope, context):
    session = make_context_session(scope, context, max_parallel_children=3)

    command = services.spawn_missing_child_sessions(scope=scope, session_id=session.pk)

    assert command.metadata["max_parallel"] == 3


def test_spawn_missing_lists_and_logs_what_it_could_not_create(
    scope, context, context_session, creation_failure, caplog
):
    spawned(scope, context_session)
    # Token and Audit as a spawn whose creations failed leaves them: without a child.
    Session.objects.filter(
        parent_session=context_session, component__name__in=["Token", "Audit"]
    ).delete()
    token = context.child_components.get(name="Token")

    with creation_failure(["Token"]), caplog.at_level(logging.WARNING, STEP_LOGGER):
        command = services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    children = children_by_name(context_session)
    assert list(children) == ["User", "Session", "Audit"]
    assert command.metadata["child_session_ids"] == [str(c.pk) for c in children.values()]
    assert command.metadata["created_session_ids"] == [str(children["Audit"].pk)]
    [failure] = command.metadata["failed_components"]
    assert (failure["component_id"], failure["name"]) == (str(token.pk), "Token")
    assert creation_failure.detail in failure["reason"]
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.name == STEP_LOGGER
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 of 2" in warning.getMessage() and "Token" in warning.getMessage()
    for detail in ("Token", token.module_name, str(token.pk), creation_failure.detail):
        assert detail in error.getMessage()


def test_spawn_missing_lists_the_failures_even_when_none_could_be_created(
    scope, project, context, context_session, creation_failure, caplog
):
    spawned(scope, context_session)
    make_component(project, "Late", priority=1, parent_component=context)
    make_component(project, "Later", priority=1, parent_component=context)
    ids = spawn_order_ids(context_session)

    with creation_failure(["Late", "Later"]), caplog.at_level(logging.ERROR, STEP_LOGGER):
        command = services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    assert command.metadata["child_session_ids"] == ids
    assert command.metadata["created_session_ids"] == []
    assert [f["name"] for f in command.metadata["failed_components"]] == ["Late", "Later"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 2
    assert "component Late " in logged[0] and "component Later " in logged[1]


def test_spawn_missing_with_no_child_at_all_and_every_creation_failing_is_the_seed_error(
    scope, context_session, creation_failure
):
    with creation_failure(SPAWN_ORDER), pytest.raises(StepError) as error:
        services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    assert error.value.message == "Failed to spawn any child sessions"
    assert not Session.objects.filter(parent_session=context_session).exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_component", "Context component not found"),
        ("no_children", "No child components found for context"),
        (
            "wrong_child_type",
            "Invalid child session type: expected ComponentTestSessions, got "
            "ContextTestingSessions",
        ),
        (
            "not_a_context_session",
            "Only ContextTestingSessions sessions spawn child sessions, this one is "
            "ComponentTestSessions",
        ),
    ],
)
def test_spawn_missing_keeps_the_spawn_steps_errors(scope, project, context, setup, message):
    if setup == "no_component":
        session = make_context_session(scope, None)
    elif setup == "no_children":
        session = make_context_session(scope, make_component(project, type="context"))
    elif setup == "wrong_child_type":
        session = make_context_session(scope, context)
        make_child(
            session, context.child_components.get(name="User"), type=CONTEXT_TESTING_SESSIONS
        )
    else:
        session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)
    rows = Session.objects.count()

    with pytest.raises(StepError) as error:
        services.spawn_missing_child_sessions(scope=scope, session_id=session.pk)

    assert error.value.message == message
    assert Session.objects.count() == rows


@pytest.mark.parametrize("status", [SessionStatus.COMPLETE, SessionStatus.FAILED, "cancelled"])
def test_spawn_missing_of_a_finished_session_is_a_conflict(
    scope, project, context, context_session, status
):
    make_component(project, "Late", parent_component=context)
    set_status(context_session, status)

    with pytest.raises(Conflict) as error:
        services.spawn_missing_child_sessions(scope=scope, session_id=context_session.pk)

    assert error.value.message == f"Session is {status}; it cannot spawn child sessions"
    assert not Session.objects.filter(parent_session=context_session).exists()


def test_spawn_missing_does_not_see_another_projects_session(context_session, other_scope):
    with pytest.raises(NotFound) as error:
        services.spawn_missing_child_sessions(scope=other_scope, session_id=context_session.pk)

    assert error.value.message == "Session not found"
    assert not Session.objects.filter(parent_session=context_session).exists()


# Retry


@pytest.fixture
def children(scope, context_session) -> dict[str, Session]:
    return spawned(scope, context_session)


@pytest.mark.parametrize("status", [SessionStatus.FAILED, SessionStatus.CANCELLED])
def test_retry_reopens_the_session_as_its_next_attempt(scope, children, status):
    user = children["User"]
    set_status(user, status, state={"branch_name": "b", "error": "tests fail"})

    session = services.retry_session(scope=scope, session_id=user.pk)

    stored = Session.objects.get(pk=user.pk)
    assert (session.status, session.attempt) == (SessionStatus.ACTIVE, 2)
    assert (stored.status, stored.attempt) == (SessionStatus.ACTIVE, 2)
    assert stored.state == {"branch_name": "b", "previous_errors": ["tests fail"]}


def test_each_retry_adds_one_attempt_and_appends_its_error(scope, children):
    user = children["User"]
    set_status(user, SessionStatus.FAILED, state={"error": "first"})
    services.retry_session(scope=scope, session_id=user.pk)

    def finalize_fails(interaction):
        if interaction.step_name == "Finalize":
            return Result(status="error", error_message="push rejected")
        return Result(status="ok", code=0)

    # The second attempt fails the real way: its last step's error becomes state["error"].
    drive_to_end(scope, user, finalize_fails)
    session = services.retry_session(scope=scope, session_id=user.pk)

    assert session.attempt == 3
    assert session.state["previous_errors"] == ["first", "Finalize failed 3 times: push rejected"]
    assert "error" not in session.state


def test_retry_without_an_error_creates_an_empty_list_of_previous_errors(scope, children):
    set_status(children["User"], SessionStatus.CANCELLED)

    session = services.retry_session(scope=scope, session_id=children["User"].pk)

    assert session.state == {"previous_errors": []}


def test_retry_without_an_error_keeps_the_previous_errors(scope, children):
    set_status(children["User"], SessionStatus.CANCELLED, state={"previous_errors": ["old"]})

    session = services.retry_session(scope=scope, session_id=children["User"].pk)

    assert session.state == {"previous_errors": ["old"]}


def test_retry_keeps_the_history_and_starts_again_at_the_first_step(scope, children):
    user = children["User"]
    step_once(scope, user)
    step_once(scope, user)
    set_status(user, SessionStatus.FAILED, state={"error": "agent crashed"})

    services.retry_session(scope=scope, session_id=user.pk)
    interaction, created = services.next_command(scope=scope, session_id=user.pk)

    assert created and interaction.step_name == "Initialize"
    assert history_of(user) == ["Initialize", "GenerateTestsAndFixtures", "Initialize"]
    assert interaction.attempt == 2


def test_a_retried_session_runs_to_complete(scope, children):
    user = children["User"]
    step_once(scope, user)
    set_status(user, SessionStatus.FAILED, state={"error": "agent crashed"})

    services.retry_session(scope=scope, session_id=user.pk)
    drive_to_end(scope, user)

    user.refresh_from_db()
    assert (user.status, user.attempt) == (SessionStatus.COMPLETE, 2)
    assert history_of(user)[:2] == ["Initialize", "Initialize"]


def test_retry_closes_the_pending_interaction_so_a_late_report_is_refused(scope, children):
    user = children["User"]
    pending, _ = services.next_command(scope=scope, session_id=user.pk)
    services.cancel_session(scope=scope, session_id=user.pk)

    services.retry_session(scope=scope, session_id=user.pk)

    pending.refresh_from_db()
    assert not pending.is_pending
    assert pending.completed_at is not None
    assert (pending.result["status"], pending.result["error_message"]) == (
        "error",
        "Superseded by retry",
    )
    with pytest.raises(Conflict) as error:
        services.submit_result(
            scope=scope, session_id=user.pk, interaction_id=pending.pk, result=Result("ok")
        )
    assert error.value.message == "A result was already reported for this interaction"
    fresh, created = services.next_command(scope=scope, session_id=user.pk)
    assert created and fresh.pk != pending.pk and fresh.step_name == "Initialize"


def test_retry_leaves_answered_interactions_as_they_were(scope, children):
    user = children["User"]
    answered = step_once(scope, user)
    set_status(user, SessionStatus.FAILED)

    services.retry_session(scope=scope, session_id=user.pk)

    answered_after = Interaction.objects.get(pk=answered.pk)
    assert (answered_after.result, answered_after.completed_at) == (
        answered.result,
        answered.completed_at,
    )


def test_a_retried_session_holds_no_lease(scope, children):
    set_status(
        children["User"],
        SessionStatus.FAILED,
        runner="ci-1",
        leased_until=timezone.now() + timedelta(minutes=5),
    )

    session = services.retry_session(scope=scope, session_id=children["User"].pk)

    assert (session.runner, session.leased_until) == (None, None)


@pytest.mark.parametrize("status", [SessionStatus.ACTIVE, SessionStatus.COMPLETE])
def test_only_failed_or_cancelled_sessions_can_be_retried(scope, children, status):
    set_status(children["User"], status)

    with pytest.raises(Conflict) as error:
        services.retry_session(scope=scope, session_id=children["User"].pk)

    assert error.value.message == (
        f"Session is {status}; only failed or cancelled sessions can be retried"
    )
    assert Session.objects.get(pk=children["User"].pk).attempt == 1


@pytest.mark.parametrize(
    "parent_status", [SessionStatus.COMPLETE, SessionStatus.FAILED, "cancelled"]
)
def test_a_child_of_a_finished_parent_cannot_be_retried(
    scope, context_session, children, parent_status
):
    set_status(children["User"], SessionStatus.FAILED, state={"error": "x"})
    set_status(context_session, parent_status)

    with pytest.raises(Conflict) as error:
        services.retry_session(scope=scope, session_id=children["User"].pk)

    assert error.value.message == f"Parent session is {parent_status}"
    stored = Session.objects.get(pk=children["User"].pk)
    assert (stored.status, stored.attempt, stored.state) == ("failed", 1, {"error": "x"})


def test_the_sessions_own_status_is_checked_before_its_parents(scope, context_session, children):
    set_status(context_session, SessionStatus.CANCELLED)

    with pytest.raises(Conflict) as error:
        services.retry_session(scope=scope, session_id=children["User"].pk)

    assert error.value.message == (
        "Session is active; only failed or cancelled sessions can be retried"
    )


def test_a_failed_context_session_is_retried_like_any_session(scope, context_session):
    set_status(context_session, SessionStatus.FAILED, state={"error": "Finalize failed"})

    session = services.retry_session(scope=scope, session_id=context_session.pk)

    assert (session.status, session.attempt) == (SessionStatus.ACTIVE, 2)


def test_retry_does_not_see_another_projects_session(children, other_scope):
    set_status(children["User"], SessionStatus.FAILED)

    with pytest.raises(NotFound) as error:
        services.retry_session(scope=other_scope, session_id=children["User"].pk)

    assert error.value.message == "Session not found"
    assert Session.objects.get(pk=children["User"].pk).status == SessionStatus.FAILED


# Retry children


def test_retry_children_retries_the_failed_and_cancelled_in_spawn_order(
    scope, context_session, children
):
    set_status(children["Audit"], SessionStatus.FAILED, state={"error": "a"})
    set_status(children["User"], SessionStatus.CANCELLED)
    set_status(children["Session"], SessionStatus.COMPLETE)

    retried = services.retry_child_sessions(scope=scope, session_id=context_session.pk)

    assert [c.pk for c in retried] == [children["User"].pk, children["Audit"].pk]
    rows = {
        c.component.name: (c.status, c.attempt, c.state)
        for c in selectors.spawned_children(session=context_session)
    }
    assert rows == {
        "User": ("active", 2, {"previous_errors": []}),
        "Session": ("complete", 1, {}),
        "Token": ("active", 1, {}),
        "Audit": ("active", 2, {"previous_errors": ["a"]}),
    }


def test_retry_children_supersedes_their_pending_interactions(scope, context_session, children):
    pending, _ = services.next_command(scope=scope, session_id=children["Token"].pk)
    running, _ = services.next_command(scope=scope, session_id=children["User"].pk)
    services.cancel_session(scope=scope, session_id=children["Token"].pk)

    services.retry_child_sessions(scope=scope, session_id=context_session.pk)

    pending.refresh_from_db()
    running.refresh_from_db()
    assert pending.result["error_message"] == "Superseded by retry"
    # A child that was not retried keeps its command.
    assert running.is_pending


def test_retry_children_with_none_to_retry_is_an_empty_list(scope, context_session, children):
    assert services.retry_child_sessions(scope=scope, session_id=context_session.pk) == []
    assert set(
        Session.objects.filter(parent_session=context_session).values_list("attempt", flat=True)
    ) == {1}


def test_retried_children_are_running_again_in_the_result_check(scope, context_session, children):
    for kid in children.values():
        set_status(kid, SessionStatus.COMPLETE)
    set_status(children["Token"], SessionStatus.FAILED, state={"error": "boom"})
    assert check(scope, context_session).error_message == "Child sessions failed: Token (boom)"

    services.retry_child_sessions(scope=scope, session_id=context_session.pk)

    assert check(scope, context_session).error_message == "Child sessions still running: Token"


def test_a_context_ends_complete_once_its_retried_children_complete(
    scope, context_session, children
):
    spawn = at_spawn_step(scope, context_session)
    for kid in children.values():
        drive_to_end(scope, kid)
    set_status(children["Token"], SessionStatus.FAILED, state={"error": "boom"})
    answered, _ = services.submit_result(
        scope=scope, session_id=context_session.pk, interaction_id=spawn.pk, result=Result("ok")
    )
    assert answered.result["error_message"] == "Child sessions failed: Token (boom)"

    [retried] = services.retry_child_sessions(scope=scope, session_id=context_session.pk)
    drive_to_end(scope, retried)
    drive_to_end(scope, context_session)

    context_session.refresh_from_db()
    assert context_session.status == SessionStatus.COMPLETE
    assert history_of(context_session)[-1] == "Finalize"


def test_retry_children_of_a_component_session_is_a_step_error(scope, children):
    with pytest.raises(StepError) as error:
        services.retry_child_sessions(scope=scope, session_id=children["User"].pk)

    assert error.value.message == (
        "Only ContextTestingSessions sessions have child sessions, this one is "
        "ComponentTestSessions"
    )


@pytest.mark.parametrize("status", [SessionStatus.COMPLETE, SessionStatus.FAILED, "cancelled"])
def test_retry_children_of_a_finished_context_is_a_conflict(
    scope, context_session, children, status
):
    set_status(children["User"], SessionStatus.FAILED)
    set_status(context_session, status)

    with pytest.raises(Conflict) as error:
        services.retry_child_sessions(scope=scope, session_id=context_session.pk)

    assert error.value.message == f"Session is {status}; its children cannot be retried"
    assert Session.objects.get(pk=children["User"].pk).status == SessionStatus.FAILED


def test_retry_children_does_not_see_another_projects_session(
    context_session, children, other_scope
):
    set_status(children["User"], SessionStatus.FAILED)

    with pytest.raises(NotFound):
        services.retry_child_sessions(scope=other_scope, session_id=context_session.pk)

    assert Session.objects.get(pk=children["User"].pk).status == SessionStatus.FAILED
