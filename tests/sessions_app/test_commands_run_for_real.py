"""Every command a context session hands out, run for real in scratch git repositories.

The shell commands (git, the test runner) are executed as they stand with ``sh -c``; the two
`claude` commands are played by a stand-in agent that writes the test file the prompt asks
for. Children run one after the other, interleaved in one working copy (as ``spawnctl run
--jobs`` runs them, its repository lock serialising the commands that touch git), and spread
over several clones of one origin (as ``spawnctl work`` on other machines runs them).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows import conventions
from sessions_app.workflows.types import Result
from spawnctl.jobs import repository_lock
from spawnctl.worktrees import Worktrees
from tests.factories import make_context, make_context_session
from tests.sessions_app.workflow_driver import drive_to_end, history_of

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

PASSING = "def test_it_works():\n    assert 1 + 1 == 2\n"
NOT_COMPILING = "def test_it_works(:\n    assert True\n"
SIX = [("Cart", 6), ("Checkout", 5), ("Invoice", 4), ("Ledger", 3), ("Refund", 2), ("Voucher", 1)]


def git(*args, cwd, env):
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def git_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # The machine's own git configuration (hooks, signing, aliases) stays out of the test.
    empty = tmp_path / "gitconfig"
    empty.touch()
    env.update(GIT_CONFIG_GLOBAL=str(empty), GIT_CONFIG_NOSYSTEM="1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The test runs need no plugin, and loading this project's (Django, schemathesis) in
    # every one of them would take most of the test's time.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "Agent"
        env[f"GIT_{role}_EMAIL"] = "agent@example.com"
    return env


def make_workspace(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A working copy on ``main`` with one commit, and the bare origin it is pushed to."""
    env = git_env(tmp_path)
    origin = tmp_path / "origin.git"
    work = tmp_path / "work"
    git("init", "--bare", "-q", str(origin), cwd=tmp_path, env=env)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path, env=env)
    git("remote", "add", "origin", str(origin), cwd=work, env=env)
    (work / "README").write_text("scratch\n")
    git("add", "README", cwd=work, env=env)
    git("commit", "-q", "-m", "initial", cwd=work, env=env)
    git("push", "-q", "origin", "main", cwd=work, env=env)
    return work, origin, env


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path)


def run_shell(command: str, cwd: Path, env: dict[str, str]) -> Result:
    ran = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    return Result(
        status="ok" if ran.returncode == 0 else "error",
        code=ran.returncode,
        stdout=ran.stdout,
        stderr=ran.stderr,
    )


