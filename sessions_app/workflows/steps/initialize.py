"""Initialize: put the working copy on the session's branch.

A context session gets a branch of its own, started from the project's ``base_branch``, and
publishes it on origin; its children work on their parent's branch (starting from origin's copy
when they run in another clone), commit their own test file on it in their Finalize, and the
context's Finalize adds its commit on top.
"""

from __future__ import annotations

from typing import Any

from core.scope import Scope
from sessions_app.models import Session
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import said_by_git
from sessions_app.workflows.types import Command, Result, StepOutcome


class Initialize:
    name = "Initialize"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        branch = self.branch_for(session)
        base = scope.project.base_branch
        return Command(
            module=self.name,
            command=conventions.switch_branch_command(
                branch, base=base, publish=session.parent_session_id is None
            ),
            metadata={"branch_name": branch, "base_branch": base, "repository_lock": True},
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        if result.status == "error":
            return StepOutcome(session_updates={}, result=said_by_git(result))
        branch = self.branch_for(session)
        state = {**session.state, "branch_name": branch}
        return StepOutcome(session_updates={"state": state, "branch": branch}, result=result)

    def branch_for(self, session: Session) -> str:
        if session.state.get("branch_name"):
            return session.state["branch_name"]
        if session.branch:
            return session.branch
        parent = session.parent_session if session.parent_session_id else None
        if parent is not None:
            return (
                parent.branch
                or parent.state.get("branch_name")
                or conventions.branch_name(parent.component, parent.pk)
            )
        return conventions.branch_name(session.component, session.pk)
