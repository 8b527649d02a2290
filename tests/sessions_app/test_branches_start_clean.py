"""Branches start clean: Initialize's command, run for real in scratch repositories, starts a
run's branch from the project's base branch (origin's copy when origin has it), never from
what the working copy had checked out; git's own errors reach the step's result."""

from __future__ import annotations

import shutil

import pytest

from components_app import services as component_services
from core.errors import InvalidInput, StepError
from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from tests.factories import make_context, make_context_session
from tests.sessions_app.test_commands_run_for_real import (
    Client,
    git,
    git_env,
    make_workspace,
    run_shell,
)
from tests.sessions_app.workflow_driver import drive_to_end

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path)


def run_initialize(scope, session, work, env):
    init, _ = services.next_command(scope=scope, session_id=session.pk)
    assert init.step_name == "Initialize"
    result = run_shell(init.command["command"], work, env)
    answered, session = services.submit_result(
        scope=scope, session_id=session.pk, interaction_id=init.pk, result=result
    )
    return answered, session


def commits_of(branch, *, cwd, env):
    return git("log", "--format=%s", branch, cwd=cwd, env=env).split("\n")[:-1]


def test_a_new_run_branch_starts_from_base_not_from_the_branch_checked_out(
    scope, project, workspace
):
    """The working copy is on a previous run's branch with commits of its own."""
    work, origin, env = workspace
    git("switch", "-q", "-c", "agentic-tests/old-run", cwd=work, env=env)
    for n in range(3):
        (work / f"old_{n}.py").write_text("x = 1\n")
        git("add", ".", cwd=work, env=env)
        git("commit", "-q", "-m", f"old run commit {n}", cwd=work, env=env)
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))

    answered, session = run_initialize(scope, session, work, env)

    assert answered.result["status"] == "ok", answered.result
    branch = session.branch
    assert branch == session.state["branch_name"]
    # The working copy holds the branch detached, so children elsewhere can move it.
    assert git("branch", "--show-current", cwd=work, env=env).strip() == ""
    assert git("rev-parse", "HEAD", cwd=work, env=env) == git(
        "rev-parse", f"refs/heads/{branch}", cwd=work, env=env
    )
    assert commits_of(branch, cwd=work, env=env) == ["initial"]
    # Published on origin, from the same commit.
    assert commits_of(branch, cwd=origin, env=env) == ["initial"]


def test_the_base_branch_is_taken_from_origin_when_origin_has_moved(scope, project, tmp_path):
    work, origin, env = make_workspace(tmp_path)
    teammate = tmp_path / "teammate"
    git("clone", "-q", "-b", "main", str(origin), str(teammate), cwd=tmp_path, env=env)
    (teammate / "feature.py").write_text("y = 2\n")
    git("add", ".", cwd=teammate, env=env)
    git("commit", "-q", "-m", "teammate's commit", cwd=teammate, env=env)
    git("push", "-q", "origin", "main", cwd=teammate, env=env)
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))

    _, session = run_initialize(scope, session, work, env)

    assert commits_of(session.branch, cwd=work, env=env) == ["teammate's commit", "initial"]


def test_without_origin_the_local_base_branch_is_the_start(scope, project, tmp_path):
    env = git_env(tmp_path)
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path, env=env)
    (work / "README").write_text("x\n")
    git("add", ".", cwd=work, env=env)
    git("commit", "-q", "-m", "initial", cwd=work, env=env)
    git("switch", "-q", "-c", "elsewhere", cwd=work, env=env)
    git("commit", "-q", "--allow-empty", "-m", "not for the run", cwd=work, env=env)
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))

    _, session = run_initialize(scope, session, work, env)

    assert commits_of(session.branch, cwd=work, env=env) == ["initial"]


def test_a_clone_of_an_origin_whose_head_names_no_branch_starts_from_origins_base(
    scope, project, tmp_path
):
    """An origin made with another default (HEAD → master) to which only main was pushed:
    its clones check nothing out. Initialize must still start from main."""
    _, origin, env = make_workspace(tmp_path)
    git("symbolic-ref", "HEAD", "refs/heads/master", cwd=origin, env=env)
    clone = tmp_path / "clone"
    subprocess_result = run_shell(f"git clone -q {origin} {clone}", tmp_path, env)
    assert subprocess_result.status == "ok", subprocess_result
    assert not (clone / "README").exists()
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))

    answered, session = run_initialize(scope, session, clone, env)

    assert answered.result["status"] == "ok", answered.result
    assert (clone / "README").read_text() == "scratch\n"
    assert commits_of(session.branch, cwd=clone, env=env) == ["initial"]


