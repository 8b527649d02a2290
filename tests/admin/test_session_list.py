"""The Session list at scale: runs grouped with their children, filters, short-id search."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Session
from tests.admin.conftest import CHANGELIST
from tests.conftest import SPAWN_ORDER
from tests.factories import make_context, make_context_session
from tests.operator.runs import build_known_run


def listed(response) -> list[Session]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def two_runs(scope, project, context_session):
    """An older run (Accounts, four children) and a newer one (Billing, two children)."""
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    Session.objects.filter(pk=context_session.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    billing = make_context(project, [("Invoice", 1), ("Refund", 2)])
    newer = make_context_session(scope, billing)
    services.spawn_child_sessions(scope=scope, session_id=newer.pk)
    return context_session, newer


def test_each_run_is_followed_by_its_children_in_spawn_order_newest_run_first(
    staff_client, two_runs
):
    older, newer = two_runs

    rows = listed(staff_client.get(CHANGELIST))

    assert [row.pk for row in rows[:3]] == [
        newer.pk,
        *Session.objects.filter(parent_session=newer)
        .order_by("-component__priority")
        .values_list("pk", flat=True),
    ]
    assert rows[3].pk == older.pk
    assert [row.component.name for row in rows[4:]] == SPAWN_ORDER


def test_the_run_filter_shows_a_run_and_its_children_by_id_or_short_id(staff_client, two_runs):
    older, _ = two_runs

    for value in (str(older.pk), str(older.pk)[:8]):
        rows = listed(staff_client.get(CHANGELIST, {"parent": value}))
        assert rows[0].pk == older.pk
        assert [row.component.name for row in rows[1:]] == SPAWN_ORDER


def test_the_run_filter_offers_the_latest_runs(staff_client, two_runs):
    html = staff_client.get(CHANGELIST).content.decode()

    for run in two_runs:
        assert f"?parent={run.pk}" in html


def test_an_unknown_run_filter_lists_nothing(staff_client, two_runs):
    assert listed(staff_client.get(CHANGELIST, {"parent": str(uuid.uuid4())})) == []


def test_the_level_filter_separates_runs_from_children(staff_client, two_runs):
    assert {row.pk for row in listed(staff_client.get(CHANGELIST, {"level": "runs"}))} == {
        run.pk for run in two_runs
    }
    assert len(listed(staff_client.get(CHANGELIST, {"level": "children"}))) == 6


def test_the_stalled_and_runner_filters(staff_client, scope, context_session):
    run = build_known_run(scope, context_session)
    token = run.children["Token"]

    assert listed(staff_client.get(CHANGELIST, {"stalled": "yes"})) == [token]
    assert token not in listed(staff_client.get(CHANGELIST, {"stalled": "no"}))
    assert listed(staff_client.get(CHANGELIST, {"runner": "w-1"})) == [token]
    assert token not in listed(staff_client.get(CHANGELIST, {"runner": "-"}))


def test_the_component_and_date_filters(staff_client, two_runs):
    older, _ = two_runs
    user_child = Session.objects.get(parent_session=older, component__name="User")

    rows = listed(staff_client.get(CHANGELIST, {"component__id__exact": user_child.component_id}))
    assert rows == [user_child]
    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    recent = listed(staff_client.get(CHANGELIST, {"created_at__gte": since}))
    assert older not in recent and len(recent) == 7


def test_a_short_id_finds_its_session(staff_client, two_runs):
    older, _ = two_runs

    assert listed(staff_client.get(CHANGELIST, {"q": str(older.pk)[:8]})) == [older]
    assert listed(staff_client.get(CHANGELIST, {"q": str(older.pk)[:8].upper()})) == [older]
    assert listed(staff_client.get(CHANGELIST, {"q": str(older.pk)[:13]})) == [older]


def test_a_short_id_search_still_finds_text_matches(staff_client, two_runs):
    # "Refund" is not hex: the text search alone answers.
    rows = listed(staff_client.get(CHANGELIST, {"q": "Refund"}))
    assert [row.component.name for row in rows] == ["Refund"]


def test_the_list_shows_runner_lease_times_to_the_second_and_durations(
    staff_client, scope, context_session
):
    run = build_known_run(scope, context_session)

    html = staff_client.get(CHANGELIST).content.decode()

    created = timezone.localtime(run.parent.created_at).strftime(
        '%Y-%m-%d</span> <span class="nowrap">%H:%M:%S'
    )
    assert created in html
    assert "2 m 06 s" in html and "1 m 02 s" in html  # User's and Session's durations
    token_row = re.search(
        rf"<tr[^>]*>(?:(?!</tr>).)*{run.children['Token'].pk}.*?</tr>", html, re.S
    )
    assert "w-1" in token_row.group() and "badge-stalled" in token_row.group()
    assert "↳" in html


def test_the_add_form_offers_the_registered_types(staff_client):
    response = staff_client.get("/admin/sessions_app/session/add/")

    field = response.context["adminform"].form.fields["type"]
    assert [value for value, _ in field.choices] == [
        "", "ContextTestingSessions", "ComponentTestSessions"
    ]  # fmt: skip
    assert '<select name="type"' in response.content.decode()


def test_the_add_form_refuses_a_type_that_is_not_registered(staff_client, project):
    response = staff_client.post(
        "/admin/sessions_app/session/add/",
        {
            "project": str(project.pk),
            "type": "NoSuchWorkflow",
            "status": "active",
            "execution_mode": "manual",
            "state": "{}",
            "external_conversation_id": "",
        },
    )

    assert response.status_code == 200
    assert "type" in response.context["adminform"].form.errors
    assert not Session.objects.exists()


def test_the_parents_page_marks_stalled_children_and_links_the_run(
    staff_client, scope, context_session
):
    run = build_known_run(scope, context_session)

    html = staff_client.get(f"/admin/sessions_app/session/{run.parent.pk}/change/").content.decode()

    statuses = re.findall(r'<tr class="child[^"]*" data-status="(\w+)"', html)
    assert statuses == ["complete", "failed", "stalled", "active"]
    assert f'href="/admin/sessions_app/session/{run.parent.pk}/run/"' in html


def test_a_failed_childs_page_shows_its_reason_and_test_output_outside_the_json(
    staff_client, scope, context_session
):
    run = build_known_run(scope, context_session)

    html = staff_client.get(
        f"/admin/sessions_app/session/{run.children['Session'].pk}/change/"
    ).content.decode()

    assert re.search(r"RunTests: 3 tests failed\s*</div>", html)
    assert re.search(
        r'<details class="test-output"><summary>2 lines</summary>'
        r'<pre class="test-output">FAILED tests/test_session.py',
        html,
    )


def test_a_finished_sessions_duration_is_from_its_first_step_to_its_last_result(
    staff_client, scope, context_session
):
    from sessions_app.operator.formatting import duration_text

    known = build_known_run(scope, context_session)
    done = Session.objects.get(pk=known.children["User"].pk)
    steps = done.interactions.all()
    expected = max(s.completed_at for s in steps) - min(s.created_at for s in steps)
    assert done.seconds == pytest.approx(expected.total_seconds(), abs=0.002) and done.seconds > 0

    html = staff_client.get(CHANGELIST).content.decode()

    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{done.pk}(?:(?!</tr>).)*</tr>", html, re.S)
    assert row is not None
    assert f'<td class="field-duration">{duration_text(done.seconds)}</td>' in row.group(0)
