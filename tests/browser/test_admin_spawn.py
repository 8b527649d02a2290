"""An operator spawns a context's child sessions from the admin, in a real browser."""

from io import StringIO

import pytest
from django.core.management import call_command

from sessions_app.models import Session
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO_SPAWN_ORDER = ["User", "UserToken", "Registration", "PasswordPolicy", "AccountNotifier"]


def test_spawn_child_sessions_from_the_session_list(page):
    call_command("seed_demo", stdout=StringIO())
    session = Session.objects.get(type=CONTEXT_TESTING_SESSIONS)
    change_path = f"/admin/sessions_app/session/{session.pk}/change/"

    page.goto("/admin/login/?next=/admin/sessions_app/session/")
    page.fill("#id_username", "demo")
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/sessions_app/session/")

    page.check(f'input[name="_selected_action"][value="{session.pk}"]')
    page.select_option('select[name="action"]', label="Spawn child sessions")
    page.click('button[name="index"]')

    success = page.locator(".messagelist .success")
    success.wait_for()
    assert success.inner_text() == "Accounts: spawned 5 child sessions."
    row = page.locator("#result_list tbody tr", has=page.locator(f'input[value="{session.pk}"]'))
    assert "0/5 complete" in row.inner_text()

    page.click(f'th.field-short_id a[href="{change_path}"]')
    page.wait_for_url(f"**{change_path}")
    children = page.locator("table.child-sessions tbody tr")
    assert children.count() == 5
    names = [children.nth(i).locator("td").nth(1).inner_text() for i in range(5)]
    assert names == DEMO_SPAWN_ORDER
    assert "5 children: 0 complete, 5 active, 0 failed, 0 cancelled" in page.inner_text(
        ".children-summary"
    )

    children.first.locator("td a").first.click()
    first_child = Session.objects.get(parent_session=session, component__name="User")
    page.wait_for_url(f"**/admin/sessions_app/session/{first_child.pk}/change/")
    assert "ComponentTestSessions" in page.inner_text("#content")
