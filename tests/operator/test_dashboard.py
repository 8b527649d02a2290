"""The dashboard at /: each visible project's runs, outcomes, durations and stalled sessions."""

import re
from datetime import timedelta

from django.utils import timezone

from sessions_app import services
from sessions_app.models import Session, SessionStatus
from sessions_app.operator.dashboard import dashboards_for
from tests.factories import (
    add_finished_step,
    make_child,
    make_component,
    make_context,
    make_context_session,
    make_user,
)
from tests.operator.conftest import run_url


def panel(html: str, project) -> str:
    match = re.search(
        rf'<div class="module dashboard-project" data-project-id="{project.pk}">.*?'
        r'(?=<div class="module dashboard-project"|<p class="muted">Runs are)',
        html,
        re.S,
    )
    assert match, "no panel for the project"
    return match.group()


def cell(html: str, row: str, column: str) -> str:
    found = re.search(rf'<tr class="{row}">.*?<td class="{column}">([^<]*)</td>', html, re.S)
    return found.group(1)


def test_the_dashboard_counts_a_known_run(staff_client, project, known_run):
    response = staff_client.get("/")

    assert response.status_code == 200
    html = panel(response.content.decode(), project)
    assert cell(html, "counts-runs", "in-flight") == "1"
    assert cell(html, "counts-components", "in-flight") == "2"
    assert cell(html, "counts-components", "complete-day") == "1"
    assert cell(html, "counts-components", "failed-day") == "1"
    assert cell(html, "counts-components", "complete-week") == "1"
    assert cell(html, "counts-components", "failed-week") == "1"
    assert '<span class="stat pass-rate">50%</span>' in html
    assert '<span class="stat median-duration">2 m 06 s</span>' in html
    assert '<span class="stat stalled-count">1</span>' in html
    assert re.findall(r'<span class="slow-name">([^<]+)</span>', html) == ["User"]
    # The stalled child links to its run's page.
    stalled = re.search(r'<ul class="stalled-sessions">.*?</ul>', html, re.S).group()
    assert f'href="{run_url(known_run.parent)}"' in stalled and "Token" in stalled
    assert "w-1, lease expired" in stalled
    # The latest runs, linked to their pages, with their progress.
    assert f'href="{run_url(known_run.parent)}">Accounts</a>' in html
    assert "1/4 complete, 1 failed, 1 stalled" in html
    assert html.count('<svg class="chart') == 2


def test_the_day_and_the_week_are_separate_windows(scope, project, context_session):
    now = timezone.now()
    for age, status in ((timedelta(days=3), "complete"), (timedelta(days=8), "failed")):
        child = make_child(context_session, make_component(project), status=status)
        Session.objects.filter(pk=child.pk).update(updated_at=now - age)

    (board,) = dashboards_for(scope.user, now=now)

    assert (board.components_day.complete, board.components_day.failed) == (0, 0)
    # The eight-day-old failure is outside the week.
    assert (board.components_week.complete, board.components_week.failed) == (1, 0)
    assert board.pass_rate == 1.0
    # No step history: counted, but no duration to take a median of.
    assert board.median_seconds is None
    # Seven days, oldest first, today last: three days ago is the fourth.
    assert [done for _, done, _ in board.daily] == [0, 0, 0, 1, 0, 0, 0]


def test_cancelled_sessions_do_not_count_against_the_pass_rate(scope, context_session, project):
    make_child(context_session, make_component(project), status=SessionStatus.CANCELLED)

    (board,) = dashboards_for(scope.user)

    assert board.pass_rate is None


def test_a_staff_member_sees_only_their_projects(staff_client, project, other_scope, known_run):
    make_context_session(other_scope, make_context(other_scope.project, [("X", 1)]))

    html = staff_client.get("/").content.decode()

    assert f'data-project-id="{project.pk}"' in html
    assert f'data-project-id="{other_scope.project.pk}"' not in html
    assert "Elsewhere" not in html


def test_a_superuser_sees_every_project(superuser_client, project, other_scope):
    html = superuser_client.get("/").content.decode()

    assert f'data-project-id="{project.pk}"' in html
    assert f'data-project-id="{other_scope.project.pk}"' in html


