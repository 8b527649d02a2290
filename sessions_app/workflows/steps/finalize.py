"""Finalize: record the work on the context's branch. A component commits its own test file
and pushes it; the context starts from what its children pushed, commits whatever is left (an
empty commit when nothing is) with a message that names the context and lists its components,
and pushes. ``conventions`` holds the git design."""

from __future__ import annotations

from typing import Any

from core.errors import StepError
from core.scope import Scope
from core.text import printable
from sessions_app import report, selectors
from sessions_app.models import Session
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import said_by_git
from sessions_app.workflows.steps.initialize import Initialize
from sessions_app.workflows.steps.run_tests import current_test_file
from sessions_app.workflows.types import Command, Result, StepOutcome

NO_TEST_FILES = "No child session has a test file to commit"


class FinalizeComponent:
    name = "Finalize"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        test_file = current_test_file(scope, session)
        branch = Initialize().branch_for(session)
        message = component_commit_message(session)
        return Command(
            module=self.name,
            command=conventions.commit_component_command(branch, test_file, message),
            metadata={
                "test_file": test_file,
                "branch_name": branch,
                "commit_message": message,
                "repository_lock": True,
            },
        )

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        return StepOutcome(session_updates={}, result=said_by_git(result))


def _component_label(session: Session) -> str:
    # Names are free text: control characters would rewrite the terminal of whoever reads
    # the log.
    component = session.component
    return printable(f"{component.name} ({component.module_name})")


def component_commit_message(session: Session) -> str:
    subject = _component_label(session) if session.component else "a component"
    return f"Add tests for {subject}"


def commit_message(context_name: str, children: list[Session]) -> str:
    lines = [f"Add tests for the {printable(context_name)} context", "", "Components:"]
    lines += [f"- {_component_label(child)}" for child in children if child.component is not None]
    return "\n".join(lines)


class FinalizeContext:
    name = "Finalize"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        children = list(selectors.child_sessions(session=session))
        # Two components may name one file; it is added once.
        files = list(
            dict.fromkeys(
                child.state.get("test_file")
                or conventions.test_file_path(scope.project, child.component)
                for child in children
                if child.component is not None or child.state.get("test_file")
            )
        )
        if not files:
            raise StepError(NO_TEST_FILES)
        branch = Initialize().branch_for(session)
        context_name = session.component.name if session.component else "unnamed"
        message = commit_message(context_name, children)
        command = conventions.commit_context_command(branch, files, message)
        metadata: dict[str, Any] = {
            "files": files,
            "commit_message": message,
            "branch_name": branch,
            "repository_lock": True,
        }
        report_file = conventions.report_file_of(session.pk)
        title = report.title_of(session)
        pull_request = conventions.pull_request_command(
            scope.project,
            branch=branch,
            base=scope.project.base_branch,
            title=title,
            report_file=report_file,
        )
        if pull_request is not None:
            # The runner writes the run's report (Markdown) there before the command runs.
            command = f"{command}\n{pull_request}"
            metadata.update(pull_request_report_file=report_file, pull_request_title=title)
        return Command(module=self.name, command=command, metadata=metadata)

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        if result.status == "error":
            return StepOutcome(session_updates={}, result=said_by_git(result))
        url = conventions.pull_request_url(result.stdout)
        if url is None:
            return StepOutcome(session_updates={}, result=result)
        return StepOutcome(
            session_updates={"state": {**session.state, "pull_request_url": url}}, result=result
        )
