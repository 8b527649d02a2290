"""FixCompilationErrors: hand the last failing test run back to the agent."""

from __future__ import annotations

from typing import Any

from components_app.models import Project
from core.scope import Scope
from sessions_app.models import Session
from sessions_app.workflows.steps.common import AgentRound
from sessions_app.workflows.types import Result, StepOutcome


def build_prompt(session: Session, test_file: str) -> str:
    component = session.component
    subject = f"{component.name} ({component.module_name})" if component else "this component"
    output = session.state.get("last_test_output") or "(the test run printed nothing)"
    return "\n".join(
        [
            f"The tests in {test_file} for {subject} fail. This is the output of the last run:",
            "```",
            output,
            "```",
            "Fix the test file and its fixtures until the tests compile and pass. If a test "
            "reveals a real bug in the component, leave the test failing and explain why "
            "instead of changing the component.",
        ]
    )


class FixCompilationErrors(AgentRound):
    name = "FixCompilationErrors"
    counter = "fix_attempts"

    def build_prompt(self, session: Session, test_file: str, project: Project) -> str:
        return build_prompt(session, test_file)

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        state = {**session.state, "fix_attempts": session.state.get("fix_attempts", 0) + 1}
        return StepOutcome(session_updates={"state": state}, result=result)
