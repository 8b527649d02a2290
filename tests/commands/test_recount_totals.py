"""``recount_totals``: the kept totals made again from the steps, one line a project; an
unknown project is refused before anything is written."""

from decimal import Decimal

import pytest
from django.utils import timezone

from sessions_app.models import DailyCost, Interaction, Session
from tests.commands.conftest import run
from tests.factories import make_child, make_component


@pytest.fixture
def drifted(scope, project, context, context_session):
    """A child whose step was written around the service: its totals say nothing of it."""
    child = make_child(context_session, make_component(project, "Cart", parent_component=context))
    Interaction.objects.create(
        session=child,
        step_name="GenerateTestsAndFixtures",
        command={"command": "x"},
        result={"status": "ok"},
        completed_at=timezone.now(),
        cost_usd=Decimal("0.30"),
        input_tokens=12,
    )
    return child


def test_it_makes_every_projects_totals_again(drifted, project, other_scope):
    status, stdout, stderr = run("recount_totals")

    assert (status, stderr) == (0, "")
    # By name: the other project has nothing; this one its context session and its child.
    assert stdout.splitlines() == [
        f"{other_scope.project.name}: 0 sessions, 0 days of cost",
        f"{project.name}: 2 sessions, 1 day of cost",
    ]
    child = Session.objects.get(pk=drifted.pk)
    assert (child.own_cost_usd, child.own_input_tokens, child.own_agent_steps) == (
        Decimal("0.3"),
        12,
        1,
    )
    assert child.first_step_at is not None and child.last_result_at is not None
    assert DailyCost.objects.get(project=project).cost_usd == Decimal("0.3")


@pytest.mark.parametrize(
    "junk", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "'; rm -rf / #"]
)
def test_an_unknown_project_is_refused_before_anything_is_written(drifted, project, junk):
    status, stdout, stderr = run("recount_totals", "--project", str(project.pk), "--project", junk)

    assert (status, stdout, stderr) == (1, "", f"Project not found: {junk}\n")
    assert Session.objects.get(pk=drifted.pk).own_cost_usd == 0
    assert not DailyCost.objects.exists()
