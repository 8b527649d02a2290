"""The mutation gate on the server: the verdict on a sample of mutants (the text, its place
after the coverage problems, the rounding, what counts as caught), malformed samples refused
naming the field, what VerifyTests hands the runner, the survivors handed to ImproveTests, and
the stored verification through the API and the children's summary."""

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
GATE = Bar(min_line_coverage=80, min_branch_coverage=None, require_assertions=True,
           min_mutation_score=75)  # fmt: skip
SURVIVOR = {
    "line": 5,
    "column": 11,
    "operator": "core/ReplaceBinaryOperator_Sub_Add",
    "change": "return n - 1 -> return n + 1",
}


def mutation(killed=8, survived=2, timed_out=0, incompetent=0, survivors=None):
    return {
        "tool": "cosmic-ray",
        "sampled": killed + survived + timed_out + incompetent,
        "killed": killed,
        "survived": survived,
        "timed_out": timed_out,
        "incompetent": incompetent,
        "survivors": [SURVIVOR] * survived if survivors is None else survivors,
    }


def verification(runs=(0, 0, 0), lines=(120, 100), mutated=None, **more):
    reported = {
        "runs": list(runs),
        "coverage": {"source_path": SOURCE, "lines_total": lines[0], "lines_covered": lines[1]},
        "tests_without_assertions": [],
        "changed_files": [],
        **more,
    }
    if mutated is not None:
        reported["mutation"] = mutated
    return reported


@pytest.mark.parametrize(
    ("reported", "bar", "source_path", "expected"),
    [
        # 8 of 10 caught: 80.0% meets 75%.
        (verification(mutated=mutation(8, 2)), GATE, SOURCE, []),
        (
            verification(mutated=mutation(7, 3)),
            Bar(80, None, True, 75),
            SOURCE,
            [f"Mutation score of {SOURCE} is 70.0%, below 75%"],
        ),
        # A mutant stopped at its time limit was caught; one the tests could not run on is
        # not judged: 2 killed + 1 timed out of 3 judged is 100%.
        (verification(mutated=mutation(2, 0, timed_out=1, incompetent=5)), GATE, SOURCE, []),
        # Rounded down, printed with one decimal: 2 of 3 is 66.6%.
        (
            verification(mutated=mutation(2, 1)),
            GATE,
            SOURCE,
            [f"Mutation score of {SOURCE} is 66.6%, below 75%"],
        ),
        # Nothing to mutate (or nothing judged): no mutation problem.
        (verification(mutated=mutation(0, 0)), GATE, SOURCE, []),
        # Mutants none of which could be judged are no data, not a pass.
        (
            verification(mutated=mutation(0, 0, incompetent=3)),
            GATE,
            SOURCE,
            [f"No mutation data for {SOURCE}"],
        ),
        # The gate asked for and not measured, with passing tests: no data is a problem...
        (verification(), GATE, SOURCE, [f"No mutation data for {SOURCE}"]),
        (
            verification(mutated=None, mutation=None),
            GATE,
            SOURCE,
            [f"No mutation data for {SOURCE}"],
        ),
        # ...but not beside failing tests, whose mutants are never run.
        (verification(runs=(0, 1, 0)), GATE, SOURCE, ["Tests failed in 1 of 3 runs"]),
        # The gate off, no source file, a file the tool cannot mutate: no mutation check.
        (verification(mutated=mutation(0, 10)), Bar(80, None, True), SOURCE, []),
        (verification(), GATE, None, []),
        (verification(), GATE, "store/cache.go", []),
        # After the coverage problems, before the assertion check's.
        (
            verification(
                lines=(120, 60), mutated=mutation(1, 9), tests_without_assertions=["test_a"]
            ),
            GATE,
            SOURCE,
            [
                f"Line coverage of {SOURCE} is 50.0%, below 80%",
                f"Mutation score of {SOURCE} is 10.0%, below 75%",
                "Tests without assertions: test_a",
            ],
        ),
        # A bar of 0 is met by any sample; one of 100 only by catching every mutant.
        (verification(mutated=mutation(0, 4)), Bar(None, None, True, 0), SOURCE, []),
        (
            verification(mutated=mutation(99, 1)),
            Bar(None, None, True, 100),
            SOURCE,
            [f"Mutation score of {SOURCE} is 99.0%, below 100%"],
        ),
    ],
)
def test_the_verdict_on_a_sample_of_mutants(reported, bar, source_path, expected):
    assert quality_bar.problems(quality_bar.read(reported), bar, source_path) == expected


