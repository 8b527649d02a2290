"""The routes past CRUD: spawn, children, next-command, results, interactions, cancel."""

import uuid

import pytest

from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from tests.conftest import SPAWN_ORDER
from tests.factories import make_child, make_component, make_context, make_context_session

COMMAND_KEYS = {"module", "command", "metadata", "execution_strategy", "timestamp"}
INTERACTION_KEYS = {"id", "session", "step_name", "command", "result", "completed_at", "created_at"}


def url(session, action=""):
    return f"/api/sessions/{session.pk if hasattr(session, 'pk') else session}/{action}"


def names_of(ids):
    sessions = Session.objects.select_related("component").in_bulk(ids)
    return [sessions[uuid.UUID(str(i))].component.name for i in ids]


def report(api, session_id, interaction_id, **result):
    return api.post(
        f"/api/sessions/{session_id}/interactions/{interaction_id}/result/",
        {"status": "ok"} | result,
        format="json",
    )


def step(api, session_id, **result):
    """Take the next command and report ``result`` for it; the result answer's JSON."""
    interaction = api.post(f"/api/sessions/{session_id}/next-command/").json()
    response = report(api, session_id, interaction["id"], **result)
    assert response.status_code == 200, response.content
    return response.json()


# spawn


def test_spawn_answers_the_command_with_children_in_spawn_order(api, context_session):
    response = api.post(url(context_session, "spawn/"))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == COMMAND_KEYS
    assert (body["module"], body["command"], body["execution_strategy"]) == (
        "SpawnComponentTestingSessions",
        "spawn_sessions",
        "async",
    )
    assert names_of(body["metadata"]["child_session_ids"]) == SPAWN_ORDER
    children = Session.objects.filter(parent_session=context_session)
    assert {(c.type, c.execution_mode) for c in children} == {(COMPONENT_TEST_SESSIONS, "agentic")}


def test_spawn_twice_hands_out_the_same_children(api, context_session):
    first = api.post(url(context_session, "spawn/")).json()
    second = api.post(url(context_session, "spawn/")).json()

    assert second["metadata"]["child_session_ids"] == first["metadata"]["child_session_ids"]
    assert second["metadata"]["already_spawned"] is True


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_component", "Context component not found"),
        ("no_children", "No child components found for context"),
        (
            "wrong_child_type",
            "Invalid child session type: expected ComponentTestSessions, "
            "got ContextTestingSessions",
        ),
        (
            "not_a_context_session",
            "Only ContextTestingSessions sessions spawn child sessions, this one is "
            "ComponentTestSessions",
        ),
    ],
)
def test_spawn_step_errors_are_422_with_the_exact_text(api, scope, context, setup, message):
    if setup == "no_component":
        session = make_context_session(scope, None)
    elif setup == "no_children":
        session = make_context_session(scope, make_component(scope.project, type="context"))
    elif setup == "wrong_child_type":
        session = make_context_session(scope, context)
        make_child(session, make_component(scope.project), type="ContextTestingSessions")
    else:
        session = make_context_session(scope, context, type=COMPONENT_TEST_SESSIONS)

    response = api.post(url(session, "spawn/"))

    assert response.status_code == 422
    assert response.json() == {"detail": message}


# children


def test_children_in_spawn_order_with_summary_and_reasons(api, context_session):
    api.post(url(context_session, "spawn/"))
    children = {c.component.name: c for c in context_session.child_sessions.all()}
    Session.objects.filter(pk=children["User"].pk).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=children["Token"].pk).update(
        status=SessionStatus.FAILED, state={"error": "fixtures missing"}
    )
    Session.objects.filter(pk=children["Audit"].pk).update(status=SessionStatus.CANCELLED)

    response = api.get(url(context_session, "children/"))

    assert response.status_code == 200
    body = response.json()
    assert body["summary"] == {
        "total": 4,
        "active": 1,
        "stalled": 0,
        "complete": 1,
        "failed": 1,
        "cancelled": 1,
        "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
        "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
        "cost_usd": 0.0,
    }
    assert [c["component"]["name"] for c in body["results"]] == SPAWN_ORDER
    assert [(c["status"], c["failure_reason"]) for c in body["results"]] == [
        ("complete", None),
        ("active", None),
        ("failed", "fixtures missing"),
        ("cancelled", None),
    ]