def play_agent(interaction: Interaction, work: Path, broken_first: set[str]) -> Result:
    """Write the test file the prompt names; a first draft for a component in
    ``broken_first`` does not compile."""
    metadata = interaction.command["metadata"]
    path = work / metadata["test_file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    component = interaction.session.component.name
    first_draft = interaction.step_name == "GenerateTestsAndFixtures"
    path.write_text(NOT_COMPILING if first_draft and component in broken_first else PASSING)
    return Result(status="ok", stdout=f"wrote {metadata['test_file']}")


def is_agent_command(command: dict) -> bool:
    """The agent steps' commands (the project's agent command line) carry their prompt."""
    return "prompt" in command["metadata"]


class Client:
    """Runs shell commands in one working copy and plays the agent for `claude` commands;
    at the spawn command it drives each child to its end, one after the other."""

    def __init__(self, scope, work, env, broken_first=()):
        self.scope, self.work, self.env = scope, work, env
        self.broken_first = set(broken_first)

    def __call__(self, interaction):
        command = interaction.command
        if command["command"] == "spawn_sessions":
            for child_id in command["metadata"]["child_session_ids"]:
                drive_to_end(self.scope, Session.objects.get(pk=child_id), self)
            return Result(status="ok")
        if is_agent_command(command):
            return play_agent(interaction, self.work, self.broken_first)
        return run_shell(command["command"], self.work, self.env)


@dataclass
class Child:
    session: Session
    work: Path
    interaction: Interaction | None = None
    # A command running in the background (a test run) or an agent's finished answer.
    process: subprocess.Popen | None = None
    answer: Result | None = None
    ran: list[str] = field(default_factory=list)


class Interleaved:
    """Drives children a step at a time in a shuffled order. A command that touches git
    (``metadata.repository_lock``) runs to its end before anything else starts, as the
    runner's lock makes it; a test run is started in the background and collected at the
    child's next turn, so other children's git commands run while it does; an agent's file is
    written at once and reported at the child's next turn."""

    def __init__(self, scope, env, broken_first=(), seed=0):
        self.scope, self.env = scope, env
        self.broken_first = set(broken_first)
        self.random = random.Random(seed)
        self.lock_held = False

    def run(self, children: list[Child], limit: int = 400) -> None:
        for _ in range(limit):
            waiting = [c for c in children if not c.session.is_finished]
            if not waiting:
                return
            self.turn(self.random.choice(waiting))
        raise AssertionError("the children did not finish")

    def turn(self, child: Child) -> None:
        if child.interaction is None:
            child.interaction, _ = services.next_command(
                scope=self.scope, session_id=child.session.pk
            )
            child.ran.append(child.interaction.step_name)
            self.start(child)
            if child.answer is None:
                return
        elif child.process is not None:
            out, err = child.process.communicate(timeout=120)
            code = child.process.returncode
            child.answer = Result(
                status="ok" if code == 0 else "error", code=code, stdout=out, stderr=err
            )
            child.process = None
        _, child.session = services.submit_result(
            scope=self.scope,
            session_id=child.session.pk,
            interaction_id=child.interaction.pk,
            result=child.answer,
        )
        child.interaction, child.answer = None, None

    def start(self, child: Child) -> None:
        command = child.interaction.command
        if is_agent_command(command):
            # The file is written now; the answer comes now or at the child's next turn.
            answer = play_agent(child.interaction, child.work, self.broken_first)
            if self.random.random() < 0.5:
                child.answer = answer
            else:
                child.process = _Done(answer)
            return
        if command["metadata"].get("repository_lock"):
            assert not self.lock_held
            self.lock_held = True
            try:
                child.answer = run_shell(command["command"], child.work, self.env)
            finally:
                self.lock_held = False
            assert child.answer.status == "ok", child.answer
            return
        child.process = subprocess.Popen(
            ["sh", "-c", command["command"]],
            cwd=child.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


class _Done:
    """Stands in for a finished process whose answer is already known."""

    def __init__(self, answer: Result) -> None:
        self.answer = answer
        self.returncode = answer.code or 0

    def communicate(self, timeout=None):
        return self.answer.stdout, self.answer.stderr


def start_context(scope, session, work, env) -> list[Session]:
    """The context's Initialize, run in ``work``, and its spawn command's children."""
    init, _ = services.next_command(scope=scope, session_id=session.pk)
    result = run_shell(init.command["command"], work, env)
    assert result.status == "ok", result
    services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=init.pk, result=result
    )
    spawn, _ = services.next_command(scope=scope, session_id=session.pk)
    ids = spawn.command["metadata"]["child_session_ids"]
    return [Session.objects.select_related("component").get(pk=pk) for pk in ids]


def finish_context(scope, session, work, env) -> Result:
    """Report the spawn step (every child complete), run the context's Finalize in ``work``."""
    spawn = session.interactions.get(step_name="SpawnComponentTestingSessions")
    checked, _ = services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=spawn.pk, result=Result(status="ok")
    )
    assert checked.result["status"] == "ok", checked.result
    finalize, _ = services.next_command(scope=scope, session_id=session.pk)
    assert finalize.step_name == "Finalize"
    result = run_shell(finalize.command["command"], work, env)
    services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=finalize.pk, result=result
    )
    return result


