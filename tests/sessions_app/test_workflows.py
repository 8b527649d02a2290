"""Whole sessions driven through the service layer: next command, result, loop, finish."""

import shlex
import subprocess

import pytest

from core.errors import Conflict, InvalidInput, NotFound, StepError
from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows.registry import WORKFLOWS
from sessions_app.workflows.session_types import (
    COMPONENT_TEST_SESSIONS,
    CONTEXT_TESTING_SESSIONS,
)
from sessions_app.workflows.steps.run_tests import MAX_FIX_ATTEMPTS
from sessions_app.workflows.types import Result
from tests.factories import make_component, make_context, make_context_session
from tests.sessions_app.workflow_driver import (
    drive_to_end,
    history_of,
    ok,
    step_names,
    step_once,
)

COMPLETE, FAILED = SessionStatus.COMPLETE, SessionStatus.FAILED
COMPONENTS = [("Ledger", 3), ("Invoice", 5), ("Refund", 1)]


@pytest.fixture
def billing(project):
    context = make_context(project, COMPONENTS)
    context.name, context.module_name = "Billing", "Shop.Billing"
    context.description = "Invoices, payments and refunds."
    context.save()
    for child in context.child_components.all():
        child.module_name = f"Shop.Billing.{child.name}"
        child.description = f"The {child.name.lower()} of an order."
        child.save()
    return context


@pytest.fixture
def billing_session(scope, billing):
    return make_context_session(scope, billing)


def children(session):
    return list(
        Session.objects.filter(parent_session=session)
        .select_related("component")
        .order_by("-component__priority", "component__name")
    )


class TestRouting:
    def test_context_workflow_order(self):
        workflow = WORKFLOWS[CONTEXT_TESTING_SESSIONS]
        assert workflow.next_step(None, None) == "Initialize"
        assert workflow.next_step("Initialize", "ok") == "SpawnComponentTestingSessions"
        assert workflow.next_step("SpawnComponentTestingSessions", "ok") == "Finalize"
        assert workflow.next_step("Finalize", "ok") == COMPLETE
        # Bounded by the service's max_step_attempts, like every step.
        assert workflow.next_step("Finalize", "error") == "Finalize"

    def test_spawn_step_error_loops_back_to_itself(self):
        workflow = WORKFLOWS[CONTEXT_TESTING_SESSIONS]
        assert (
            workflow.next_step("SpawnComponentTestingSessions", "error")
            == "SpawnComponentTestingSessions"
        )

    def test_component_workflow_order_with_the_fix_loop(self):
        workflow = WORKFLOWS[COMPONENT_TEST_SESSIONS]
        assert workflow.next_step(None, None) == "Initialize"
        assert workflow.next_step("Initialize", "ok") == "GenerateTestsAndFixtures"
        assert workflow.next_step("GenerateTestsAndFixtures", "ok") == "RunTests"
        assert workflow.next_step("RunTests", "error") == "FixCompilationErrors"
        assert workflow.next_step("FixCompilationErrors", "ok") == "RunTests"
        assert workflow.next_step("RunTests", "ok") == "VerifyTests"
        assert workflow.next_step("RunTests", "warning") == "VerifyTests"
        assert workflow.next_step("VerifyTests", "ok") == "Finalize"
        assert workflow.next_step("VerifyTests", "below_bar") == "ImproveTests"
        assert workflow.next_step("VerifyTests", "error") == "VerifyTests"
        assert workflow.next_step("ImproveTests", "ok") == "RunTests"
        assert workflow.next_step("ImproveTests", "error") == "ImproveTests"
        assert workflow.next_step("Finalize", "ok") == COMPLETE
        assert workflow.next_step("Finalize", "error") == "Finalize"

    def test_a_test_environment_error_runs_the_tests_again_not_the_agent(self):
        workflow = WORKFLOWS[COMPONENT_TEST_SESSIONS]
        environment_error = {
            "status": "error",
            "error_message": "Test environment error (exit code 4): ImportError while loading",
        }
        failing_tests = {"status": "error", "error_message": "Tests failed (exit code 1)"}
        assert workflow.following("RunTests", environment_error) == "RunTests"
        assert workflow.following("RunTests", failing_tests) == "FixCompilationErrors"
        assert workflow.following("RunTests", {"status": "ok"}) == "VerifyTests"

    def test_an_unregistered_type_is_refused(self, scope):
        with pytest.raises(InvalidInput) as error:
            services.create_session(scope=scope, type="ContextTestingSession")

        assert error.value.errors == {"type": ["Unknown session type: ContextTestingSession"]}
        assert not Session.objects.exists()


