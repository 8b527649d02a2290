"""Names a workflow derives from a project's conventions, and the shell commands built on them.

Every command here runs with ``sh -c`` on a user's machine. Each is built from lists of
arguments joined with ``shlex.join``; every value that comes from a request (a branch, a test
file) is checked again here, so a value stored before the rules existed is refused with a
step error instead of being handed out.

Git and parallel children. Children of one context run at once: each in a git worktree of its
own (``spawnctl``'s default), in one shared working copy (``--isolation shared``), or in other
clones of the same origin (``spawnctl work`` elsewhere). The runner holds the repository's
lock (one per clone, shared by its worktrees) while it runs a command whose metadata says
``repository_lock``: the ones below, which move refs (Initialize, Finalize). The same commands
serve every layout because a run's branch is never checked out while the run goes on:

- Every working copy holds the branch *detached* at its last commit, so that a child's Finalize
  in one worktree can move the branch without leaving another working copy's index behind it
  (git moves a checked-out branch only from the worktree that has it). A command first detaches
  the working copy it runs in, and refuses, with the path, a branch checked out in another.
- Initialize makes the branch when neither the working copy nor ``origin`` has it, from the
  project's ``base_branch`` (origin's copy when origin has it), never from whatever the working
  copy had checked out, so that the branch holds only its run's commits; a context's Initialize
  publishes the branch it creates. The local branch is brought up to origin's copy (a
  fast-forward); then the working copy is moved onto it.
- A child's Finalize moves its working copy onto the branch as it now stands (what other
  children committed meanwhile; uncommitted files ride along), commits its own test file (that
  path only, whatever else is changed or staged), moves the branch to that commit and pushes it,
  rebasing onto the remote branch and trying again, a bounded number of times, when another
  clone pushed first.
- The context's Finalize does the same with whichever test files are still uncommitted (none
  when every child committed its own) and the context's commit (empty when there is nothing
  left). It starts from the branch, never from HEAD's history: a person who switched the working
  copy to a branch of their own meanwhile gets none of its commits onto the run's branch.

Without an ``origin`` remote nothing is fetched or pushed; everything stays local. Every push
names its refs in full (``refs/heads/<b>:refs/heads/<b>``). Git's own errors reach the
step's result: no command here hides one behind a fallback that fails for another reason.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from components_app import test_paths
from components_app.models import Component, Project
from core import safety
from core.errors import StepError
from sessions_app import usage
from sessions_app.models import BRANCH_IS_BASE
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS

REMOTE = "origin"
# How many times a push rejected because the branch moved is rebased and tried again.
PUSH_ATTEMPTS = 5
PUSH_GAVE_UP = f"gave up pushing after {PUSH_ATTEMPTS} attempts: the branch kept moving"


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
    path = test_paths.test_file_of(project.test_path_template, component)
    if path is None:
        raise StepError(test_paths.NEEDS_SOURCE_PATH.format(module_name=component.module_name))
    return checked_test_file(path)


def test_dir(test_file: str) -> str:
    """The test file's directory as a relative path: ``./store`` for ``store/cache_test.go``,
    ``.`` for a file at the top (what ``go test`` takes as a package)."""
    directory = posixpath.dirname(checked_test_file(test_file))
    return f"./{directory}" if directory else "."


def test_command(project: Project, test_file: str) -> str:
    template = project.test_command_template
    # Templates stored before they were validated are checked where they are used.
    for placeholder in ("test_file", "test_dir"):
        if problem := safety.shell_template_problem(template, placeholder):
            raise StepError(f"The project's test command template cannot be used: {problem}")
    return template.format(
        test_file=shlex.quote(checked_test_file(test_file)),
        test_dir=shlex.quote(test_dir(test_file)),
    )


def coverage_command(
    project: Project, test_file: str, source_path: str | None, report_file: str
) -> str:
    """The project's coverage command for one component's test file. Without a source path it
    measures everything (``*``): VerifyTests then checks no coverage minimum."""
    template = project.coverage_command_template
    for placeholder in ("test_file", "test_dir", "source_path", "report_file"):
        if problem := safety.shell_template_problem(template, placeholder):
            raise StepError(f"The project's coverage command template cannot be used: {problem}")
    return template.format(
        test_file=shlex.quote(checked_test_file(test_file)),
        test_dir=shlex.quote(test_dir(test_file)),
        source_path=shlex.quote(checked_test_file(source_path) if source_path else "*"),
        report_file=shlex.quote(checked_test_file(report_file)),
    )


def agent_command(project: Project, prompt: str) -> str:
    """The project's coding-agent command line with ``prompt`` as one quoted word."""
    template = project.agent_command_template
    if problem := safety.shell_template_problem(template, "prompt"):
        raise StepError(f"The project's agent command template cannot be used: {problem}")
    return template.format(prompt=shlex.quote(prompt))