def assert_branch_holds_every_test_file_once(origin, env, session, kids):
    branch = session.state["branch_name"]
    files = [kid.state["test_file"] for kid in kids]
    assert len(set(files)) == len(kids)
    tree = git("ls-tree", "-r", "--name-only", branch, cwd=origin, env=env).split()
    assert sorted(tree) == sorted(["README", *files])
    added = Counter(
        line.split("\t", 1)[1]
        for line in git("log", "--format=", "--name-status", branch, cwd=origin, env=env)
        .strip()
        .splitlines()
        if line.startswith("A\t")
    )
    assert added == Counter(["README", *files])
    for path in files:
        assert git("show", f"{branch}:{path}", cwd=origin, env=env) == PASSING
    head = git("log", "--format=%B", "-n", "1", branch, cwd=origin, env=env)
    assert head.startswith("Add tests for the Accounts context\n\nComponents:\n")
    for kid in kids:
        assert f"- {kid.component.name} ({kid.component.module_name})" in head
    subjects = git("log", "--format=%s", branch, cwd=origin, env=env).splitlines()
    for kid in kids:
        assert (
            subjects.count(f"Add tests for {kid.component.name} ({kid.component.module_name})") == 1
        )


def test_a_context_session_commands_run_as_they_stand(scope, project, workspace):
    work, origin, env = workspace
    context = make_context(project, [("Cart", 2), ("Checkout", 1)])
    session = make_context_session(scope, context)

    history = drive_to_end(scope, session, Client(scope, work, env, broken_first={"Checkout"}))

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE, [i.result for i in history]
    kids = list(Session.objects.filter(parent_session=session).select_related("component"))
    assert_branch_holds_every_test_file_once(origin, env, session, kids)
    checkout = next(kid for kid in kids if kid.component.name == "Checkout")
    assert history_of(checkout) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "FixCompilationErrors",
        "RunTests",
        "VerifyTests",
        "Finalize",
    ]
    failed_run = checkout.interactions.filter(step_name="RunTests").order_by("created_at")[0]
    assert failed_run.result["status"] == "error"
    assert (
        "SyntaxError"
        in checkout.interactions.get(step_name="FixCompilationErrors").command["metadata"]["prompt"]
    )


def test_commands_that_touch_git_ask_for_the_repository_lock(scope, project, workspace):
    work, _, env = workspace
    context = make_context(project, [("Cart", 1)])
    session = make_context_session(scope, context)

    drive_to_end(scope, session, Client(scope, work, env))

    locked = {
        (i.session.type, i.step_name): bool(i.command["metadata"].get("repository_lock"))
        for i in Interaction.objects.filter(session__project=project).select_related("session")
    }
    assert locked == {
        ("ContextTestingSessions", "Initialize"): True,
        ("ContextTestingSessions", "SpawnComponentTestingSessions"): False,
        ("ContextTestingSessions", "Finalize"): True,
        ("ComponentTestSessions", "Initialize"): True,
        ("ComponentTestSessions", "GenerateTestsAndFixtures"): False,
        ("ComponentTestSessions", "RunTests"): False,
        ("ComponentTestSessions", "VerifyTests"): False,
        ("ComponentTestSessions", "Finalize"): True,
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_six_children_interleaved_in_one_working_copy(scope, project, workspace, seed):
    work, origin, env = workspace
    session = make_context_session(scope, make_context(project, SIX))
    kids = start_context(scope, session, work, env)
    children = [Child(kid, work) for kid in kids]

    Interleaved(scope, env, broken_first={"Invoice", "Refund"}, seed=seed).run(children)

    assert [c.session.status for c in children] == [SessionStatus.COMPLETE] * 6
    # The children's steps really were interleaved, not run child after child.
    order = [
        i.session_id
        for i in Interaction.objects.filter(session__parent_session=session).order_by("created_at")
    ]
    assert sum(a != b for a, b in itertools.pairwise(order)) > 6
    assert finish_context(scope, session, work, env).status == "ok"
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    kids = [Session.objects.select_related("component").get(pk=k.pk) for k in kids]
    assert_branch_holds_every_test_file_once(origin, env, session, kids)
    assert git("status", "--porcelain", "--untracked-files=no", cwd=work, env=env) == ""


def test_children_in_three_clones_of_one_origin_all_land_on_the_branch(
    scope, project, tmp_path, workspace
):
    work, origin, env = workspace
    clones = [work]
    for name in ("second", "third"):
        git("clone", "-q", str(origin), str(tmp_path / name), cwd=tmp_path, env=env)
        clones.append(tmp_path / name)
    session = make_context_session(scope, make_context(project, SIX))
    kids = start_context(scope, session, work, env)
    children = [Child(kid, clones[index % 3]) for index, kid in enumerate(kids)]

    Interleaved(scope, env, broken_first={"Ledger"}, seed=7).run(children)

    assert [c.session.status for c in children] == [SessionStatus.COMPLETE] * 6
    # Each clone's branch is one that origin's contains: no clone kept a commit of its own.
    branch = Session.objects.get(pk=session.pk).branch
    final = git("rev-parse", branch, cwd=origin, env=env).strip()
    for clone in clones:
        git("fetch", "-q", "origin", cwd=clone, env=env)
        local = f"refs/heads/{branch}"
        git("merge-base", "--is-ancestor", local, final, cwd=clone, env=env)
    assert finish_context(scope, session, work, env).status == "ok"
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    kids = [Session.objects.select_related("component").get(pk=k.pk) for k in kids]
    assert_branch_holds_every_test_file_once(origin, env, session, kids)


def test_without_origin_everything_is_committed_locally(scope, project, tmp_path):
    env = git_env(tmp_path)
    work = tmp_path / "alone"
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path, env=env)
    (work / "README").write_text("scratch\n")
    git("add", "README", cwd=work, env=env)
    git("commit", "-q", "-m", "initial", cwd=work, env=env)
    session = make_context_session(scope, make_context(project, [("Cart", 2), ("Refund", 1)]))

    drive_to_end(scope, session, Client(scope, work, env))

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    kids = list(Session.objects.filter(parent_session=session).select_related("component"))
    assert_branch_holds_every_test_file_once(work, env, session, kids)