@pytest.mark.parametrize(
    ("mutated", "message"),
    [
        ("20 of 20", "verification.mutation must be an object or null."),
        ({**mutation(), "killed": -1}, "verification.mutation.killed must not be below 0."),
        ({**mutation(), "survived": "2"}, "verification.mutation.survived must be an integer."),
        ({**mutation(), "timed_out": True}, "verification.mutation.timed_out must be an integer."),
        (
            {**mutation(), "sampled": 2**63, "killed": 2**63},
            "verification.mutation.sampled must be at most 2147483647.",
        ),
        (
            {**mutation(), "sampled": 11},
            "verification.mutation.sampled must be killed + survived + timed_out + incompetent.",
        ),
        (
            mutation(8, 1, survivors=[SURVIVOR, SURVIVOR]),
            "verification.mutation.survivors must list at most the 1 survived (and 100).",
        ),
        (
            {**mutation(), "survivors": "line 5"},
            "verification.mutation.survivors must be a list.",
        ),
        (
            mutation(8, 2, survivors=[SURVIVOR, "line 5"]),
            "verification.mutation.survivors[1] must be an object.",
        ),
        (
            mutation(8, 1, survivors=[{**SURVIVOR, "line": 0}]),
            "verification.mutation.survivors[0].line must be a line number (from 1).",
        ),
        (
            mutation(8, 1, survivors=[{**SURVIVOR, "change": ""}]),
            "verification.mutation.survivors[0].change must be a text of 1 to 1000 characters.",
        ),
        (
            mutation(8, 1, survivors=[{**SURVIVOR, "operator": "x" * 1001}]),
            "verification.mutation.survivors[0].operator must be a text of 1 to 1000 characters.",
        ),
    ],
)
def test_a_malformed_sample_is_refused_naming_the_field(mutated, message):
    with pytest.raises(quality_bar.Malformed) as error:
        quality_bar.read(verification(mutated=mutated))

    assert error.value.text == message


@pytest.fixture
def gated(scope, project):
    project.min_mutation_score = 75
    project.max_mutants = 12
    project.mutant_timeout_seconds = 20
    project.test_command_template = "python -m pytest -q {test_file}"
    project.save()
    scope.project.refresh_from_db()
    return project


@pytest.fixture
def child(scope, gated):
    context = make_context(gated, [])
    make_component(
        gated, "User", module_name="shop.user", parent_component=context, source_path=SOURCE
    )
    session = make_context_session(scope, context)
    command = services.spawn_child_sessions(scope=scope, session_id=session.pk)
    return session.child_sessions.get(pk=command.metadata["child_session_ids"][0])


def test_verify_tests_hands_the_runner_the_mutation_gate(scope, child):
    for _ in range(3):
        step_once(scope, child)

    command, _ = services.next_command(scope=scope, session_id=child.pk)

    assert command.command["metadata"]["mutation"] == {
        "tool": "cosmic-ray",
        "source_path": SOURCE,
        "test_command": "python -m pytest -q tests/test_shop_user_user.py",
        "max_mutants": 12,
        "timeout_seconds": 20,
        "session_file": f".spawnctl/mutation-{str(child.pk)[:8]}.sqlite",
    }


def test_a_component_the_tool_cannot_mutate_gets_no_mutation_command(scope, gated):
    context = make_context(gated, [])
    make_component(
        gated, "Cache", module_name="store.cache", parent_component=context,
        source_path="store/cache.go",
    )  # fmt: skip
    session = make_context_session(scope, context)
    spawned = services.spawn_child_sessions(scope=scope, session_id=session.pk)
    child = session.child_sessions.get(pk=spawned.metadata["child_session_ids"][0])
    for _ in range(3):
        step_once(scope, child)

    command, _ = services.next_command(scope=scope, session_id=child.pk)

    assert command.step_name == "VerifyTests"
    assert command.command["metadata"]["mutation"] is None


def test_surviving_mutants_are_handed_to_improve_tests_until_they_are_caught(scope, child):
    weak = verification(mutated=mutation(5, 2, survivors=[SURVIVOR, {
        "line": 9, "column": 7, "operator": "core/ReplaceComparisonOperator_Lt_LtE",
        "change": "if n < 10: -> if n <= 10:",
    }]))  # fmt: skip
    strong = verification(mutated=mutation(7, 0))

    drive_to_end(scope, child, reporting(weak, strong))

    child.refresh_from_db()
    assert child.status == SessionStatus.COMPLETE
    assert history_of(child).count("ImproveTests") == 1
    prompt = child.interactions.get(step_name="ImproveTests").command["metadata"]["prompt"]
    assert f"- Mutation score of {SOURCE} is 71.4%, below 75%" in prompt
    assert f"These changes to {SOURCE} went unnoticed" in prompt
    assert "- line 5: return n - 1 -> return n + 1" in prompt
    assert "- line 9: if n < 10: -> if n <= 10:" in prompt
    assert "fails on the changes named above." in prompt
    assert "Do not change the code under test" in prompt
    first, second = Verification.objects.filter(session=child).order_by("verified_at")
    assert (first.passed, float(first.mutation_score)) == (False, 71.4)
    assert (first.mutants_sampled, first.mutants_killed, first.mutants_survived) == (7, 5, 2)
    assert first.surviving_mutants[0] == SURVIVOR
    assert (second.passed, float(second.mutation_score), second.surviving_mutants) == (
        True,
        100.0,
        [],
    )


