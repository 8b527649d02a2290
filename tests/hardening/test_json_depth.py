"""Every stored JSON value is at most MAX_DEPTH levels deep; deeper is a 400 naming the field,
never a RecursionError (a 500) in a serializer, ``Result.to_dict`` or the admin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import InvalidInput
from core.json_values import MAX_DEPTH, TOO_DEEP, unstorable_reason
from sessions_app import services
from sessions_app.models import Session, state_errors
from sessions_app.workflows.types import Result


def nested(levels: int) -> Any:
    """A value ``levels`` containers deep, objects and lists alternating."""
    value: Any = "leaf"
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize(
    ("value", "depth"),
    [("x", 0), ({}, 1), ([1, [2]], 2), ({"a": [{"b": None}]}, 3), (nested(40), 40)],
)
def test_depth_counts_containers(value, depth):
    assert unstorable_reason(value, max_depth=depth) is None
    if depth:
        assert unstorable_reason(value, max_depth=depth - 1) == TOO_DEEP


def test_the_depth_check_walks_values_far_deeper_than_the_stack():
    assert unstorable_reason(nested(200_000)) == TOO_DEEP


def test_a_state_at_the_limit_is_accepted_and_one_level_more_is_not():
    assert state_errors({"x": nested(MAX_DEPTH - 1)}) == []
    assert state_errors({"x": nested(MAX_DEPTH)}) == [TOO_DEEP]


def test_patching_a_state_one_level_too_deep_is_a_400_naming_state(api, context_session):
    url = f"/api/sessions/{context_session.pk}/"

    at_limit = api.patch(url, {"state": {"x": nested(MAX_DEPTH - 1)}}, format="json")
    too_deep = api.patch(url, {"state": {"x": nested(MAX_DEPTH)}}, format="json")

    assert at_limit.status_code == 200, at_limit.content[:300]
    assert too_deep.status_code == 400
    assert too_deep.json() == {"state": [TOO_DEEP]}


def test_creating_a_session_with_a_state_900_deep_is_a_400_naming_state(api, project):
    body = {"project": str(project.pk), "type": "ContextTestingSessions", "state": nested(900)}

    response = api.post("/api/sessions/", json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"state": [TOO_DEEP]}
    assert not Session.objects.exists()


def _pending_interaction(api, session) -> str:
    response = api.post(f"/api/sessions/{session.pk}/next-command/")
    assert response.status_code == 201
    return response.json()["id"]


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 474])
def test_a_result_whose_data_is_too_deep_is_a_400_naming_data(api, context_session, levels):
    interaction = _pending_interaction(api, context_session)
    body = json.dumps({"status": "ok", "data": nested(levels)})

    response = api.post(
        f"/api/sessions/{context_session.pk}/interactions/{interaction}/result/",
        body,
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"data": [TOO_DEEP]}


def test_a_result_nested_deeper_than_the_stack_is_a_400(api, context_session):
    interaction = _pending_interaction(api, context_session)
    body = '{"status": "ok", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = api.post(
        f"/api/sessions/{context_session.pk}/interactions/{interaction}/result/",
        body,
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": TOO_DEEP}


def test_a_result_whose_data_is_at_the_limit_is_stored(api, context_session):
    interaction = _pending_interaction(api, context_session)
    data = nested(MAX_DEPTH)

    response = api.post(
        f"/api/sessions/{context_session.pk}/interactions/{interaction}/result/",
        {"status": "ok", "data": data},
        format="json",
    )

    assert response.status_code == 200, response.content[:300]
    assert response.json()["interaction"]["result"]["data"] == data


def test_a_body_that_is_not_an_object_is_refused_whole(api, context_session):
    response = api.patch(
        f"/api/sessions/{context_session.pk}/",
        json.dumps([nested(MAX_DEPTH + 1)]),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": TOO_DEEP}


def test_the_service_refuses_result_data_too_deep_whoever_calls_it(scope, context_session):
    interaction, _ = services.next_command(scope=scope, session_id=context_session.pk)

    with pytest.raises(InvalidInput) as refused:
        services.submit_result(
            scope=scope,
            session_id=context_session.pk,
            interaction_id=interaction.pk,
            result=Result(status="ok", data=nested(MAX_DEPTH + 1)),
        )

    assert refused.value.errors == {"data": [TOO_DEEP]}
    interaction.refresh_from_db()
    assert interaction.result is None