# The steps whose commands run the project's tests; the agent steps run its coding agent.
TEST_STEPS = ("RunTests", "VerifyTests")


def agent_resume_command(project: Project, prompt: str, conversation_id: str) -> str | None:
    """The project's ``agent_resume_template`` continuing ``conversation_id`` with
    ``prompt``; None when the id is not one an agent reports (letters, digits, ``-``, ``_``:
    any member may PATCH a session's ``external_conversation_id``), so the agent starts a
    conversation of its own instead."""
    if not usage.is_conversation_id(conversation_id):
        return None
    template = project.agent_resume_template
    # A resume template of another program than the agent's (the default Claude Code one,
    # left as it was when the agent command changed) would call an agent the project does not
    # use: the step then starts a conversation of its own.
    if _program(template) != _program(project.agent_command_template):
        return None
    for placeholder in ("prompt", "conversation_id"):
        if problem := safety.shell_template_problem(template, placeholder):
            raise StepError(f"The project's agent resume template cannot be used: {problem}")
    return template.format(prompt=shlex.quote(prompt), conversation_id=shlex.quote(conversation_id))


def _program(template: str) -> str | None:
    """The program a command template runs: its first word that is not ``NAME=value``."""
    try:
        words = shlex.split(template)
    except ValueError:
        return None
    for word in words:
        if "=" not in word.split("/", 1)[0] or word.startswith(("-", "/", ".")):
            return word
    return None


def runner_metadata(project: Project, session_type: str, step_name: str) -> dict[str, object]:
    """What a command tells the runner besides the step's own metadata: the step's time limit
    (``timeout_seconds``: the project's agent or test limit), and for a component session the
    project's ``worktree_setup_command`` (when set), which the runner runs in a child's new
    worktree before its first step there."""
    found: dict[str, object] = {}
    if step_name in usage.AGENT_STEPS:
        found["timeout_seconds"] = project.agent_timeout_seconds
    elif step_name in TEST_STEPS:
        found["timeout_seconds"] = project.test_timeout_seconds
    setup = project.worktree_setup_command
    if session_type != COMPONENT_TEST_SESSIONS or not setup.strip():
        return found
    # Stored before it was validated: checked where it is used.
    if problem := safety.command_line_problem(setup):
        raise StepError(f"The project's worktree setup command cannot be used: {problem}")
    return {**found, "worktree_setup_command": setup}


def branch_name(context: Component | None, session_id: object) -> str:
    subject = (
        test_paths.module_snake(context.module_name).replace("_", "-") if context else "session"
    )
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
    """Bring HEAD (the branch's commit plus this working copy's own) up to the fetched remote
    branch: nothing when it already holds it, a fast-forward when it is behind, a rebase of its
    own commits when both moved. Uncommitted changes are left in place; a rebase stashes
    changes to tracked files around itself."""
    remote = _remote_ref(branch)
    return (
        f"{{ {_sh('git', 'merge-base', '--is-ancestor', remote, 'HEAD')}"
        f" || {_sh('git', 'merge', '-q', '--ff-only', remote)} 2>/dev/null"
        f" || {_sh('git', 'rebase', '-q', '--autostash', remote)}"
        f" || {{ {_sh('git', 'rebase', '--abort')} 2>/dev/null; false; }}; }}"
    )


def _is_local(branch: str) -> str:
    return _sh("git", "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")


def _move_branch(branch: str, to: str = "HEAD") -> str:
    return _sh("git", "update-ref", f"refs/heads/{branch}", to)


CHECKED_OUT_ELSEWHERE = (
    "Branch {branch} is checked out in {path}: a run's branch must not be checked out while "
    "the run goes on (git switch --detach there)"
)


