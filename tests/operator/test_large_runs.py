"""A run of many children: the run page shows a page of those that need a look first, draws
the timeline as each step's distribution, and costs the same queries at any size."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app import selectors, services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.operator.run import RUN_PAGE_SIZE, TIMELINE_ROW_LIMIT, run_etag
from tests.factories import add_children_in_bulk, make_context, make_context_session
from tests.operator.conftest import live_url, run_url

SIZE = 130


def wide_run(scope, size: int, prefix: str = "c"):
    """A spawned run of ``size`` children: every seventh failed, every eleventh stalled, the
    rest complete but the last ten (running); each finished child with two finished steps."""
    context = make_context(scope.project, [])
    add_children_in_bulk(context, size, prefix)
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    children = list(selectors.spawned_children(session=session))
    now = timezone.now()
    failed, stalled, running = [], [], []
    for index, child in enumerate(children):
        if index % 7 == 3:
            child.status = SessionStatus.FAILED
            child.state = {"error": f"boom {index}"}
            failed.append(child.pk)
        elif index % 11 == 5:
            child.runner, child.leased_until = "gone", now - timedelta(minutes=1)
            stalled.append(child.pk)
        elif index >= size - 10:
            child.runner, child.leased_until = "alive", now + timedelta(minutes=5)
            running.append(child.pk)
        else:
            child.status = SessionStatus.COMPLETE
    Session.objects.bulk_update(children, ["status", "state", "runner", "leased_until"])
    steps = []
    for index, child in enumerate(children):
        if child.status == SessionStatus.ACTIVE:
            continue
        for name, seconds in (("Initialize", 5), ("RunTests", 90 if index % 2 else 400)):
            steps.append(
                (
                    Interaction(
                        session=child,
                        step_name=name,
                        command={"module": name},
                        result={"status": "ok"},
                        completed_at=now,
                    ),
                    seconds,
                )
            )
    Interaction.objects.bulk_create(step for step, _ in steps)
    for step, seconds in steps:
        Interaction.objects.filter(pk=step.pk).update(created_at=now - timedelta(seconds=seconds))
    return session, children, failed, stalled, running


@pytest.fixture
def large(scope):
    return wide_run(scope, SIZE)


def shown_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="child[^"]*" data-child-id="([^"]+)"', html)


def test_page_one_shows_failed_then_stalled_then_running_children(staff_client, large):
    session, _, failed, stalled, running = large

    html = staff_client.get(run_url(session)).content.decode()

    shown = shown_ids(html)
    assert len(shown) == RUN_PAGE_SIZE
    expected = [str(pk) for pk in failed + stalled + running]
    assert shown[: len(expected)] == expected
    assert "Page 1 of 3" in html
    assert 'class="run-page-next" href="?page=2"' in html
    assert "run-page-previous" not in html


def test_the_pages_cover_every_child_once(staff_client, large):
    session, children, *_ = large
    seen = []
    for number in (1, 2, 3):
        seen += shown_ids(staff_client.get(run_url(session), {"page": number}).content.decode())
    assert sorted(seen) == sorted(str(child.pk) for child in children)
    last = staff_client.get(run_url(session), {"page": 3}).content.decode()
    assert 'class="run-page-previous" href="?page=2"' in last
    # Rows are numbered across pages.
    assert re.search(r'data-status="\w+">\s*<td>101</td>', last)


@pytest.mark.parametrize(("asked", "shown"), [("abc", 1), ("0", 1), ("-3", 1), ("99", 3)])
def test_a_page_number_out_of_range_shows_the_nearest_page(staff_client, large, asked, shown):
    session, *_ = large
    html = staff_client.get(run_url(session), {"page": asked}).content.decode()
    assert f"Page {shown} of 3" in html


def test_the_live_fragment_serves_the_page_it_was_asked_for(staff_client, large):
    session, *_ = large
    page_two = staff_client.get(run_url(session), {"page": 2}).content.decode()
    assert f'data-live-url="{live_url(session)}?page=2"' in page_two

    live = staff_client.get(live_url(session), {"page": 2})

    assert shown_ids(live.content.decode()) == shown_ids(page_two)
    assert (
        staff_client.get(
            live_url(session), {"page": 2}, HTTP_IF_NONE_MATCH=live["ETag"]
        ).status_code
        == 304
    )


def test_a_large_runs_timeline_is_each_steps_distribution(staff_client, large):
    session, children, *_ = large
    finished = sum(1 for child in children if child.status != SessionStatus.ACTIVE)

    html = staff_client.get(run_url(session)).content.decode()

    assert f"more than {TIMELINE_ROW_LIMIT} children" in html
    assert 'class="step ' not in html  # no per-child bars
    counts = {}
    for step, count in re.findall(r'data-step="(\w+)" data-count="(\d+)"', html):
        counts[step] = counts.get(step, 0) + int(count)
    assert counts == {"Initialize": finished, "RunTests": finished}
    # RunTests took 90 s for half of them and 400 s for the other half: two buckets.
    run_tests = re.findall(r'class="bucket bucket-(\d)"[^>]*data-step="RunTests"', html)
    assert run_tests == ["2", "3"]
    assert f"{finished} done" in html and "longest 6 m 40 s" in html


def test_a_small_runs_timeline_keeps_a_row_per_child(staff_client, scope):
    session, *_ = wide_run(scope, 12)
    html = staff_client.get(run_url(session)).content.decode()
    assert "distribution" not in html
    labels = re.findall(r'<text class="timeline-label"[^>]*>([^<]+)</text>', html)
    assert labels == [f"C{index:03d}" for index in range(12)]  # the context has no step yet


def _page_queries(client, session) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(run_url(session)).status_code == 200
    return len(captured.captured_queries)


def test_the_whole_page_costs_the_same_queries_at_30_and_300_children(staff_client, scope):
    small, *_ = wide_run(scope, 30, "small")
    large, *_ = wide_run(scope, 300, "large")
    _page_queries(staff_client, small)  # the session and permissions cached alike
    assert _page_queries(staff_client, small) == _page_queries(staff_client, large)


def test_the_tag_changes_when_a_child_off_the_page_changes(large):
    session, children, *_ = large
    before = run_etag(session=session)
    # A complete child, far down the order: off page 1, but counted in its summary.
    last_complete = [c for c in children if c.status == SessionStatus.COMPLETE][-1]
    Session.objects.filter(pk=last_complete.pk).update(status=SessionStatus.FAILED)

    assert run_etag(session=session) != before
    assert run_etag(session=session) == run_etag(session=session)


def test_the_tag_of_a_large_run_changes_with_a_step_of_a_child_off_the_page(staff_client, large):
    """Above the timeline's limit the children's steps reach the tag through the
    distributions the page draws: a step handed out, then finished, off page 1."""
    session, children, *_ = large
    tags = [staff_client.get(live_url(session))["ETag"]]
    last_complete = [c for c in children if c.status == SessionStatus.COMPLETE][-1]
    step = Interaction.objects.create(
        session=last_complete, step_name="Finalize", command={"module": "Finalize"}
    )
    tags.append(staff_client.get(live_url(session))["ETag"])
    Interaction.objects.filter(pk=step.pk).update(
        result={"status": "ok"}, completed_at=timezone.now()
    )
    tags.append(staff_client.get(live_url(session))["ETag"])
    # The context's own step is counted apart from the distributions.
    Interaction.objects.create(
        session=session,
        step_name="Finalize",
        command={"module": "Finalize"},
        result={"status": "ok"},
        completed_at=timezone.now(),
    )
    tags.append(staff_client.get(live_url(session))["ETag"])

    assert len(set(tags)) == 4
    assert staff_client.get(live_url(session), HTTP_IF_NONE_MATCH=tags[-1]).status_code == 304


def test_a_sessions_page_lists_its_first_100_children_and_counts_them_all(staff_client, scope):
    session, *_ = wide_run(scope, 105)

    html = staff_client.get(f"/admin/sessions_app/session/{session.pk}/change/").content.decode()

    listed = re.findall(r'<table class="child-sessions">.*?</table>', html, re.S)[0]
    assert listed.count('<tr class="child') == 100
    assert "105 children:" in html
    assert "The first 100 in spawn order; 5 more on the" in html
