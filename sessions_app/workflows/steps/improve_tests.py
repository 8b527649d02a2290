"""ImproveTests: hand the agent what kept its tests below the project's bar (the problems, the
lines its tests do not run) and ask for better tests, not changed code."""

from __future__ import annotations

from typing import Any

from components_app.models import Project
from core.scope import Scope
from sessions_app import quality_bar
from sessions_app.models import Session
from sessions_app.workflows.steps.common import AgentRound
from sessions_app.workflows.types import Result, StepOutcome


def build_prompt(session: Session, test_file: str, project: Project) -> str:
    component = session.component
    subject = f"{component.name} ({component.module_name})" if component else "this component"
    verification = session.latest_verification
    problems = verification.problems if verification else []
    lines = [
        f"The tests in {test_file} for {subject} do not meet the project's bar yet:",
        *(f"- {problem}" for problem in problems),
    ]
    project = session.project
    measured_lines = (
        project.min_line_coverage is not None or project.min_branch_coverage is not None
    )
    if measured_lines and verification and verification.missing_lines and verification.source_path:
        lines.append(
            f"Lines of {verification.source_path} no test runs: "
            f"{quality_bar.line_ranges(verification.missing_lines)}."
        )
    if verification and any(code != 0 for code in verification.runs):
        output = session.state.get("last_test_output") or "(the test run printed nothing)"
        lines += ["This is what the first failing run printed:", "```", output, "```"]
    if verification and verification.surviving_mutants and verification.source_path:
        lines.append(
            f"These changes to {verification.source_path} went unnoticed: every test still "
            "passed with the code changed so. Write tests that fail on each of them:"
        )
        lines += [
            f"- line {mutant['line']}: {mutant['change']}"
            for mutant in verification.surviving_mutants
        ]
    if verification and verification.changed_files:
        lines.append(
            "Put these files back as they were: "
            f"{', '.join(verification.changed_files)} (git checkout -- <file> restores a "
            "tracked file; delete a file you added). Only the test file is kept: a test that "
            "needs a change elsewhere fails on the branch."
        )
    lines += [
        f"Improve the tests in {test_file} until every test passes every time, asserts what "
        "the code does, and runs the lines named above"
        + (", and fails on the changes named above." if _has_survivors(verification) else "."),
        "Do not change the code under test, and change no file but the test file.",
    ]
    return "\n".join(lines)


def _has_survivors(verification: Any) -> bool:
    return bool(verification and verification.surviving_mutants)


class ImproveTests(AgentRound):
    name = "ImproveTests"
    counter = "improve_attempts"

    def build_prompt(self, session: Session, test_file: str, project: Project) -> str:
        return build_prompt(session, test_file, project)

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        if result.status == "error":
            return StepOutcome(session_updates={}, result=result)
        attempts = session.state.get("improve_attempts", 0) + 1
        return StepOutcome(
            session_updates={"state": {**session.state, "improve_attempts": attempts}},
            result=result,
        )