def test_context_session_runs_from_creation_to_complete_through_the_service(
    scope, billing, billing_session
):
    # Initialize puts the working copy on the session's own branch (detached at it).
    init = step_once(scope, billing_session)
    billing_session.refresh_from_db()
    branch = billing_session.state["branch_name"]
    assert branch.startswith("agentic-tests/shop-billing-")
    assert init.command["metadata"] == {
        "branch_name": branch,
        "base_branch": "main",
        "repository_lock": True,
    }
    assert f"git switch -q --detach refs/heads/{branch}" in init.command["command"]

    # Spawn hands out the children, in spawn order.
    spawn, created = services.next_command(scope=scope, session_id=billing_session.pk)
    assert created and spawn.step_name == "SpawnComponentTestingSessions"
    ids = spawn.command["metadata"]["child_session_ids"]
    kids = children(billing_session)
    assert [str(kid.pk) for kid in kids] == ids
    assert [kid.component.name for kid in kids] == ["Invoice", "Ledger", "Refund"]

    # Reporting while children run: the step answers with their names and loops back.
    interaction, session = services.submit_result(
        scope=scope,
        session_id=billing_session.pk,
        interaction_id=spawn.pk,
        result=Result(status="ok"),
    )
    assert interaction.result["status"] == "error"
    assert interaction.result["error_message"] == (
        "Child sessions still running: Invoice, Ledger, Refund"
    )
    assert session.status == SessionStatus.ACTIVE
    again, created = services.next_command(scope=scope, session_id=billing_session.pk)
    assert created and again.step_name == "SpawnComponentTestingSessions"
    assert again.command["metadata"]["child_session_ids"] == ids
    assert again.command["metadata"]["already_spawned"] is True

    # Each child runs its own workflow; Ledger's first test run fails and is fixed.
    ledger_runs = iter(
        [
            Result(status="error", code=1, stdout="E   NameError: name 'Ledger' is not defined"),
            Result(status="ok", code=0, stdout="3 passed"),
        ]
    )

    def ledger(interaction):
        return next(ledger_runs) if interaction.step_name == "RunTests" else ok(interaction)

    histories = {}
    for kid in kids:
        respond = ledger if kid.component.name == "Ledger" else ok
        histories[kid.component.name] = drive_to_end(scope, kid, respond)
        kid.refresh_from_db()
        assert kid.status == SessionStatus.COMPLETE
    assert step_names(histories["Invoice"]) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "VerifyTests",
        "Finalize",
    ]
    assert step_names(histories["Ledger"]) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "FixCompilationErrors",
        "RunTests",
        "VerifyTests",
        "Finalize",
    ]
    fix = histories["Ledger"][3]
    assert "NameError: name 'Ledger' is not defined" in fix.command["metadata"]["prompt"]
    # Children work on their parent's branch.
    assert histories["Refund"][0].command["metadata"]["branch_name"] == branch

    # With every child complete the spawn step passes and Finalize commits their tests.
    interaction, session = services.submit_result(
        scope=scope,
        session_id=billing_session.pk,
        interaction_id=again.pk,
        result=Result(status="ok"),
    )
    assert interaction.result["status"] == "ok"
    finalize, _ = services.next_command(scope=scope, session_id=billing_session.pk)
    assert finalize.step_name == "Finalize"
    metadata = finalize.command["metadata"]
    assert metadata["files"] == [
        "tests/test_shop_billing_invoice_Invoice.py",
        "tests/test_shop_billing_ledger_Ledger.py",
        "tests/test_shop_billing_refund_Refund.py",
    ]
    assert metadata["commit_message"] == (
        "Add tests for the Billing context\n\nComponents:\n"
        "- Invoice (Shop.Billing.Invoice)\n- Ledger (Shop.Billing.Ledger)\n"
        "- Refund (Shop.Billing.Refund)"
    )
    assert (metadata["branch_name"], metadata["repository_lock"]) == (branch, True)
    script = finalize.command["command"]
    # The files this working copy has are added and committed, nothing else that is staged.
    assert f"for file in {' '.join(metadata['files'])}; do" in script
    commit = ["git", "commit", "-q", "--allow-empty", "--only", "-m", metadata["commit_message"]]
    assert f'\n{shlex.join(commit)} -- "$@"\n' in script
    assert f"git push -q origin refs/heads/{branch}:refs/heads/{branch}" in script

    _, session = services.submit_result(
        scope=scope,
        session_id=billing_session.pk,
        interaction_id=finalize.pk,
        result=Result(status="ok", stdout="pushed"),
    )
    assert session.status == SessionStatus.COMPLETE
    assert history_of(billing_session) == [
        "Initialize",
        "SpawnComponentTestingSessions",
        "SpawnComponentTestingSessions",
        "Finalize",
    ]
    with pytest.raises(Conflict) as error:
        services.next_command(scope=scope, session_id=billing_session.pk)
    assert error.value.message == "Session is complete; it has no next command"