def test_a_failed_childs_reason_falls_back_to_its_latest_errored_interaction(
    api, context_session, context
):
    child = make_child(context_session, context, status=SessionStatus.FAILED)
    Interaction.objects.create(
        session=child,
        step_name="RunTests",
        command={},
        result={"status": "error", "error_message": "3 tests failed"},
        completed_at=child.created_at,
    )
    lost = make_child(context_session, make_component(context.project), status=SessionStatus.FAILED)

    results = api.get(url(context_session, "children/")).json()["results"]

    reasons = {c["id"]: c["failure_reason"] for c in results}
    assert reasons == {str(child.pk): "3 tests failed", str(lost.pk): "no reason recorded"}


def test_no_children_yet(api, context_session):
    assert api.get(url(context_session, "children/")).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "summary": {
            "total": 0,
            "active": 0,
            "stalled": 0,
            "complete": 0,
            "failed": 0,
            "cancelled": 0,
            "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
            "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
            "cost_usd": 0.0,
        },
        "results": [],
    }


# The token and its user, the session, the count, the page's ids, the summary's counts and
# cost, the page's rows (with reasons and usage), their own children's ids.
CHILDREN_PAGE_QUERIES = 7


# Past a page of 100: a page costs the same whatever the number of children.
@pytest.mark.parametrize("size", [3, 130])
def test_children_cost_constant_queries(api, scope, size, django_assert_num_queries):
    context = make_context(scope.project, [(f"C{i:02}", i % 4) for i in range(size)])
    session = make_context_session(scope, context)
    api.post(url(session, "spawn/"))
    for index, child in enumerate(session.child_sessions.all()):
        if index % 2:
            Session.objects.filter(pk=child.pk).update(status=SessionStatus.FAILED)
            Interaction.objects.create(
                session=child,
                step_name="RunTests",
                command={},
                result={"status": "error", "error_message": "boom"},
                completed_at=child.created_at,
            )

    with django_assert_num_queries(CHILDREN_PAGE_QUERIES):
        response = api.get(url(session, "children/"))

    body = response.json()
    assert body["summary"]["total"] == body["count"] == size
    assert body["summary"]["failed"] == size // 2
    assert len(body["results"]) == min(size, 100)


# next-command, results, interactions


