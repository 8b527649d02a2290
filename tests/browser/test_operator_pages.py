"""The run page, the dashboard and the session list in a real browser: what they show for a
known run, that the run page follows the run by itself, that nothing overflows at 1366 px or
on a phone, that no request leaves the server and that the console stays clean."""

from __future__ import annotations

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.operator.runs import build_known_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def run(scope, context_session):
    return build_known_run(scope, context_session)


@pytest.fixture
def operator(page, live_server, user):
    """The page, logged in as alice (staff, superuser), recording every request it makes and
    every console error or uncaught exception."""
    user.is_staff = user.is_superuser = True
    user.save()
    page.requests = []
    page.errors = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on(
        "console",
        lambda message: message.type == "error" and page.errors.append(message.text),
    )
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.set_viewport_size(LAPTOP)
    page.goto("/admin/login/?next=/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    yield page
    assert page.errors == []
    foreign = [
        url for url in page.requests if not url.startswith((live_server.url, "data:", "about:"))
    ]
    assert foreign == []


def overflow(page, selector: str = "html") -> int:
    """How far the element's content is wider than its box, in pixels."""
    return page.evaluate(
        "(selector) => { const e = document.querySelector(selector);"
        " return e.scrollWidth - e.clientWidth; }",
        selector,
    )


def run_path(session) -> str:
    return f"/admin/sessions_app/session/{session.pk}/run/"


def test_the_run_page_shows_the_known_run(operator, run):
    operator.goto(run_path(run.parent))

    rows = operator.locator("table.run-children tbody tr")
    assert rows.count() == 4
    # Those that need a look first: failed, stalled, waiting, then the complete one.
    assert rows.locator("td.child-name a").all_inner_texts() == [
        "Session",
        "Token",
        "Audit",
        "User",
    ]
    assert rows.locator("td.child-status").all_inner_texts() == [
        "Failed", "Stalled", "Active", "Complete"
    ]  # fmt: skip
    assert "2 m 06 s" in rows.nth(3).locator("td.child-duration").inner_text()
    assert "RunTests: 3 tests failed" in rows.nth(0).inner_text()
    assert "w-1" in rows.nth(1).locator("td.child-lease").inner_text()
    assert operator.inner_text(".children-summary") == (
        "1/4 complete, 1 failed, 1 stalled, 1 running"
    )
    # The test output is collapsed, then opens in monospace.
    output = rows.nth(0).locator("details.test-output")
    assert not output.locator("pre").is_visible()
    output.locator("summary").click()
    assert output.locator("pre").is_visible()
    font = output.locator("pre").evaluate("e => getComputedStyle(e).fontFamily")
    assert "monospace" in font
    # One bar per finished step (4 + 3 + 1), one for the step still running.
    assert operator.locator("svg.timeline rect.step.finished").count() == 8
    assert operator.locator("svg.timeline rect.step.pending").count() == 1
    assert operator.locator("svg.timeline rect.step-stalled").count() == 1
    assert operator.locator("svg.timeline text.step-label").count() >= 1
    assert operator.locator(".timeline-legend li").count() == 5
    assert overflow(operator) <= 0


def test_the_run_page_updates_itself_when_a_child_completes(operator, live_server, run, user):
    operator.goto(run_path(run.parent))
    audit = operator.locator(f'tr[data-child-id="{run.children["Audit"].pk}"] td.child-status')
    assert audit.inner_text() == "Active"
    token = Token.objects.create(user=user)

    changed = httpx.patch(
        f"{live_server.url}/api/sessions/{run.children['Audit'].pk}/",
        json={"status": "complete"},
        headers={"Authorization": f"Token {token.key}"},
    )
    assert changed.status_code == 200

    # No reload: the page's own polling brings the change in.
    operator.wait_for_function(
        "() => document.querySelector('.children-summary').innerText.startsWith('2/4 complete')",
        timeout=10_000,
    )
    assert audit.inner_text() == "Complete"
    live_answers = [url for url in operator.requests if url.endswith("/run/live/")]
    assert live_answers, "the page never polled"


def test_the_dashboard_shows_the_known_runs_numbers(operator, run, project):
    operator.goto("/")

    board = operator.locator(f'[data-project-id="{project.pk}"]')
    components = board.locator("tr.counts-components")
    assert components.locator("td.in-flight").inner_text() == "2"
    assert components.locator("td.complete-day").inner_text() == "1"
    assert components.locator("td.failed-week").inner_text() == "1"
    assert board.locator(".pass-rate").inner_text() == "50%"
    assert board.locator(".median-duration").inner_text() == "2 m 06 s"
    assert board.locator(".stalled-count").inner_text() == "1"
    assert board.locator("svg.chart").count() == 2
    assert overflow(operator) <= 0

    board.locator(".stalled-sessions a").click()
    operator.wait_for_url(f"**{run_path(run.parent)}")


@pytest.mark.parametrize(
    "path",
    ["/", "/admin/sessions_app/session/", "RUN", "CHANGE", "PROJECT", "LOG", "/admin/", "/api/"],
)
def test_pages_fit_a_laptop_and_a_phone(operator, run, path):
    path = {
        "RUN": run_path(run.parent),
        "CHANGE": f"/admin/sessions_app/session/{run.parent.pk}/change/",
        "PROJECT": f"/admin/components_app/project/{run.parent.project_id}/change/",
        "LOG": f"/admin/sessions_app/session/{run.children['Session'].pk}/log/",
    }.get(path, path)
    for viewport in (LAPTOP, PHONE):
        operator.set_viewport_size(viewport)
        operator.goto(path)
        assert overflow(operator) <= 0, viewport
    operator.set_viewport_size(LAPTOP)
    operator.goto(path)
    if path == "/admin/sessions_app/session/":
        # At 1366 px the list's columns fit without scrolling sideways.
        assert overflow(operator, "#changelist .results") <= 0
        # On a phone the status column stays in view.
        operator.set_viewport_size(PHONE)
        operator.goto(path)
        status = operator.locator("#result_list td.field-status_badge").first
        box = status.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]


