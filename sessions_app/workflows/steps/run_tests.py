"""RunTests: run the project's test command on the component's test file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import StepError
from core.scope import Scope
from sessions_app.models import Session, SessionStatus
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import clip, last_line
from sessions_app.workflows.types import Command, Result, StepOutcome

NO_COMPONENT = "Session has no component to run tests for"
# pytest's exit codes for a run that judged no test: 4 a usage or collection error (an
# ImportError in a conftest, a file that is not there), 5 no test collected.
ENVIRONMENT_EXIT_CODES = (4, 5)
ENVIRONMENT_ERROR = "environment_error"
ENVIRONMENT_ERROR_TEXT = "Test environment error (exit code {code}): {line}"
_ENVIRONMENT_ERROR_PREFIX = "Test environment error (exit code "
_NAMES_AN_ERROR = re.compile(r"error|no tests ran|collected 0 items|not found", re.IGNORECASE)
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

    def outcome(self, result: Mapping[str, Any]) -> str | None:
        """``environment_error`` for a run that could not judge the tests, else its status."""
        message = result.get("error_message") or ""
        if result.get("status") == "error" and message.startswith(_ENVIRONMENT_ERROR_PREFIX):
            return ENVIRONMENT_ERROR
        return result.get("status")

    def counts_as_failed_attempt(self, result: Mapping[str, Any]) -> bool:
        """Failing tests have the fix loop; only a run that judged nothing counts towards the
        project's ``max_step_attempts``."""
        return self.outcome(result) == ENVIRONMENT_ERROR

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        output = "\n".join(part for part in (result.stdout, result.stderr) if part)
        if result.code in ENVIRONMENT_EXIT_CODES:
            line = _line_naming_the_error(output) or "the test run printed nothing"
            result = result.with_error(ENVIRONMENT_ERROR_TEXT.format(code=result.code, line=line))
            state = {**session.state, "last_test_output": clip(output)}
            return StepOutcome(session_updates={"state": state}, result=result)
        # A non-zero exit code is a failed run whatever status the client chose to report.
        if result.status != "error" and result.code not in (None, 0):
            result = result.with_error(f"Tests failed (exit code {result.code})")
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


def _line_naming_the_error(output: str) -> str | None:
    """The first line of a test run's output that names what went wrong ("ImportError while
    loading conftest ...", "ERROR: file or directory not found: ...", "no tests ran in
    0.01s"), else its last line."""
    for line in output.splitlines():
        if _NAMES_AN_ERROR.search(line):
            return line.strip().strip("=").strip()
    return last_line(output)