def test_generate_prompt_describes_the_component_and_its_test_file(scope, billing, billing_session):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]
    step_once(scope, invoice)

    generate, _ = services.next_command(scope=scope, session_id=invoice.pk)

    metadata = generate.command["metadata"]
    prompt = metadata["prompt"]
    for text in [
        "Invoice",
        "Shop.Billing.Invoice",
        "The invoice of an order.",
        "Billing",
        "Invoices, payments and refunds.",
        "tests/test_shop_billing_invoice_Invoice.py",
    ]:
        assert text in prompt
    assert shlex.split(generate.command["command"]) == [
        "claude",
        "-p",
        prompt,
        "--output-format",
        "json",
        "--permission-mode",
        "acceptEdits",
    ]
    assert metadata["test_file"] == "tests/test_shop_billing_invoice_Invoice.py"


def test_the_projects_agent_command_template_chooses_the_agent(
    scope, billing, billing_session, tmp_path
):
    scope.project.agent_command_template = "printf %s {prompt}"
    scope.project.save()
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]
    step_once(scope, invoice)
    generate, _ = services.next_command(scope=scope, session_id=invoice.pk)

    ran = subprocess.run(
        ["sh", "-c", generate.command["command"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    # The prompt (quotes, newlines and all) reaches the agent as one argument, unchanged.
    assert ran.stdout == generate.command["metadata"]["prompt"]


def test_project_test_conventions_shape_the_run_tests_command(scope, billing, billing_session):
    scope.project.test_command_template = "python -m pytest -q {test_file}"
    scope.project.test_path_template = "spec/{module_snake}_test.py"
    scope.project.save()
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]
    step_once(scope, invoice)
    step_once(scope, invoice)

    run, _ = services.next_command(scope=scope, session_id=invoice.pk)

    assert run.step_name == "RunTests"
    assert run.command["command"] == "python -m pytest -q spec/shop_billing_invoice_test.py"


def test_a_non_zero_exit_code_is_a_failed_test_run_whatever_the_reported_status(
    scope, billing, billing_session
):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]
    step_once(scope, invoice)
    step_once(scope, invoice)

    run = step_once(scope, invoice, lambda _: Result(status="ok", code=2, stderr="boom"))

    assert run.result["status"] == "error"
    assert run.result["error_message"] == "Tests failed (exit code 2)"
    invoice.refresh_from_db()
    assert invoice.state["last_test_output"] == "boom"
    follow, _ = services.next_command(scope=scope, session_id=invoice.pk)
    assert follow.step_name == "FixCompilationErrors"


def test_tests_that_keep_failing_fail_the_child_after_the_last_fix_attempt(
    scope, billing, billing_session
):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]

    def always_red(interaction):
        if interaction.step_name == "RunTests":
            return Result(status="error", code=1, stdout="1 failed")
        return ok(interaction)

    history = drive_to_end(scope, invoice, always_red)

    invoice.refresh_from_db()
    assert step_names(history) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        *["FixCompilationErrors", "RunTests"] * MAX_FIX_ATTEMPTS,
    ]
    assert invoice.status == SessionStatus.FAILED
    assert invoice.state["error"] == (
        f"Tests still failing after {MAX_FIX_ATTEMPTS} fix attempts: Tests failed (exit code 1)"
    )
    spawn = step_once(scope, step_once(scope, billing_session).session)
    assert spawn.result["error_message"].endswith(
        f"Child sessions failed: Invoice (Tests still failing after {MAX_FIX_ATTEMPTS} fix "
        "attempts: Tests failed (exit code 1))"
    )


def test_finalize_error_fails_the_session_with_the_reason(scope, billing, billing_session):
    def push_rejected(interaction):
        if interaction.step_name == "Finalize":
            return Result(status="error", code=1, error_message="push rejected: non-fast-forward")
        return ok(interaction)

    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    Session.objects.filter(parent_session=billing_session).update(status=SessionStatus.COMPLETE)

    history = drive_to_end(scope, billing_session, push_rejected)

    billing_session.refresh_from_db()
    # Tried again up to the project's max_step_attempts (3), then failed with the reason.
    assert step_names(history) == [
        "Initialize",
        "SpawnComponentTestingSessions",
        "Finalize",
        "Finalize",
        "Finalize",
    ]
    assert billing_session.status == SessionStatus.FAILED
    assert billing_session.state["error"] == (
        "Finalize failed 3 times: push rejected: non-fast-forward"
    )


