"""Races between clients that call the service layer for one session at the same moment.

Each client is a real thread with its own database connection; a barrier releases them
together once every one is connected, so the calls overlap in the database rather than in
Python. A scenario builds its own data, runs its races and asserts what every client and the
database must show. The PostgreSQL tests (``test_postgres_races.py``) and the SQLite-file
runner (``sqlite_file_races.py``) run the same scenarios.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from core.errors import Conflict
from core.scope import Scope
from sessions_app import selectors, services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows.types import Result
from tests.factories import make_context, make_context_session, make_project, make_user

CLIENTS = 8
BARRIER_TIMEOUT_S = 30
JOIN_TIMEOUT_S = 120

# Threads with connections of their own need committed data and real row locks: PostgreSQL.
POSTGRES_ONLY = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (set DATABASE_URL, or TEST_POSTGRES_URL for scripts/test); "
        "the SQLite pass runs the service-level races in test_sqlite_file_races.py",
    ),
]

# (name, priority); spawn order is priority descending, then name ascending.
COMPONENTS = [
    ("Billing", 3),
    ("User", 10),
    ("Audit", 0),
    ("Session", 5),
    ("Token", 5),
    ("Search", 1),
]
SPAWN_ORDER = ["User", "Session", "Token", "Billing", "Search", "Audit"]
COMPONENT_STEPS = ["Initialize", "GenerateTestsAndFixtures", "RunTests", "VerifyTests", "Finalize"]
CONTEXT_STEPS = ["Initialize", "SpawnComponentTestingSessions", "Finalize"]


@dataclass
class Outcome:
    """What one client got: a value, or the exception its call raised."""

    value: Any = None
    error: BaseException | None = None


def run_together(clients: int, call: Callable[[int], Any]) -> list[Outcome]:
    """Run ``call(index)`` in ``clients`` threads released at the same moment."""
    barrier = threading.Barrier(clients)
    outcomes = [Outcome() for _ in range(clients)]

    def client(index: int) -> None:
        # Every failure, even a broken barrier, is an outcome.
        try:
            # Connect before the barrier, so that connection set-up does not stagger the calls.
            connection.ensure_connection()
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
        except BaseException as error:
            # The others would wait for this client in vain. Only before the barrier: once it
            # has opened, aborting it would break the wait of a client not yet woken.
            barrier.abort()
            outcomes[index].error = error
            connection.close()
            return
        try:
            outcomes[index].value = call(index)
        except BaseException as error:
            outcomes[index].error = error
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a client never returned"
    return outcomes


def errors_of(outcomes: list[Outcome]) -> list[str]:
    return [repr(outcome.error) for outcome in outcomes if outcome.error is not None]


def fresh_context_session(components: list[tuple[str, int]] = COMPONENTS) -> tuple[Scope, Session]:
    user = make_user()
    project = make_project(user)
    scope = Scope(user=user, project=project)
    return scope, make_context_session(scope, make_context(project, components))


def ok(_: Interaction) -> Result:
    return Result(status="ok", code=0)


def spawned_children(session: Session) -> list[Session]:
    return list(selectors.child_sessions(session=session))


def assert_one_child_per_component(session: Session) -> list[str]:
    """The children in the database: exactly one per component, in spawn order. Their ids."""
    children = spawned_children(session)
    assert [child.component.name for child in children] == SPAWN_ORDER
    return [str(child.pk) for child in children]


# --- Scenarios ----------------------------------------------------------------------------


def spawn_race(clients: int = CLIENTS) -> None:
    """Every client spawns the same parent: one child per component, the same ids (in spawn
    order) for everyone, no error, and exactly one caller actually created them."""
    scope, session = fresh_context_session()

    outcomes = run_together(
        clients, lambda _: services.spawn_child_sessions(scope=scope, session_id=session.pk)
    )

    assert errors_of(outcomes) == []
    expected = assert_one_child_per_component(session)
    handed_out = [outcome.value.metadata["child_session_ids"] for outcome in outcomes]
    assert handed_out == [expected] * clients
    creators = [o for o in outcomes if not o.value.metadata["already_spawned"]]
    assert len(creators) == 1
    assert all(o.value.metadata["failed_components"] == [] for o in outcomes)


def spawn_doors_race(clients: int = CLIENTS) -> None:
    """Half the clients spawn directly (the admin action, the command, POST .../spawn/), half
    ask for the next command while it is the spawn step: still one set of children and one
    pending spawn interaction, and everyone sees the same ids."""
    scope, session = fresh_context_session()
    initialize, _ = services.next_command(scope=scope, session_id=session.pk)
    services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=initialize.pk, result=ok(initialize)
    )

    def call(index: int) -> tuple[list[str], Interaction | None, bool]:
        if index % 2:
            command = services.spawn_child_sessions(scope=scope, session_id=session.pk)
            return command.metadata["child_session_ids"], None, False
        interaction, created = services.next_command(scope=scope, session_id=session.pk)
        return interaction.command["metadata"]["child_session_ids"], interaction, created

    outcomes = run_together(clients, call)

    assert errors_of(outcomes) == []
    expected = assert_one_child_per_component(session)
    assert [outcome.value[0] for outcome in outcomes] == [expected] * clients
    handed = [outcome.value for outcome in outcomes if outcome.value[1] is not None]
    assert len({interaction.pk for _, interaction, _ in handed}) == 1
    assert sum(created for _, _, created in handed) == 1
    pending = Interaction.objects.filter(session=session, completed_at__isnull=True)
    assert [i.step_name for i in pending] == ["SpawnComponentTestingSessions"]


def raced_next_command(scope: Scope, session: Session, clients: int = CLIENTS) -> Interaction:
    """Every client asks for the next command at once: one interaction is created and every
    client is handed that one."""
    asked = run_together(
        clients, lambda _: services.next_command(scope=scope, session_id=session.pk)
    )
    assert errors_of(asked) == []
    assert len({outcome.value[0].pk for outcome in asked}) == 1
    assert sum(outcome.value[1] for outcome in asked) == 1
    return asked[0].value[0]


def raced_report(
    scope: Scope, session: Session, interaction: Interaction, clients: int = CLIENTS
) -> None:
    """Every client reports an ok result for the interaction at once: one report applies, the
    others are conflicts with the exact text."""

    def report(_: int) -> tuple[Interaction, Session]:
        return services.submit_result(
            scope=scope,
            session_id=session.pk,
            interaction_id=interaction.pk,
            result=ok(interaction),
        )

    reported = run_together(clients, report)
    applied = [outcome for outcome in reported if outcome.error is None]
    conflicts = [outcome.error for outcome in reported if isinstance(outcome.error, Conflict)]
    assert len(applied) == 1, errors_of(reported)
    assert len(conflicts) == clients - 1, errors_of(reported)
    assert {conflict.message for conflict in conflicts} == {services.RESULT_ALREADY_REPORTED}
    interaction.refresh_from_db()
    assert interaction.result["status"] == "ok"


def drive_with_races(scope: Scope, session: Session, clients: int = CLIENTS) -> list[str]:
    """Drive a session to its end with every step raced; the step names in order. A spawn
    step's children are driven the same way before its result is reported."""
    steps = []
    for _ in range(10):
        interaction = raced_next_command(scope, session, clients)
        if interaction.step_name == "SpawnComponentTestingSessions":
            child_ids = interaction.command["metadata"]["child_session_ids"]
            for child in Session.objects.filter(pk__in=child_ids):
                assert drive_with_races(scope, child, clients) == COMPONENT_STEPS
        raced_report(scope, session, interaction, clients)
        steps.append(interaction.step_name)
        session.refresh_from_db()
        if session.is_finished:
            return steps
    raise AssertionError(f"{session} did not finish")