# A worktree per child (spawnctl's default): the same commands, each child in its own.


def child_worktrees(work: Path, env: dict[str, str], kids: list[Session]) -> list[Child]:
    trees = Worktrees(work, env=env, repository_lock=lambda: repository_lock(work))
    branch = Session.objects.get(pk=kids[0].parent_session_id).branch
    return [Child(kid, trees.open(str(kid.pk), 1, [f"refs/heads/{branch}"]).path) for kid in kids]


@pytest.mark.parametrize("with_origin", [True, False])
def test_six_children_interleaved_in_worktrees_of_one_clone(scope, project, workspace, with_origin):
    work, origin, env = workspace
    if not with_origin:
        git("remote", "remove", "origin", cwd=work, env=env)
    session = make_context_session(scope, make_context(project, SIX))
    kids = start_context(scope, session, work, env)
    children = child_worktrees(work, env, kids)

    Interleaved(scope, env, broken_first={"Invoice", "Refund"}, seed=3).run(children)

    assert [c.session.status for c in children] == [SessionStatus.COMPLETE] * 6
    # Each child wrote in its own worktree: the user's working copy got none of it.
    for child in children:
        assert (child.work / child.session.state["test_file"]).exists()
        assert not (work / child.session.state["test_file"]).exists()
    assert finish_context(scope, session, work, env).status == "ok"
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    kids = [Session.objects.select_related("component").get(pk=k.pk) for k in kids]
    assert_branch_holds_every_test_file_once(origin if with_origin else work, env, session, kids)
    assert git("status", "--porcelain", cwd=work, env=env) == ""
    assert git("rev-parse", "HEAD", cwd=work, env=env) == git(
        "rev-parse", session.branch, cwd=work, env=env
    )


