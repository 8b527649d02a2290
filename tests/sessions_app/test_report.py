"""What a run produced: the report (JSON and Markdown) of a run with complete, failed, improved
and excluded children, read through the service, the API, the operator's page and a Markdown
parser; and the pull request a context's Finalize opens with it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from markdown_it import MarkdownIt

from components_app.models import Component, Project
from sessions_app import report, services
from sessions_app.models import Interaction, Session, SessionStatus, Verification
from sessions_app.workflows import conventions
from sessions_app.workflows.types import Result
from tests.api.conftest import client_for
from tests.factories import (
    add_finished_step,
    make_component,
    make_context,
    make_context_session,
    make_user,
)

HOSTILE = "Evil | <script>alert(1)</script>\n| x | y |"


def add_step(child, name, *, cost=None, minutes=0, result="ok"):
    now = timezone.now() + timedelta(minutes=minutes)
    Interaction.objects.filter(
        pk=add_finished_step(child, name, cost=cost, result={"status": result}, completed_at=now).pk
    ).update(created_at=now - timedelta(seconds=30))


def verify(child, *, passed, lines=(100, 80), branches=None, problems=(), runs=(0, 0, 0)):
    step = Interaction.objects.create(
        session=child,
        step_name="VerifyTests",
        command={},
        result={"status": "ok" if passed else "error"},
        completed_at=timezone.now(),
    )
    total, covered = lines
    found = Verification.objects.create(
        session=child,
        interaction=step,
        passed=passed,
        runs=list(runs),
        lines_total=total,
        lines_covered=covered,
        line_coverage=Decimal(covered * 1000 // total) / 10,
        branch_coverage=None if branches is None else Decimal(branches),
        problems=list(problems),
    )
    Session.objects.filter(pk=child.pk).update(latest_verification=found)
    return found


@pytest.fixture
def finished_run(scope, project):
    """A context of four: Cart complete, Price improved once then complete, Tax failed, Legacy
    excluded (its child cancelled)."""
    context = make_context(project, [])
    for name, priority in (("Cart", 4), ("Price", 3), ("Tax", 2), ("Legacy", 1)):
        make_component(
            project,
            name,
            module_name=f"shop.{name.lower()}",
            parent_component=context,
            priority=priority,
        )
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    Session.objects.filter(pk=session.pk).update(branch="agentic-tests/shop-1", max_cost_usd=5)
    kids = {c.component.name: c for c in Session.objects.filter(parent_session=session)}
    cart, price, tax, legacy = (kids[n] for n in ("Cart", "Price", "Tax", "Legacy"))
    add_step(session, "Initialize", minutes=-10)
    for child, cost in ((cart, "0.25"), (price, "0.50"), (tax, "1.00")):
        add_step(child, "GenerateTestsAndFixtures", cost=cost, minutes=-5)
    add_step(price, "ImproveTests", cost="0.125", minutes=-3)
    verify(cart, passed=True, lines=(120, 100), branches="75.0")
    verify(
        price,
        passed=False,
        lines=(100, 40),
        problems=["Line coverage of shop/price.py is 40.0%, below 80%"],
    )
    verify(price, passed=True, lines=(100, 90))
    verify(
        tax, passed=False, lines=(50, 10), runs=(0, 1, 0), problems=["Tests failed in 1 of 3 runs"]
    )
    Session.objects.filter(pk__in=[cart.pk, price.pk]).update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=cart.pk).update(state={"test_file": "tests/test_shop_cart_cart.py"})
    Session.objects.filter(pk=price.pk).update(
        state={"test_file": "tests/test_shop_price_price.py", "improve_attempts": 1}
    )
    Session.objects.filter(pk=tax.pk).update(
        status=SessionStatus.FAILED,
        attempt=2,
        state={
            "test_file": "tests/test_shop_tax_tax.py",
            "error": "Tests do not meet the project's bar after 3 improvement attempts",
        },
    )
    Component.objects.filter(pk=legacy.component_id).update(excluded=True)
    Session.objects.filter(pk=legacy.pk).update(status=SessionStatus.CANCELLED)
    session.refresh_from_db()
    return session


def build(session):
    return report.build(session=session, links=report.Links(run_page="https://ops.example/run/1"))


def test_the_report_holds_the_runs_facts_and_every_child_failures_first(finished_run):
    body = build(finished_run)

    context = finished_run.component
    assert body["title"] == f"Agentic tests for {context.name} ({context.module_name})"
    assert (body["status"], body["branch"], body["base_branch"]) == (
        "active",
        "agentic-tests/shop-1",
        "main",
    )
    assert body["cost_usd"] == 1.875 and body["max_cost_usd"] == 5.0
    assert body["coverage"] == {"lines_total": 270, "lines_covered": 200, "line_coverage": 74.0}
    assert body["counts"] == {
        "total": 4,
        "active": 0,
        "stalled": 0,
        "complete": 2,
        "failed": 1,
        "cancelled": 1,
        "excluded": 1,
    }
    assert body["duration_seconds"] >= 600
    assert body["run_page_url"] == "https://ops.example/run/1"
    assert [child["component"] for child in body["children"]] == ["Tax", "Legacy", "Cart", "Price"]
    tax, legacy, cart, price = body["children"]
    assert tax == {
        "session": tax["session"],
        "component": "Tax",
        "module_name": "shop.tax",
        "excluded": False,
        "status": "failed",
        "attempts": 2,
        "line_coverage": 20.0,
        "branch_coverage": None,
        "mutation_score": None,
        "runs": [0, 1, 0],
        "cost_usd": 1.0,
        "test_file": "tests/test_shop_tax_tax.py",
        "failure_reason": "Tests do not meet the project's bar after 3 improvement attempts",
        "improvements": 0,
        "first_problems": ["Tests failed in 1 of 3 runs"],
    }
    assert (legacy["excluded"], legacy["status"], legacy["cost_usd"]) == (True, "cancelled", 0.0)
    assert (cart["line_coverage"], cart["branch_coverage"], cart["cost_usd"]) == (83.3, 75.0, 0.25)
    assert (price["improvements"], price["first_problems"], price["cost_usd"]) == (
        1,
        ["Line coverage of shop/price.py is 40.0%, below 80%"],
        0.625,
    )


def table_of(markdown: str) -> list[list[str]]:
    """The Markdown's one table, as rows of cell texts, read by a CommonMark parser with GFM
    tables (what GitHub and GitLab render)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    rows: list[list[str]] = []
    tables = 0
    for token in tokens:
        if token.type == "table_open":
            tables += 1
        elif token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows and tables:
            rows[-1].append(token.content)
        elif token.type == "table_close":
            break
    assert tables == 1
    return rows