def _detach(branch: str) -> str:
    """Detach this working copy (at the commit it is on; nothing in a repository with no
    commit yet) and make sure no other working copy has ``branch`` checked out."""
    before, after = CHECKED_OUT_ELSEWHERE.format(branch=branch, path="\0").split("\0")
    refuse = f"printf '%s\\n' {shlex.quote('fatal: ' + before)}\"$tree\"{shlex.quote(after)} >&2"
    return "\n".join(
        [
            f"if {_sh('git', 'rev-parse', '-q', '--verify', 'HEAD')} >/dev/null;"
            f" then {_sh('git', 'switch', '-q', '--detach')}; fi",
            f"{_sh('git', 'worktree', 'list', '--porcelain')} | while IFS= read -r line; do",
            '  case "$line" in',
            '    "worktree "*) tree=${line#worktree } ;;',
            f"    {shlex.quote(f'branch refs/heads/{branch}')}) {refuse}; exit 1 ;;",
            "  esac",
            "done",
        ]
    )


def _sync_local(branch: str) -> str:
    """When origin has the branch: fetch it, and make the local branch origin's copy when the
    local one is missing or behind it (a local branch ahead of it, or diverged, is kept: its
    next push rebases it)."""
    remote = _remote_ref(branch)
    return (
        f"if {_has_origin()} && {_on_origin(branch)}; then\n"
        f"  {_fetch(branch)}\n"
        f"  if ! {_is_local(branch)} ||"
        f" {_sh('git', 'merge-base', '--is-ancestor', f'refs/heads/{branch}', remote)}; then"
        f" {_move_branch(branch, remote)}; fi\n"
        "fi"
    )


def _onto(branch: str) -> str:
    """Move the working copy onto the branch's commit, detached; uncommitted changes go along
    (git refuses, saying which files, when one would be overwritten)."""
    return _sh("git", "switch", "-q", "--detach", f"refs/heads/{branch}")


def _push_ref(branch: str) -> str:
    return f"refs/heads/{branch}:refs/heads/{branch}"


def _publish(branch: str) -> str:
    return _sh("git", "push", "-q", REMOTE, _push_ref(branch))


def _push(branch: str) -> str:
    """Push ``branch`` (at HEAD); when the remote branch moved meanwhile, fetch it, rebase onto
    it and try again, at most ``PUSH_ATTEMPTS`` times. Nothing when there is no origin."""
    return "\n".join(
        [
            f"if {_has_origin()}; then",
            "  attempt=1",
            f"  until {_publish(branch)}; do",
            f'    if [ "$attempt" -ge {PUSH_ATTEMPTS} ]; then'
            f" echo {shlex.quote(PUSH_GAVE_UP)} >&2; exit 1; fi",
            '    sleep "$((attempt - 1))"',
            "    attempt=$((attempt + 1))",
            f"    {_fetch(branch)} && {_catch_up(branch)} && {_move_branch(branch)} || exit 1",
            "  done",
            "fi",
        ]
    )


def base_branch_missing(base: str) -> str:
    return f"Base branch {base} is neither on {REMOTE} nor in this repository"


RELATIVE_ORIGIN = (
    "origin's URL is a relative path ({url}), which this worktree cannot reach: git reads it "
    "from the worktree, not from the working copy it was set in. Set an absolute one there "
    "(git remote set-url origin <absolute path>)"
)


def _refuse_relative_origin() -> str:
    """In a linked worktree (a child's, spawnctl's default), an origin whose URL is a relative
    local path is looked for from the worktree: fetches find nothing (an unreachable origin
    counts as absent, so the child starts) and its Finalize's push fails after all its work
    ("Could not read from remote repository", seen on a real run). Said at Initialize."""
    before, after = RELATIVE_ORIGIN.format(url="\0").split("\0")
    refuse = f"printf '%s\\n' {shlex.quote('fatal: ' + before)}\"$url\"{shlex.quote(after)} >&2"
    linked = '[ "$(git rev-parse --git-dir)" != "$(git rev-parse --git-common-dir)" ]'
    return "\n".join(
        [
            f"if url=$({_sh('git', 'remote', 'get-url', REMOTE)} 2>/dev/null); then",
            '  case "$url" in',
            # An absolute path, or a URL or host:path: reachable from anywhere.
            "    /*|*:*) ;;",
            f"    *) if {linked}; then {refuse}; exit 1; fi ;;",
            "  esac",
            "fi",
        ]
    )


