"""GenerateTestsAndFixtures: ask the agent to write the component's test file."""

from __future__ import annotations

from typing import Any

from core.errors import StepError
from core.scope import Scope
from sessions_app.models import Session
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import agent_command
from sessions_app.workflows.types import Command, Result, StepOutcome

NO_COMPONENT = "Session has no component to generate tests for"


def build_prompt(session: Session, test_file: str) -> str:
    component = session.component
    parent = component.parent_component if component.parent_component_id else None
    lines = [
        f"Write tests for the component {component.name} (module {component.module_name}, "
        f"type {component.type}).",
    ]
    if component.description:
        lines.append(f"What it does: {component.description}")
    if parent is not None:
        lines.append(
            f"It belongs to the context {parent.name} (module {parent.module_name})"
            + (f": {parent.description}" if parent.description else ".")
        )
    if component.source_path:
        lines.append(f"Its code is in {component.source_path}.")
    if component.existing_tests:
        lines.append(
            "Tests that already exercise it: "
            + ", ".join(component.existing_tests)
            + ". Read them first: keep to their conventions and do not repeat what they test."
        )
    lines += [
        f"Write the tests in {test_file}, with any fixtures they need, following the "
        "project's existing test conventions.",
        "Cover the component's public behaviour, including its error cases.",
        "Do not change the component's own code. Stop when the test file is written.",
    ]
    return "\n".join(lines)


class GenerateTestsAndFixtures:
    name = "GenerateTestsAndFixtures"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        if session.component is None:
            raise StepError(NO_COMPONENT)
        test_file = conventions.test_file_path(scope.project, session.component)
        return agent_command(
            self.name, scope.project, build_prompt(session, test_file), test_file=test_file
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        if result.status == "error" or session.component is None:
            return StepOutcome(session_updates={}, result=result)
        test_file = conventions.test_file_path(scope.project, session.component)
        return StepOutcome(
            session_updates={"state": {**session.state, "test_file": test_file}}, result=result
        )
