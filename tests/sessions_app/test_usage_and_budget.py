"""What a run cost: an agent step's data.usage checked and stored in columns, a session's usage
and a run's summed in the database, the conversation an agent reported continued by the next
agent step, a context's budget (create, PATCH, the project's default) refusing agent steps
with its text at next-command, claim-child and the result check, and the step time limits
the runner is told. Through the service and the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from components_app.models import Project
from core.errors import Conflict, InvalidInput
from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.usage import AGENT_STEPS
from sessions_app.workflows.types import Result
from tests.api.conftest import client_for
from tests.factories import make_component, make_context, make_context_session

CONVERSATION = "5f0c9b3e-7a1d-4c2e-9b8a-0d1e2f3a4b5c"
USAGE = {
    "cost_usd": 0.4213,
    "input_tokens": 1200,
    "output_tokens": 3400,
    "cache_read_tokens": 50_000,
    "cache_creation_tokens": 8000,
    "turns": 7,
    "model": "claude-sonnet-4-5",
    "conversation_id": CONVERSATION,
}


@pytest.fixture
def run(scope, project):
    """A context of three components, spawned: (context session, children in spawn order)."""
    context = make_context(project, [])
    for name, priority in (("Cart", 3), ("Price", 2), ("Tax", 1)):
        make_component(
            project,
            name,
            module_name=f"shop.{name.lower()}",
            parent_component=context,
            priority=priority,
        )
    session = make_context_session(scope, context)
    services.next_command(scope=scope, session_id=session.pk)  # Initialize
    step_once_pending(scope, session)
    services.next_command(scope=scope, session_id=session.pk)  # the spawn step
    children = list(Session.objects.filter(parent_session=session).order_by("-component__priority"))
    return session, children


def step_once_pending(scope, session, result=None):
    pending = session.interactions.get(completed_at__isnull=True)
    services.submit_result(
        scope=scope,
        session_id=session.pk,
        interaction_id=pending.pk,
        result=result or Result(status="ok", code=0),
    )


def answer(scope, child, *, status="ok", code=0, usage=None) -> Interaction:
    """The child's next command, answered (an agent step with ``usage``)."""
    interaction, _ = services.next_command(scope=scope, session_id=child.pk)
    data = {"usage": usage} if usage is not None else None
    answered, _ = services.submit_result(
        scope=scope,
        session_id=child.pk,
        interaction_id=interaction.pk,
        result=Result(status=status, code=code, data=data),
    )
    return answered


def to_generate(scope, child) -> None:
    """Past Initialize: the child's next command is GenerateTestsAndFixtures."""
    assert answer(scope, child).step_name == "Initialize"


# --- usage stored and summed --------------------------------------------------------------


def test_an_agent_steps_usage_is_stored_in_its_columns(scope, run):
    _, (cart, *_) = run
    to_generate(scope, cart)

    generated = answer(scope, cart, usage=USAGE)

    stored = Interaction.objects.get(pk=generated.pk)
    assert generated.step_name == "GenerateTestsAndFixtures"
    assert stored.cost_usd == Decimal("0.421300")
    assert (stored.input_tokens, stored.output_tokens) == (1200, 3400)
    assert (stored.cache_read_tokens, stored.cache_creation_tokens, stored.turns) == (
        50_000,
        8000,
        7,
    )
    assert stored.model == "claude-sonnet-4-5"
    assert stored.result["data"]["usage"] == USAGE


def test_session_usage_and_the_runs_usage_are_sums_over_its_steps(scope, user, run):
    session, (cart, price, tax) = run
    for child, costs in ((cart, [0.25, 0.5]), (price, [1.125]), (tax, [])):
        to_generate(scope, child)
        for n, cost in enumerate(costs):
            if n:  # a failing test run, then the fix: a second agent step
                answer(scope, child, status="error", code=1)
            answer(scope, child, usage={"cost_usd": cost, "input_tokens": 10, "output_tokens": 3})
    api = client_for(user)

    shown = api.get(f"/api/sessions/{cart.pk}/").json()
    context = api.get(f"/api/sessions/{session.pk}/").json()
    children = api.get(f"/api/sessions/{session.pk}/children/").json()

    assert shown["usage"] == {
        "cost_usd": 0.75,
        "input_tokens": 20,
        "output_tokens": 6,
        "agent_steps": 2,
    }
    assert shown["run_usage"] is None
    assert context["usage"] == {
        "cost_usd": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "agent_steps": 0,
    }
    assert context["run_usage"] == {
        "cost_usd": 1.875,
        "input_tokens": 30,
        "output_tokens": 9,
        "agent_steps": 3,
    }
    assert children["summary"]["cost_usd"] == 1.875
    by_name = {child["component"]["name"]: child for child in children["results"]}
    assert by_name["Price"]["usage"]["cost_usd"] == 1.125
    assert by_name["Tax"]["usage"] == {
        "cost_usd": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "agent_steps": 0,
    }


