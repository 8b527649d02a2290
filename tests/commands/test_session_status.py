"""``manage.py session_status <session_id>``."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.timefmt import api_time
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run
from tests.commands.test_spawn_sessions import MANAGE_PY, manage
from tests.factories import make_component, make_context, make_context_session


def test_shows_the_session_its_children_in_spawn_order_and_a_summary(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    children = {c.component.name: c for c in Session.objects.filter(parent_session=context_session)}
    Session.objects.filter(pk=children["User"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Session"].pk).update(
        runner="laptop-1", leased_until=timezone.now() - timedelta(minutes=5)
    )
    Session.objects.filter(pk=children["Token"].pk).update(
        status=SessionStatus.FAILED, state={"error": "RunTests: 3 tests failed"}, attempt=2
    )

    status, stdout, stderr = run("session_status", str(context_session.pk))

    assert (status, stderr) == (0, "")
    lines = stdout.splitlines()
    assert lines[:7] == [
        f"Session {context_session.pk}",
        "  type:      ContextTestingSessions",
        "  status:    active",
        f"  component: Accounts ({context_session.component.module_name})",
        "  attempt:   1",
        "  branch:    -",
        "  lease:     none",
    ]
    header, *rows = lines[8:13]
    assert header.split() == [
        "COMPONENT", "STATUS", "ATTEMPT", "RUNNER", "LEASED", "UNTIL", "FAILURE", "REASON",
        "SESSION",
    ]  # fmt: skip
    assert [row.split()[:3] for row in rows] == [
        ["User", "complete", "1"],
        ["Session", "stalled", "1"],
        ["Token", "failed", "2"],
        ["Audit", "active", "1"],
    ]
    assert rows[1].split()[3:5] == [
        "laptop-1",
        api_time(Session.objects.get(pk=children["Session"].pk).leased_until),
    ]
    assert rows[2].split(maxsplit=3)[3] == f"RunTests: 3 tests failed  {children['Token'].pk}"
    assert rows[3].split()[3] == str(children["Audit"].pk)
    assert lines[-1] == "4 children: 1 complete, 2 active (1 stalled), 1 failed, 0 cancelled"


def test_shows_who_holds_the_lease_and_until_when(scope, context_session):
    until = timezone.now() + timedelta(minutes=10)
    Session.objects.filter(pk=context_session.pk).update(runner="ci-7", leased_until=until)

    _, stdout, _ = run("session_status", str(context_session.pk))

    assert f"  lease:     ci-7 until {api_time(until)}" in stdout.splitlines()


def test_a_session_without_children(scope, context_session):
    status, stdout, _ = run("session_status", str(context_session.pk))

    assert status == 0
    assert "COMPONENT" not in stdout
    assert stdout.splitlines()[-1] == (
        "0 children: 0 complete, 0 active (0 stalled), 0 failed, 0 cancelled"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_session_is_not_found(session_id):
    assert run("session_status", session_id) == (1, "", "Session not found\n")


@pytest.mark.parametrize("size", [3, 40])
def test_costs_the_same_queries_whatever_the_number_of_children(
    scope, project, size, django_assert_num_queries
):
    context = make_context(project, [])
    for index in range(size):
        make_component(project, f"C{index:03d}", priority=index % 4, parent_component=context)
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session, component__priority=0).update(
        status=SessionStatus.FAILED
    )

    # The session with its project, owner and component; the children with their reasons.
    with django_assert_num_queries(2):
        status, stdout, _ = run("session_status", str(session.pk))

    assert status == 0
    assert stdout.count("no reason recorded") == len(range(0, size, 4))


def test_a_failed_session_shows_its_own_reason(scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(
        status=SessionStatus.FAILED, state={"error": "Finalize: push rejected"}
    )

    _, stdout, _ = run("session_status", str(context_session.pk))

    assert "  reason:    Finalize: push rejected" in stdout.splitlines()


def test_the_json_output_carries_the_session_its_children_and_the_summary(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    children = {c.component.name: c for c in Session.objects.filter(parent_session=context_session)}
    expired = timezone.now() - timedelta(minutes=1)
    Session.objects.filter(pk=children["Session"].pk).update(runner="w-2", leased_until=expired)
    Session.objects.filter(pk=children["Token"].pk).update(
        status=SessionStatus.FAILED, state={"error": "RunTests: 3 tests failed"}, attempt=2
    )

    status, stdout, stderr = run("session_status", str(context_session.pk)[:8], "--json")

    assert (status, stderr) == (0, "")
    shown = json.loads(stdout)
    assert shown["session"]["id"] == str(context_session.pk)
    assert shown["session"]["short_id"] == str(context_session.pk)[:8]
    assert shown["session"]["component"]["name"] == "Accounts"
    assert shown["session"]["failure_reason"] is None
    assert shown["summary"] == {
        "total": 4, "active": 3, "stalled": 1, "complete": 0, "failed": 1, "cancelled": 0,
        "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
        "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
        "cost_usd": 0.0,
    }  # fmt: skip
    assert [child["component"]["name"] for child in shown["children"]] == [
        "User", "Session", "Token", "Audit"
    ]  # fmt: skip
    by_name = {child["component"]["name"]: child for child in shown["children"]}
    assert by_name["Session"]["stalled"] is True
    assert by_name["Session"]["runner"] == "w-2"
    assert by_name["Session"]["leased_until"] == api_time(expired)
    assert by_name["Token"]["failure_reason"] == "RunTests: 3 tests failed"
    assert by_name["Token"]["attempt"] == 2
    assert by_name["User"]["stalled"] is False and by_name["User"]["runner"] is None


def test_terminal_escapes_in_names_and_reasons_are_neutralised(scope, project):
    context = make_context(project, [])
    make_component(project, "Evil\x1b[2J\x1b[31m", parent_component=context)
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(
        status=SessionStatus.FAILED,
        runner=None,
        state={"error": "boom\u202e\r\nreversed"},
    )

    _, stdout, _ = run("session_status", str(session.pk))

    assert "\x1b" not in stdout and "\u202e" not in stdout and "\r" not in stdout
    assert "Evil\\u001b[2J\\u001b[31m" in stdout
    assert "boom\\u202e\\u000d reversed" in stdout


class ClosedPipe(StringIO):
    """A stdout whose reader has gone away, as ``| head`` leaves it."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_stops_the_command_quietly(scope, context_session):
    stderr = StringIO()

    with pytest.raises(SystemExit) as exit:
        call_command("session_status", str(context_session.pk), stdout=ClosedPipe(), stderr=stderr)

    assert exit.value.code == 1
    assert stderr.getvalue() == ""


def test_piped_into_head_prints_no_traceback(tmp_path):
    """A real pipe whose reader closes before the command writes, in a process of its own."""
    database = tmp_path / "db.sqlite3"
    assert manage("migrate", "--noinput", database=database).returncode == 0
    session_id = manage("seed_demo", database=database).stdout.splitlines()[-1].split()[-1]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "session_status", session_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()  # before Django has started: every write meets a closed pipe
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)

    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert stderr == ""
    assert process.returncode == 1
