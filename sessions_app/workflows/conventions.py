"""Names a workflow derives from a project's conventions: branches, test files, commands."""

from __future__ import annotations

import re
import shlex

from components_app.models import Component, Project

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")


def module_snake(module_name: str) -> str:
    """``MyApp.Accounts.UserToken`` → ``my_app_accounts_user_token``."""
    words = _NOT_WORD.sub("_", _CAMEL_BOUNDARY.sub("_", module_name)).strip("_")
    return re.sub("_+", "_", words).lower()


def test_file_path(project: Project, component: Component) -> str:
    return project.test_path_template.format(
        module_snake=module_snake(component.module_name), module=component.module_name
    )


def test_command(project: Project, test_file: str) -> str:
    return project.test_command_template.format(test_file=shlex.quote(test_file))


def branch_name(context: Component | None, session_id: object) -> str:
    subject = module_snake(context.module_name).replace("_", "-") if context else "session"
    return f"agentic-tests/{subject}-{str(session_id)[:8]}"


def switch_branch_command(branch: str) -> str:
    quoted = shlex.quote(branch)
    return f"git switch {quoted} 2>/dev/null || git switch -c {quoted}"
