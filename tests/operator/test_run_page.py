"""A context run's page and its live fragment."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.operator.run import run_for
from sessions_app.workflows.types import Result
from tests.conftest import SPAWN_ORDER
from tests.factories import (
    add_children_in_bulk,
    add_finished_step,
    make_component,
    make_context,
    make_context_session,
)
from tests.operator.conftest import live_url, run_url
from tests.operator.runs import REASON, TEST_OUTPUT


def rows_of(html: str) -> dict[str, str]:
    """Each child's table row, by the child's name."""
    rows = re.findall(r'<tr class="child[^"]*".*?</tr>', html, flags=re.S)
    named = {}
    for row in rows:
        name = re.search(r'<td class="child-name"><a href="[^"]+">([^<]+)</a>', row).group(1)
        named[name] = row
    return named


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def test_the_run_page_shows_the_children_that_need_a_look_first(staff_client, known_run):
    response = staff_client.get(run_url(known_run.parent))

    assert response.status_code == 200
    html = response.content.decode()
    rows = rows_of(html)
    # Failed, stalled, running (none here), waiting, then the rest in spawn order.
    assert list(rows) == ["Session", "Token", "Audit", "User"]
    statuses = re.findall(r'<tr class="child[^"]*" data-child-id="[^"]+" data-status="(\w+)"', html)
    assert statuses == ["failed", "stalled", "active", "complete"]
    assert 'class="badge badge-complete">Complete<' in rows["User"]
    assert 'class="badge badge-stalled">Stalled<' in rows["Token"]
    assert "Children 1/4 complete, 1 failed, 1 stalled, 1 running" in text(html)
    # Failed and stalled children: the run will not end by itself.
    assert 'class="badge badge-attention">Needs attention<' in html
    assert "1/4 complete" in text(html)  # the progress bar


def test_each_child_shows_its_step_attempt_lease_duration_and_reason(staff_client, known_run):
    rows = rows_of(staff_client.get(run_url(known_run.parent)).content.decode())

    assert text(re.search(r'<td class="child-step">.*?</td>', rows["User"], re.S).group()) == (
        "Finalize ok"
    )
    assert "RunTests error" in text(rows["Session"])
    assert "RunTests Pending" in text(rows["Token"])
    assert "not started" in text(rows["Audit"])
    assert "2 m 06 s" in text(rows["User"]) and "commands 1 m 40 s" in text(rows["User"])
    assert "1 m 02 s" in text(rows["Session"])
    assert "w-1 lease expired" in text(rows["Token"])
    assert REASON in text(rows["Session"])
    output = re.search(r'<details class="test-output"[^>]*>.*?</details>', rows["Session"], re.S)
    assert output is not None and " open" not in output.group()[:40]  # collapsed
    assert '<pre class="test-output">' in output.group()
    assert "3 failed, 9 passed" in output.group()
    assert TEST_OUTPUT.splitlines()[0] in output.group()


def test_each_child_links_to_its_page_and_its_log(staff_client, known_run):
    html = staff_client.get(run_url(known_run.parent)).content.decode()

    for name in SPAWN_ORDER:
        child = known_run.children[name]
        assert f'href="/admin/sessions_app/session/{child.pk}/change/"' in rows_of(html)[name]
        assert f'href="/admin/sessions_app/session/{child.pk}/log/">log</a>' in rows_of(html)[name]


def test_a_childs_log_shows_every_step_oldest_first_each_part_collapsed(staff_client, known_run):
    failed = known_run.children["Session"]
    step = failed.interactions.get(step_name="RunTests")
    step.command = {"command": "pytest tests/test_session.py\n# and more", "metadata": {}}
    step.result = {**step.result, "stdout": "E   AssertionError\n2 failed", "stderr": "warn"}
    step.save()

    response = staff_client.get(f"/admin/sessions_app/session/{failed.pk}/log/")

    html = response.content.decode()
    assert response.status_code == 200
    names = re.findall(r'<div class="step-head"><strong>(\w+)</strong>', html)
    assert names == ["Initialize", "GenerateTestsAndFixtures", "RunTests"]
    entry = re.search(rf'<li class="step-entry" id="step-{step.pk}">.*?</li>', html, re.S).group()
    assert "<summary>Command: <code>pytest tests/test_session.py…</code></summary>" in entry
    assert "<summary>stdout (2 lines)</summary>" in entry
    assert "<summary>stderr (1 line)</summary>" in entry
    assert "<details open" not in entry
    assert REASON in entry
    assert f'href="{run_url(known_run.parent)}"' in html


def test_the_timeline_has_one_row_per_child_and_one_bar_per_step(staff_client, known_run):
    html = staff_client.get(run_url(known_run.parent)).content.decode()

    svg = re.search(r'<svg class="timeline".*?</svg>', html, re.S).group()
    labels = re.findall(r'<text class="timeline-label"[^>]*>([^<]+)</text>', svg)
    assert labels == SPAWN_ORDER
    assert len(re.findall(r'<rect class="step step-\w+ finished"', svg)) == 8
    # The stalled child's step is amber, not "running".
    assert len(re.findall(r'<rect class="step step-pending pending"', svg)) == 0
    assert len(re.findall(r'<rect class="step step-stalled pending"', svg)) == 1
    assert len(re.findall(r'<rect class="step step-error finished"', svg)) == 1
    # A bar spans its step: User's 60 s step is six times as wide as its 10 s one.
    user_bars = re.findall(r'width="([\d.]+)" height="14" rx="2" data-step="\w+"><title>User:', svg)
    widths = [float(width) for width in user_bars]
    assert len(widths) == 4
    assert widths[1] == pytest.approx(6 * widths[0], rel=0.02)
    assert "https://" not in svg and "http://" not in svg.replace("http://www.w3.org", "")


def test_a_run_without_children_or_steps(staff_client, scope, project):
    session = make_context_session(scope, make_context(project, []))

    response = staff_client.get(run_url(session))

    assert response.status_code == 200
    assert "No child sessions yet." in response.content.decode()
    assert "No step has started yet." in response.content.decode()


# The summary's counts and cost, the page's ids, the page's rows, steps (every child's, or
# the page's above the timeline's limit), the components without a child; then every child's
# name for the timeline's rows, or each step's distribution above the limit.
RUN_QUERIES = 6


# 30 children: one page, a row each in the timeline; 130: three pages and a distribution.
@pytest.mark.parametrize(("size", "aggregated"), [(30, False), (130, True)])
def test_the_run_costs_six_queries_whatever_its_size(
    scope, project, size, aggregated, django_assert_num_queries
):
    context = make_context(project, [])
    add_children_in_bulk(context, size)
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)

    session = Session.objects.select_related("project").get(pk=session.pk)
    with django_assert_num_queries(RUN_QUERIES):
        run = run_for(session=session)

    assert len(run.children) == min(size, 50)
    assert run.aggregated is aggregated
    assert len(run.timeline_children) == (0 if aggregated else size)


@pytest.mark.parametrize("session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_session_is_a_404(staff_client, db, session_id):
    assert staff_client.get(f"/admin/sessions_app/session/{session_id}/run/").status_code == 404
    assert staff_client.get(f"/admin/sessions_app/session/{session_id}/run/live/").status_code == (
        404
    )


def test_another_projects_run_is_a_404(staff_client, other_scope):
    foreign = make_context_session(other_scope, make_context(other_scope.project, [("X", 1)]))

    assert staff_client.get(run_url(foreign)).status_code == 404
    assert staff_client.get(live_url(foreign)).status_code == 404


def test_nobody_logged_in_is_sent_to_the_login_page(client, known_run):
    response = client.get(run_url(known_run.parent))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_only_reads(staff_client, known_run):
    assert staff_client.post(run_url(known_run.parent)).status_code == 405
    assert staff_client.post(live_url(known_run.parent)).status_code == 405


def test_the_live_fragment_answers_304_while_nothing_changed(staff_client, known_run):
    first = staff_client.get(live_url(known_run.parent))
    assert first.status_code == 200
    etag = first["ETag"]
    assert 'id="run-live"' in first.content.decode()
    assert f'data-etag="{etag.replace(chr(34), "&quot;")}"' in first.content.decode()

    again = staff_client.get(live_url(known_run.parent), HTTP_IF_NONE_MATCH=etag)

    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert "no-cache" in again["Cache-Control"]


def test_the_page_carries_the_fragments_tag_and_polls_only_while_live(staff_client, known_run):
    page = staff_client.get(run_url(known_run.parent)).content.decode()
    etag = staff_client.get(live_url(known_run.parent))["ETag"]

    assert f'data-etag="{etag.replace(chr(34), "&quot;")}"' in page
    assert 'data-active="true"' in page
    assert f'data-live-url="{live_url(known_run.parent)}"' in page


def test_a_reported_result_changes_the_tag(staff_client, scope, known_run):
    etag = staff_client.get(live_url(known_run.parent))["ETag"]
    token = known_run.children["Token"]
    pending = Interaction.objects.get(session=token, completed_at__isnull=True)

    services.submit_result(
        scope=scope, session_id=token.pk, interaction_id=pending.pk, result=Result(status="ok")
    )
    response = staff_client.get(live_url(known_run.parent), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert "RunTests ok" in text(rows_of(response.content.decode())["Token"])


def test_a_status_written_without_updated_at_still_changes_the_tag(staff_client, known_run):
    etag = staff_client.get(live_url(known_run.parent))["ETag"]
    Session.objects.filter(pk=known_run.children["Audit"].pk).update(status=SessionStatus.CANCELLED)

    assert staff_client.get(live_url(known_run.parent), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_lease_expiring_changes_the_tag_with_no_write(staff_client, known_run):
    audit = known_run.children["Audit"]
    soon = timezone.now() + timedelta(seconds=1)
    Session.objects.filter(pk=audit.pk).update(runner="w-2", leased_until=soon)
    etag = staff_client.get(live_url(known_run.parent))["ETag"]

    # Time passes; nothing is written; the lease is now expired and Audit stalled.
    later = timezone.now() + timedelta(seconds=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: later)
        response = staff_client.get(live_url(known_run.parent), HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert 'data-status="stalled"' in rows_of(response.content.decode())["Audit"]


def test_a_finished_run_stops_polling(staff_client, scope, known_run):
    services.cancel_session(scope=scope, session_id=known_run.parent.pk)

    page = staff_client.get(run_url(known_run.parent)).content.decode()

    assert 'data-active="false"' in page
    assert "the run has finished" in page


def test_the_run_page_names_the_run_s_branch_once_initialize_has_set_it(staff_client, known_run):
    context = known_run.parent
    before = text(staff_client.get(run_url(context)).content.decode())
    assert "Branch not yet (set by Initialize)" in before

    Session.objects.filter(pk=context.pk).update(branch="agentic-tests/shop-1234abcd")

    html = staff_client.get(run_url(context)).content.decode()
    assert '<code class="run-branch">agentic-tests/shop-1234abcd</code>' in html


def test_each_child_shows_its_coverage_and_the_run_its_total(staff_client, scope, known_run):
    from sessions_app.models import Verification

    child = Session.objects.filter(parent_session=known_run.parent).order_by("created_at")[0]
    interaction = Interaction.objects.create(
        session=child, step_name="VerifyTests", command={"command": "x"}
    )
    verification = Verification.objects.create(
        session=child,
        interaction=interaction,
        passed=False,
        runs=[0, 0, 0],
        lines_total=120,
        lines_covered=100,
        line_coverage=83.3,
        problems=["Tests without assertions: test_a"],
    )
    Session.objects.filter(pk=child.pk).update(latest_verification=verification)

    html = staff_client.get(run_url(known_run.parent)).content.decode()

    row = rows_of(html)[child.component.name]
    assert '<span class="coverage-value">83.3%</span>' in row
    assert 'title="Tests without assertions: test_a">below the bar<' in row
    assert "Coverage 83.3% of 120 lines" in text(html)


def test_each_child_shows_its_mutation_score_and_the_run_its_total(staff_client, known_run):
    from sessions_app.models import Verification

    children = Session.objects.filter(parent_session=known_run.parent).order_by("created_at")
    counts = [(6, 3, 1), (4, 1, 0)]
    for child, (killed, survived, timed_out) in zip(children[:2], counts, strict=True):
        interaction = Interaction.objects.create(
            session=child, step_name="VerifyTests", command={"command": "x"}
        )
        caught = killed + timed_out
        verification = Verification.objects.create(
            session=child, interaction=interaction, passed=True, runs=[0],
            lines_total=10, lines_covered=10, line_coverage=100,
            mutants_sampled=caught + survived, mutants_killed=killed, mutants_survived=survived,
            mutants_timed_out=timed_out, mutants_incompetent=0,
            mutation_score=caught * 1000 // (caught + survived) / 10,
        )  # fmt: skip
        Session.objects.filter(pk=child.pk).update(latest_verification=verification)

    html = staff_client.get(run_url(known_run.parent)).content.decode()

    row = rows_of(html)[children[0].component.name]
    assert 'title="3 of 10 sampled mutants survived">mutants caught 70.0%<' in row
    # 11 of 15 mutants caught over the run's children.
    assert "Mutation score 73.3% of 15 mutants caught" in text(html)
    untested = rows_of(html)[children[2].component.name]
    assert "mutants caught" not in untested


def test_a_run_without_the_mutation_gate_shows_no_mutation_score(staff_client, known_run):
    html = staff_client.get(run_url(known_run.parent)).content.decode()

    assert "Mutation score" not in text(html)


def test_each_child_shows_its_cost_and_the_run_its_total_beside_its_budget(staff_client, known_run):
    from decimal import Decimal

    first, second = Session.objects.filter(parent_session=known_run.parent).order_by("created_at")[
        :2
    ]
    for child, cost in ((first, "1.234"), (second, "0.004")):
        add_finished_step(child, "GenerateTestsAndFixtures", cost=cost)
    Session.objects.filter(pk=known_run.parent.pk).update(max_cost_usd=Decimal("5"))

    html = staff_client.get(run_url(known_run.parent)).content.decode()

    rows = rows_of(html)
    assert '<td class="child-cost nowrap">$1.23</td>' in rows[first.component.name]
    assert '<td class="child-cost nowrap">&lt;$0.01</td>' in rows[second.component.name]
    assert "Cost $1.24 of a $5.00 budget" in text(html)


# --- acting from the run page -------------------------------------------------------------


def action_url(session, name: str) -> str:
    return f"/admin/sessions_app/session/{session.pk}/run/{name}/"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_run_page_offers_the_buttons_its_run_can_use(staff_client, known_run):
    html = staff_client.get(run_url(known_run.parent)).content.decode()

    buttons = re.findall(
        r'<button type="submit" class="button[^"]*" name="action" value="([\w-]+)"', html
    )
    # A failed child, leased children, no missing component: no "Spawn missing".
    assert buttons == ["retry-children", "release-leases", "cancel"]
    assert html.count('name="csrfmiddlewaretoken"') >= 3


def test_retry_failed_children_from_the_run_page_says_what_it_did(staff_client, known_run):
    response = staff_client.post(action_url(known_run.parent, "retry-children"), follow=True)

    assert response.redirect_chain[-1][0] == run_url(known_run.parent)
    assert messages_of(response) == ["Accounts: retried 1 child session: Session."]
    failed = known_run.children["Session"]
    failed.refresh_from_db()
    assert (failed.status, failed.attempt) == (SessionStatus.ACTIVE, 2)


def test_release_leases_frees_every_leased_session_of_the_run(staff_client, known_run):
    response = staff_client.post(action_url(known_run.parent, "release-leases"), follow=True)

    texts = messages_of(response)
    assert any(text.endswith("released the lease of w-1.") for text in texts), texts
    assert not Session.objects.filter(
        parent_session=known_run.parent, runner__isnull=False
    ).exists()


def test_spawn_missing_from_the_run_page_makes_the_missing_child(staff_client, project, known_run):
    make_component(
        project,
        "Late",
        module_name="App.Accounts.Late",
        parent_component=known_run.parent.component,
    )
    page = staff_client.get(run_url(known_run.parent)).content.decode()
    assert "Components without a child session: Late" in page
    assert 'value="spawn-missing"' in page

    response = staff_client.post(action_url(known_run.parent, "spawn-missing"), follow=True)

    assert messages_of(response) == ["Accounts: spawned 1 missing child session (5 in all)."]
    assert Session.objects.filter(parent_session=known_run.parent).count() == 5


def test_cancel_from_the_run_page_cancels_the_run_and_its_active_children(staff_client, known_run):
    response = staff_client.post(action_url(known_run.parent, "cancel"), follow=True)

    assert messages_of(response) == [
        "Cancelled 1 session and their children that were still active."
    ]
    known_run.parent.refresh_from_db()
    assert known_run.parent.status == SessionStatus.CANCELLED
    assert 'value="cancel"' not in response.content.decode()  # a finished run has no buttons


def test_a_get_an_unknown_action_or_a_child_is_refused(staff_client, known_run):
    child = known_run.children["User"]

    assert staff_client.get(action_url(known_run.parent, "cancel")).status_code == 405
    assert staff_client.post(action_url(known_run.parent, "explode")).status_code == 404
    assert staff_client.post(action_url(child, "cancel")).status_code == 404
    known_run.parent.refresh_from_db()
    assert known_run.parent.status == SessionStatus.ACTIVE


def test_without_the_change_permission_no_button_shows_and_none_works(client, known_run):
    from django.contrib.auth.models import Permission

    from tests.factories import make_user

    viewer = make_user("viewer", is_staff=True)
    known_run.parent.project.members.add(viewer)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_session"))
    client.force_login(viewer)

    html = client.get(run_url(known_run.parent)).content.decode()
    refused = client.post(action_url(known_run.parent, "cancel"))

    assert 'name="action"' not in html
    assert refused.status_code == 403
    known_run.parent.refresh_from_db()
    assert known_run.parent.status == SessionStatus.ACTIVE


# --- the components' history ----------------------------------------------------------------


def test_the_project_page_shows_each_component_over_the_last_runs(
    staff_client, scope, project, known_run
):
    from datetime import timedelta as delta

    older = make_context_session(scope, known_run.parent.component)
    Session.objects.filter(pk=older.pk).update(created_at=timezone.now() - delta(days=1))
    services.spawn_child_sessions(scope=scope, session_id=older.pk)
    Session.objects.filter(parent_session=older).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(parent_session=older, component__name="Token").update(
        status=SessionStatus.FAILED
    )

    html = staff_client.get(f"/admin/components_app/project/{project.pk}/change/").content
    html = html.decode()

    grid = re.search(r'<table class="history-grid">.*?</table>', html, re.S).group()
    heads = re.findall(r'<th class="history-run"><a href="([^"]+)"', grid)
    assert heads == [run_url(known_run.parent), run_url(older)]  # newest first
    rows = dict(re.findall(r'<tr data-module="([^"]+)">(.*?)</tr>', grid, re.S))
    statuses = {
        module: re.findall(r'<td class="history-cell history-(\w+)"', row)
        for module, row in rows.items()
    }
    by_name = {known_run.children[name].component.module_name: name for name in SPAWN_ORDER}
    assert {by_name[module]: cells for module, cells in statuses.items()} == {
        "User": ["complete", "complete"],
        "Session": ["failed", "complete"],
        "Token": ["active", "failed"],
        "Audit": ["active", "complete"],
    }
    # From the run page, one click.
    run_html = staff_client.get(run_url(known_run.parent)).content.decode()
    assert (
        f'href="/admin/components_app/project/{project.pk}/change/#history">Component history'
        in run_html
    )