def test_the_markdown_is_one_table_a_reviewer_reads_failures_first(finished_run):
    markdown = report.markdown(build(finished_run))

    rows = table_of(markdown)
    assert rows[0] == [
        "Component",
        "Status",
        "Attempts",
        "Line coverage",
        "Branch coverage",
        "Runs",
        "Cost",
        "Test file",
        "Failure reason",
    ]
    assert [row[0].split(" (")[0] for row in rows[1:]] == ["Tax", "Legacy", "Cart", "Price"]
    assert all(len(row) == 9 for row in rows)
    tax = rows[1]
    assert tax[1:8] == [
        "failed",
        "2",
        "20.0%",
        "—",
        "2/3 passed",
        "$1.00",
        "`tests/test_shop_tax_tax.py`",
    ]
    assert rows[2][1] == "cancelled (excluded)"
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<td>Tests do not meet the project's bar after 3 improvement attempts</td>" in html
    assert "**Cost:** $1.88 of a $5.00 budget" in markdown
    assert "[Run page](https://ops.example/run/1)" in markdown
    assert (
        "- Price: 1 ImproveTests round; first: Line coverage of shop/price.py is 40.0%" in markdown
    )


def test_a_run_with_the_mutation_gate_shows_its_scores(finished_run):
    cart = finished_run.child_sessions.get(component__name="Cart")
    Verification.objects.filter(pk=cart.latest_verification_id).update(
        mutants_sampled=10, mutants_killed=6, mutants_survived=3, mutants_timed_out=1,
        mutants_incompetent=0, mutation_score=Decimal("70.0"),
    )  # fmt: skip

    body = build(finished_run)
    markdown = report.markdown(body)

    assert body["mutation"] == {"caught": 7, "survived": 3, "mutation_score": 70.0}
    assert [c["mutation_score"] for c in body["children"]] == [None, None, 70.0, None]
    rows = table_of(markdown)
    assert rows[0][5] == "Mutation score"
    assert all(len(row) == 10 for row in rows)
    assert [row[5] for row in rows[1:]] == ["—", "—", "70.0%", "—"]
    assert "**Mutation score:** 70.0% of 10 mutants caught" in markdown