PUSH_TO_A_MISSING_ORIGIN = (
    "fatal: '../origin.git' does not appear to be a git repository\n"
    "fatal: Could not read from remote repository.\n\n"
    "Please make sure you have the correct access rights\nand the repository exists.\n"
)


def test_a_finalize_that_git_refused_fails_with_gits_words_not_its_advice(
    scope, billing, billing_session
):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]

    def push_fails(interaction):
        if interaction.step_name == "Finalize":
            return Result(status="error", code=128, stderr=PUSH_TO_A_MISSING_ORIGIN)
        return ok(interaction)

    drive_to_end(scope, invoice, push_fails)

    invoice.refresh_from_db()
    # Seen trying humanize with a relative origin: the reason read "and the repository exists."
    assert invoice.state["error"] == (
        "Finalize failed 3 times: fatal: Could not read from remote repository."
    )


def test_a_failed_child_keeps_the_context_on_the_spawn_step_with_its_reason(
    scope, billing, billing_session
):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice, ledger, refund = children(billing_session)
    for kid in (invoice, refund):
        drive_to_end(scope, kid)

    def finalize_fails(interaction):
        if interaction.step_name == "Finalize":
            return Result(status="error", error_message="test file missing")
        return ok(interaction)

    drive_to_end(scope, ledger, finalize_fails)
    ledger.refresh_from_db()
    reason = "Finalize failed 3 times: test file missing"
    assert (ledger.status, ledger.state["error"]) == ("failed", reason)

    step_once(scope, billing_session)
    spawn = step_once(scope, billing_session)

    assert spawn.result["error_message"] == f"Child sessions failed: Ledger ({reason})"
    following, _ = services.next_command(scope=scope, session_id=billing_session.pk)
    assert following.step_name == "SpawnComponentTestingSessions"


def test_cancelling_a_context_session_cancels_its_running_children(scope, billing, billing_session):
    services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
    invoice = children(billing_session)[0]
    drive_to_end(scope, invoice)
    pending, _ = services.next_command(scope=scope, session_id=billing_session.pk)

    session = services.cancel_session(scope=scope, session_id=billing_session.pk)

    assert session.status == SessionStatus.CANCELLED
    statuses = {kid.component.name: kid.status for kid in children(billing_session)}
    assert statuses == {"Invoice": "complete", "Ledger": "cancelled", "Refund": "cancelled"}
    with pytest.raises(Conflict):
        services.next_command(scope=scope, session_id=billing_session.pk)
    with pytest.raises(Conflict) as error:
        services.submit_result(
            scope=scope,
            session_id=billing_session.pk,
            interaction_id=pending.pk,
            result=Result(status="ok"),
        )
    assert error.value.message == "Session is cancelled; it takes no more results"
    # Cancelling again changes nothing; a finished session cannot be cancelled.
    assert services.cancel_session(scope=scope, session_id=billing_session.pk).status == (
        "cancelled"
    )
    with pytest.raises(Conflict) as error:
        services.cancel_session(scope=scope, session_id=invoice.pk)
    assert error.value.message == "Session is complete; it cannot be cancelled"


class TestConflictsAndScope:
    def test_next_command_returns_the_pending_interaction_again(self, scope, billing_session):
        first, created_first = services.next_command(scope=scope, session_id=billing_session.pk)
        second, created_second = services.next_command(scope=scope, session_id=billing_session.pk)

        assert (created_first, created_second) == (True, False)
        assert first.pk == second.pk
        assert Interaction.objects.filter(session=billing_session).count() == 1

    def test_history_is_kept(self, scope, billing_session):
        step_once(scope, billing_session)
        step_once(scope, billing_session)

        assert Interaction.objects.filter(session=billing_session).count() == 2

    def test_a_second_report_of_one_interaction_is_a_conflict(self, scope, billing_session):
        answered = step_once(scope, billing_session)
        stored = answered.result

        with pytest.raises(Conflict) as error:
            services.submit_result(
                scope=scope,
                session_id=billing_session.pk,
                interaction_id=answered.pk,
                result=Result(status="error", error_message="late"),
            )

        assert error.value.message == "A result was already reported for this interaction"
        answered.refresh_from_db()
        assert answered.result == stored

    def test_an_unknown_interaction_is_not_found(self, scope, billing, billing_session):
        other = make_context_session(scope, billing)
        foreign, _ = services.next_command(scope=scope, session_id=other.pk)

        with pytest.raises(NotFound) as error:
            services.submit_result(
                scope=scope,
                session_id=billing_session.pk,
                interaction_id=foreign.pk,
                result=Result(status="ok"),
            )

        assert error.value.message == "Interaction not found"
        foreign.refresh_from_db()
        assert foreign.is_pending

    def test_an_invalid_result_status_is_refused(self, scope, billing_session):
        pending, _ = services.next_command(scope=scope, session_id=billing_session.pk)

        with pytest.raises(InvalidInput):
            services.submit_result(
                scope=scope,
                session_id=billing_session.pk,
                interaction_id=pending.pk,
                result=Result(status="done"),
            )

        pending.refresh_from_db()
        assert pending.is_pending

    @pytest.mark.parametrize("call", ["next_command", "submit_result", "cancel_session"])
    def test_nothing_outside_the_scope_is_visible(self, billing_session, other_scope, call):
        kwargs = {"scope": other_scope, "session_id": billing_session.pk}
        if call == "submit_result":
            kwargs |= {"interaction_id": billing_session.pk, "result": Result(status="ok")}

        with pytest.raises(NotFound) as error:
            getattr(services, call)(**kwargs)

        assert error.value.message == "Session not found"
        billing_session.refresh_from_db()
        assert billing_session.status == SessionStatus.ACTIVE
        assert not billing_session.interactions.exists()


