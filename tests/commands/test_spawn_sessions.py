"""``manage.py spawn_sessions <session_id> [--json]``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions_app.models import Session
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.commands.conftest import run
from tests.conftest import SPAWN_ORDER
from tests.factories import make_context, make_context_session
from tests.sessions_app.workflows.failures import INJECTED_VALIDATION_ERROR, invalid_children

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def spawn_order_ids(session) -> list[str]:
    children = Session.objects.filter(parent_session=session).select_related("component")
    by_name = {child.component.name: str(child.pk) for child in children}
    return [by_name[name] for name in SPAWN_ORDER if name in by_name]


def test_prints_the_child_ids_in_spawn_order(context_session):
    status, stdout, stderr = run("spawn_sessions", str(context_session.pk))

    assert status == 0
    assert stdout.splitlines() == spawn_order_ids(context_session)
    assert len(stdout.splitlines()) == 4
    assert stderr == ""


def test_runs_as_the_sessions_owner_in_its_project(user, context_session):
    run("spawn_sessions", str(context_session.pk))

    children = Session.objects.filter(parent_session=context_session)
    assert {(c.user_id, c.project_id) for c in children} == {(user.pk, context_session.project_id)}


def test_a_second_run_prints_the_same_children(context_session):
    _, first, _ = run("spawn_sessions", str(context_session.pk))

    status, second, stderr = run("spawn_sessions", str(context_session.pk))

    assert (status, second, stderr) == (0, first, "")
    assert Session.objects.filter(parent_session=context_session).count() == 4


def test_json_prints_the_command(context_session):
    status, stdout, _ = run("spawn_sessions", str(context_session.pk), "--json")

    assert status == 0
    command = json.loads(stdout)
    assert command["module"] == "SpawnComponentTestingSessions"
    assert command["command"] == "spawn_sessions"
    assert command["execution_strategy"] == "async"
    assert command["metadata"] == {
        "timestamp": command["timestamp"],
        "child_session_ids": spawn_order_ids(context_session),
        "created_session_ids": spawn_order_ids(context_session),
        "already_spawned": False,
        "failed_components": [],
        "max_parallel": None,
    }
    assert set(command) == {"module", "command", "metadata", "execution_strategy", "timestamp"}


def test_partial_failure_prints_the_children_and_warns_on_stderr(context_session, monkeypatch):
    with invalid_children(monkeypatch, ["Token"]):
        status, stdout, stderr = run("spawn_sessions", str(context_session.pk))

    assert status == 0
    assert stdout.splitlines() == spawn_order_ids(context_session)
    assert len(stdout.splitlines()) == 3
    assert stderr.startswith("Warning: could not create child sessions for Token (")
    assert INJECTED_VALIDATION_ERROR in stderr


def test_a_step_error_prints_the_exact_text_on_stderr_and_exits_1(scope, project):
    session = make_context_session(scope, make_context(project, []))

    status, stdout, stderr = run("spawn_sessions", str(session.pk))

    assert (status, stdout, stderr) == (1, "", "No child components found for context\n")


def test_a_session_that_does_not_spawn_is_an_error(scope, context):
    session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)

    status, stdout, stderr = run("spawn_sessions", str(session.pk), "--json")

    assert (status, stdout) == (1, "")
    assert stderr == (
        "Only ContextTestingSessions sessions spawn child sessions, "
        "this one is ComponentTestSessions\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_session_is_not_found(session_id):
    assert run("spawn_sessions", session_id) == (1, "", "Session not found\n")


def manage(*args: str, database: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_real_command_line(tmp_path):
    """Through ``python manage.py``, in a process of its own with a database of its own."""
    database = tmp_path / "db.sqlite3"
    assert manage("migrate", "--noinput", database=database).returncode == 0
    seeded = manage("seed_demo", database=database)
    assert seeded.returncode == 0, seeded.stderr
    session_id = seeded.stdout.strip().splitlines()[-1].split()[-1]

    unknown = manage("spawn_sessions", "00000000-0000-0000-0000-000000000000", database=database)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (1, "", "Session not found\n")

    spawned = manage("spawn_sessions", session_id, database=database)
    assert (spawned.returncode, spawned.stderr) == (0, "")
    child_ids = spawned.stdout.splitlines()
    assert len(child_ids) == 5

    not_a_context = manage("spawn_sessions", child_ids[0], database=database)
    assert (not_a_context.returncode, not_a_context.stdout) == (1, "")
    assert not_a_context.stderr == (
        "Only ContextTestingSessions sessions spawn child sessions, "
        "this one is ComponentTestSessions\n"
    )
