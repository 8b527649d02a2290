"""Names a workflow derives from a project's conventions, and the shell commands built on them.

Every command here runs with ``sh -c`` on a user's machine. Each is built from lists of
arguments joined with ``shlex.join``; every value that comes from a request (a branch, a test
file) is checked again here, so a value stored before the rules existed is refused with a
step error instead of being handed out.

Git and parallel children. Children of one context may run at once in one working copy, or in
other clones of the same origin. The runner holds a per-working-copy lock while it runs a
command whose metadata says ``repository_lock``; those are the ones below that touch git state
(Initialize, Finalize). With that:

- Initialize puts the working copy on the context's branch, starting from the branch on
  ``origin`` when it is there; a context's Initialize publishes the branch it creates.
- A child's Finalize commits its own test file (that path only) and pushes the branch,
  rebasing onto the remote branch and trying again, a bounded number of times, when another
  child pushed first.
- The context's Finalize starts from the pushed branch, adds whichever test files are still
  uncommitted, makes the context's commit (empty when the children committed everything) and
  pushes it the same way.

Without an ``origin`` remote nothing is fetched or pushed; everything stays local.
"""

from __future__ import annotations

import re
import shlex

from components_app.models import Component, Project
from core import safety
from core.errors import StepError

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")

REMOTE = "origin"
# How many times a push rejected because the branch moved is rebased and tried again.
PUSH_ATTEMPTS = 5
PUSH_GAVE_UP = f"gave up pushing after {PUSH_ATTEMPTS} attempts: the branch kept moving"


def module_snake(module_name: str) -> str:
    """``MyApp.Accounts.UserToken`` → ``my_app_accounts_user_token``."""
    words = _NOT_WORD.sub("_", _CAMEL_BOUNDARY.sub("_", module_name)).strip("_")
    return re.sub("_+", "_", words).lower()


def checked_branch(branch: str) -> str:
    if problem := safety.branch_name_problem(branch):
        raise StepError(f"Branch name {branch!r} is not a valid git branch name: {problem}")
    return branch


def checked_test_file(test_file: str) -> str:
    if problem := safety.test_file_problem(test_file):
        raise StepError(
            f"Test file {test_file!r} must be a relative path inside the repository: {problem}"
        )
    return test_file


def test_file_path(project: Project, component: Component) -> str:
    return checked_test_file(
        project.test_path_template.format(
            module_snake=module_snake(component.module_name), module=component.module_name
        )
    )


def test_command(project: Project, test_file: str) -> str:
    template = project.test_command_template
    # Templates stored before they were validated are checked where they are used.
    if problem := safety.shell_template_problem(template, "test_file"):
        raise StepError(f"The project's test command template cannot be used: {problem}")
    return template.format(test_file=shlex.quote(checked_test_file(test_file)))


def agent_command(project: Project, prompt: str) -> str:
    """The project's coding-agent command line with ``prompt`` as one quoted word."""
    template = project.agent_command_template
    if problem := safety.shell_template_problem(template, "prompt"):
        raise StepError(f"The project's agent command template cannot be used: {problem}")
    return template.format(prompt=shlex.quote(prompt))


def branch_name(context: Component | None, session_id: object) -> str:
    subject = module_snake(context.module_name).replace("_", "-") if context else "session"
    return f"agentic-tests/{subject}-{str(session_id)[:8]}"


# --- git ---------------------------------------------------------------------------------


def _sh(*argv: str) -> str:
    return shlex.join(argv)


def _remote_ref(branch: str) -> str:
    return f"refs/remotes/{REMOTE}/{branch}"


def _has_origin() -> str:
    return f"{_sh('git', 'remote', 'get-url', REMOTE)} >/dev/null 2>&1"


def _on_origin(branch: str) -> str:
    """True when the branch exists on origin (an unreachable origin counts as absent, so a
    working copy that is offline still starts)."""
    return (
        f"{_sh('git', 'ls-remote', '--exit-code', '--heads', REMOTE, f'refs/heads/{branch}')}"
        " >/dev/null 2>&1"
    )


def _fetch(branch: str) -> str:
    return _sh("git", "fetch", "-q", REMOTE, f"+refs/heads/{branch}:{_remote_ref(branch)}")