def test_the_dashboard_costs_a_fixed_number_of_queries_per_project(
    scope, known_run, django_assert_num_queries
):
    # Projects, in flight, stalled, the week's finished sessions counted (FinishedCount rows),
    # the week's cost by day; for each project its timed sessions counted, their median and
    # their slowest components, and its runs; then for all those runs, their children's counts
    # and cost (one grouped query over the children's rows).
    with django_assert_num_queries(5 + 4 + 1):
        dashboards_for(scope.user)


def test_another_project_adds_its_own_four_queries(
    scope, other_scope, known_run, django_assert_num_queries
):
    superuser = make_user("root", is_staff=True, is_superuser=True)
    other_run = make_context_session(other_scope, make_context(other_scope.project, [("X", 1)]))
    child = make_child(other_run, other_run.component.child_components.get())
    add_finished_step(child, "GenerateTestsAndFixtures")
    Session.objects.filter(pk=child.pk).update(status=SessionStatus.COMPLETE)

    with django_assert_num_queries(5 + 4 * 2 + 1):
        boards = dashboards_for(superuser)

    assert [board.components_week.complete for board in boards] == [1, 1]


def test_each_latest_run_shows_its_children_s_coverage(staff_client, known_run):
    from sessions_app.models import Interaction, Session, Verification

    covered = []
    for child, (total, lines) in zip(
        Session.objects.filter(parent_session=known_run.parent).order_by("created_at")[:2],
        [(100, 90), (50, 20)],
        strict=True,
    ):
        step = Interaction.objects.create(session=child, step_name="VerifyTests", command={})
        covered.append(
            Verification.objects.create(
                session=child,
                interaction=step,
                passed=True,
                runs=[0],
                lines_total=total,
                lines_covered=lines,
            )
        )
        Session.objects.filter(pk=child.pk).update(latest_verification=covered[-1])

    html = staff_client.get("/").content.decode()

    # 110 of 150 lines over the run's children.
    assert '<td class="run-coverage">73.3% covered</td>' in html
    assert "of mutants caught" not in html

    Verification.objects.filter(pk=covered[0].pk).update(
        mutants_sampled=8, mutants_killed=5, mutants_survived=2, mutants_timed_out=1,
        mutants_incompetent=0, mutation_score=75,
    )  # fmt: skip
    html = staff_client.get("/").content.decode()

    assert '<span class="run-mutation">75.0% of mutants caught</span>' in html


def test_each_project_shows_its_cost_by_day_and_each_run_its_own(staff_client, known_run):

    from django.utils import timezone

    from sessions_app.models import Session

    child = Session.objects.filter(parent_session=known_run.parent).first()
    for cost in ("0.50", "0.25"):
        add_finished_step(child, "GenerateTestsAndFixtures", cost=cost)

    html = staff_client.get("/").content.decode()

    assert '<span class="stat cost-week">$0.75</span>' in html
    today = timezone.localtime().strftime("%a")
    daily = re.search(r'<table class="daily-cost">.*?</table>', html, flags=re.S).group(0)
    assert f"<th>{today}</th></tr>" in daily  # today last
    assert daily.count("<td>$0.00</td>") == 6 and "<td>$0.75</td>" in daily
    assert '<td class="run-cost">$0.75</td>' in html


def _finished_child(run, component, seconds: float, status=SessionStatus.COMPLETE):
    from sessions_app.models import Interaction

    child = make_child(run, component, status=status)
    now = timezone.now()
    step = Interaction.objects.create(
        session=child, step_name="Initialize", command={}, result={"status": "ok"}, completed_at=now
    )
    Interaction.objects.filter(pk=step.pk).update(created_at=now - timedelta(seconds=seconds))
    services.recount_from_steps(Session.objects.filter(pk=child.pk))  # as the service keeps it
    return child


