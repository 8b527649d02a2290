"""Leases over HTTP: next-command with a runner, heartbeat, release, claim-child; the session
JSON's lease fields and cap; every refusal's status and exact text."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sessions_app.models import CONTEXT_ONLY_CAP, Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS, CONTEXT_TESTING_SESSIONS
from tests.conftest import SPAWN_ORDER
from tests.factories import make_component, make_context_session

INTERACTION_KEYS = {"id", "session", "step_name", "command", "result", "completed_at", "created_at"}
LEASE_ROUTES = ["next-command/", "heartbeat/", "release/", "claim-child/"]


def url(session, action=""):
    return f"/api/sessions/{session.pk}/{action}"


def post(api, session, action, body=None):
    return api.post(url(session, action), body, format="json")


def spawn(api, session) -> dict[str, str]:
    """Spawn the children; their ids by component name."""
    response = post(api, session, "spawn/")
    assert response.status_code == 200, response.content
    rows = Session.objects.filter(parent_session=session).values_list("component__name", "id")
    return {name: str(pk) for name, pk in rows}


def lease(session_id, runner: str, seconds: float) -> None:
    """Move time: the lease runs ``seconds`` from now (negative: expired that long ago)."""
    Session.objects.filter(pk=session_id).update(
        runner=runner, leased_until=timezone.now() + timedelta(seconds=seconds)
    )


def shown(api, session_id) -> dict:
    response = api.get(f"/api/sessions/{session_id}/")
    assert response.status_code == 200
    return response.json()


def until(body: dict) -> datetime:
    return parse_datetime(body["leased_until"])


def assert_leased(body: dict, runner: str, seconds: int, before: datetime) -> None:
    assert body["runner"] == runner
    assert before + timedelta(seconds=seconds) <= until(body)
    assert until(body) <= timezone.now() + timedelta(seconds=seconds)


# next-command


def test_next_command_with_a_runner_takes_the_lease(api, context_session):
    before = timezone.now()

    response = post(api, context_session, "next-command/", {"runner": "ci-1", "lease_seconds": 90})

    assert response.status_code == 201
    assert set(response.json()) == INTERACTION_KEYS
    assert response.json()["step_name"] == "Initialize"
    assert_leased(shown(api, context_session.pk), "ci-1", 90, before)


def test_next_command_by_the_holder_again_is_200_and_renews(api, context_session):
    first = post(api, context_session, "next-command/", {"runner": "ci-1", "lease_seconds": 5})
    before = timezone.now()

    again = post(api, context_session, "next-command/", {"runner": "ci-1", "lease_seconds": 500})

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert_leased(shown(api, context_session.pk), "ci-1", 500, before)


@pytest.mark.parametrize("body", [None, {}, {"lease_seconds": 60}])
def test_next_command_without_a_runner_leaves_the_lease_alone(api, context_session, body):
    lease(context_session.pk, "ci-1", 300)
    held = shown(api, context_session.pk)

    response = post(api, context_session, "next-command/", body)

    assert response.status_code == 201
    after = shown(api, context_session.pk)
    assert (after["runner"], after["leased_until"]) == (held["runner"], held["leased_until"])


def test_the_default_lease_is_the_setting(api, context_session, settings):
    settings.SESSION_LEASE_SECONDS = 33
    before = timezone.now()

    post(api, context_session, "next-command/", {"runner": "ci-1"})

    assert_leased(shown(api, context_session.pk), "ci-1", 33, before)


# Another runner's lease, an expired one, a finished session


@pytest.mark.parametrize("route", ["next-command/", "heartbeat/", "release/"])
def test_another_runners_live_lease_is_409_naming_it_and_its_time(api, context_session, route):
    lease(context_session.pk, "ci-1", 300)
    held = shown(api, context_session.pk)

    response = post(api, context_session, route, {"runner": "ci-2"})

    assert response.status_code == 409
    assert response.json() == {"detail": f"Session is leased by ci-1 until {held['leased_until']}"}
    assert shown(api, context_session.pk) == held
    assert not Interaction.objects.filter(session=context_session).exists()


@pytest.mark.parametrize("route", ["next-command/", "heartbeat/"])
def test_an_expired_lease_is_taken_by_whoever_asks(api, context_session, route):
    lease(context_session.pk, "ci-1", -1)
    before = timezone.now()

    response = post(api, context_session, route, {"runner": "ci-2", "lease_seconds": 60})

    assert response.status_code in (200, 201)
    assert_leased(shown(api, context_session.pk), "ci-2", 60, before)


def test_heartbeat_answers_the_renewed_session(api, context_session):
    lease(context_session.pk, "ci-1", 1)
    before = timezone.now()

    response = post(api, context_session, "heartbeat/", {"runner": "ci-1", "lease_seconds": 700})

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(context_session.pk)
    assert_leased(body, "ci-1", 700, before)
    assert body["stalled"] is False
    assert body == shown(api, context_session.pk)


def test_release_answers_the_session_without_a_lease_and_another_takes_it(api, context_session):
    post(api, context_session, "next-command/", {"runner": "ci-1"})

    response = post(api, context_session, "release/", {"runner": "ci-1"})

    assert response.status_code == 200
    assert (response.json()["runner"], response.json()["leased_until"]) == (None, None)
    taken = post(api, context_session, "heartbeat/", {"runner": "ci-2"})
    assert (taken.status_code, taken.json()["runner"]) == (200, "ci-2")


@pytest.mark.parametrize("status", ["complete", "failed", "cancelled"])
@pytest.mark.parametrize("route", ["heartbeat/", "release/"])
def test_heartbeat_or_release_of_a_finished_session_is_409(api, context_session, route, status):
    Session.objects.filter(pk=context_session.pk).update(status=status)

    response = post(api, context_session, route, {"runner": "ci-1"})

    assert response.status_code == 409
    assert response.json() == {"detail": f"Session is {status}"}


def test_next_command_with_a_runner_for_a_finished_session_is_409(api, context_session):
    post(api, context_session, "cancel/")

    response = post(api, context_session, "next-command/", {"runner": "ci-1"})

    assert response.status_code == 409
    assert response.json() == {"detail": "Session is cancelled; it has no next command"}


def test_a_session_that_ends_shows_no_lease(api, context_session):
    post(api, context_session, "next-command/", {"runner": "ci-1"})

    response = post(api, context_session, "cancel/")

    assert (response.json()["status"], response.json()["runner"]) == ("cancelled", None)
    assert response.json()["leased_until"] is None


# claim-child


def test_claim_child_leases_the_first_child_and_hands_it_its_command(api, context_session):
    ids = spawn(api, context_session)
    before = timezone.now()

    response = post(api, context_session, "claim-child/", {"runner": "ci-1", "lease_seconds": 45})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"session", "interaction"}
    assert body["session"]["id"] == ids[SPAWN_ORDER[0]]
    assert_leased(body["session"], "ci-1", 45, before)
    assert body["session"] == shown(api, ids[SPAWN_ORDER[0]])
    assert set(body["interaction"]) == INTERACTION_KEYS
    assert (body["interaction"]["session"], body["interaction"]["step_name"]) == (
        ids[SPAWN_ORDER[0]],
        "Initialize",
    )
    assert body["interaction"]["result"] is None


def test_claim_child_hands_out_each_child_once_then_204(api, context_session):
    ids = spawn(api, context_session)

    claimed = [
        post(api, context_session, "claim-child/", {"runner": f"ci-{i}"}).json()["session"]["id"]
        for i in range(4)
    ]
    response = post(api, context_session, "claim-child/", {"runner": "ci-9"})

    assert claimed == [ids[name] for name in SPAWN_ORDER]
    assert response.status_code == 204
    assert response.content == b""


def test_claim_child_takes_a_stalled_child(api, context_session):
    ids = spawn(api, context_session)
    for name in SPAWN_ORDER[:3]:
        lease(ids[name], "busy", 300)
    lease(ids["Audit"], "dead", -1)

    response = post(api, context_session, "claim-child/", {"runner": "ci-2"})

    assert response.status_code == 200
    assert (response.json()["session"]["id"], response.json()["session"]["runner"]) == (
        ids["Audit"],
        "ci-2",
    )


def test_claim_child_at_the_cap_is_204(api, scope, context):
    session = make_context_session(scope, context, max_parallel_children=1)
    spawn(api, session)
    assert post(api, session, "claim-child/", {"runner": "ci-1"}).status_code == 200

    response = post(api, session, "claim-child/", {"runner": "ci-2"})

    assert response.status_code == 204


def test_claim_child_of_a_finished_context_is_204(api, context_session):
    spawn(api, context_session)
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    assert post(api, context_session, "claim-child/", {"runner": "ci-1"}).status_code == 204


def test_claim_child_is_not_stopped_by_the_contexts_own_lease(api, context_session):
    spawn(api, context_session)
    post(api, context_session, "next-command/", {"runner": "ci-1"})

    response = post(api, context_session, "claim-child/", {"runner": "ci-2"})

    assert response.status_code == 200
    assert response.json()["session"]["runner"] == "ci-2"


# Bad bodies


NOT_A_STRING = "Not a valid string."
NOT_NULL = "This field may not be null."
NOT_AN_INTEGER = "A valid integer is required."
BAD_RUNNERS = [
    ("", "This field may not be blank."),
    ("x" * 201, "Ensure this field has no more than 200 characters."),
    (True, NOT_A_STRING),
    (["ci-1"], NOT_A_STRING),
    ({"name": "ci-1"}, NOT_A_STRING),
    (None, NOT_NULL),
]
BAD_LEASE_SECONDS = [
    (0, "Ensure this value is greater than or equal to 1."),
    (-5, "Ensure this value is greater than or equal to 1."),
    (86_401, "Ensure this value is less than or equal to 86400."),
    (10**30, "Ensure this value is less than or equal to 86400."),
    ("9" * 5000, "String value too large."),
    ("ten", NOT_AN_INTEGER),
    ("", NOT_AN_INTEGER),
    (True, NOT_AN_INTEGER),
    (1.5, NOT_AN_INTEGER),
    ([60], NOT_AN_INTEGER),
    (None, NOT_NULL),
]


@pytest.mark.parametrize(("runner", "message"), BAD_RUNNERS)
@pytest.mark.parametrize("route", LEASE_ROUTES)
def test_a_bad_runner_is_400_naming_the_field(
    api, context_session, route, runner, message, unchanged_db
):
    spawn(api, context_session)

    with unchanged_db():
        response = post(api, context_session, route, {"runner": runner})

    assert response.status_code == 400
    assert response.json() == {"runner": [message]}


@pytest.mark.parametrize(("seconds", "message"), BAD_LEASE_SECONDS)
@pytest.mark.parametrize("route", ["next-command/", "heartbeat/", "claim-child/"])
def test_bad_lease_seconds_is_400_naming_the_field(
    api, context_session, route, seconds, message, unchanged_db
):
    spawn(api, context_session)

    with unchanged_db():
        response = post(api, context_session, route, {"runner": "ci-1", "lease_seconds": seconds})

    assert response.status_code == 400
    assert response.json() == {"lease_seconds": [message]}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"runner": "ci\\u0000one"}', "NUL character"),
        (b'{"runner": "\\ud800"}', "unpaired surrogates"),
    ],
)
@pytest.mark.parametrize("route", LEASE_ROUTES)
def test_a_runner_the_databases_cannot_store_is_400(
    api, context_session, route, body, problem, unchanged_db
):
    spawn(api, context_session)

    with unchanged_db():
        response = api.post(url(context_session, route), body, content_type="application/json")

    assert response.status_code == 400
    [message] = response.json()["runner"]
    assert problem in message


@pytest.mark.parametrize("route", ["heartbeat/", "release/", "claim-child/"])
def test_a_missing_runner_is_400(api, context_session, route, unchanged_db):
    with unchanged_db():
        response = post(api, context_session, route, {"lease_seconds": 60})

    assert response.status_code == 400
    # (release takes no lease_seconds: that key is refused too, as unknown)
    assert response.json()["runner"] == ["This field is required."]


@pytest.mark.parametrize("body", [b"[]", b'"ci-1"', b"42", b'{"runner": '])
@pytest.mark.parametrize("route", LEASE_ROUTES)
def test_a_body_that_is_no_json_object_is_400(api, context_session, route, body, unchanged_db):
    with unchanged_db():
        response = api.post(url(context_session, route), body, content_type="application/json")

    assert response.status_code == 400


@pytest.mark.parametrize("seconds", [1, 86_400])
def test_lease_seconds_at_the_bounds_is_taken(api, context_session, seconds):
    before = timezone.now()

    response = post(api, context_session, "heartbeat/", {"runner": "r", "lease_seconds": seconds})

    assert response.status_code == 200
    assert_leased(response.json(), "r", seconds, before)


def test_a_runner_of_200_characters_is_taken(api, context_session):
    runner = "ü" * 200

    response = post(api, context_session, "heartbeat/", {"runner": runner})

    assert (response.status_code, response.json()["runner"]) == (200, runner)


# Who may call


@pytest.mark.parametrize("route", LEASE_ROUTES)
def test_no_credentials_is_401(anonymous, route):
    response = anonymous.post(f"/api/sessions/{uuid.uuid4()}/{route}", {"runner": "x"}, "json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("route", LEASE_ROUTES)
def test_another_projects_session_is_404(stranger_api, api, context_session, route, unchanged_db):
    spawn(api, context_session)

    with unchanged_db():
        response = post(stranger_api, context_session, route, {"runner": "x"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Session not found"}


# The session's JSON: lease, attempt, cap


def test_session_json_carries_the_lease_the_attempt_and_the_cap(api, scope, context):
    session = make_context_session(scope, context, max_parallel_children=4)
    lease(session.pk, "laptop", 120)

    body = shown(api, session.pk)

    stored = Session.objects.get(pk=session.pk)
    assert (body["runner"], body["attempt"], body["max_parallel_children"]) == ("laptop", 1, 4)
    assert parse_datetime(body["leased_until"]) == stored.leased_until
    assert body["stalled"] is False


def test_session_json_of_a_session_never_leased(api, context_session):
    body = shown(api, context_session.pk)

    assert (body["runner"], body["leased_until"], body["max_parallel_children"]) == (
        None,
        None,
        None,
    )
    assert (body["attempt"], body["stalled"]) == (1, False)


def test_children_summary_and_json_show_stalled_children(api, context_session):
    ids = spawn(api, context_session)
    lease(ids["Token"], "dead", -1)
    lease(ids["User"], "alive", 300)

    body = api.get(url(context_session, "children/")).json()

    assert body["summary"] == {
        "total": 4,
        "active": 4,
        "stalled": 1,
        "complete": 0,
        "failed": 0,
        "cancelled": 0,
        "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
        "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
        "cost_usd": 0.0,
    }
    assert [(c["component"]["name"], c["stalled"]) for c in body["results"]] == [
        ("User", False),
        ("Session", False),
        ("Token", True),
        ("Audit", False),
    ]


def create(api, project, **fields):
    return api.post(
        "/api/sessions/",
        {"project": str(project.pk), "type": CONTEXT_TESTING_SESSIONS, **fields},
        format="json",
    )


@pytest.mark.parametrize("cap", [1, 1000, None])
def test_a_context_session_takes_a_cap_on_create_and_patch(api, project, context, cap):
    created = create(api, project, component=str(context.pk), max_parallel_children=cap)
    assert (created.status_code, created.json()["max_parallel_children"]) == (201, cap)

    changed = api.patch(
        f"/api/sessions/{created.json()['id']}/", {"max_parallel_children": 7}, format="json"
    )
    assert (changed.status_code, changed.json()["max_parallel_children"]) == (200, 7)
    cleared = api.patch(
        f"/api/sessions/{created.json()['id']}/", {"max_parallel_children": None}, format="json"
    )
    assert (cleared.status_code, cleared.json()["max_parallel_children"]) == (200, None)


def test_the_spawn_command_carries_the_cap_as_max_parallel(api, project, context):
    session = create(api, project, component=str(context.pk), max_parallel_children=3).json()

    command = api.post(f"/api/sessions/{session['id']}/spawn/").json()

    assert command["metadata"]["max_parallel"] == 3


def test_the_spawn_command_without_a_cap_has_max_parallel_null(api, context_session):
    command = post(api, context_session, "spawn/").json()

    assert command["metadata"]["max_parallel"] is None


BAD_CAPS = [
    (0, "Ensure this value is greater than or equal to 1."),
    (1001, "Ensure this value is less than or equal to 1000."),
    (2**40, "Ensure this value is less than or equal to 1000."),
    ("many", NOT_AN_INTEGER),
    (True, NOT_AN_INTEGER),
    (2.5, NOT_AN_INTEGER),
]


@pytest.mark.parametrize(("cap", "message"), BAD_CAPS)
def test_a_cap_outside_1_to_1000_is_400_on_create(api, project, context, cap, message):
    with_cap = create(api, project, component=str(context.pk), max_parallel_children=cap)

    assert with_cap.status_code == 400
    assert with_cap.json() == {"max_parallel_children": [message]}
    assert not Session.objects.exists()


@pytest.mark.parametrize(("cap", "message"), BAD_CAPS)
def test_a_cap_outside_1_to_1000_is_400_on_patch(api, context_session, cap, message, unchanged_db):
    with unchanged_db():
        response = api.patch(url(context_session), {"max_parallel_children": cap}, format="json")

    assert response.status_code == 400
    assert response.json() == {"max_parallel_children": [message]}


def test_a_cap_on_a_component_session_is_400_on_create(api, project):
    component = make_component(project)

    response = create(
        api,
        project,
        type=COMPONENT_TEST_SESSIONS,
        component=str(component.pk),
        max_parallel_children=2,
    )

    assert response.status_code == 400
    assert response.json() == {"max_parallel_children": [CONTEXT_ONLY_CAP]}
    assert not Session.objects.exists()


def test_a_cap_on_a_component_session_is_400_on_patch(api, context_session, unchanged_db):
    child_id = spawn(api, context_session)["User"]

    with unchanged_db():
        response = api.patch(
            f"/api/sessions/{child_id}/", {"max_parallel_children": 2}, format="json"
        )

    assert response.status_code == 400
    assert response.json() == {
        "max_parallel_children": [
            "Only ContextTestingSessions sessions have a cap on parallel children."
        ]
    }
