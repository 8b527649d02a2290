"""What spawning and checking children cost in queries, pinned so that a regression fails CI.

Spawning is one bulk insert, whatever the number of children. A driver may split that insert
into several INSERT statements: SQLite binds at most 999 parameters per statement, so one
insert carries ``999 // 14`` = 71 sessions; PostgreSQL takes them all at once. The expected
counts below add exactly those driver-imposed statements to a constant, asking the backend
for its batch size rather than assuming one. Timings live in bench/spawn.py, never here.
"""

import logging
import math
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from components_app.models import Component
from core.errors import StepError
from sessions_app import selectors, services
from sessions_app.models import ExecutionMode, Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from sessions_app.workflows.steps import spawn_component_testing_sessions as spawn_step
from sessions_app.workflows.types import Result
from tests.factories import make_context, make_context_session
from tests.sessions_app.workflow_driver import step_once
from tests.sessions_app.workflows.failures import invalid_children, rejected_inserts

SESSION_INSERT = f'INSERT INTO "{Session._meta.db_table}"'

# In a test (itself a transaction) the spawn is: the session, savepoint, the context, the locked
# parent, existing children, the child components, savepoint, the INSERTs, release, the
# children's ids read back in spawn order and kept (``ChildOrder``), release.
SPAWN_QUERIES_BESIDES_INSERTS = 11
# The session as the service loads it, the session as the step reloads it, the children that
# are not complete with their components and failure reasons, the components without a child.
CHECK_QUERIES = 4


def insert_statements(size: int) -> int:
    """How many INSERT statements this database's driver needs for one bulk insert."""
    batch = connection.ops.bulk_batch_size(Session._meta.concrete_fields, [None] * size)
    return math.ceil(size / batch)


def wide_context(scope, size: int) -> Session:
    """A context session whose context has ``size`` child components, built in bulk."""
    context = make_context(scope.project, [])
    Component.objects.bulk_create(
        Component(
            project=scope.project,
            name=f"C{index:05d}",
            module_name=f"App.C{index:05d}",
            type="module",
            priority=index % 7,
            parent_component=context,
        )
        for index in range(size)
    )
    return make_context_session(scope, context)


def inserts_in(captured) -> int:
    return sum(1 for query in captured.captured_queries if query["sql"].startswith(SESSION_INSERT))


# Sizes on both sides of one SQLite INSERT (35 sessions of 28 columns in its 999 parameters):
# 150 takes five statements there.
@pytest.mark.parametrize("size", [5, 150])
def test_spawn_costs_a_constant_plus_the_drivers_insert_statements(
    scope, size, django_assert_max_num_queries
):
    session = wide_context(scope, size)
    inserts = insert_statements(size)

    with django_assert_max_num_queries(SPAWN_QUERIES_BESIDES_INSERTS + inserts) as captured:
        command = services.spawn_child_sessions(scope=scope, session_id=session.pk)

    assert len(command.metadata["child_session_ids"]) == size
    assert inserts_in(captured) == inserts
    assert len(captured) - inserts_in(captured) == SPAWN_QUERIES_BESIDES_INSERTS


def test_sqlite_splits_150_children_into_five_inserts_and_postgresql_takes_one():
    # The accounting above, spelled out: only INSERT statements grow with the children.
    assert insert_statements(5) == 1
    assert insert_statements(150) == (5 if connection.vendor == "sqlite" else 1)


def test_spawn_falls_back_to_one_insert_per_child_only_when_the_bulk_insert_fails(
    scope, django_assert_max_num_queries, caplog
):
    # The fallback is linear by design and runs only after the database refused the bulk
    # insert: a savepoint, an INSERT and a release per child, a rollback for each refused
    # insert (the bulk one and the loser's). It keeps the survivors and logs the loser.
    size = 6
    session = wide_context(scope, size)
    loser = Component.objects.get(parent_component=session.component, name="C00003")
    refused_bulk = insert_statements(size) + 1
    one_by_one = 3 * size + 1

    with (
        rejected_inserts([loser]),
        caplog.at_level(logging.ERROR, spawn_step.logger.name),
        django_assert_max_num_queries(SPAWN_QUERIES_BESIDES_INSERTS + refused_bulk + one_by_one),
    ):
        command = services.spawn_child_sessions(scope=scope, session_id=session.pk)

    assert len(command.metadata["child_session_ids"]) == size - 1
    assert [f["name"] for f in command.metadata["failed_components"]] == ["C00003"]
    assert any("C00003" in record.getMessage() for record in caplog.records)