def test_the_median_and_the_slowest_come_from_the_weeks_completed_component_sessions(scope):
    context = make_context(scope.project, [])
    fast, slow, other = (
        make_component(scope.project, name, parent_component=context)
        for name in ("Fast", "Slow", "Other")
    )
    first, second = (make_context_session(scope, context) for _ in range(2))
    for run, component, seconds in (
        (first, fast, 10),
        (first, slow, 300),
        (second, slow, 500),  # the same component again: its longest time counts
        (second, other, 40),
    ):
        _finished_child(run, component, seconds)
    # Failed ones are judged, not timed.
    _finished_child(second, fast, 9000, status=SessionStatus.FAILED)

    (board,) = dashboards_for(scope.user)

    assert board.median_seconds == (40 + 300) / 2
    assert [(name, round(seconds)) for name, seconds in board.slowest] == [
        ("Slow", 500),
        ("Other", 40),
        ("Fast", 10),
    ]
    assert (board.components_week.complete, board.components_week.failed) == (4, 1)
    assert board.daily[-1][1:] == (4, 1)  # today: 4 complete, 1 failed
    assert sum(done + failed for _, done, failed in board.daily[:-1]) == 0


def test_each_project_has_its_own_median_and_slowest(scope, other_scope):
    """The ranks are taken within each project: an odd count's middle, an even count's two."""
    other_scope.project.members.add(scope.user)
    for each, durations in ((scope, (30, 10, 20)), (other_scope, (100, 400))):
        context = make_context(each.project, [])
        run = make_context_session(each, context)
        for index, seconds in enumerate(durations):
            component = make_component(each.project, f"M{index}", parent_component=context)
            _finished_child(run, component, seconds)

    boards = {board.project.pk: board for board in dashboards_for(scope.user)}

    mine, theirs = boards[scope.project.pk], boards[other_scope.project.pk]
    assert mine.median_seconds == 20 and theirs.median_seconds == 250
    assert [name for name, _ in mine.slowest] == ["M0", "M2", "M1"]
    assert [(name, round(s)) for name, s in theirs.slowest] == [("M1", 400), ("M0", 100)]


# --- the slowest components, read from the longest sessions down ---------------------------


def timed_children(context_session, project, durations: dict[str, list[float]]) -> None:
    """Complete component sessions of the named components, one per duration (seconds); a
    component's second and later sessions in runs of their own."""
    start = timezone.now() - timedelta(hours=1)
    for name, each in durations.items():
        component = make_component(project, name)
        for index, seconds in enumerate(each):
            run = context_session
            if index:
                run = Session.objects.create(
                    project=project,
                    user=context_session.user,
                    type=context_session.type,
                    component=context_session.component,
                )
            make_child(
                run,
                component,
                status=SessionStatus.COMPLETE,
                first_step_at=start,
                last_result_at=start + timedelta(seconds=seconds),
            )


def test_the_slowest_five_come_from_one_page_of_the_longest_sessions(
    scope, project, context_session, django_assert_num_queries
):
    timed_children(context_session, project, {f"M{i:02d}": [10.0 + i] for i in range(60)})

    (board,) = dashboards_for(scope.user)

    assert board.slowest == [(f"M{i:02d}", 10.0 + i) for i in (59, 58, 57, 56, 55)]
    assert board.median_seconds == 39.5


def test_a_tie_past_the_page_is_ranked_by_name(scope, project, context_session):
    # 60 sessions of 50 s: the page of 50 ends on the tie, and "A00" is past it by duration
    # order but first by name.
    # "A00" is finished first, so the index hands it out last of the tied rows.
    timed_children(context_session, project, {"A00": [50.0]})
    timed_children(context_session, project, {f"Z{i:02d}": [50.0] for i in range(59)})
    timed_children(context_session, project, {"B": [70.0]})

    (board,) = dashboards_for(scope.user)

    assert board.slowest == [
        ("B", 70.0),
        ("A00", 50.0),
        ("Z00", 50.0),
        ("Z01", 50.0),
        ("Z02", 50.0),
    ]


def test_one_components_many_sessions_do_not_hide_the_others(scope, project, context_session):
    # A week of runs of the same context: one component's 60 long sessions fill the page.
    timed_children(context_session, project, {"Heavy": [100.0 + i for i in range(60)]})
    timed_children(context_session, project, {"Light": [5.0], "Mid": [20.0]})

    (board,) = dashboards_for(scope.user)

    assert board.slowest == [("Heavy", 159.0), ("Mid", 20.0), ("Light", 5.0)]
