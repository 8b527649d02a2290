"""``manage.py session_status <session_id>``."""

import pytest

from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run
from tests.factories import make_component, make_context, make_context_session


def test_shows_the_session_its_children_in_spawn_order_and_a_summary(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    children = {c.component.name: c for c in Session.objects.filter(parent_session=context_session)}
    Session.objects.filter(pk=children["User"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Session"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Token"].pk).update(
        status=SessionStatus.FAILED, state={"error": "RunTests: 3 tests failed"}
    )

    status, stdout, stderr = run("session_status", str(context_session.pk))

    assert (status, stderr) == (0, "")
    lines = stdout.splitlines()
    assert lines[:4] == [
        f"Session {context_session.pk}",
        "  type:      ContextTestingSessions",
        "  status:    active",
        f"  component: Accounts ({context_session.component.module_name})",
    ]
    table = [line.split(maxsplit=2) for line in lines[5:10]]
    assert table[0][:2] == ["COMPONENT", "STATUS"]
    assert [row[:2] for row in table[1:]] == [
        ["User", "complete"],
        ["Session", "complete"],
        ["Token", "failed"],
        ["Audit", "active"],
    ]
    assert table[3][2] == f"RunTests: 3 tests failed  {children['Token'].pk}"
    assert table[4][2] == str(children["Audit"].pk)
    assert lines[-1] == "4 children: 2 complete, 1 active, 1 failed, 0 cancelled"


def test_a_session_without_children(scope, context_session):
    status, stdout, _ = run("session_status", str(context_session.pk))

    assert status == 0
    assert "COMPONENT" not in stdout
    assert stdout.splitlines()[-1] == "0 children: 0 complete, 0 active, 0 failed, 0 cancelled"


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