def switch_branch_command(branch: str, *, base: str, publish: bool = False) -> str:
    """Initialize: onto ``branch``, detached. A branch the working copy or origin has is taken
    as it stands (the local one brought up to origin's); a new one starts from ``base`` on
    origin when origin has it, else from the local ``base``, and never from HEAD, which may be
    another run's branch (or nothing at all, in a clone of an origin whose HEAD names no
    branch). With ``publish`` (a context's own branch) a new branch is pushed, so that children
    in other clones start from the same commit."""
    branch, base = checked_branch(branch), checked_branch(base)
    if branch == base:
        raise StepError(BRANCH_IS_BASE.format(name=base))
    new_from = [
        f"if ! {_is_local(branch)}; then",
        f"  if {_has_origin()} && {_on_origin(base)}; then",
        f"    {_fetch(base)}",
        f"    {_move_branch(branch, _remote_ref(base))}",
        f"  elif {_sh('git', 'show-ref', '--verify', '--quiet', f'refs/heads/{base}')}; then",
        f"    {_move_branch(branch, f'refs/heads/{base}')}",
        "  else",
        f"    echo {shlex.quote('fatal: ' + base_branch_missing(base))} >&2; exit 1",
        "  fi",
    ]
    if publish:
        new_from.append(f"  if {_has_origin()}; then {_publish(branch)}; fi")
    new_from.append("fi")
    return "\n".join(
        [
            "set -e",
            _refuse_relative_origin(),
            _detach(branch),
            _sync_local(branch),
            *new_from,
            _onto(branch),
        ]
    )


def commit_component_command(branch: str, test_file: str, message: str) -> str:
    """A child's Finalize: onto the branch as it stands, commit its own test file (that path
    only, whatever else is staged) and push it. A file already committed as it stands is not
    committed again, so the step can run twice."""
    branch, test_file = checked_branch(branch), checked_test_file(test_file)
    return "\n".join(
        [
            "set -e",
            _detach(branch),
            _sync_local(branch),
            _onto(branch),
            _sh("git", "add", "--", test_file),
            f"{_sh('git', 'diff', '--cached', '--quiet', '--', test_file)}"
            f" || {_sh('git', 'commit', '-q', '-m', message, '--', test_file)}",
            _move_branch(branch),
            _push(branch),
        ]
    )


def commit_context_command(branch: str, files: list[str], message: str) -> str:
    """The context's Finalize: onto the branch its children pushed, add the test files still
    uncommitted that this working copy has, commit them (empty when there is nothing left, so
    the context's commit always exists; nothing else that is staged) and push."""
    branch = checked_branch(branch)
    files = [checked_test_file(path) for path in files]
    present = (
        f"set --\nfor file in {' '.join(shlex.quote(path) for path in files)}; do"
        ' if [ -e "$file" ] || [ -L "$file" ]; then set -- "$@" "$file"; fi; done'
    )
    return "\n".join(
        [
            "set -e",
            _detach(branch),
            _sync_local(branch),
            _onto(branch),
            present,
            'if [ "$#" -gt 0 ]; then git add -- "$@"; fi',
            _sh("git", "commit", "-q", "--allow-empty", "--only", "-m", message) + ' -- "$@"',
            _move_branch(branch),
            _push(branch),
        ]
    )


# The line a context's Finalize prints before the pull request command: the first URL after it
# is the pull request's.
PULL_REQUEST_MARKER = "spawnctl: pull request"
URL = re.compile(r"https?://[^\s<>\"'`]+")
URL_MAX_LENGTH = 2000


def report_file_of(session_id: object) -> str:
    """Where the runner writes the run's report for the pull request command."""
    return f".spawnctl/report-{str(session_id)[:8]}.md"


def pull_request_command(
    project: Project, *, branch: str, base: str, title: str, report_file: str
) -> str | None:
    """The project's ``pull_request_command_template`` for this run (None when it has none),
    after the marker line the server finds its URL by."""
    template = project.pull_request_command_template
    if not template.strip():
        return None
    for placeholder in ("branch", "base_branch", "title", "report_file"):
        if problem := safety.shell_template_problem(template, placeholder):
            raise StepError(
                f"The project's pull request command template cannot be used: {problem}"
            )
    command = template.format(
        branch=shlex.quote(checked_branch(branch)),
        base_branch=shlex.quote(checked_branch(base)),
        title=shlex.quote(title),
        report_file=shlex.quote(checked_test_file(report_file)),
    )
    marker = _sh("printf", "%s\\n", PULL_REQUEST_MARKER)
    return f"{marker}\n{command}"


def pull_request_url(stdout: str | None) -> str | None:
    """The first URL the pull request command printed (after the marker), or None."""
    text = stdout or ""
    marker = text.find(PULL_REQUEST_MARKER)
    if marker < 0:
        return None
    found = URL.search(text, marker + len(PULL_REQUEST_MARKER))
    if found is None or len(found.group(0)) > URL_MAX_LENGTH:
        return None
    return found.group(0).rstrip(".,;:)]")
