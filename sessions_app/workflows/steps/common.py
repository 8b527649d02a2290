"""Pieces shared by the steps that hand a prompt to a coding agent."""

from __future__ import annotations

from typing import Any

from sessions_app.workflows.types import Command

CLAUDE_OPTIONS = {"output_format": "json", "permission_mode": "acceptEdits"}
# Output past this many characters is cut from the middle when it is carried into a prompt.
MAX_OUTPUT_CHARS = 20_000


def claude_command(module: str, prompt: str, **metadata: Any) -> Command:
    argv = [
        "claude",
        "-p",
        prompt,
        "--output-format",
        CLAUDE_OPTIONS["output_format"],
        "--permission-mode",
        CLAUDE_OPTIONS["permission_mode"],
    ]
    return Command(
        module=module,
        command="claude",
        metadata={"prompt": prompt, "options": dict(CLAUDE_OPTIONS), "argv": argv, **metadata},
        execution_strategy="async",
    )


def clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"