@pytest.mark.parametrize(
    ("button", "message"),
    [
        ("retry-children", "Accounts: retried 1 child session: Session."),
        ("spawn-missing", "Accounts: spawned 1 missing child session (5 in all)."),
        ("release-leases", "released the lease of w-1."),
        ("cancel", "Cancelled 1 session and their children that were still active."),
    ],
)
def test_each_button_of_the_run_page_works_and_says_what_it_did(
    operator, run, project, button, message
):
    from tests.factories import make_component

    # A component added after the spawn: the run has one to spawn.
    make_component(
        project, "Late", module_name="App.Accounts.Late", parent_component=run.parent.component
    )
    for viewport in (LAPTOP, PHONE):
        operator.set_viewport_size(viewport)
        operator.goto(run_path(run.parent))
        assert operator.locator(f'button[value="{button}"]').is_visible()
        assert overflow(operator) <= 0, viewport
    operator.click(f'button[value="{button}"]')
    operator.wait_for_url(f"**{run_path(run.parent)}")

    assert message in operator.inner_text("ul.messagelist")
    assert overflow(operator) <= 0


def test_the_project_page_draws_its_components_over_the_last_runs(operator, run):
    operator.goto(f"/admin/components_app/project/{run.parent.project_id}/change/")

    grid = operator.locator("table.history-grid")
    assert grid.locator("th.history-run").count() == 1
    assert grid.locator("tbody tr").count() == 4
    statuses = sorted(grid.locator("td.history-cell .badge").all_inner_texts())
    assert statuses == ["Active", "Active", "Complete", "Failed"]
    operator.click("table.history-grid th.history-run a")
    operator.wait_for_url(f"**{run_path(run.parent)}")
    assert operator.inner_text(".run-status") == "Needs attention"
