"""The API client over httpx.MockTransport: what it sends, and answers turned into values."""

from __future__ import annotations

import json
import threading
import types

import httpx
import pytest

from spawnctl.api import (
    Api,
    ApiError,
    Claimed,
    Conflict,
    Interaction,
    LeasedBy,
    NotFound,
    Session,
    Unauthorized,
    Unreachable,
    base_url,
    leased_by,
)

SID = "11111111-1111-1111-1111-111111111111"
UNTIL = "2026-12-01T10:00:00.123456Z"


def api_answering(handler, **kwargs) -> tuple[Api, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return Api(
        "http://server:8000/", "secret", transport=httpx.MockTransport(record), **kwargs
    ), seen


def _body(request: httpx.Request) -> dict:
    return json.loads(request.content) if request.content else {}


def test_every_request_carries_the_token_under_api():
    api, seen = api_answering(lambda r: httpx.Response(200, json={"id": SID, "status": "active"}))

    session = api.get_session(SID)

    assert session.id == SID and session.status == "active"
    assert str(seen[0].url) == f"http://server:8000/api/sessions/{SID}/"
    assert seen[0].headers["Authorization"] == "Token secret"


@pytest.mark.parametrize(
    "given", ["http://h:1", "http://h:1/", "http://h:1/api", "http://h:1/api/", " http://h:1 "]
)
def test_the_server_url_may_be_given_with_or_without_api(given):
    assert base_url(given) == "http://h:1"


def test_next_command_sends_the_runner_and_lease_and_answers_the_interaction():
    itx = {"id": "i1", "step_name": "Initialize", "command": {"command": "git status"}}
    api, seen = api_answering(lambda r: httpx.Response(201, json=itx))

    answer = api.next_command(SID, runner="r1", lease_seconds=30)

    assert isinstance(answer, Interaction)
    assert (answer.id, answer.step_name, answer.command["command"]) == (
        "i1",
        "Initialize",
        "git status",
    )
    assert seen[0].method == "POST" and seen[0].url.path == f"/api/sessions/{SID}/next-command/"
    assert _body(seen[0]) == {"runner": "r1", "lease_seconds": 30}


def test_the_lease_is_left_to_the_server_default_when_not_given():
    api, seen = api_answering(lambda r: httpx.Response(200, json={"id": SID}))
    api.heartbeat(SID, runner="r1")
    assert _body(seen[0]) == {"runner": "r1"}


@pytest.mark.parametrize("route", ["next_command", "heartbeat", "release"])
def test_a_lease_held_by_another_runner_is_a_value(route):
    detail = f"Session is leased by laptop 2 until {UNTIL}"
    api, _ = api_answering(lambda r: httpx.Response(409, json={"detail": detail}))

    answer = getattr(api, route)(SID, runner="me")

    assert answer == LeasedBy(runner="laptop 2", until=UNTIL)
    assert answer.until_time.isoformat() == "2026-12-01T10:00:00.123456+00:00"


def test_a_runner_name_with_until_in_it_is_read_whole():
    assert leased_by(f"Session is leased by a until b until {UNTIL}") == LeasedBy(
        "a until b", UNTIL
    )
    assert leased_by("Session is complete") is None


def test_any_other_conflict_is_an_error_with_the_servers_text():
    detail = "Session is complete; it has no next command"
    api, _ = api_answering(lambda r: httpx.Response(409, json={"detail": detail}))

    with pytest.raises(Conflict) as raised:
        api.next_command(SID, runner="me")

    assert raised.value.status == 409 and raised.value.detail == detail


def test_claim_child_204_is_none_and_200_the_child_with_its_command():
    answers = iter(
        [
            httpx.Response(204),
            httpx.Response(
                200,
                json={
                    "session": {"id": "c1", "component": {"name": "User", "module_name": "A.User"}},
                    "interaction": {"id": "i1", "step_name": "Initialize"},
                },
            ),
        ]
    )
    api, seen = api_answering(lambda r: next(answers))

    assert api.claim_child(SID, runner="me", lease_seconds=5) is None
    claimed = api.claim_child(SID, runner="me", lease_seconds=5)

    assert isinstance(claimed, Claimed)
    assert (claimed.session.name, claimed.session.module_name) == ("User", "A.User")
    assert claimed.interaction.id == "i1"
    assert _body(seen[0]) == {"runner": "me", "lease_seconds": 5}


def test_submit_result_posts_to_the_interaction_and_answers_both():
    api, seen = api_answering(
        lambda r: httpx.Response(
            200,
            json={
                "interaction": {"id": "i1", "result": {"status": "error"}},
                "session": {"id": SID, "status": "failed", "state": {"error": "why"}},
            },
        )
    )

    submitted = api.submit_result(SID, "i1", {"status": "ok", "code": 0})

    assert seen[0].url.path == f"/api/sessions/{SID}/interactions/i1/result/"
    assert _body(seen[0]) == {"status": "ok", "code": 0}
    assert submitted.interaction.result == {"status": "error"}
    assert submitted.session.is_finished and submitted.session.state["error"] == "why"


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, Unauthorized), (403, Unauthorized), (404, NotFound), (500, ApiError)],
)
def test_http_errors_are_typed_with_the_detail(status, error):
    api, _ = api_answering(lambda r: httpx.Response(status, json={"detail": "Session not found"}))

    with pytest.raises(error) as raised:
        api.get_session(SID)

    assert raised.value.status == status and raised.value.detail == "Session not found"