def test_the_session_list_shows_each_sessions_usage_in_a_fixed_number_of_queries(
    scope, user, run, django_assert_max_num_queries
):
    _, children = run
    for child in children:
        to_generate(scope, child)
        answer(scope, child, usage={"cost_usd": 0.1})
    api = client_for(user)

    with django_assert_max_num_queries(12):
        listed = api.get("/api/sessions/?page_size=100").json()["results"]

    costs = sorted(row["usage"]["cost_usd"] for row in listed)
    assert costs == [0.0, 0.1, 0.1, 0.1]


# --- malformed usage -----------------------------------------------------------------------

MALFORMED = [
    ({"cost_usd": -0.01}, "usage.cost_usd must be at least 0."),
    ({"cost_usd": "0.10"}, "usage.cost_usd must be a number."),
    ({"cost_usd": True}, "usage.cost_usd must be a number."),
    ({"cost_usd": 10**7}, "usage.cost_usd must be at most 1000000."),
    ({"input_tokens": 1.5}, "usage.input_tokens must be an integer."),
    ({"output_tokens": -1}, "usage.output_tokens must be at least 0."),
    ({"turns": "7"}, "usage.turns must be an integer."),
    ({"cache_read_tokens": 10**16}, "usage.cache_read_tokens must be at most 10"),
    ({"model": 7}, "usage.model must be a printable string of at most 200."),
    ({"model": "x\nInjected: yes"}, "usage.model must be a printable string"),
    ({"conversation_id": "../../etc/passwd"}, "usage.conversation_id must be 1 to 200"),
    ({"conversation_id": "$(touch PWNED)"}, "usage.conversation_id must be 1 to 200"),
    ({"conversation_id": "-rf"}, None),  # letters, digits, - and _: fine, quoted where used
    ({"conversation_id": "x" * 201}, "usage.conversation_id must be 1 to 200"),
    ({"cost": 1}, "usage.cost is not a usage field (known: cost_usd,"),
    ([1, 2], "usage must be an object."),
]


@pytest.mark.parametrize(("usage", "text"), MALFORMED)
def test_a_malformed_usage_is_a_400_naming_the_field_and_stores_nothing(
    scope, user, run, usage, text
):
    _, (cart, *_) = run
    to_generate(scope, cart)
    interaction, _ = services.next_command(scope=scope, session_id=cart.pk)

    response = client_for(user).post(
        f"/api/sessions/{cart.pk}/interactions/{interaction.pk}/result/",
        {"status": "ok", "data": {"usage": usage}},
        format="json",
    )

    interaction.refresh_from_db()
    if text is None:
        assert response.status_code == 200, response.json()
        return
    assert response.status_code == 400
    assert set(response.json()) == {"data"}
    assert response.json()["data"][0].startswith(text)
    assert interaction.is_pending and interaction.cost_usd is None


def test_the_service_refuses_what_the_api_refuses(scope, run):
    _, (cart, *_) = run
    to_generate(scope, cart)
    interaction, _ = services.next_command(scope=scope, session_id=cart.pk)

    with pytest.raises(InvalidInput) as error:
        services.submit_result(
            scope=scope,
            session_id=cart.pk,
            interaction_id=interaction.pk,
            result=Result(status="ok", data={"usage": {"cost_usd": -1}}),
        )

    assert error.value.errors == {"data": ["usage.cost_usd must be at least 0."]}


# --- the conversation, continued ---------------------------------------------------------


def test_a_fix_continues_the_conversation_the_agent_reported(scope, project, run):
    _, (cart, *_) = run
    to_generate(scope, cart)
    answer(scope, cart, usage={"cost_usd": 0.2, "conversation_id": CONVERSATION})
    answer(scope, cart, status="error", code=1)  # RunTests fails

    fix, _ = services.next_command(scope=scope, session_id=cart.pk)

    cart.refresh_from_db()
    assert cart.external_conversation_id == CONVERSATION
    assert fix.step_name == "FixCompilationErrors"
    assert fix.command["command"].startswith("claude -p ")
    assert f"--resume {CONVERSATION} --output-format json" in fix.command["command"]
    assert fix.command["metadata"]["conversation_id"] == CONVERSATION