def workflow_race(clients: int = CLIENTS) -> None:
    """A whole context session and its children, every command asked for and every result
    reported by all clients at once: each session ends complete with exactly one
    interaction per step."""
    scope, session = fresh_context_session(COMPONENTS[:3])

    assert drive_with_races(scope, session, clients) == CONTEXT_STEPS

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    assert Interaction.objects.filter(session=session).count() == len(CONTEXT_STEPS)
    children = spawned_children(session)
    assert [child.component.name for child in children] == ["User", "Billing", "Audit"]
    for child in children:
        assert child.status == SessionStatus.COMPLETE
        assert Interaction.objects.filter(session=child).count() == len(COMPONENT_STEPS)


# Module names that {module_snake} folds into one test file.
FOLDED_MODULES = [
    "click.utils",
    "click._utils",
    "click.__utils",
    "click.utils_",
    "Click.utils",
    "click.Utils",
    "click._utils_",
    "CLICK.utils",
]


def shared_test_file_race(clients: int = len(FOLDED_MODULES)) -> None:
    """Every client creates a component whose test file is the others': exactly one is
    created, every other client is refused naming it. The check is slowed down, so that every
    client has checked before any writes unless the check and the write are one critical
    section (the project's row lock)."""
    from components_app import services as component_services
    from components_app import test_paths
    from components_app.models import Component
    from core.errors import InvalidInput

    user = make_user()
    project = make_project(user)
    project.test_path_template = "tests/test_{module_snake}.py"
    project.save()
    scope = Scope(user=user, project=project)
    checked = test_paths.collision_with

    def slow_check(*args: Any, **kwargs: Any) -> str | None:
        answer = checked(*args, **kwargs)
        threading.Event().wait(0.2)
        return answer

    test_paths.collision_with = slow_check
    try:
        outcomes = run_together(
            clients,
            lambda i: component_services.create_component(
                scope=scope, name=f"c{i}", module_name=FOLDED_MODULES[i], type="module"
            ),
        )
    finally:
        test_paths.collision_with = checked
    created = [o.value for o in outcomes if o.error is None]
    assert len(created) == 1, errors_of(outcomes)
    [winner] = created
    refusals = [o.error for o in outcomes if o.error is not None]
    assert all(isinstance(error, InvalidInput) for error in refusals), errors_of(outcomes)
    taken = test_paths.TAKEN.format(path="tests/test_click_utils.py", other=winner.module_name)
    assert {tuple(error.errors["module_name"]) for error in refusals} == {(taken,)}
    assert list(Component.objects.filter(project=project)) == [winner]


SCENARIOS = [spawn_race, spawn_doors_race, workflow_race, shared_test_file_race]
