"""``GET /api/sessions/{id}/children/`` a page at a time: ``page_size`` from 1 to 1,000 (a 400
outside), ``next``/``previous``, ``?status=``, and a summary that counts every child whatever
the page or the filter."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import selectors, services
from sessions_app.models import Session, SessionStatus
from tests.factories import make_context, make_context_session

SIZE = 7


@pytest.fixture
def run(scope):
    context = make_context(scope.project, [(f"C{index}", index % 3) for index in range(SIZE)])
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    order = list(selectors.spawned_children(session=session))
    # Two complete, one failed, one stalled, the rest running.
    Session.objects.filter(pk__in=[order[1].pk, order[4].pk]).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=order[2].pk).update(
        status=SessionStatus.FAILED, state={"error": "RunTests failed 3 times: boom"}
    )
    Session.objects.filter(pk=order[3].pk).update(
        runner="gone", leased_until=timezone.now() - timedelta(minutes=1)
    )
    return session, [str(child.pk) for child in order]


def children(api, session, **params):
    return api.get(f"/api/sessions/{session.pk}/children/", params)


EVERY_CHILD = {"total": SIZE, "active": 4, "stalled": 1, "complete": 2, "failed": 1}


def counts(body) -> dict:
    return {key: body["summary"][key] for key in EVERY_CHILD}


def test_pages_walk_every_child_in_spawn_order_and_each_carries_the_whole_summary(api, run):
    session, order = run
    page = children(api, session, page_size=3).json()
    pages = [page]
    while page["next"]:
        page = api.get(page["next"]).json()
        pages.append(page)

    assert [len(p["results"]) for p in pages] == [3, 3, 1]
    assert [child["id"] for p in pages for child in p["results"]] == order
    for p in pages:
        assert p["count"] == SIZE
        assert counts(p) == EVERY_CHILD
    assert pages[0]["previous"] is None
    assert api.get(pages[1]["previous"]).json()["results"] == pages[0]["results"]


def test_the_default_page_is_100_children(api, scope):
    context = make_context(scope.project, [(f"C{index:03}", 0) for index in range(101)])
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)

    body = children(api, session).json()

    assert (len(body["results"]), body["count"], body["summary"]["total"]) == (100, 101, 101)
    assert body["next"].endswith(f"/api/sessions/{session.pk}/children/?page=2")


@pytest.mark.parametrize(
    ("status", "positions"),
    [("failed", [2]), ("complete", [1, 4]), ("active", [0, 3, 5, 6]), ("cancelled", [])],
)
def test_status_filters_the_results_not_the_summary(api, run, status, positions):
    session, order = run

    body = children(api, session, status=status).json()

    assert [child["id"] for child in body["results"]] == [order[i] for i in positions]
    assert body["count"] == len(positions)
    assert counts(body) == EVERY_CHILD


def test_a_failed_childs_page_names_its_reason(api, run):
    session, _ = run
    (failed,) = children(api, session, status="failed").json()["results"]
    assert failed["failure_reason"] == "RunTests failed 3 times: boom"


@pytest.mark.parametrize("value", ["0", "1001", "-1", "abc", "1.5", "1e3", "٣", "99999999999999"])
def test_a_page_size_out_of_range_is_a_400_that_says_what_is_allowed(api, run, value):
    session, _ = run

    response = children(api, session, page_size=value)

    assert response.status_code == 400
    assert response.json() == {"page_size": ["Must be a whole number from 1 to 1000."]}


@pytest.mark.parametrize("value", ["1", "1000", " 5 "])
def test_page_sizes_in_range_are_served(api, run, value):
    session, _ = run
    body = children(api, session, page_size=value).json()
    assert len(body["results"]) == min(int(value), SIZE)


def test_every_list_takes_the_same_page_size_rules(api, run):
    assert len(api.get("/api/sessions/", {"page_size": 1}).json()["results"]) == 1
    for path in ("/api/sessions/", "/api/components/", "/api/projects/"):
        assert api.get(path, {"page_size": 0}).status_code == 400


@pytest.mark.parametrize("value", ["paused", "ACTIVE", "stalled"])
def test_an_unknown_status_is_a_400(api, run, value):
    session, _ = run
    response = children(api, session, status=value)
    assert response.status_code == 400
    assert response.json() == {"status": [f'"{value}" is not a valid choice.']}


def test_an_empty_status_is_refused_not_read_as_every_child(api, run):
    session, _ = run
    response = children(api, session, status="")
    assert response.status_code == 400


def test_a_page_past_the_last_is_a_404(api, run):
    session, _ = run
    assert children(api, session, page=9).status_code == 404


def test_a_change_on_another_page_changes_the_tag_through_the_summary(api, run):
    session, order = run
    first = children(api, session, page_size=2)
    etag = first["ETag"]
    unchanged = api.get(
        f"/api/sessions/{session.pk}/children/", {"page_size": 2}, HTTP_IF_NONE_MATCH=etag
    )
    assert unchanged.status_code == 304

    # The last child is on page 4; it completes, so page 1's summary changes.
    Session.objects.filter(pk=order[-1]).update(status=SessionStatus.COMPLETE)

    again = api.get(
        f"/api/sessions/{session.pk}/children/", {"page_size": 2}, HTTP_IF_NONE_MATCH=etag
    )
    assert again.status_code == 200
    assert again.json()["summary"]["complete"] == 3
    assert again["ETag"] != etag