def test_a_prompt_without_survivors_does_not_mention_them(scope, project, child):
    low_coverage = verification(lines=(120, 60), mutated=mutation(10, 0))

    drive_to_end(scope, child, reporting(low_coverage, verification(mutated=mutation(10, 0))))

    prompt = child.interactions.get(step_name="ImproveTests").command["metadata"]["prompt"]
    assert "went unnoticed" not in prompt
    assert "changes named above" not in prompt


def test_survivors_that_stay_fail_the_session_with_the_text(scope, child):
    weak = verification(mutated=mutation(1, 3))

    drive_to_end(scope, child, reporting(*[weak] * 4), limit=40)

    child.refresh_from_db()
    assert child.status == SessionStatus.FAILED
    assert child.state["error"] == (
        "Tests do not meet the project's bar after 3 improvement attempts: "
        f"Mutation score of {SOURCE} is 25.0%, below 75%"
    )


def test_a_malformed_sample_stores_nothing(scope, child):
    for _ in range(3):
        step_once(scope, child)
    command, _ = services.next_command(scope=scope, session_id=child.pk)

    with pytest.raises(InvalidInput) as error:
        services.submit_result(
            scope=scope,
            session_id=child.pk,
            interaction_id=command.pk,
            result=Result(
                status="ok",
                data={"verification": verification(mutated={**mutation(), "killed": 9})},
            ),
        )

    assert error.value.errors == {
        "data": ["verification.mutation.sampled must be killed + survived + timed_out + "
                 "incompetent."]
    }  # fmt: skip
    command.refresh_from_db()
    assert command.is_pending
    assert not Verification.objects.exists()


def test_the_api_shows_the_mutants_and_the_children_s_score(scope, user, child):
    drive_to_end(scope, child, reporting(verification(mutated=mutation(6, 2, timed_out=1))))
    api = client_for(user)

    shown = api.get(f"/api/sessions/{child.pk}/").json()["verification"]
    listed = api.get(f"/api/sessions/{child.parent_session_id}/children/").json()

    assert shown["mutation_score"] == 77.7
    assert shown["mutation"] == {
        "sampled": 9,
        "killed": 6,
        "survived": 2,
        "timed_out": 1,
        "incompetent": 0,
        "survivors": [SURVIVOR, SURVIVOR],
    }
    assert listed["summary"]["mutation"] == {"caught": 7, "survived": 2, "mutation_score": 77.7}
    assert listed["results"][0]["verification"]["mutation_score"] == 77.7


def test_without_the_gate_the_api_shows_no_mutation(scope, user, project, child):
    project.min_mutation_score = None
    project.save()
    scope.project.refresh_from_db()
    drive_to_end(scope, child, reporting(verification()))
    api = client_for(user)

    shown = api.get(f"/api/sessions/{child.pk}/").json()["verification"]
    summary = api.get(f"/api/sessions/{child.parent_session_id}/children/").json()["summary"]

    assert (shown["passed"], shown["mutation_score"], shown["mutation"]) == (True, None, None)
    assert summary["mutation"] == {"caught": 0, "survived": 0, "mutation_score": None}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"min_mutation_score": 101}, "min_mutation_score", "less than or equal to 100"),
        ({"min_mutation_score": -1}, "min_mutation_score", "greater than or equal to 0"),
        ({"max_mutants": 0}, "max_mutants", "greater than or equal to 1"),
        ({"max_mutants": 1001}, "max_mutants", "less than or equal to 1000"),
        ({"mutant_timeout_seconds": 0}, "mutant_timeout_seconds", "greater than or equal to 1"),
        ({"mutant_timeout_seconds": "soon"}, "mutant_timeout_seconds", "valid integer"),
    ],
)
def test_the_gate_s_settings_are_checked(user, project, changes, field, message):
    response = client_for(user).patch(f"/api/projects/{project.pk}/", changes, format="json")

    assert response.status_code == 400, response.content
    assert message in response.json()[field][0]


def test_the_gate_s_settings_are_read_and_changed_through_the_api(user, project):
    api = client_for(user)
    assert {
        k: api.get(f"/api/projects/{project.pk}/").json()[k]
        for k in ("min_mutation_score", "max_mutants", "mutant_timeout_seconds")
    } == {"min_mutation_score": None, "max_mutants": 20, "mutant_timeout_seconds": 60}

    changed = api.patch(
        f"/api/projects/{project.pk}/",
        {"min_mutation_score": 60, "max_mutants": 50, "mutant_timeout_seconds": 5},
        format="json",
    )

    assert changed.status_code == 200, changed.content
    project.refresh_from_db()
    assert (project.min_mutation_score, project.max_mutants, project.mutant_timeout_seconds) == (
        60,
        50,
        5,
    )
