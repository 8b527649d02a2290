"""Pieces shared by the steps that hand a prompt to a coding agent."""

from __future__ import annotations

from typing import Any

from components_app.models import Project
from sessions_app.workflows import conventions
from sessions_app.workflows.types import Command

# Output past this many characters is cut from the middle when it is carried into a prompt.
MAX_OUTPUT_CHARS = 20_000


def agent_command(module: str, project: Project, prompt: str, **metadata: Any) -> Command:
    """A prompt for the project's coding agent, as its ``agent_command_template`` says to
    call it (Claude Code by default)."""
    return Command(
        module=module,
        command=conventions.agent_command(project, prompt),
        metadata={"prompt": prompt, **metadata},
        execution_strategy="async",
    )


def clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"
