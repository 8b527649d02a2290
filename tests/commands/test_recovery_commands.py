"""``spawn_sessions --missing`` and ``retry_sessions``: ids on stdout, exact errors on stderr
with exit status 1."""

import pytest

from sessions_app import selectors, services
from sessions_app.models import Session, SessionStatus
from tests.commands.conftest import run
from tests.factories import make_component
from tests.sessions_app.workflows.failures import rejected_inserts


def spawn_order_ids(session) -> list[str]:
    return [str(c.pk) for c in selectors.spawned_children(session=session)]


def test_missing_prints_every_child_new_and_old_in_spawn_order(
    scope, project, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    make_component(project, "Zeta", priority=100, parent_component=context)

    status, stdout, stderr = run("spawn_sessions", str(context_session.pk), "--missing")

    assert (status, stderr) == (0, "")
    assert stdout.split() == spawn_order_ids(context_session)
    assert Session.objects.get(parent_session=context_session, component__name="Zeta")
    assert len(stdout.split()) == 5


def test_missing_warns_on_stderr_naming_what_it_could_not_create(
    scope, project, context, context_session
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    late = make_component(project, "Late", parent_component=context)

    with rejected_inserts([late]):
        status, stdout, stderr = run("spawn_sessions", str(context_session.pk), "--missing")

    assert status == 0
    assert len(stdout.split()) == 4
    assert stderr.startswith("Warning: could not create child sessions for Late (")


def test_missing_on_a_finished_session_is_the_exact_conflict(scope, context_session):
    services.cancel_session(scope=scope, session_id=context_session.pk)

    assert run("spawn_sessions", str(context_session.pk), "--missing") == (
        1,
        "",
        "Session is cancelled; it cannot spawn child sessions\n",
    )


def test_retry_prints_the_retried_ids(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    a, b = Session.objects.filter(parent_session=context_session)[:2]
    Session.objects.filter(pk__in=[a.pk, b.pk]).update(status=SessionStatus.FAILED)

    status, stdout, stderr = run("retry_sessions", str(a.pk), str(b.pk))

    assert (status, stdout.split(), stderr) == (0, [str(a.pk), str(b.pk)], "")
    assert set(Session.objects.filter(pk__in=[a.pk, b.pk]).values_list("attempt", flat=True)) == {2}


def test_retry_of_an_active_session_is_the_exact_conflict(context_session):
    assert run("retry_sessions", str(context_session.pk)) == (
        1,
        "",
        "Session is active; only failed or cancelled sessions can be retried\n",
    )


def test_retry_children_prints_them_in_spawn_order(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(parent_session=context_session).update(status=SessionStatus.CANCELLED)

    status, stdout, _ = run("retry_sessions", str(context_session.pk), "--children")

    assert status == 0
    assert stdout.split() == spawn_order_ids(context_session)


def test_retry_children_of_a_component_session_is_the_exact_step_error(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = Session.objects.filter(parent_session=context_session).first()

    assert run("retry_sessions", str(child.pk), "--children") == (
        1,
        "",
        "Only ContextTestingSessions sessions have child sessions, this one is "
        "ComponentTestSessions\n",
    )


@pytest.mark.django_db
def test_retry_of_an_unknown_session_is_not_found():
    assert run("retry_sessions", "not-a-uuid") == (1, "", "Session not found\n")