def test_next_command_is_201_new_then_200_the_same(api, context_session):
    first = api.post(url(context_session, "next-command/"))
    again = api.post(url(context_session, "next-command/"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    body = first.json()
    assert set(body) == INTERACTION_KEYS
    assert (body["step_name"], body["result"], body["completed_at"]) == ("Initialize", None, None)
    assert set(body["command"]) == COMMAND_KEYS


def test_report_a_result(api, context_session):
    interaction = api.post(url(context_session, "next-command/")).json()

    response = report(api, context_session.pk, interaction["id"], stdout="switched", code=0)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"interaction", "session"}
    assert body["interaction"]["result"]["status"] == "ok"
    assert body["interaction"]["result"]["stdout"] == "switched"
    assert body["interaction"]["completed_at"] is not None
    assert body["session"]["state"]["branch_name"].startswith("agentic-tests/")


def test_a_result_reported_twice_is_409(api, context_session, unchanged_db):
    interaction = api.post(url(context_session, "next-command/")).json()
    report(api, context_session.pk, interaction["id"])

    with unchanged_db():
        response = report(api, context_session.pk, interaction["id"], status="error")

    assert response.status_code == 409
    assert response.json() == {"detail": "A result was already reported for this interaction"}


@pytest.mark.parametrize("interaction_id", [uuid.uuid4(), "nope", "0"])
def test_an_unknown_interaction_is_404(api, context_session, interaction_id):
    response = report(api, context_session.pk, interaction_id)

    assert response.status_code == 404
    assert response.json() == {"detail": "Interaction not found"}


def test_another_sessions_interaction_is_404(api, scope, context, context_session):
    other = make_context_session(scope, make_component(scope.project, type="context"))
    interaction = api.post(url(other, "next-command/")).json()

    response = report(api, context_session.pk, interaction["id"])

    assert response.status_code == 404


def test_interactions_newest_first(api, context_session):
    step(api, context_session.pk)
    api.post(url(context_session, "next-command/"))

    body = api.get(url(context_session, "interactions/")).json()

    assert [i["step_name"] for i in body["results"]] == [
        "SpawnComponentTestingSessions",
        "Initialize",
    ]


def test_next_command_for_a_finished_session_is_409(api, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    response = api.post(url(context_session, "next-command/"))

    assert response.status_code == 409
    assert response.json() == {"detail": "Session is complete; it has no next command"}


# cancel


def test_cancel_cancels_the_session_and_its_active_children(api, context_session):
    api.post(url(context_session, "spawn/"))

    response = api.post(url(context_session, "cancel/"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    statuses = set(context_session.child_sessions.values_list("status", flat=True))
    assert statuses == {"cancelled"}


def test_cancelling_a_complete_session_is_409(api, context_session):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    response = api.post(url(context_session, "cancel/"))

    assert response.status_code == 409
    assert response.json() == {"detail": "Session is complete; it cannot be cancelled"}


def test_spawning_a_cancelled_session_is_409_and_creates_nothing(api, context_session):
    api.post(url(context_session, "cancel/"))

    response = api.post(url(context_session, "spawn/"))

    assert response.status_code == 409
    assert response.json() == {"detail": "Session is cancelled; it cannot spawn child sessions"}
    assert not context_session.child_sessions.exists()


def test_reopening_a_complete_session_is_409(api, context_session, unchanged_db):
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)

    with unchanged_db():
        response = api.patch(url(context_session), {"status": "active"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "Session is complete; its status cannot change"}


def test_state_a_step_could_not_read_is_400(api, context_session, unchanged_db):
    with unchanged_db():
        response = api.patch(url(context_session), {"state": {"fix_attempts": "x"}}, format="json")

    assert response.status_code == 400
    assert response.json() == {"state": ['state["fix_attempts"] must be an integer.']}


# the whole story


def drive_child_to_the_end(api, child_id, *, finalize="ok"):
    steps = []
    for status in ("ok", "ok", "ok", "ok", finalize):
        body = step(api, child_id, status=status, code=0 if status == "ok" else 1)
        steps.append(body["interaction"]["step_name"])
    assert steps == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "VerifyTests",
        "Finalize",
    ]
    if finalize == "error":
        # A failing step is tried again up to the project's max_step_attempts (3).
        for _ in range(2):
            body = step(api, child_id, status="error", code=1)
            assert body["interaction"]["step_name"] == "Finalize"
    return body["session"]


def test_a_context_session_from_creation_to_complete(api, project, context):
    session = api.post(
        "/api/sessions/",
        {
            "project": str(project.pk),
            "type": "ContextTestingSessions",
            "component": str(context.pk),
        },
        format="json",
    ).json()
    sid = session["id"]

    assert step(api, sid)["interaction"]["step_name"] == "Initialize"
    spawn = api.post(url(sid, "next-command/")).json()
    assert spawn["step_name"] == "SpawnComponentTestingSessions"
    child_ids = spawn["command"]["metadata"]["child_session_ids"]
    assert names_of(child_ids) == SPAWN_ORDER

    early = report(api, sid, spawn["id"]).json()
    assert early["interaction"]["result"]["error_message"] == (
        "Child sessions still running: User, Session, Token, Audit"
    )
    assert early["session"]["status"] == "active"

    for child_id in child_ids[:-1]:
        assert drive_child_to_the_end(api, child_id)["status"] == "complete"
    failed = drive_child_to_the_end(api, child_ids[-1], finalize="error")
    assert failed["status"] == "failed"

    again = step(api, sid)
    assert again["interaction"]["step_name"] == "SpawnComponentTestingSessions"
    assert again["interaction"]["result"]["error_message"] == (
        f"Child sessions failed: Audit ({failed['state']['error']})"
    )
    children = api.get(url(sid, "children/")).json()
    assert children["summary"] == {
        "total": 4,
        "active": 0,
        "stalled": 0,
        "complete": 3,
        "failed": 1,
        "cancelled": 0,
        "coverage": {"lines_total": 0, "lines_covered": 0, "line_coverage": None},
        "mutation": {"caught": 0, "survived": 0, "mutation_score": None},
        "cost_usd": 0.0,
    }
    assert children["results"][-1]["failure_reason"] == failed["state"]["error"]

    api.patch(url(child_ids[-1]), {"status": "complete"}, format="json")
    assert step(api, sid)["interaction"]["result"]["status"] == "ok"
    final = step(api, sid)
    assert final["interaction"]["step_name"] == "Finalize"
    assert final["session"]["status"] == "complete"
    assert final["session"]["child_session_ids"] == child_ids
