from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.scope import Scope
    from sessions_app.models import Session
    from sessions_app.workflows.types import Command, Result, StepOutcome


class Step(Protocol):
    """One unit of a workflow: produce a command, then judge the result the client reports.

    ``get_command`` raises ``StepError`` with the exact user-facing text when it cannot
    proceed. ``handle_result`` returns the session updates and the final result; a result
    turned to ``error`` sends the workflow down its error route.

    Two optional methods refine that: ``outcome(result)`` names a finer outcome than the
    result's status for the workflow's routes, and ``counts_as_failed_attempt(result)`` says
    whether an error result counts towards the project's ``max_step_attempts`` (by default
    every error does).
    """

    name: str

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command: ...

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome: ...