def test_without_a_conversation_the_fix_starts_one_of_its_own(scope, run):
    _, (cart, *_) = run
    to_generate(scope, cart)
    answer(scope, cart, usage={"cost_usd": 0.2})
    answer(scope, cart, status="error", code=1)

    fix, _ = services.next_command(scope=scope, session_id=cart.pk)

    assert "--resume" not in fix.command["command"]
    assert "conversation_id" not in fix.command["metadata"]


@pytest.mark.parametrize("junk", ["$(touch PWNED)", "a b", "x;id", "'", "\n"])
def test_a_conversation_id_a_member_patched_in_is_never_resumed_unless_it_is_one(scope, run, junk):
    _, (cart, *_) = run
    to_generate(scope, cart)
    answer(scope, cart)
    answer(scope, cart, status="error", code=1)
    Session.objects.filter(pk=cart.pk).update(external_conversation_id=junk)

    fix, _ = services.next_command(scope=scope, session_id=cart.pk)

    assert "--resume" not in fix.command["command"]


def test_the_projects_resume_template_is_used_as_written(scope, project, run):
    Project.objects.filter(pk=project.pk).update(
        agent_command_template="aider -m {prompt}",
        agent_resume_template="aider --restore-chat-history {conversation_id} -m {prompt}",
    )
    scope.project.refresh_from_db()
    _, (cart, *_) = run
    to_generate(scope, cart)
    answer(scope, cart, usage={"conversation_id": "chat_42"})
    answer(scope, cart, status="error", code=1)

    fix, _ = services.next_command(scope=scope, session_id=cart.pk)

    assert fix.command["command"].startswith("aider --restore-chat-history chat_42 -m ")


def test_a_resume_template_of_another_program_than_the_agents_is_not_used(scope, project, run):
    """The agent command changed, the resume template left at Claude Code's default: the fix
    starts a conversation of its own instead of calling a program the project does not use."""
    Project.objects.filter(pk=project.pk).update(
        agent_command_template="python3 /opt/agent.py -p {prompt}"
    )
    scope.project.refresh_from_db()
    _, (cart, *_) = run
    to_generate(scope, cart)
    answer(scope, cart, usage={"conversation_id": CONVERSATION})
    answer(scope, cart, status="error", code=1)

    fix, _ = services.next_command(scope=scope, session_id=cart.pk)

    assert fix.command["command"].startswith("python3 /opt/agent.py -p ")
    assert "--resume" not in fix.command["command"]


# --- the budget ------------------------------------------------------------------------------


def test_a_context_session_takes_the_projects_default_budget(scope, user, project, context):
    Project.objects.filter(pk=project.pk).update(default_max_cost_usd=Decimal("5"))
    api = client_for(user)
    body = {
        "project": str(project.pk),
        "type": "ContextTestingSessions",
        "component": str(context.pk),
    }

    default = api.post("/api/sessions/", body, format="json").json()
    none = api.post("/api/sessions/", {**body, "max_cost_usd": None}, format="json").json()
    own = api.post("/api/sessions/", {**body, "max_cost_usd": 2.5}, format="json").json()

    assert (default["max_cost_usd"], none["max_cost_usd"], own["max_cost_usd"]) == (
        5.0,
        None,
        2.5,
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-1, "Ensure this value is greater than or equal to 0."),
        ("ten", "A valid number is required."),
        (0.123456, "Ensure that there are no more than 4 decimal places."),
        (10**9, "Ensure that there are no more than 8 digits before the decimal point."),
    ],
)
def test_a_bad_budget_is_a_400_naming_it(user, project, context, value, text):
    response = client_for(user).post(
        "/api/sessions/",
        {
            "project": str(project.pk),
            "type": "ContextTestingSessions",
            "component": str(context.pk),
            "max_cost_usd": value,
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"max_cost_usd": [text]}


def test_only_a_context_session_has_a_budget(user, run):
    _, (cart, *_) = run

    response = client_for(user).patch(
        f"/api/sessions/{cart.pk}/", {"max_cost_usd": 1}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "max_cost_usd": ["Only ContextTestingSessions sessions have a budget."]
    }


def spend(scope, child, cost: float) -> None:
    to_generate(scope, child)
    answer(scope, child, usage={"cost_usd": cost})


def test_once_the_budget_is_spent_no_agent_step_is_handed_out(scope, user, run):
    session, (cart, price, tax) = run
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("1.00"))
    spend(scope, cart, 0.6)
    to_generate(scope, price)
    answer(scope, price, usage={"cost_usd": 0.405})  # 1.005 spent: the budget is reached
    to_generate(scope, tax)
    before = tax.interactions.count()
    api = client_for(user)

    refused = api.post(f"/api/sessions/{tax.pk}/next-command/", {}, format="json")

    assert refused.status_code == 409
    assert refused.json() == {"detail": "Run budget spent: $1.01 of $1.00"}
    assert tax.interactions.count() == before
    # A step that is not an agent's is still handed out: the spent run can end what it began.
    run_tests = api.post(f"/api/sessions/{cart.pk}/next-command/", {}, format="json")
    assert run_tests.status_code == 201
    assert run_tests.json()["step_name"] == "RunTests"


