"""Finalize: record the work. A component stages its test file; a context commits and pushes
every child's test file in one commit that names the context and lists its components."""

from __future__ import annotations

import shlex
from typing import Any

from core.errors import StepError
from core.scope import Scope
from sessions_app import selectors
from sessions_app.models import Session
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.initialize import Initialize
from sessions_app.workflows.steps.run_tests import current_test_file
from sessions_app.workflows.types import Command, Result, StepOutcome

NO_TEST_FILES = "No child session has a test file to commit"


class FinalizeComponent:
    name = "Finalize"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        test_file = current_test_file(scope, session)
        return Command(
            module=self.name,
            command=f"git add -- {shlex.quote(test_file)}",
            metadata={"test_file": test_file},
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        return StepOutcome(session_updates={}, result=result)


def commit_message(context_name: str, children: list[Session]) -> str:
    lines = [f"Add tests for the {context_name} context", "", "Components:"]
    lines += [
        f"- {child.component.name} ({child.component.module_name})"
        for child in children
        if child.component is not None
    ]
    return "\n".join(lines)


class FinalizeContext:
    name = "Finalize"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        children = list(selectors.child_sessions(session=session))
        files = [
            child.state.get("test_file")
            or conventions.test_file_path(scope.project, child.component)
            for child in children
            if child.component is not None or child.state.get("test_file")
        ]
        if not files:
            raise StepError(NO_TEST_FILES)
        branch = Initialize().branch_for(session)
        context_name = session.component.name if session.component else "unnamed"
        message = commit_message(context_name, children)
        shell = " && ".join(
            [
                f"git add -- {shlex.join(files)}",
                f"git commit -m {shlex.quote(message)}",
                f"git push -u origin {shlex.quote(branch)}",
            ]
        )
        return Command(
            module=self.name,
            command=shell,
            metadata={"files": files, "commit_message": message, "branch_name": branch},
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        return StepOutcome(session_updates={}, result=result)