def test_a_hostile_name_or_reason_cannot_add_a_row_a_column_or_html(finished_run):
    tax = Session.objects.get(parent_session=finished_run, component__name="Tax")
    Component.objects.filter(pk=tax.component_id).update(name=HOSTILE)
    Session.objects.filter(pk=tax.pk).update(
        state={"error": "boom | <img src=x onerror=alert(1)>\n| injected |", "test_file": "t.py"}
    )

    markdown = report.markdown(build(finished_run))

    rows = table_of(markdown)
    assert len(rows) == 5 and all(len(row) == 9 for row in rows)
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script>" not in html and "<img" not in html
    assert "alert(1)" in html  # shown, as text


def test_the_api_answers_json_or_markdown_and_refuses_any_other_format(user, finished_run):
    api = client_for(user)
    url = f"/api/sessions/{finished_run.pk}/report/"

    as_json = api.get(url)
    as_md = api.get(url + "?format=md")
    bad = api.get(url + "?format=xml")

    assert as_json.status_code == 200 and as_json["Content-Type"] == "application/json"
    assert as_json.json()["children"][0]["component"] == "Tax"
    assert as_json.json()["run_page_url"] == (
        f"http://testserver/admin/sessions_app/session/{finished_run.pk}/run/"
    )
    assert as_md.status_code == 200
    assert as_md["Content-Type"] == "text/markdown; charset=utf-8"
    assert as_md.content.decode().startswith("## Agentic tests for ")
    assert bad.status_code == 400 and bad.json() == {"format": ["Use json or md."]}


def test_the_public_url_names_the_run_page_when_set(user, finished_run, settings):
    settings.PUBLIC_URL = "https://spawnctl.example.com/"

    body = client_for(user).get(f"/api/sessions/{finished_run.pk}/report/").json()

    assert body["run_page_url"] == (
        f"https://spawnctl.example.com/admin/sessions_app/session/{finished_run.pk}/run/"
    )


def test_only_a_context_session_has_a_report_and_only_for_its_members(user, finished_run):
    child = Session.objects.filter(parent_session=finished_run).first()

    of_child = client_for(user).get(f"/api/sessions/{child.pk}/report/")
    stranger = client_for(make_user("mallory")).get(f"/api/sessions/{finished_run.pk}/report/")

    assert of_child.status_code == 422
    assert of_child.json() == {
        "detail": "Only ContextTestingSessions sessions have a report, this one is "
        "ComponentTestSessions"
    }
    assert stranger.status_code == 404


@pytest.mark.parametrize("size", [3, 30])
def test_the_report_costs_the_same_queries_whatever_the_number_of_children(
    scope, project, size, django_assert_num_queries
):
    context = make_context(project, [(f"Part{n:02}", 0) for n in range(size)])
    session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=session.pk)
    session = Session.objects.select_related("component", "project").get(pk=session.pk)

    # The children (usage, verification, reason), the run's usage, its times, the first
    # failed verifications, whether its pending step is Finalize (it is not finished).
    with django_assert_num_queries(5):
        body = build(session)

    assert len(body["children"]) == size


# --- the pull request --------------------------------------------------------------------

GH = "gh pr create --head {branch} --base {base_branch} --title {title} --body-file {report_file}"


def finalize_of(scope, session):
    spawn, _ = services.next_command(scope=scope, session_id=session.pk)
    Session.objects.filter(parent_session=session).update(
        status=SessionStatus.COMPLETE, state={"test_file": "tests/test_x.py"}
    )
    services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=spawn.pk, result=Result(status="ok")
    )
    finalize, _ = services.next_command(scope=scope, session_id=session.pk)
    assert finalize.step_name == "Finalize"
    return finalize


@pytest.fixture
def spawned(scope, project):
    context = make_context(project, [("Cart", 1)])
    session = make_context_session(scope, context)
    init, _ = services.next_command(scope=scope, session_id=session.pk)
    services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=init.pk, result=Result(status="ok")
    )
    return session


def test_without_a_template_finalize_opens_no_pull_request(scope, spawned):
    finalize = finalize_of(scope, spawned)

    assert "pull_request_report_file" not in finalize.command["metadata"]
    assert conventions.PULL_REQUEST_MARKER not in finalize.command["command"]


