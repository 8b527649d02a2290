"""The quality bar: the verdict on a verification (a table of cases, every text, their order,
the rounding), malformed verifications, and the VerifyTests ↔ ImproveTests loop through the
service and the API, bounded by max_improve_attempts."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from sessions_app import quality_bar, services
from sessions_app.models import SessionStatus, Verification
from sessions_app.quality_bar import Bar
from sessions_app.workflows.types import Result
from tests.api.conftest import client_for
from tests.factories import make_component, make_context, make_context_session
from tests.sessions_app.workflow_driver import drive_to_end, history_of, reporting, step_once

SOURCE = "src/shop/user.py"
DEFAULT_BAR = Bar(min_line_coverage=80, min_branch_coverage=None, require_assertions=True)


def verification(runs=(0, 0, 0), coverage=None, without=(), changed=()):
    return {
        "runs": list(runs),
        "coverage": coverage,
        "tests_without_assertions": list(without),
        "changed_files": list(changed),
    }


def cov(lines_total=120, lines_covered=100, **more):
    return {
        "source_path": SOURCE,
        "lines_total": lines_total,
        "lines_covered": lines_covered,
        **more,
    }


@pytest.mark.parametrize(
    ("reported", "bar", "source_path", "expected"),
    [
        (verification(coverage=cov(120, 100)), DEFAULT_BAR, SOURCE, []),
        (
            verification(runs=(0, 1, 0), coverage=cov(120, 100)),
            DEFAULT_BAR,
            SOURCE,
            ["Tests failed in 1 of 3 runs"],
        ),
        (
            verification(coverage=None),
            DEFAULT_BAR,
            SOURCE,
            [f"No coverage data for {SOURCE}"],
        ),
        # No source path: nothing to measure the coverage of.
        (verification(coverage=None), DEFAULT_BAR, None, []),
        # No minimum: no coverage check at all.
        (verification(coverage=None), Bar(None, None, True), SOURCE, []),
        (
            verification(coverage=cov(120, 95)),
            DEFAULT_BAR,
            SOURCE,
            [f"Line coverage of {SOURCE} is 79.1%, below 80%"],
        ),
        # Rounded down to one decimal, always printed with one: 2 of 3 is 66.6%.
        (
            verification(coverage=cov(3, 2)),
            Bar(90, None, True),
            SOURCE,
            [f"Line coverage of {SOURCE} is 66.6%, below 90%"],
        ),
        (
            verification(coverage=cov(10, 0)),
            DEFAULT_BAR,
            SOURCE,
            [f"Line coverage of {SOURCE} is 0.0%, below 80%"],
        ),
        # 79.99...% is below 80%, even though it would round to 80.0 upwards.
        (
            verification(coverage=cov(10000, 7999)),
            DEFAULT_BAR,
            SOURCE,
            [f"Line coverage of {SOURCE} is 79.9%, below 80%"],
        ),
        (
            verification(coverage=cov(120, 100, branches_total=40, branches_covered=30)),
            Bar(80, 90, True),
            SOURCE,
            [f"Branch coverage of {SOURCE} is 75.0%, below 90%"],
        ),
        # A file with no branches has no branch problem; absent branch data neither.
        (
            verification(coverage=cov(120, 100, branches_total=0, branches_covered=0)),
            Bar(80, 90, True),
            SOURCE,
            [],
        ),
        (verification(coverage=cov(120, 100)), Bar(80, 90, True), SOURCE, []),
        (
            verification(coverage=cov(120, 100), without=("test_a", "TestUser.test_b")),
            DEFAULT_BAR,
            SOURCE,
            ["Tests without assertions: test_a, TestUser.test_b"],
        ),
        (
            verification(coverage=cov(120, 100), without=("test_a",)),
            Bar(80, None, False),
            SOURCE,
            [],
        ),
        (
            verification(coverage=cov(120, 100), changed=(SOURCE, "conftest.py")),
            DEFAULT_BAR,
            SOURCE,
            [f"Files changed outside the test file: {SOURCE}, conftest.py"],
        ),
        # Every problem at once, in the contract's order.
        (
            verification(
                runs=(1, 1, 0),
                coverage=cov(120, 60, branches_total=10, branches_covered=1),
                without=("test_a",),
                changed=("setup.py",),
            ),
            Bar(80, 50, True),
            SOURCE,
            [
                "Tests failed in 2 of 3 runs",
                f"Line coverage of {SOURCE} is 50.0%, below 80%",
                f"Branch coverage of {SOURCE} is 10.0%, below 50%",
                "Tests without assertions: test_a",
                "Files changed outside the test file: setup.py",
            ],
        ),
    ],
)
def test_the_verdict(reported, bar, source_path, expected):
    assert quality_bar.problems(quality_bar.read(reported), bar, source_path) == expected


@pytest.mark.parametrize(
    ("reported", "text"),
    [
        ([], "verification. must be an object."),
        ({"runs": []}, "verification.runs must be a non-empty list"),
        ({"runs": [0, "1"]}, "verification.runs must be a non-empty list"),
        ({"runs": [True]}, "verification.runs must be a non-empty list"),
        ({"runs": [0], "coverage": 3}, "verification.coverage must be an object or null."),
        (
            {"runs": [0], "coverage": cov(10, 11)},
            "verification.coverage.lines_covered must not be above lines_total.",
        ),
        (
            {"runs": [0], "coverage": cov(-1, 0)},
            "verification.coverage.lines_total must not be below 0.",
        ),
        (
            {"runs": [0], "coverage": cov(10, 5, branches_total=2, branches_covered=3)},
            "verification.coverage.branches_covered must not be above branches_total.",
        ),
        (
            {"runs": [0], "coverage": cov(10, 5, branches_total=2)},
            "verification.coverage.branches_covered must be an integer.",
        ),
        (
            {"runs": [0], "coverage": cov(10, 5, missing_lines=[0])},
            "verification.coverage.missing_lines must be a list of line numbers.",
        ),
        (
            {"runs": [0], "tests_without_assertions": "test_a"},
            "verification.tests_without_assertions must be a list of strings.",
        ),
        ({"runs": [0], "changed_files": [1]}, "verification.changed_files must be a list"),
    ],
)
def test_a_malformed_verification_names_the_field(reported, text):
    with pytest.raises(quality_bar.Malformed) as error:
        quality_bar.read(reported)
    assert error.value.text.startswith(text)


def test_missing_lines_are_handed_over_as_ranges():
    assert quality_bar.line_ranges([13, 3, 4, 5, 9, 12, 4]) == "3-5, 9, 12-13"


# --- the loop, through the service --------------------------------------------------------------


@pytest.fixture
def child(scope, project):
    context = make_context(project, [])
    make_component(
        project, "User", module_name="shop.user", parent_component=context, source_path=SOURCE
    )
    session = make_context_session(scope, context)
    command = services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return session.child_sessions.get(pk=command.metadata["child_session_ids"][0])


def test_verify_tests_hands_the_runner_what_to_measure(scope, project, child):
    for _ in range(3):
        step_once(scope, child)

    command, _ = services.next_command(scope=scope, session_id=child.pk)

    assert command.step_name == "VerifyTests"
    metadata = command.command["metadata"]
    assert metadata == {
        "test_file": "tests/test_shop_user_user.py",
        "source_path": SOURCE,
        "runs": 3,
        "report_file": f".spawnctl/coverage-{str(child.pk)[:8]}.json",
        "report_format": "coverage.py-json",
        "assertion_check": "python",
        "mutation": None,
        "timeout_seconds": 600,
    }
    shell = command.command["command"]
    assert "--branch" in shell
    assert f"--include={SOURCE}" in shell
    assert f"-o {metadata['report_file']}" in shell


def test_weak_tests_go_through_improve_tests_until_they_pass(scope, child):
    weak = verification(coverage=cov(120, 60, missing_lines=[3, 4, 5, 9]))
    good = verification(coverage=cov(120, 110))

    drive_to_end(scope, child, reporting(weak, good))

    child.refresh_from_db()
    assert child.status == SessionStatus.COMPLETE
    assert history_of(child) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "VerifyTests",
        "ImproveTests",
        "RunTests",
        "VerifyTests",
        "Finalize",
    ]
    improve = child.interactions.get(step_name="ImproveTests")
    prompt = improve.command["metadata"]["prompt"]
    assert f"- Line coverage of {SOURCE} is 50.0%, below 80%" in prompt
    assert f"Lines of {SOURCE} no test runs: 3-5, 9." in prompt
    assert "Do not change the code under test" in prompt
    assert child.state["improve_attempts"] == 1
    first, second = Verification.objects.filter(session=child).order_by("verified_at")
    assert (first.passed, float(first.line_coverage)) == (False, 50.0)
    assert (second.passed, float(second.line_coverage)) == (True, 91.6)
    assert child.latest_verification == second


def test_a_child_that_changed_other_files_is_told_to_put_them_back(scope, child):
    edited = verification(coverage=cov(120, 110), changed=("conftest.py", "src/shop/user.py"))
    clean = verification(coverage=cov(120, 110))

    drive_to_end(scope, child, reporting(edited, clean))

    child.refresh_from_db()
    assert child.status == SessionStatus.COMPLETE
    prompt = child.interactions.get(step_name="ImproveTests").command["metadata"]["prompt"]
    assert "- Files changed outside the test file: conftest.py, src/shop/user.py" in prompt
    assert "Put these files back as they were: conftest.py, src/shop/user.py (" in prompt
    assert "Do not change the code under test" in prompt


def test_without_a_coverage_minimum_the_agent_is_not_asked_for_lines(scope, project, child):
    project.min_line_coverage = None
    project.save()
    scope.project.refresh_from_db()
    weak = verification(coverage=cov(120, 60, missing_lines=[3, 4]), without=("test_a",))

    drive_to_end(scope, child, reporting(weak, verification(coverage=cov(120, 60))))

    prompt = child.interactions.get(step_name="ImproveTests").command["metadata"]["prompt"]
    assert "- Tests without assertions: test_a" in prompt
    assert "no test runs" not in prompt


def test_tests_that_never_reach_the_bar_fail_the_session_with_the_text(scope, project, child):
    weak = verification(coverage=cov(120, 60), without=("test_a",))

    drive_to_end(scope, child, reporting(*[weak] * 4), limit=40)

    child.refresh_from_db()
    assert child.status == SessionStatus.FAILED
    assert child.state["error"] == (
        "Tests do not meet the project's bar after 3 improvement attempts: "
        f"Line coverage of {SOURCE} is 50.0%, below 80%; Tests without assertions: test_a"
    )
    assert history_of(child).count("ImproveTests") == 3
    assert history_of(child).count("VerifyTests") == 4


def test_with_no_improvement_allowed_the_first_verdict_decides(scope, project, child):
    project.max_improve_attempts = 0
    project.save()

    drive_to_end(scope, child, reporting(verification(runs=(0, 1, 1), coverage=cov())))

    child.refresh_from_db()
    assert child.state["error"] == (
        "Tests do not meet the project's bar after 0 improvement attempts: "
        "Tests failed in 2 of 3 runs"
    )


def test_a_failing_run_s_output_is_kept_and_handed_to_improve_tests(scope, project, child):
    """Seen on humanize: with coverage.py missing from the test environment every run failed,
    and the agent (and the run page) read only "Tests failed in 1 of 1 runs"."""
    missing = "/usr/bin/python: No module named coverage"

    def respond(interaction):
        if interaction.step_name == "VerifyTests":
            return Result(
                status="ok", code=1, stderr=missing,
                data={"verification": verification(runs=(1, 1, 1), coverage=None)},
            )  # fmt: skip
        return Result(status="ok", code=0)

    drive_to_end(scope, child, respond, limit=40)

    child.refresh_from_db()
    assert child.state["last_test_output"] == missing
    prompt = (
        child.interactions.filter(step_name="ImproveTests").first().command["metadata"]["prompt"]
    )
    assert "- Tests failed in 3 of 3 runs" in prompt
    assert f"This is what the first failing run printed:\n```\n{missing}\n```" in prompt


def test_a_passing_verification_leaves_the_last_test_output_alone(scope, child):
    def respond(interaction):
        if interaction.step_name == "VerifyTests":
            good = verification(coverage=cov(120, 110))
            return Result(status="ok", code=0, stdout="3 passed", data={"verification": good})
        if interaction.step_name == "RunTests":
            return Result(status="ok", code=0, stdout="1 passed in 0.01s")
        return Result(status="ok", code=0)

    drive_to_end(scope, child, respond)

    child.refresh_from_db()
    assert child.status == "complete"
    assert child.state["last_test_output"] == "1 passed in 0.01s"


def test_a_malformed_verification_is_refused_and_stores_nothing(scope, child):
    for _ in range(3):
        step_once(scope, child)
    command, _ = services.next_command(scope=scope, session_id=child.pk)

    with pytest.raises(InvalidInput) as error:
        services.submit_result(
            scope=scope,
            session_id=child.pk,
            interaction_id=command.pk,
            result=Result(status="ok", data={"verification": {"runs": [0], "coverage": cov(1, 2)}}),
        )

    assert error.value.errors == {
        "data": ["verification.coverage.lines_covered must not be above lines_total."]
    }
    command.refresh_from_db()
    assert command.is_pending
    assert not Verification.objects.exists()


def test_the_api_shows_the_verification_and_the_children_s_coverage(scope, user, project, child):
    drive_to_end(scope, child, reporting(verification(coverage=cov(120, 100))))
    api = client_for(user)

    shown = api.get(f"/api/sessions/{child.pk}/").json()["verification"]
    summary = api.get(f"/api/sessions/{child.parent_session_id}/children/").json()["summary"]

    assert {k: shown[k] for k in ("passed", "line_coverage", "branch_coverage", "runs")} == {
        "passed": True,
        "line_coverage": 83.3,
        "branch_coverage": None,
        "runs": [0, 0, 0],
    }
    assert shown["problems"] == []
    assert shown["verified_at"]
    assert summary["coverage"] == {"lines_total": 120, "lines_covered": 100, "line_coverage": 83.3}


def test_a_malformed_verification_through_the_api_is_a_400(scope, user, child):
    for _ in range(3):
        step_once(scope, child)
    command, _ = services.next_command(scope=scope, session_id=child.pk)

    response = client_for(user).post(
        f"/api/sessions/{child.pk}/interactions/{command.pk}/result/",
        {"status": "ok", "data": {"verification": {"runs": "all passed"}}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["data"][0].startswith("verification.runs must be a non-empty list")
