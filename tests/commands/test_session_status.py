"""``manage.py session_status <session_id>``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.timefmt import api_time
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run
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
    assert lines[:6] == [
        f"Session {context_session.pk}",
        "  type:      ContextTestingSessions",
        "  status:    active",
        f"  component: Accounts ({context_session.component.module_name})",
        "  attempt:   1",
        "  lease:     none",
    ]
    header, *rows = lines[7:12]
    assert header.split() == [
        "COMPONENT", "STATUS", "ATTEMPT", "RUNNER", "FAILURE", "REASON", "SESSION"
    ]  # fmt: skip
    assert [row.split()[:3] for row in rows] == [
        ["User", "complete", "1"],
        ["Session", "stalled", "1"],
        ["Token", "failed", "2"],
        ["Audit", "active", "1"],
    ]
    assert rows[1].split()[3] == "laptop-1"
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