def test_finalize_runs_the_pull_request_command_after_its_push_and_keeps_the_url(
    scope, project, spawned
):
    Project.objects.filter(pk=project.pk).update(pull_request_command_template=GH)
    scope.project.refresh_from_db()

    finalize = finalize_of(scope, spawned)

    metadata = finalize.command["metadata"]
    report_file = f".spawnctl/report-{str(spawned.pk)[:8]}.md"
    assert metadata["pull_request_report_file"] == report_file
    assert metadata["pull_request_title"].startswith("Agentic tests for ")
    shell = finalize.command["command"]
    push = shell.index("git push -q origin")
    marker = shell.index(f"printf '%s\\n' '{conventions.PULL_REQUEST_MARKER}'")
    branch = metadata["branch_name"]
    assert push < marker < shell.index(f"gh pr create --head {branch} --base main")
    assert f"--body-file {report_file}" in shell
    _, session = services.submit_result(
        scope=scope,
        session_id=spawned.pk,
        interaction_id=finalize.pk,
        result=Result(
            status="ok",
            code=0,
            stdout="see https://example.com/not-this\nspawnctl: pull request\n"
            "Creating pull request for agentic-tests/shop-1 into main\n\n"
            "https://github.com/acme/shop/pull/42.\n",
        ),
    )
    assert session.status == SessionStatus.COMPLETE
    assert session.state["pull_request_url"] == "https://github.com/acme/shop/pull/42"


def test_the_report_a_pull_request_carries_says_the_run_is_complete(scope, project, spawned):
    Project.objects.filter(pk=project.pk).update(pull_request_command_template=GH)
    scope.project.refresh_from_db()
    finalize_of(scope, spawned)  # Finalize handed out, not yet reported: the runner fetches now

    body = build(Session.objects.select_related("component", "project").get(pk=spawned.pk))

    assert body["status"] == "complete"
    assert "**Status:** complete" in report.markdown(body)


def test_a_failing_pull_request_command_fails_finalize_counted_by_max_step_attempts(
    scope, project, spawned
):
    Project.objects.filter(pk=project.pk).update(
        pull_request_command_template=GH, max_step_attempts=2
    )
    scope.project.refresh_from_db()
    finalize = finalize_of(scope, spawned)
    failed = Result(status="error", code=1, stderr="gh: To get started, run: gh auth login\n")

    services.submit_result(
        scope=scope, session_id=spawned.pk, interaction_id=finalize.pk, result=failed
    )
    again, _ = services.next_command(scope=scope, session_id=spawned.pk)
    _, session = services.submit_result(
        scope=scope, session_id=spawned.pk, interaction_id=again.pk, result=failed
    )

    assert again.step_name == "Finalize"
    assert session.status == SessionStatus.FAILED
    assert session.state["error"] == (
        "Finalize failed 2 times: gh: To get started, run: gh auth login"
    )
    assert "pull_request_url" not in session.state


@pytest.mark.parametrize(
    ("stdout", "url"),
    [
        (
            "spawnctl: pull request\nhttps://gitlab.com/acme/shop/-/merge_requests/3\n",
            "https://gitlab.com/acme/shop/-/merge_requests/3",
        ),
        ("https://github.com/x/y/pull/1\n", None),  # before no marker: not the command's
        ("spawnctl: pull request\nno url printed\n", None),
        ("spawnctl: pull request\njavascript:alert(1) ftp://x/y\n", None),
        ("spawnctl: pull request\n(https://h.example/pr/9)\n", "https://h.example/pr/9"),
        ("spawnctl: pull request\nhttps://h.example/" + "a" * 2100 + "\n", None),
        (None, None),
    ],
)
def test_the_pull_requests_url_is_the_first_http_url_after_the_marker(stdout, url):
    assert conventions.pull_request_url(stdout) == url


def test_the_run_page_links_the_pull_request_and_the_report(client, user, finished_run):
    user.is_staff = True
    user.is_superuser = True
    user.save()
    client.force_login(user)
    state = {**finished_run.state, "pull_request_url": "https://github.com/acme/shop/pull/42"}
    Session.objects.filter(pk=finished_run.pk).update(state=state)

    page = client.get(f"/admin/sessions_app/session/{finished_run.pk}/run/").content.decode()
    dashboard = client.get("/").content.decode()
    text = client.get(f"/admin/sessions_app/session/{finished_run.pk}/run/report/")

    link = '<a class="run-pull-request" href="https://github.com/acme/shop/pull/42"'
    assert link in page and link in dashboard
    assert f'href="/admin/sessions_app/session/{finished_run.pk}/run/report/"' in page
    assert text.status_code == 200 and text["Content-Type"] == "text/plain; charset=utf-8"
    assert "| Tax (`shop.tax`) | failed |" in text.content.decode()