def test_a_step_that_cannot_proceed_leaves_no_interaction(scope, project):
    lonely = make_context(project, [])
    session = make_context_session(scope, lonely)
    step_once(scope, session)

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=session.pk)

    assert error.value.message == "No child components found for context"
    assert history_of(session) == ["Initialize"]
    # Once the context has a component, the same step goes through.
    make_component(project, "Late", parent_component=lonely)
    spawn, created = services.next_command(scope=scope, session_id=session.pk)
    assert created and len(spawn.command["metadata"]["child_session_ids"]) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("code", "1"), ("code", True), ("duration_ms", -1), ("duration_ms", 1.5), ("stdout", 3)],
)
def test_a_malformed_result_is_refused_and_changes_nothing(scope, billing_session, field, value):
    pending, _ = services.next_command(scope=scope, session_id=billing_session.pk)

    with pytest.raises(InvalidInput) as error:
        services.submit_result(
            scope=scope,
            session_id=billing_session.pk,
            interaction_id=pending.pk,
            result=Result(status="ok", **{field: value}),
        )

    assert list(error.value.errors) == [field]
    pending.refresh_from_db()
    assert pending.is_pending


class TestQueryCounts:
    @pytest.fixture
    def at_spawn(self, scope, billing_session):
        step_once(scope, billing_session)
        services.spawn_child_sessions(scope=scope, session_id=billing_session.pk)
        return billing_session

    def test_next_command_for_a_pending_interaction(
        self, scope, at_spawn, django_assert_max_num_queries
    ):
        services.next_command(scope=scope, session_id=at_spawn.pk)

        # The context a budget would lock first is looked up first.
        with django_assert_max_num_queries(5):
            services.next_command(scope=scope, session_id=at_spawn.pk)

    def test_next_command_creating_an_interaction(
        self, scope, at_spawn, django_assert_max_num_queries
    ):
        # Savepoints, session, latest interaction, the spawn step's reads, the insert.
        with django_assert_max_num_queries(11):
            services.next_command(scope=scope, session_id=at_spawn.pk)

    def test_submit_result_of_the_spawn_step(self, scope, at_spawn, django_assert_max_num_queries):
        pending, _ = services.next_command(scope=scope, session_id=at_spawn.pk)

        # Savepoints, the locked session, the interaction, the result check's four, the
        # interaction's save, the session's (its last result's time).
        with django_assert_max_num_queries(10):
            services.submit_result(
                scope=scope,
                session_id=at_spawn.pk,
                interaction_id=pending.pk,
                result=Result(status="ok"),
            )


def test_the_first_prompt_names_the_code_and_the_tests_that_already_exercise_it(scope, project):
    context = make_component(project, "Shop", module_name="shop", type="context")
    make_component(
        project,
        "Cart",
        module_name="shop.cart",
        parent_component=context,
        source_path="src/shop/cart.py",
        existing_tests=["tests/test_checkout.py"],
    )
    session = make_context_session(scope, context)
    child_id = services.spawn_child_sessions(scope=scope, session_id=session.pk).metadata[
        "child_session_ids"
    ][0]
    child = Session.objects.get(pk=child_id)
    step_once(scope, child)

    generate, _ = services.next_command(scope=scope, session_id=child.pk)

    prompt = generate.command["metadata"]["prompt"]
    assert "Its code is in src/shop/cart.py." in prompt
    assert "Tests that already exercise it: tests/test_checkout.py." in prompt
