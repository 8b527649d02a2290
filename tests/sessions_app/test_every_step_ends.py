"""Every step ends: a step whose result is an error ``max_step_attempts`` times in a row fails
its session with ``<StepName> failed <n> times: <last error message>``; a test run that could
not judge the tests is not handed to the agent; an error result without a message gets one
derived from what the command printed."""

from __future__ import annotations

import pytest

from components_app import services as component_services
from sessions_app import services
from sessions_app.models import SessionStatus
from sessions_app.workflows.types import Result
from tests.factories import make_context
from tests.sessions_app.workflow_driver import drive_to_end, history_of, step_once


@pytest.fixture
def child(scope, project, context_session):
    command = services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    return context_session.child_sessions.get(pk=command.metadata["child_session_ids"][0])


def failing(step: str, message: str | None = "agent crashed", **fields):
    """Every command ok, except ``step``'s: an error with ``message``."""

    def respond(interaction):
        if interaction.step_name == step:
            return Result(status="error", error_message=message, **fields)
        return Result(status="ok", code=0)

    return respond


@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_an_agent_that_always_fails_fails_its_session_after_max_step_attempts(
    scope, project, child, attempts
):
    project.max_step_attempts = attempts
    project.save()

    drive_to_end(scope, child, failing("GenerateTestsAndFixtures", "claude: API error 529"))

    child.refresh_from_db()
    assert history_of(child) == ["Initialize"] + ["GenerateTestsAndFixtures"] * attempts
    assert child.status == SessionStatus.FAILED
    assert child.state["error"] == (
        f"GenerateTestsAndFixtures failed {attempts} times: claude: API error 529"
    )
    assert (child.runner, child.leased_until) == (None, None)


@pytest.mark.parametrize("step", ["Initialize", "FixCompilationErrors", "Finalize"])
def test_every_step_of_a_component_session_is_bounded(scope, child, step):
    def respond(interaction):
        if interaction.step_name == step:
            return Result(status="error", code=1, error_message=f"{step} broke")
        # RunTests fails once so that FixCompilationErrors runs.
        if interaction.step_name == "RunTests" and step == "FixCompilationErrors":
            return Result(status="error", code=1, stdout="1 failed")
        return Result(status="ok", code=0)

    drive_to_end(scope, child, respond)

    child.refresh_from_db()
    assert child.status == SessionStatus.FAILED
    assert child.state["error"] == f"{step} failed 3 times: {step} broke"
    assert history_of(child).count(step) == 3