@pytest.mark.parametrize("with_origin", [True, False])
def test_children_finalizing_at_once_in_their_worktrees_all_land_on_the_branch(
    scope, project, workspace, with_origin
):
    """Eight Finalize commands on eight threads at once, each in its own worktree, under the
    runner's lock (one per clone): none is lost, none is committed twice."""
    work, origin, env = workspace
    if not with_origin:
        git("remote", "remove", "origin", cwd=work, env=env)
    branch = "agentic-tests/at-once"
    init = run_shell(
        conventions.switch_branch_command(branch, base="main", publish=True), work, env
    )
    assert init.status == "ok", init
    trees = Worktrees(work, env=env, repository_lock=lambda: repository_lock(work))
    jobs = []
    for n in range(8):
        tree = trees.open(f"child-{n}", 1, [f"refs/heads/{branch}"])
        path = f"tests/test_part_{n}.py"
        (tree.path / "tests").mkdir(exist_ok=True)
        (tree.path / path).write_text(PASSING)
        jobs.append((tree.path, conventions.commit_component_command(branch, path, f"Part {n}")))
    answers: list[Result] = []
    start = threading.Barrier(len(jobs))

    def finalize(where: Path, command: str) -> None:
        start.wait()
        with repository_lock(work):
            answers.append(run_shell(command, where, env))

    threads = [threading.Thread(target=finalize, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer.status for answer in answers] == ["ok"] * 8, answers
    where = origin if with_origin else work
    tree = git("ls-tree", "-r", "--name-only", branch, cwd=where, env=env).split()
    assert sorted(tree) == sorted(["README", *(f"tests/test_part_{n}.py" for n in range(8))])
    subjects = git("log", "--format=%s", branch, cwd=where, env=env).splitlines()
    assert sorted(subjects) == sorted(["initial", *(f"Part {n}" for n in range(8))])


# An origin set as a relative path: fine in the working copy it was set in, unreachable from a
# worktree. A child's Initialize there says so before any agent runs.


def childs_initialize_in_its_worktree(
    scope, project, work, env, *, origin_url=None
) -> tuple[Result, Child]:
    """Start a context of one child in ``work``, open the child's worktree, then (with
    ``origin_url``) point origin there, and run the child's Initialize in the worktree."""
    session = make_context_session(scope, make_context(project, SIX[:1]))
    child = child_worktrees(work, env, start_context(scope, session, work, env))[0]
    if origin_url is not None:
        git("remote", "set-url", "origin", origin_url, cwd=work, env=env)
    init, _ = services.next_command(scope=scope, session_id=child.session.pk)
    result = run_shell(init.command["command"], child.work, env)
    return result, child


def test_a_relative_origin_is_refused_at_a_childs_initialize_in_its_worktree(
    scope, project, workspace
):
    work, origin, env = workspace
    git("remote", "set-url", "origin", "../origin.git", cwd=work, env=env)
    # In the working copy the relative path is origin: the context starts and publishes.
    result, child = childs_initialize_in_its_worktree(scope, project, work, env)
    assert git("ls-remote", "--heads", str(origin), cwd=work, env=env).strip()

    assert result.status == "error"
    assert result.stderr.strip().splitlines()[-1] == "fatal: " + conventions.RELATIVE_ORIGIN.format(
        url="../origin.git"
    )
    # Nothing moved: the worktree is where spawnctl opened it.
    assert git("status", "--porcelain", cwd=child.work, env=env) == ""


def test_a_hostile_relative_origin_is_only_printed(scope, project, workspace, tmp_path):
    work, _, env = workspace
    hostile = "../$(touch pwned)`touch pwned2`%s%n.git"

    result, _ = childs_initialize_in_its_worktree(scope, project, work, env, origin_url=hostile)

    assert result.status == "error"
    assert conventions.RELATIVE_ORIGIN.format(url=hostile) in result.stderr
    assert list(tmp_path.rglob("pwned*")) == []


@pytest.mark.parametrize("url", ["{origin}", "file://{origin}"])
def test_an_absolute_origin_passes_a_childs_initialize_in_its_worktree(
    scope, project, workspace, url
):
    work, origin, env = workspace
    git("remote", "set-url", "origin", url.format(origin=origin), cwd=work, env=env)
    result, _ = childs_initialize_in_its_worktree(scope, project, work, env)
    assert result.status == "ok"
