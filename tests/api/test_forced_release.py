"""POST /api/sessions/{id}/release/ with {"force": true}: an operator frees a dead runner's
session at once, whoever holds it; and a runner id must contain a visible character on every
route that takes one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import Conflict, InvalidInput, NotFound
from sessions_app import services
from sessions_app.models import Session, SessionStatus
from tests.api.conftest import client_for
from tests.factories import make_user

FORCE_WITH_RUNNER = "A forced release names no runner: it frees whoever holds the lease."
INVISIBLE = "Must contain a visible character."


def url(session, action=""):
    return f"/api/sessions/{session.pk}/{action}"


def post(api, session, action, body=None):
    return api.post(url(session, action), body, format="json")


def lease(session, runner: str, seconds: float) -> None:
    Session.objects.filter(pk=session.pk).update(
        runner=runner, leased_until=timezone.now() + timedelta(seconds=seconds)
    )


def held(session) -> tuple[str | None, object]:
    return tuple(Session.objects.filter(pk=session.pk).values_list("runner", "leased_until").get())


def test_a_forced_release_frees_another_runners_live_lease(api, context_session):
    lease(context_session, "ci-1", 300)

    response = post(api, context_session, "release/", {"force": True})

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["runner"], body["leased_until"]) == (
        str(context_session.pk),
        None,
        None,
    )
    assert body["status"] == "active"
    assert held(context_session) == (None, None)
    assert api.get(url(context_session)).json() == body


def test_a_second_runner_takes_the_session_right_after_a_forced_release(api, context_session):
    post(api, context_session, "next-command/", {"runner": "dead-1", "lease_seconds": 3600})
    refused = post(api, context_session, "next-command/", {"runner": "ci-2"})
    assert refused.status_code == 409

    assert post(api, context_session, "release/", {"force": True}).status_code == 200
    taken = post(api, context_session, "next-command/", {"runner": "ci-2", "lease_seconds": 60})

    assert taken.status_code == 200  # the pending command, handed to its new holder
    assert held(context_session)[0] == "ci-2"


def test_a_second_runner_heartbeats_its_way_in_after_a_forced_release(api, context_session):
    lease(context_session, "dead-1", 3600)

    post(api, context_session, "release/", {"force": True})
    response = post(api, context_session, "heartbeat/", {"runner": "ci-2"})

    assert (response.status_code, response.json()["runner"]) == (200, "ci-2")


def test_a_second_runner_claims_a_child_right_after_its_forced_release(api, context_session):
    post(api, context_session, "spawn/")
    children = Session.objects.filter(parent_session=context_session)
    for child in children:
        lease(child, "dead-1", 3600)
    assert post(api, context_session, "claim-child/", {"runner": "ci-2"}).status_code == 204
    freed = children.order_by("-component__priority").first()

    post(api, freed, "release/", {"force": True})
    response = post(api, context_session, "claim-child/", {"runner": "ci-2"})

    assert response.status_code == 200
    assert (response.json()["session"]["id"], response.json()["session"]["runner"]) == (
        str(freed.pk),
        "ci-2",
    )


def test_a_forced_release_frees_an_expired_lease(api, context_session):
    lease(context_session, "dead-1", -60)

    response = post(api, context_session, "release/", {"force": True})

    assert response.status_code == 200
    assert held(context_session) == (None, None)


def test_a_forced_release_of_a_session_nobody_holds_is_200(api, context_session):
    response = post(api, context_session, "release/", {"force": True})

    assert response.status_code == 200
    assert (response.json()["runner"], response.json()["leased_until"]) == (None, None)


def test_any_member_of_the_project_may_force_a_release(project, context_session):
    colleague = make_user("bob")
    project.members.add(colleague)
    lease(context_session, "ci-1", 300)

    response = post(client_for(colleague), context_session, "release/", {"force": True})

    assert response.status_code == 200
    assert held(context_session) == (None, None)


def test_a_forced_release_by_a_non_member_is_404_and_keeps_the_lease(stranger_api, context_session):
    lease(context_session, "ci-1", 300)
    before = held(context_session)

    response = post(stranger_api, context_session, "release/", {"force": True})

    assert response.status_code == 404
    assert response.json() == {"detail": "Session not found"}
    assert held(context_session) == before


def test_an_anonymous_forced_release_is_401(anonymous, context_session):
    lease(context_session, "ci-1", 300)

    assert post(anonymous, context_session, "release/", {"force": True}).status_code == 401
    assert held(context_session)[0] == "ci-1"


def test_force_with_a_runner_is_a_400_naming_force(api, context_session, unchanged_db):
    lease(context_session, "ci-1", 300)

    with unchanged_db():
        response = post(api, context_session, "release/", {"force": True, "runner": "ci-1"})

    assert response.status_code == 400
    assert response.json() == {"force": [FORCE_WITH_RUNNER]}


@pytest.mark.parametrize("body", [{}, {"force": False}, None])
def test_a_release_without_runner_and_without_force_is_400(
    api, context_session, unchanged_db, body
):
    lease(context_session, "ci-1", 300)

    with unchanged_db():
        response = post(api, context_session, "release/", body)

    assert response.status_code == 400
    assert response.json() == {"runner": ["This field is required."]}


@pytest.mark.parametrize("force", ["maybe", [], {"x": 1}])
def test_a_force_that_is_not_a_boolean_is_400_naming_force(
    api, context_session, unchanged_db, force
):
    lease(context_session, "ci-1", 300)

    with unchanged_db():
        response = post(api, context_session, "release/", {"force": force})

    assert response.status_code == 400
    assert response.json()["force"] == ["Must be a valid boolean."]


def test_an_unknown_key_beside_force_is_400(api, context_session, unchanged_db):
    lease(context_session, "ci-1", 300)

    with unchanged_db():
        response = post(api, context_session, "release/", {"force": True, "all": True})

    assert response.status_code == 400
    assert set(response.json()) == {"all"}


def test_force_false_with_a_runner_is_an_ordinary_release(api, context_session):
    lease(context_session, "ci-1", 300)

    refused = post(api, context_session, "release/", {"force": False, "runner": "ci-2"})
    released = post(api, context_session, "release/", {"force": False, "runner": "ci-1"})

    assert refused.status_code == 409
    assert released.status_code == 200
    assert held(context_session) == (None, None)


@pytest.mark.parametrize("status", ["complete", "failed", "cancelled"])
def test_a_forced_release_of_a_finished_session_is_409(api, context_session, status):
    Session.objects.filter(pk=context_session.pk).update(status=status)

    response = post(api, context_session, "release/", {"force": True})

    assert response.status_code == 409
    assert response.json() == {"detail": f"Session is {status}"}


# The service under it


def test_the_service_forces_a_release_without_a_runner(scope, context_session):
    lease(context_session, "ci-1", 300)

    released = services.release(scope=scope, session_id=context_session.pk, force=True)

    assert (released.runner, released.leased_until) == (None, None)
    assert held(context_session) == (None, None)


def test_the_service_refuses_a_forced_release_outside_the_scope(other_scope, context_session):
    lease(context_session, "ci-1", 300)

    with pytest.raises(NotFound):
        services.release(scope=other_scope, session_id=context_session.pk, force=True)

    assert held(context_session)[0] == "ci-1"


def test_the_service_refuses_a_forced_release_of_a_finished_session(scope, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    with pytest.raises(Conflict) as error:
        services.release(scope=scope, session_id=context_session.pk, force=True)

    assert error.value.message == "Session is complete"


def test_the_service_without_force_still_needs_the_holder(scope, context_session):
    lease(context_session, "ci-1", 300)

    with pytest.raises(Conflict):
        services.release(scope=scope, session_id=context_session.pk, runner="ci-2")
    assert held(context_session)[0] == "ci-1"


# A runner id must contain a visible character

INVISIBLE_RUNNERS = [" ", "\t", "  \t ", "\u00a0", "\u200b"]


@pytest.mark.parametrize("runner", INVISIBLE_RUNNERS)
@pytest.mark.parametrize("route", ["next-command/", "heartbeat/", "release/"])
def test_a_runner_of_only_whitespace_is_400_naming_runner(
    api, context_session, unchanged_db, route, runner
):
    with unchanged_db():
        response = post(api, context_session, route, {"runner": runner})

    assert response.status_code == 400
    assert response.json() == {"runner": [INVISIBLE]}


@pytest.mark.parametrize("runner", INVISIBLE_RUNNERS)
def test_a_runner_of_only_whitespace_cannot_claim_a_child(api, context_session, runner):
    post(api, context_session, "spawn/")

    response = post(api, context_session, "claim-child/", {"runner": runner})

    assert response.status_code == 400
    assert response.json() == {"runner": [INVISIBLE]}
    assert not Session.objects.filter(parent_session=context_session, runner__isnull=False).exists()


@pytest.mark.parametrize("runner", ["ci-1", " ci-1 ", "runner\u00e9"])
def test_a_runner_with_a_visible_character_is_taken_as_given(api, context_session, runner):
    response = post(api, context_session, "heartbeat/", {"runner": runner})

    assert response.status_code == 200
    assert response.json()["runner"] == runner


def test_the_service_refuses_an_invisible_runner(scope, context_session):
    with pytest.raises(InvalidInput) as error:
        services.heartbeat(scope=scope, session_id=context_session.pk, runner="\t")

    assert error.value.errors == {"runner": [INVISIBLE]}