def test_a_context_whose_finalize_keeps_failing_fails_with_the_text(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    context_session.child_sessions.update(status=SessionStatus.COMPLETE)

    drive_to_end(scope, context_session, failing("Finalize", "push rejected"))

    context_session.refresh_from_db()
    assert context_session.state["error"] == "Finalize failed 3 times: push rejected"
    assert history_of(context_session).count("Finalize") == 3


def test_an_ok_result_of_the_step_starts_the_count_again(scope, child):
    """FixCompilationErrors fails, succeeds, fails twice, succeeds: three errors in all but
    never three in a row, so the fix loop's own bound ends the session, not the step's."""
    fix_results = iter(["error", "ok", "error", "error", "ok"])

    def respond(interaction):
        if interaction.step_name == "FixCompilationErrors":
            return Result(status=next(fix_results), code=0, error_message=None)
        if interaction.step_name == "RunTests":
            return Result(status="error", code=1, stdout="FAILED test_x")
        return Result(status="ok", code=0)

    drive_to_end(scope, child, respond, limit=30)

    child.refresh_from_db()
    assert child.state["error"].startswith("Tests still failing after 5 fix attempts")


def test_a_retry_starts_the_count_again(scope, project, child):
    project.max_step_attempts = 2
    project.save()
    drive_to_end(scope, child, failing("GenerateTestsAndFixtures"))
    services.retry_session(scope=scope, session_id=child.pk)

    step_once(scope, child)  # Initialize
    step_once(scope, child, failing("GenerateTestsAndFixtures"))

    child.refresh_from_db()
    assert child.status == SessionStatus.ACTIVE
    assert child.state["previous_errors"] == [
        "GenerateTestsAndFixtures failed 2 times: agent crashed"
    ]


def test_the_spawn_step_loops_back_as_often_as_it_must(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    step_once(scope, context_session)  # Initialize

    for _ in range(6):
        checked = step_once(scope, context_session, lambda _: Result(status="ok"))
        assert checked.result["error_message"].startswith("Child sessions still running")

    context_session.refresh_from_db()
    assert context_session.status == SessionStatus.ACTIVE


def test_an_error_without_a_message_is_named_by_what_the_command_printed(scope, child):
    answered = step_once(
        scope,
        child,
        lambda _: Result(
            status="error",
            code=128,
            stderr="error: The following untracked working tree files would be overwritten "
            "by checkout:\n\ttests/test_a.py\nPlease move or remove them before you switch "
            "branches.\nAborting\n",
        ),
    )

    # Initialize names git's own error line, not the "Aborting" after it.
    assert answered.result["error_message"] == (
        "error: The following untracked working tree files would be overwritten by checkout:"
    )
    step_once(scope, child)  # Initialize again, ok
    generated = step_once(
        scope, child, lambda _: Result(status="error", code=1, stdout="thinking\nrate limited\n")
    )
    assert generated.result["error_message"] == "rate limited"
    silent = step_once(scope, child, lambda _: Result(status="error", code=3))
    assert silent.result["error_message"] == "Exit code 3"


CONFTEST_IMPORT_ERROR = (
    "ImportError while loading conftest '/repo/tests/conftest.py'.\n"
    "tests/conftest.py:1: in <module>\n"
    "    import missing_module\n"
    "E   ModuleNotFoundError: No module named 'missing_module'\n"
)


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "line"),
    [
        (
            4,
            "",
            CONFTEST_IMPORT_ERROR,
            "ImportError while loading conftest '/repo/tests/conftest.py'.",
        ),
        (
            4,
            "",
            "ERROR: file or directory not found: tests/test_x.py\n",
            "ERROR: file or directory not found: tests/test_x.py",
        ),
        (
            5,
            "============ test session starts ============\ncollected 0 items\n\n"
            "=========== no tests ran in 0.01s ===========\n",
            "",
            "collected 0 items",
        ),
        (5, "", "", "the test run printed nothing"),
    ],
)
def test_a_test_run_that_judged_nothing_is_an_environment_error_not_a_fix(
    scope, child, code, stdout, stderr, line
):
    step_once(scope, child)  # Initialize
    step_once(scope, child)  # GenerateTestsAndFixtures

    run = step_once(
        scope, child, lambda _: Result(status="error", code=code, stdout=stdout, stderr=stderr)
    )

    assert run.result["error_message"] == f"Test environment error (exit code {code}): {line}"
    following, _ = services.next_command(scope=scope, session_id=child.pk)
    assert following.step_name == "RunTests"


def test_environment_errors_count_towards_max_step_attempts(scope, child):
    def respond(interaction):
        if interaction.step_name == "RunTests":
            return Result(status="error", code=4, stderr=CONFTEST_IMPORT_ERROR)
        return Result(status="ok", code=0)

    drive_to_end(scope, child, respond)

    child.refresh_from_db()
    assert history_of(child) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "RunTests",
        "RunTests",
    ]
    assert child.state["error"] == (
        "RunTests failed 3 times: Test environment error (exit code 4): "
        "ImportError while loading conftest '/repo/tests/conftest.py'."
    )
    assert "fix_attempts" not in child.state


def test_failing_tests_still_go_to_the_fix_loop(scope, child):
    step_once(scope, child)
    step_once(scope, child)
    step_once(scope, child, lambda _: Result(status="error", code=1, stdout="1 failed"))

    following, _ = services.next_command(scope=scope, session_id=child.pk)
    assert following.step_name == "FixCompilationErrors"


def test_max_step_attempts_is_a_project_setting_of_1_to_10(scope, user):
    from core.errors import InvalidInput

    for bad in (0, 11):
        with pytest.raises(InvalidInput) as error:
            component_services.update_project(scope=scope, max_step_attempts=bad)
        assert "max_step_attempts" in error.value.errors
    project = component_services.update_project(scope=scope, max_step_attempts=10)
    assert project.max_step_attempts == 10


def test_a_context_with_every_component_excluded_has_nothing_to_spawn(scope, project):
    context = make_context(project, [("A", 1)])
    context.child_components.update(excluded=True)
    from core.errors import StepError
    from tests.factories import make_context_session

    session = make_context_session(scope, context)
    with pytest.raises(StepError) as error:
        services.spawn_child_sessions(scope=scope, session_id=session.pk)
    assert error.value.message == "No child components found for context"


def test_retrying_the_children_leaves_an_excluded_component_s_child_cancelled(
    scope, context_session
):
    command = services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    first = context_session.child_sessions.get(pk=command.metadata["child_session_ids"][0])
    component_services.update_component(scope=scope, component_id=first.component_id, excluded=True)

    retried = services.retry_child_sessions(scope=scope, session_id=context_session.pk)

    first.refresh_from_db()
    assert (retried, first.status) == ([], SessionStatus.CANCELLED)
