"""Every command a context session hands out, run for real in a scratch git repository.

The shell commands (git, the test runner) are executed as they stand; the two `claude`
commands are played by a stand-in agent that writes the test file the prompt asks for.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sessions_app.models import Session, SessionStatus
from sessions_app.workflows.types import Result
from tests.factories import make_context, make_context_session
from tests.sessions_app.workflow_driver import drive_to_end, history_of

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

PASSING = "def test_it_works():\n    assert 1 + 1 == 2\n"
NOT_COMPILING = "def test_it_works(:\n    assert True\n"


def git(*args, cwd, env):
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def workspace(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "Agent"
        env[f"GIT_{role}_EMAIL"] = "agent@example.com"
    origin = tmp_path / "origin.git"
    work = tmp_path / "work"
    git("init", "--bare", "-q", str(origin), cwd=tmp_path, env=env)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path, env=env)
    git("remote", "add", "origin", str(origin), cwd=work, env=env)
    (work / "README").write_text("scratch\n")
    git("add", "README", cwd=work, env=env)
    git("commit", "-q", "-m", "initial", cwd=work, env=env)
    return work, origin, env


class Client:
    """Runs shell commands in the workspace and plays the agent for `claude` commands."""

    def __init__(self, scope, work, env, broken_first):
        self.scope, self.work, self.env = scope, work, env
        self.broken_first = set(broken_first)

    def __call__(self, interaction):
        command = interaction.command
        if command["command"] == "spawn_sessions":
            for child_id in command["metadata"]["child_session_ids"]:
                drive_to_end(self.scope, Session.objects.get(pk=child_id), self)
            return Result(status="ok")
        if command["command"] == "claude":
            return self.agent(interaction)
        ran = subprocess.run(
            ["bash", "-c", command["command"]],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Result(
            status="ok" if ran.returncode == 0 else "error",
            code=ran.returncode,
            stdout=ran.stdout,
            stderr=ran.stderr,
        )

    def agent(self, interaction):
        metadata = interaction.command["metadata"]
        path = self.work / metadata["test_file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        component = interaction.session.component.name
        first_draft = interaction.step_name == "GenerateTestsAndFixtures"
        broken = first_draft and component in self.broken_first
        path.write_text(NOT_COMPILING if broken else PASSING)
        return Result(status="ok", stdout=f"wrote {metadata['test_file']}")


def test_a_context_session_commands_run_as_they_stand(scope, project, workspace):
    work, origin, env = workspace
    context = make_context(project, [("Cart", 2), ("Checkout", 1)])
    session = make_context_session(scope, context)

    history = drive_to_end(scope, session, Client(scope, work, env, broken_first={"Checkout"}))

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE, [i.result for i in history]
    branch = session.state["branch_name"]
    pushed = git("log", "--format=%B", "-n", "1", branch, cwd=origin, env=env)
    assert pushed.startswith("Add tests for the Accounts context")
    assert "- Cart (" in pushed and "- Checkout (" in pushed
    files = git("ls-tree", "-r", "--name-only", branch, cwd=origin, env=env).split()
    kids = Session.objects.filter(parent_session=session)
    assert sorted(files) == sorted(["README", *(kid.state["test_file"] for kid in kids)])
    checkout = kids.get(component__name="Checkout")
    assert history_of(checkout) == [
        "Initialize",
        "GenerateTestsAndFixtures",
        "RunTests",
        "FixCompilationErrors",
        "RunTests",
        "Finalize",
    ]
    failed_run = checkout.interactions.filter(step_name="RunTests").order_by("created_at")[0]
    assert failed_run.result["status"] == "error"
    assert (
        "SyntaxError"
        in checkout.interactions.get(step_name="FixCompilationErrors").command["metadata"]["prompt"]
    )
