"""The Session list's "Release leases" action: whoever holds a selected session's lease loses
it at once (a dead runner's sessions freed), one message per session in the service's words."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Permission
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.admin.conftest import CHANGELIST, post_action
from tests.factories import make_user

RELEASE = "release_leases"


def lease(session, runner: str, seconds: float) -> None:
    Session.objects.filter(pk=session.pk).update(
        runner=runner, leased_until=timezone.now() + timedelta(seconds=seconds)
    )


def held(session) -> tuple:
    return tuple(Session.objects.filter(pk=session.pk).values_list("runner", "leased_until").get())


def spawned(scope, session) -> list[Session]:
    """The children in spawn order: User, Session, Token, Audit."""
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    order = ["User", "Session", "Token", "Audit"]
    children = {c.component.name: c for c in Session.objects.filter(parent_session=session)}
    return [children[name] for name in order]


def test_the_action_is_offered_as_release_leases(staff_client, context_session):
    response = staff_client.get(CHANGELIST)

    choices = dict(response.context["action_form"].fields["action"].choices)
    assert choices[RELEASE] == "Release leases"


def test_release_leases_frees_a_live_lease_of_another_runner(staff_client, context_session):
    lease(context_session, "ci-1", 3600)

    messages = post_action(staff_client, RELEASE, context_session)

    assert messages == [("success", "Accounts: released the lease of ci-1.")]
    assert held(context_session) == (None, None)


def test_release_leases_says_when_a_session_held_no_lease(staff_client, context_session):
    messages = post_action(staff_client, RELEASE, context_session)

    assert messages == [("success", "Accounts: held no lease.")]
    assert held(context_session) == (None, None)


def test_release_leases_frees_an_expired_lease_naming_its_runner(staff_client, context_session):
    lease(context_session, "dead-1", -60)

    messages = post_action(staff_client, RELEASE, context_session)

    assert messages == [("success", "Accounts: released the lease of dead-1.")]
    assert held(context_session) == (None, None)


def test_release_leases_reports_one_message_per_session(staff_client, scope, context_session):
    user, session, token, audit = spawned(scope, context_session)
    lease(user, "ci-1", 300)
    lease(token, "ci-2", 300)
    Session.objects.filter(pk=audit.pk).update(status=SessionStatus.COMPLETE)

    messages = post_action(staff_client, RELEASE, user, session, token, audit)

    assert messages == [
        ("success", "User: released the lease of ci-1."),
        ("success", "Session: held no lease."),
        ("success", "Token: released the lease of ci-2."),
        ("error", "Audit: Session is complete"),
    ]
    assert [held(child)[0] for child in (user, session, token)] == [None, None, None]


def test_release_leases_of_a_finished_session_is_an_error_and_keeps_it(
    staff_client, context_session
):
    for status in ("complete", "failed", "cancelled"):
        Session.objects.filter(pk=context_session.pk).update(status=status)

        messages = post_action(staff_client, RELEASE, context_session)

        assert messages == [("error", f"Accounts: Session is {status}")]
        assert Session.objects.get(pk=context_session.pk).status == status


def test_another_runner_takes_the_session_right_after_the_release(
    staff_client, scope, context_session
):
    lease(context_session, "dead-1", 3600)

    post_action(staff_client, RELEASE, context_session)
    taken = services.heartbeat(scope=scope, session_id=context_session.pk, runner="ci-2")

    assert taken.runner == "ci-2"
    assert held(context_session)[0] == "ci-2"


def test_a_runner_can_claim_a_released_child_at_once(staff_client, scope, context_session):
    children = spawned(scope, context_session)
    for child in children:
        lease(child, "dead-1", 3600)
    assert services.claim_child(scope=scope, session_id=context_session.pk, runner="ci-2") is None

    post_action(staff_client, RELEASE, children[2])
    claimed = services.claim_child(scope=scope, session_id=context_session.pk, runner="ci-2")

    assert claimed is not None
    assert claimed[0].pk == children[2].pk
    assert held(children[2])[0] == "ci-2"


def test_a_staff_member_of_another_project_cannot_release_the_lease(client, context_session):
    outsider = make_user("mallory", is_staff=True)
    outsider.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="sessions_app", codename__regex=r"^(view|change)_"
        )
    )
    client.force_login(outsider)
    lease(context_session, "ci-1", 3600)
    before = held(context_session)

    client.post(
        CHANGELIST,
        {"action": RELEASE, "_selected_action": [str(context_session.pk)], "index": 0},
        follow=True,
    )

    assert held(context_session) == before


def test_a_staff_member_who_may_only_view_has_no_release_action(client, staff, context_session):
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["sessions_app", "components_app"],
            codename__startswith="view_",
        )
    )
    client.force_login(staff)
    lease(context_session, "ci-1", 3600)
    before = held(context_session)

    page = client.get(CHANGELIST)
    client.post(
        CHANGELIST,
        {"action": RELEASE, "_selected_action": [str(context_session.pk)], "index": 0},
        follow=True,
    )

    action_form = page.context.get("action_form")
    offered = dict(action_form.fields["action"].choices) if action_form else {}
    assert RELEASE not in offered
    assert held(context_session) == before


def test_a_superuser_releases_any_projects_lease(superuser_client, context_session):
    lease(context_session, "ci-1", 3600)

    messages = post_action(superuser_client, RELEASE, context_session)

    assert messages == [("success", "Accounts: released the lease of ci-1.")]
    assert held(context_session) == (None, None)
