"""RunTests: run the project's test command on the component's test file."""

from __future__ import annotations

from typing import Any

from core.errors import StepError
from core.scope import Scope
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import clip
from sessions_app.workflows.types import Command, Result, StepOutcome

NO_COMPONENT = "Session has no component to run tests for"
# Past this many FixCompilationErrors rounds a failing run fails the session instead of
# handing the agent the same tests forever.
MAX_FIX_ATTEMPTS = 3


def current_test_file(scope: Scope, session: Session) -> str:
    if session.state.get("test_file"):
        return session.state["test_file"]
    if session.component is None:
        raise StepError(NO_COMPONENT)
    return conventions.test_file_path(scope.project, session.component)


class RunTests:
    name = "RunTests"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        test_file = current_test_file(scope, session)
        return Command(
            module=self.name,
            command=conventions.test_command(scope.project, test_file),
            metadata={"test_file": test_file},
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        # A non-zero exit code is a failed run whatever status the client chose to report.
        if result.status != "error" and result.code not in (None, 0):
            result = result.with_error(f"Tests failed (exit code {result.code})")
        output = "\n".join(part for part in (result.stdout, result.stderr) if part)
        if result.status == "error" and not result.error_message:
            result = result.with_error(
                f"Tests failed (exit code {result.code})" if result.code else "Tests failed"
            )
        state = {**session.state, "last_test_output": clip(output)}
        attempts = session.state.get("fix_attempts", 0)
        if result.status == "error" and attempts >= MAX_FIX_ATTEMPTS:
            reason = f"Tests still failing after {attempts} fix attempts: {result.error_message}"
            return StepOutcome(
                session_updates={
                    "status": SessionStatus.FAILED,
                    "state": {**state, "error": reason},
                },
                result=result,
            )
        return StepOutcome(session_updates={"state": state}, result=result)