def _catch_up(branch: str) -> str:
    """Bring HEAD (on ``branch``) up to the fetched remote branch: nothing when it already
    holds it, a fast-forward when it is behind, a rebase of its own commits when both moved.
    Uncommitted changes (other children's files being written) are left in place; a rebase
    stashes changes to tracked files around itself."""
    remote = _remote_ref(branch)
    return (
        f"{{ {_sh('git', 'merge-base', '--is-ancestor', remote, 'HEAD')}"
        f" || {_sh('git', 'merge', '-q', '--ff-only', remote)} 2>/dev/null"
        f" || {_sh('git', 'rebase', '-q', '--autostash', remote)}"
        f" || {{ {_sh('git', 'rebase', '--abort')} 2>/dev/null; false; }}; }}"
    )


def _switch(branch: str) -> str:
    """Onto ``branch``, creating it from HEAD when it does not exist. ``git switch`` takes no
    ``--`` before a branch; the name is a checked branch name, which never starts with "-"."""
    switch, create = _sh("git", "switch", "-q", branch), _sh("git", "switch", "-q", "-c", branch)
    return f"{{ {switch} 2>/dev/null || {create}; }}"


def _push(branch: str) -> str:
    """Push ``branch``; when the remote branch moved meanwhile, fetch it, rebase onto it and
    try again, at most ``PUSH_ATTEMPTS`` times. Nothing when there is no origin."""
    return "\n".join(
        [
            f"if {_has_origin()}; then",
            "  attempt=1",
            f"  until {_sh('git', 'push', '-q', '-u', REMOTE, branch)}; do",
            f'    if [ "$attempt" -ge {PUSH_ATTEMPTS} ]; then'
            f" echo {shlex.quote(PUSH_GAVE_UP)} >&2; exit 1; fi",
            '    sleep "$((attempt - 1))"',
            "    attempt=$((attempt + 1))",
            f"    {_fetch(branch)} && {_catch_up(branch)} || exit 1",
            "  done",
            "fi",
        ]
    )


def switch_branch_command(branch: str, *, publish: bool = False) -> str:
    """Initialize: onto ``branch``, starting from it on origin when it is there. With
    ``publish`` (a context's own branch) a branch origin does not have yet is pushed, so that
    children in other clones start from the same commit."""
    branch = checked_branch(branch)
    lines = [
        "set -e",
        f"if {_has_origin()} && {_on_origin(branch)}; then",
        f"  {_fetch(branch)}",
        f"  {_sh('git', 'switch', '-q', branch)} 2>/dev/null"
        f" || {_sh('git', 'switch', '-q', '-c', branch, _remote_ref(branch))}",
        f"  {_catch_up(branch)}",
        "else",
        f"  {_switch(branch)}",
    ]
    if publish:
        push = _sh("git", "push", "-q", "-u", REMOTE, branch)
        lines.append(f"  if {_has_origin()}; then {push}; fi")
    lines.append("fi")
    return "\n".join(lines)


def commit_component_command(branch: str, test_file: str, message: str) -> str:
    """A child's Finalize: commit its own test file (that path only, whatever else is staged)
    on the branch and push it. A file already committed as it stands is not committed again,
    so the step can run twice."""
    branch, test_file = checked_branch(branch), checked_test_file(test_file)
    return "\n".join(
        [
            "set -e",
            _switch(branch),
            _sh("git", "add", "--", test_file),
            f"{_sh('git', 'diff', '--cached', '--quiet', '--', test_file)}"
            f" || {_sh('git', 'commit', '-q', '-m', message, '--', test_file)}",
            _push(branch),
        ]
    )


def commit_context_command(branch: str, files: list[str], message: str) -> str:
    """The context's Finalize: start from the branch its children pushed, add the test files
    still uncommitted, commit (empty when there is nothing left, so the context's commit always
    exists) and push."""
    branch = checked_branch(branch)
    files = [checked_test_file(path) for path in files]
    return "\n".join(
        [
            "set -e",
            _switch(branch),
            f"if {_has_origin()} && {_on_origin(branch)}; then"
            f" {_fetch(branch)} && {_catch_up(branch)}; fi",
            _sh("git", "add", "--", *files),
            _sh("git", "commit", "-q", "--allow-empty", "-m", message, "--", *files),
            _push(branch),
        ]
    )