def test_claim_child_answers_204_once_the_budget_is_spent(scope, user, run):
    session, _ = run
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("0.5"))
    api = client_for(user)
    claimed = api.post(f"/api/sessions/{session.pk}/claim-child/", {"runner": "a"}, format="json")
    assert claimed.status_code == 200
    child_id = claimed.json()["session"]["id"]
    child = Session.objects.get(pk=child_id)
    step_once_pending(scope, child)  # Initialize
    answer(scope, child, usage={"cost_usd": 0.5})

    again = api.post(f"/api/sessions/{session.pk}/claim-child/", {"runner": "b"}, format="json")

    assert again.status_code == 204


def test_the_result_check_names_the_spent_budget_before_components_without_a_child(
    scope, project, run
):
    session, (cart, price, tax) = run
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("0.25"))
    make_component(project, "Late", module_name="shop.late", parent_component=session.component)
    spend(scope, cart, 0.3)
    Session.objects.filter(pk__in=[price.pk, tax.pk]).update(status=SessionStatus.COMPLETE)
    spawn = session.interactions.get(step_name="SpawnComponentTestingSessions")

    answered, _ = services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=spawn.pk, result=Result(status="ok")
    )

    assert answered.result["error_message"] == (
        "Child sessions still running: Cart; Run budget spent: $0.30 of $0.25; "
        "Components without a child session: Late"
    )


def test_a_run_done_within_or_past_its_budget_is_not_held_back_by_it(scope, run):
    session, children = run
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("0.1"))
    spend(scope, children[0], 0.3)
    Session.objects.filter(pk__in=[c.pk for c in children]).update(status=SessionStatus.COMPLETE)
    spawn = session.interactions.get(step_name="SpawnComponentTestingSessions")

    answered, _ = services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=spawn.pk, result=Result(status="ok")
    )

    assert answered.result["status"] == "ok"


def test_raising_the_budget_lets_the_run_go_on(scope, user, run):
    session, (cart, price, _) = run
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("0.5"))
    spend(scope, cart, 0.5)
    to_generate(scope, price)
    with pytest.raises(Conflict):
        services.next_command(scope=scope, session_id=price.pk)

    patched = client_for(user).patch(
        f"/api/sessions/{session.pk}/", {"max_cost_usd": 2}, format="json"
    )

    assert patched.status_code == 200 and patched.json()["max_cost_usd"] == 2.0
    generate, _ = services.next_command(scope=scope, session_id=price.pk)
    assert generate.step_name == "GenerateTestsAndFixtures"


def test_a_budget_adds_queries_only_to_a_run_that_has_one(scope, run, django_assert_num_queries):
    session, (cart, *_) = run
    to_generate(scope, cart)
    # Savepoint, the budget lookup, the locked child, its latest interaction, the context's
    # component (the branch), the new interaction, release.
    with django_assert_num_queries(7):
        services.next_command(scope=scope, session_id=cart.pk)
    Session.objects.filter(pk=session.pk).update(max_cost_usd=Decimal("10"))
    generate = cart.interactions.get(completed_at__isnull=True)
    services.submit_result(
        scope=scope, session_id=cart.pk, interaction_id=generate.pk, result=Result(status="ok")
    )
    answer(scope, cart, status="error", code=1)
    # The fix (no branch to name, so no component): with a budget, the context locked and
    # what the run spent summed besides.
    with django_assert_num_queries(8):
        services.next_command(scope=scope, session_id=cart.pk)


# --- step time limits ----------------------------------------------------------------------


def test_agent_and_test_steps_carry_the_projects_time_limits(scope, project, run):
    Project.objects.filter(pk=project.pk).update(
        agent_timeout_seconds=900, test_timeout_seconds=120
    )
    scope.project.refresh_from_db()
    _, (cart, *_) = run
    limits = {}
    for _ in range(5):
        interaction = answer(scope, cart)
        limits[interaction.step_name] = interaction.command["metadata"].get("timeout_seconds")

    assert limits == {
        "Initialize": None,
        "GenerateTestsAndFixtures": 900,
        "RunTests": 120,
        "VerifyTests": 120,
        "Finalize": None,
    }
    assert set(AGENT_STEPS) >= {"GenerateTestsAndFixtures"}