def test_field_errors_become_one_readable_detail_and_keep_their_body():
    api, _ = api_answering(
        lambda r: httpx.Response(400, json={"runner": ["Must be 1 to 200 characters."]})
    )

    with pytest.raises(ApiError) as raised:
        api.heartbeat(SID, runner="x")

    assert raised.value.detail == "runner: Must be 1 to 200 characters."
    assert raised.value.body == {"runner": ["Must be 1 to 200 characters."]}


def test_an_answer_that_is_not_json_is_an_error_not_a_crash():
    api, _ = api_answering(lambda r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(ApiError, match="not JSON"):
        api.get_session(SID)


class Clock:
    """Time for the API client alone: its pauses pass at once and are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        self.now += seconds
        return False


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("spawnctl.api.time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(Api, "_wait", lambda self, seconds: clock.wait(seconds))
    return clock


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_a_request_that_never_reached_the_server_is_sent_again(clock):
    failures = iter([True, True])

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(failures, False):
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"id": SID})

    api, seen = api_answering(flaky)

    assert api.get_session(SID).id == SID
    assert len(seen) == 3
    assert clock.pauses == [0.5, 1.0]


def test_a_server_that_stays_away_is_waited_out_with_backoff_then_unreachable(clock):
    api, seen = api_answering(_refused, server_timeout=60, first_pause=0.5, max_pause=10)

    with pytest.raises(Unreachable) as raised:
        api.get_session(SID)

    # Doubling up to the cap, the last pause cut to the deadline: 60 s in all.
    assert clock.pauses == [0.5, 1, 2, 4, 8, 10, 10, 10, 10, 4.5]
    assert len(seen) == 11
    assert raised.value.explanation == (
        "the server at http://server:8000 was unreachable for 60 s: "
        "ConnectError: connection refused"
    )
    assert raised.value.detail.startswith("Cannot reach http://server:8000: ConnectError")


@pytest.mark.parametrize(
    "trouble",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("Connection reset by peer"),
        httpx.Response(502, text="Bad Gateway"),
        httpx.Response(503, json={"detail": "The database is unavailable"}),
        httpx.Response(504, text="Gateway Timeout"),
    ],
)
def test_a_result_whose_answer_was_lost_or_unavailable_is_sent_again(clock, trouble):
    answers = iter([trouble, trouble])
    stored = {
        "interaction": {"id": "i1", "result": {"status": "ok"}},
        "session": {"id": SID, "status": "active"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if isinstance(answer, Exception):
            answer.request = request
            raise answer
        return answer or httpx.Response(200, json=stored)

    api, seen = api_answering(handler)

    submitted = api.submit_result(SID, "i1", {"status": "ok", "code": 0})

    assert submitted.interaction.result == {"status": "ok"}
    assert [_body(request) for request in seen] == [{"status": "ok", "code": 0}] * 3


def test_once_the_server_counts_as_gone_other_requests_fail_at_once_until_it_answers(clock):
    up = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if not up.is_set():
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"id": SID})

    api, seen = api_answering(handler, server_timeout=5)
    with pytest.raises(Unreachable):
        api.get_session(SID)
    tries = len(seen)

    with pytest.raises(Unreachable):
        api.release(SID, runner="me")  # on the way out: one try, no second wait
    assert len(seen) == tries + 1

    up.set()
    assert api.get_session(SID).id == SID
    up.clear()
    clock.pauses.clear()
    with pytest.raises(Unreachable):
        api.get_session(SID)
    assert sum(clock.pauses) == 5  # gone again: a whole wait again


def test_the_outage_is_said_when_it_starts_and_when_it_ends(clock):
    answers = iter([None, None, httpx.Response(200, json={"id": SID})])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return answer

    said: list[str] = []
    api, _ = api_answering(handler, on_outage=said.append, server_timeout=300)

    api.get_session(SID)

    assert said == [
        "the server at http://server:8000 is unreachable (ConnectError: connection refused); "
        "waiting up to 300 s for it",
        "the server at http://server:8000 answers again",
    ]


def test_a_stop_ends_the_wait_at_once():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    api, seen = api_answering(_refused, first_pause=0.05, max_pause=0.05, stop=stop)

    with pytest.raises(Unreachable):
        api.get_session(SID)

    assert 2 <= len(seen) < 40  # server_timeout is 300 s: the stop ended it


def test_a_heartbeat_is_one_try_its_loop_sends_the_next(clock):
    api, seen = api_answering(_refused)

    with pytest.raises(Unreachable, match="Cannot reach http://server:8000"):
        api.heartbeat(SID, runner="me")

    assert len(seen) == 1 and clock.pauses == []


def test_a_url_that_cannot_work_is_not_waited_for(clock):
    api = Api("ftp://server", "t")
    with pytest.raises(Unreachable, match="Cannot reach ftp://server: UnsupportedProtocol"):
        api.get_session(SID)
    assert clock.pauses == []


def test_children_and_components_read_every_page():
    pages = {
        "/api/sessions/s/children/": {
            "summary": {"total": 1, "active": 1},
            "results": [{"id": "c", "status": "failed", "failure_reason": "boom", "attempt": 2}],
        },
        "/api/components/": {
            "results": [{"id": 1}],
            "next": "http://server:8000/api/components/?page=2&project=p",
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"results": [{"id": 2}], "next": None})
        return httpx.Response(200, json=pages[request.url.path])

    api, seen = api_answering(handler)

    children = api.children("s")
    assert children.summary == {"total": 1, "active": 1}
    child = children.results[0]
    assert (child.failure_reason, child.attempt, child.is_finished) == ("boom", 2, True)
    assert api.components("p") == [{"id": 1}, {"id": 2}]
    assert seen[1].url.params["project"] == "p"


def test_children_follow_the_pages_and_the_summary_is_read_alone():
    first = {
        "summary": {"total": 3, "complete": 3},
        "results": [{"id": "a"}, {"id": "b"}],
        "next": "http://server:8000/api/sessions/s/children/?page=2",
    }
    second = {"summary": {"total": 3, "complete": 3}, "results": [{"id": "c"}], "next": None}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=second if request.url.params.get("page") else first)

    api, seen = api_answering(handler)

    children = api.children("s")
    assert [child.id for child in children.results] == ["a", "b", "c"]
    assert children.summary == {"total": 3, "complete": 3}
    assert api.children_summary("s") == {"total": 3, "complete": 3}
    assert seen[-1].url.params["page_size"] == "1"


def test_components_of_one_parent():
    api, seen = api_answering(lambda r: httpx.Response(200, json={"results": [], "next": None}))
    api.components("p", parent_component="c1")
    assert dict(seen[0].url.params) == {"project": "p", "parent_component": "c1"}


def test_a_session_without_component_is_named_by_its_short_id():
    session = Session({"id": SID, "component": None, "type": "ContextTestingSessions"})
    assert session.name == SID[:8] and session.is_context and session.attempt == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_or_unavailable_answer_is_sent_again_after_retry_after(status, clock):
    answers = iter(
        [
            httpx.Response(status, headers={"Retry-After": "2"}, json={"detail": "busy"}),
            httpx.Response(status, headers={"Retry-After": "9999"}, json={"detail": "busy"}),
            httpx.Response(200, json={"id": SID, "status": "active"}),
        ]
    )
    api, seen = api_answering(lambda request: next(answers))

    session = api.get_session(SID)

    assert session.id == SID
    assert len(seen) == 3
    # Retry-After is obeyed, within bounds.
    assert clock.pauses == [2.0, 30.0]


def test_a_server_that_stays_throttled_is_an_error_once_the_wait_is_over(clock):
    api, seen = api_answering(
        lambda request: httpx.Response(
            429, headers={"Retry-After": "1"}, json={"detail": "Request was throttled."}
        ),
        server_timeout=2.5,
    )

    with pytest.raises(ApiError) as error:
        api.get_session(SID)

    # Throttled is an answer: the server was there, it refused for now.
    assert not isinstance(error.value, Unreachable)
    assert error.value.status == 429
    assert error.value.detail == "Request was throttled."
    assert len(seen) == 3 and clock.pauses == [1.0, 1.0]


def test_each_post_has_a_key_of_its_own_and_keeps_it_on_every_try(clock):
    answers = iter([None, None])

    def lost_twice(request: httpx.Request) -> httpx.Response:
        if next(answers, "answered") is None:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"id": SID})

    api, seen = api_answering(lost_twice)

    api.release(SID, runner="me")
    api.release(SID, runner="me")
    api.get_session(SID)

    keys = [request.headers.get("Idempotency-Key") for request in seen]
    assert len(keys) == 5
    assert keys[0] == keys[1] == keys[2] and keys[3] != keys[0]  # three tries, then another
    assert all(keys[:4]) and keys[4] is None  # a read needs none


def test_a_repeat_whose_first_try_still_runs_is_asked_again(clock):
    in_progress = {"detail": "A request with this Idempotency-Key is in progress"}
    answers = iter([httpx.Response(409, json=in_progress), httpx.Response(409, json=in_progress)])
    claimed = {"session": {"id": "c1"}, "interaction": {"id": "i1"}}
    api, seen = api_answering(
        lambda request: next(answers, None) or httpx.Response(200, json=claimed)
    )

    answer = api.claim_child(SID, runner="me")

    assert answer is not None and answer.session.id == "c1"
    assert len(seen) == 3 and clock.pauses == [0.5, 1.0]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_that_kept_conflicting_on_the_server_is_asked_again(clock, method):
    # The server retried a deadlock itself and gave up: nothing was written, try again.
    kept = {"detail": "The request kept conflicting with concurrent writes; try again"}
    answers = iter([httpx.Response(409, json=kept), httpx.Response(409, json=kept)])
    session = {"id": SID, "status": "active"}
    api, seen = api_answering(
        lambda request: next(answers, None) or httpx.Response(200, json=session)
    )

    answer = api.release(SID, runner="me") if method == "POST" else api.get_session(SID)

    assert isinstance(answer, Session) and answer.id == SID
    assert len(seen) == 3 and clock.pauses == [0.5, 1.0]
    assert len({request.headers.get("Idempotency-Key") for request in seen}) == 1


def test_a_request_that_keeps_conflicting_is_a_conflict_once_the_wait_is_over(clock):
    kept = {"detail": "The request kept conflicting with concurrent writes; try again"}
    api, seen = api_answering(lambda request: httpx.Response(409, json=kept), server_timeout=3)

    with pytest.raises(Conflict) as raised:
        api.retry(SID)

    assert raised.value.detail == kept["detail"]
    assert len(seen) == 3 and sum(clock.pauses) <= 3


def test_children_ask_for_the_largest_page_and_pass_the_status_filter_on():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"summary": {"total": 5000, "active": 1}, "results": [{"id": "a"}]}
        )

    api, seen = api_answering(handler)

    children = api.children("s", status="active")

    assert [child.id for child in children.results] == ["a"]
    assert children.summary == {"total": 5000, "active": 1}
    assert (seen[0].url.params["page_size"], seen[0].url.params["status"]) == ("1000", "active")
    api.children("s")
    assert "status" not in seen[-1].url.params