REASONS = {0: "boom", 1: "tests failed", 2: "no reason recorded"}


def children_in_every_state(scope, size: int) -> Session:
    """``size`` children: child i is active, complete, failed or cancelled as i % 4 is 0 to 3;
    a failed child's reason is in its state, in an errored interaction or nowhere (i % 3)."""
    session = wide_context(scope, size)
    components = Component.objects.filter(parent_component=session.component).order_by("name")
    statuses = [
        SessionStatus.ACTIVE,
        SessionStatus.COMPLETE,
        SessionStatus.FAILED,
        SessionStatus.CANCELLED,
    ]
    children = [
        Session(
            project=scope.project,
            user=scope.user,
            type=COMPONENT_TEST_SESSIONS,
            execution_mode=ExecutionMode.AGENTIC,
            component=component,
            parent_session=session,
            status=statuses[index % 4],
            state={"error": REASONS[0]} if index % 4 == 2 and index % 3 == 0 else {},
        )
        for index, component in enumerate(components)
    ]
    Session.objects.bulk_create(children)
    Interaction.objects.bulk_create(
        Interaction(
            session=child,
            step_name="RunTests",
            command={},
            result={"status": "error", "error_message": REASONS[1]},
            completed_at=timezone.now(),
        )
        for index, child in enumerate(children)
        if index % 4 == 2 and index % 3 == 1
    )
    return session


def expected_verdict(size: int) -> str:
    order = sorted(range(size), key=lambda i: (-(i % 7), i))  # priority desc, then name
    running = [f"C{i:05d}" for i in order if i % 4 == 0]
    failed = [f"C{i:05d} ({REASONS[i % 3]})" for i in order if i % 4 == 2]
    cancelled = [f"C{i:05d}" for i in order if i % 4 == 3]
    return (
        f"Child sessions still running: {', '.join(running)}; "
        f"Child sessions failed: {', '.join(failed)}; "
        f"Child sessions cancelled: {', '.join(cancelled)}"
    )


@pytest.mark.parametrize("size", [5, 5000])
def test_result_check_costs_the_same_queries_for_5_and_5000_children(
    scope, size, django_assert_max_num_queries
):
    session = children_in_every_state(scope, size)

    with django_assert_max_num_queries(CHECK_QUERIES):
        result = services.check_child_sessions(scope=scope, session_id=session.pk)

    assert result.status == "error"
    assert result.error_message == expected_verdict(size)


def test_result_check_over_5000_complete_children_is_ok_in_the_same_queries(
    scope, django_assert_max_num_queries
):
    session = wide_context(scope, 5000)
    Session.objects.bulk_create(
        Session(
            project=scope.project,
            user=scope.user,
            type=COMPONENT_TEST_SESSIONS,
            component=component,
            parent_session=session,
            status=SessionStatus.COMPLETE,
        )
        for component in Component.objects.filter(parent_component=session.component)
    )

    with django_assert_max_num_queries(CHECK_QUERIES):
        result = services.check_child_sessions(scope=scope, session_id=session.pk)

    assert result.status == "ok"


# The spawn step checks the fields every child shares once per spawn instead of once per child
# (the cost half of issue 7). This pins that it refuses exactly what full_clean refused, with
# the same details, and still logs every refused child with its component's name.