def test_a_base_branch_that_exists_nowhere_is_named_in_the_error(scope, project, workspace):
    work, _, env = workspace
    component_services.update_project(scope=scope, base_branch="develop")
    project.refresh_from_db()
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))

    answered, session = run_initialize(scope, session, work, env)

    assert answered.result["status"] == "error"
    assert answered.result["error_message"] == (
        "fatal: Base branch develop is neither on origin nor in this repository"
    )
    assert session.branch is None


def test_git_s_own_error_is_the_step_s_error(scope, project, workspace):
    """An untracked file the run's branch would overwrite: git refuses to switch and says
    why; the step reports that, not a guess."""
    work, origin, env = workspace
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))
    branch = services.next_command(scope=scope, session_id=session.pk)[0].command["metadata"][
        "branch_name"
    ]
    other = tmp_clone(work.parent, origin, env)
    git("switch", "-q", "-c", branch, cwd=other, env=env)
    (other / "clash.py").write_text("theirs\n")
    git("add", ".", cwd=other, env=env)
    git("commit", "-q", "-m", "clash", cwd=other, env=env)
    git("push", "-q", "origin", f"refs/heads/{branch}:refs/heads/{branch}", cwd=other, env=env)
    (work / "clash.py").write_text("mine, untracked\n")

    answered, _ = run_initialize(scope, session, work, env)

    assert answered.result["status"] == "error"
    assert answered.result["error_message"].startswith("error: ")
    assert "untracked working tree files would be overwritten" in answered.result["error_message"]


def tmp_clone(parent, origin, env):
    clone = parent / "other-clone"
    git("clone", "-q", "-b", "main", str(origin), str(clone), cwd=parent, env=env)
    return clone


@pytest.mark.parametrize("name", ["+main", "-main", "+refs/heads/main"])
def test_a_branch_name_that_could_force_a_push_is_refused(scope, project, name):
    context = make_context(project, [("Cart", 1)])
    with pytest.raises(InvalidInput) as error:
        services.create_session(
            scope=scope,
            type="ContextTestingSessions",
            component=context,
            state={"branch_name": name},
        )
    assert "state" in error.value.errors


def test_a_run_s_branch_cannot_be_the_base_branch(scope, project):
    context = make_context(project, [("Cart", 1)])
    with pytest.raises(InvalidInput) as error:
        services.create_session(
            scope=scope,
            type="ContextTestingSessions",
            component=context,
            state={"branch_name": "main"},
        )
    assert error.value.errors == {"state": ["A run's branch cannot be the base branch main"]}


def test_a_whole_run_leaves_a_teammate_s_commit_on_main_and_pushes_only_its_branch(
    scope, project, tmp_path
):
    work, origin, env = make_workspace(tmp_path)
    main_before = git("rev-parse", "main", cwd=origin, env=env).strip()
    session = make_context_session(scope, make_context(project, [("Cart", 2), ("Checkout", 1)]))

    drive_to_end(scope, session, Client(scope, work, env))

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    assert git("rev-parse", "main", cwd=origin, env=env).strip() == main_before
    heads = git("for-each-ref", "--format=%(refname)", "refs/heads", cwd=origin, env=env).split()
    assert sorted(heads) == sorted(["refs/heads/main", f"refs/heads/{session.branch}"])
    children = list(session.child_sessions.all())
    assert {child.branch for child in children} == {session.branch}


def test_a_stored_plus_branch_is_refused_before_any_push_and_main_keeps_its_commits(
    scope, project, tmp_path
):
    """A state written before the rules (straight to the database) names "+main": the
    handed-out push would have forced the runner's main over a teammate's commit. No command
    is handed out, and origin's main keeps the commit."""
    _, origin, env = make_workspace(tmp_path)
    teammate = tmp_path / "teammate"
    git("clone", "-q", "-b", "main", str(origin), str(teammate), cwd=tmp_path, env=env)
    git("commit", "-q", "--allow-empty", "-m", "teammate's work", cwd=teammate, env=env)
    git("push", "-q", "origin", "main", cwd=teammate, env=env)
    origin_main = git("rev-parse", "main", cwd=origin, env=env).strip()
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))
    Session.objects.filter(pk=session.pk).update(state={"branch_name": "+main"})

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=session.pk)

    assert error.value.message == (
        "Branch name '+main' is not a valid git branch name: it starts with \"+\""
    )
    assert not Interaction.objects.filter(session=session).exists()
    assert git("rev-parse", "main", cwd=origin, env=env).strip() == origin_main
    assert "teammate's work" in commits_of("main", cwd=origin, env=env)
