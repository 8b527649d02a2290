"""Pieces shared by the steps that hand a prompt to a coding agent."""

from __future__ import annotations

from typing import Any

from components_app.models import Project
from sessions_app.workflows import conventions
from sessions_app.workflows.types import Command, Result

# Output past this many characters is cut from the middle when it is carried into a prompt.
MAX_OUTPUT_CHARS = 20_000


def agent_command(
    module: str, project: Project, prompt: str, *, resume: str = "", **metadata: Any
) -> Command:
    """A prompt for the project's coding agent, as its ``agent_command_template`` says to
    call it (Claude Code by default); with ``resume`` (the conversation an earlier step of
    the session reported), as its ``agent_resume_template`` continues that conversation and
    its prompt cache."""
    resumed = conventions.agent_resume_command(project, prompt, resume) if resume else None
    if resumed is not None:
        metadata["conversation_id"] = resume
    return Command(
        module=module,
        command=resumed or conventions.agent_command(project, prompt),
        metadata={"prompt": prompt, **metadata},
        execution_strategy="async",
    )


class AgentRound:
    """An agent step that reworks the component's test file, numbered by a state counter
    (``counter``): FixCompilationErrors, ImproveTests. Subclasses write ``build_prompt``."""

    name: str
    counter: str

    def build_prompt(self, session: Any, test_file: str, project: Project) -> str:
        raise NotImplementedError

    def get_command(self, scope: Any, session: Any, **opts: Any) -> Command:
        # Imported here: run_tests imports this module.
        from sessions_app.workflows.steps.run_tests import current_test_file

        test_file = current_test_file(scope, session)
        return agent_command(
            self.name,
            scope.project,
            self.build_prompt(session, test_file, scope.project),
            resume=session.external_conversation_id,
            test_file=test_file,
            attempt=session.state.get(self.counter, 0) + 1,
        )


def clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"


def last_line(text: str | None, *, starting: tuple[str, ...] = ()) -> str | None:
    """The last non-empty line of ``text``; with ``starting``, the last one that starts with
    one of those words, else the last non-empty line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith(starting)] if starting else []
    if marked:
        return marked[-1]
    return lines[-1] if lines else None


def git_error(result: Result) -> str:
    """What git said went wrong: its last ``fatal:`` or ``error:`` line on stderr (the line
    after it is often just "Aborting"), else its last line; else the exit code."""
    return last_line(result.stderr, starting=("fatal:", "error:")) or derived_error_message(result)


def said_by_git(result: Result) -> Result:
    """A failed git step's result with git's own words as its message (``git_error``) when
    the client sent none; any other result as it is."""
    if result.status == "error" and not result.error_message:
        return result.with_error(git_error(result))
    return result


def derived_error_message(result: Result) -> str:
    """An error result's message when the client sent none: the last line the command printed
    on stderr, else on stdout, else its exit code."""
    return (
        last_line(result.stderr)
        or last_line(result.stdout)
        or (f"Exit code {result.code}" if result.code is not None else "No error message")
    )