def full_clean_details(child: Session) -> str:
    try:
        child.full_clean(
            exclude=spawn_step._LOADED_RELATIONS, validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        return spawn_step._describe(error)
    return ""


def test_a_bad_shared_field_refuses_every_child_with_full_cleans_details(
    scope, monkeypatch, caplog
):
    context = make_context(scope.project, [("User", 1), ("Token", 0)])
    session = make_context_session(scope, context)

    class Modes:
        AGENTIC = "turbo"  # not an execution mode

    monkeypatch.setattr(spawn_step, "ExecutionMode", Modes)
    with invalid_children(monkeypatch, ["Token"]):
        with (
            caplog.at_level(logging.ERROR, spawn_step.logger.name),
            pytest.raises(StepError) as error,
        ):
            services.spawn_child_sessions(scope=scope, session_id=session.pk)

        expected = {
            component.name: full_clean_details(
                Session(
                    type=COMPONENT_TEST_SESSIONS,
                    component=component,
                    parent_session=session,
                    execution_mode="turbo",
                    agent=session.agent,
                    environment=session.environment,
                    project=scope.project,
                    user=scope.user,
                )
            )
            for component in context.child_components.all()
        }

    assert error.value.message == "Failed to spawn any child sessions"
    assert "execution_mode: " in expected["User"]
    assert expected["Token"].startswith("execution_mode: ")
    assert "component: injected validation failure" in expected["Token"]
    logged = [r.getMessage() for r in caplog.records if r.name == spawn_step.logger.name]
    assert len(logged) == 2
    for name, message in zip(["User", "Token"], logged, strict=True):
        assert f"component {name} " in message
        assert message.endswith(f": {expected[name]}")


# Claiming a child and the result check once every child is complete, at two sizes: the same
# count at both says nothing in them grows with the children.

# Savepoint, the locked context, the claimable child (locked), the lease's save, the child's
# latest interaction, the context's component (the child's branch is named after it), the new
# interaction, the child's first step's time, release; with a cap, one more to count the
# children holding a live lease.
CLAIM_QUERIES = 9
# Savepoint, whether the session is a child of a context with a budget (whose row it would lock
# first), the locked session, the interaction, the result check's own three (the session
# reloaded, the children not complete: none, the components without a child: none), the
# interaction's save, the session's (its last result's time), release.
ALL_COMPLETE_SUBMIT_QUERIES = 10


@pytest.mark.parametrize("size", [3, 30])
@pytest.mark.parametrize("cap", [None, 2])
def test_claim_child_costs_the_same_queries_for_3_and_30_children(
    scope, size, cap, django_assert_num_queries
):
    session = wide_context(scope, size)
    Session.objects.filter(pk=session.pk).update(max_parallel_children=cap)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    first, second, *_ = selectors.spawned_children(session=session)
    # The claim must look past a finished child and a leased one.
    Session.objects.filter(pk=first.pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=second.pk).update(
        runner="busy", leased_until=timezone.now() + timedelta(minutes=5)
    )

    with django_assert_num_queries(CLAIM_QUERIES + (cap is not None)):
        child, interaction = services.claim_child(scope=scope, session_id=session.pk, runner="r")

    expected = list(selectors.spawned_children(session=session))[2]
    assert (child.pk, child.runner, interaction.step_name) == (expected.pk, "r", "Initialize")


@pytest.mark.parametrize("size", [3, 30])
def test_the_result_check_with_every_child_complete_costs_the_same_queries_for_3_and_30(
    scope, size, django_assert_num_queries
):
    session = wide_context(scope, size)
    step_once(scope, session)
    spawn, _ = services.next_command(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(status=SessionStatus.COMPLETE)

    with django_assert_num_queries(ALL_COMPLETE_SUBMIT_QUERIES):
        interaction, updated = services.submit_result(
            scope=scope, session_id=session.pk, interaction_id=spawn.pk, result=Result("ok")
        )

    assert (spawn.step_name, interaction.result["status"]) == (
        "SpawnComponentTestingSessions",
        "ok",
    )
    assert updated.status == SessionStatus.ACTIVE
    next_step, _ = services.next_command(scope=scope, session_id=session.pk)
    assert next_step.step_name == "Finalize"
