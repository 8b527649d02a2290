"""A working copy per child, end to end: spawnctl against a live server, children three at a
time whose agents each rewrite the shared conftest.py and edit the code under test. No child
sees another's edits, VerifyTests catches each edit, ImproveTests puts it back, the branch
holds every test file and the code as it was, and no worktree is left; with an origin (and a
second clone's ``spawnctl work`` taking children too) and without one. Then the project's
setup command, a failing one, and ``--keep-worktrees``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.spawnctl.conftest import REPO, Workspace, git

AGENT = Path(__file__).resolve().parent / "agents" / "meddling_agent.py"
NAMES = ["Basket", "Coupon", "Price", "Tax"]
CONFTEST = "# fixtures every test shares\n"
CHANGED = "Files changed outside the test file: conftest.py, shop/cart/{name}.py"
IMPROVED_STEPS = [
    "Initialize",
    "GenerateTestsAndFixtures",
    "RunTests",
    "VerifyTests",
    "ImproveTests",
    "RunTests",
    "VerifyTests",
    "Finalize",
]


def source_of(name: str) -> str:
    return f'"""The {name} component."""\n\n\ndef price():\n    return 1\n'


def prepare(workspace: Workspace, **settings: object) -> dict:
    """The shop's code and conftest committed (and pushed), the project set to run the
    meddling agent and pytest, and a context of NAMES with their source paths."""
    work, server = workspace.work, workspace.server
    (work / "conftest.py").write_text(CONFTEST)
    (work / "shop" / "cart").mkdir(parents=True)
    for name in NAMES:
        (work / "shop" / "cart" / f"{name.lower()}.py").write_text(source_of(name))
    git("add", ".", cwd=work, env=workspace.env)
    git("commit", "-q", "-m", "the shop", cwd=work, env=workspace.env)
    git("push", "-q", "origin", "main", cwd=work, env=workspace.env)
    response = server.http.patch(
        f"projects/{server.project}/",
        json={
            "agent_command_template": f"python3 {AGENT} -p {{prompt}}",
            "test_command_template": "python -m pytest -q {test_file}",
            "min_line_coverage": None,
            "test_runs": 1,
            **settings,
        },
    )
    assert response.status_code == 200, response.text
    context = server.post(
        "components/",
        {"project": server.project, "name": "Cart", "module_name": "Shop.Cart", "type": "context"},
    )
    for priority, name in enumerate(NAMES):
        server.post(
            "components/",
            {
                "project": server.project,
                "name": name,
                "module_name": f"Shop.Cart.{name}",
                "type": "module",
                "priority": len(NAMES) - priority,
                "parent_component": context["id"],
                "source_path": f"shop/cart/{name.lower()}.py",
            },
        )
    return server.post(
        "sessions/",
        {
            "project": server.project,
            "type": "ContextTestingSessions",
            "component": context["id"],
            "agent": "claude_code",
            "environment": "cli",
        },
    )


def runner_env(workspace: Workspace, delay: str = "1.5") -> dict[str, str]:
    log = workspace.root / "meddler.log"
    # The scratch repository's code is imported from the working copy a test runs in.
    return workspace.spawnctl_env(
        MEDDLER_LOG=str(log), MEDDLER_DELAY=delay, PYTHONPATH=os.pathsep.join([".", str(REPO)])
    )


def sightings(workspace: Workspace) -> list[dict]:
    log = workspace.root / "meddler.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_args(workspace: Workspace, session_id: str, repo: Path, *more: str) -> list[str]:
    return [
        "run",
        session_id,
        "--repo",
        str(repo),
        "--jobs",
        "3",
        "--lease-seconds",
        "20",
        "--poll-seconds",
        "0.3",
        *more,
    ]


def assert_no_child_saw_another(workspace: Workspace) -> None:
    seen = sightings(workspace)
    assert {entry["step"] for entry in seen} == {"GenerateTestsAndFixtures", "ImproveTests"}
    for entry in seen:
        own = f"MEDDLED_BY = {entry['module']!r}\n"
        assert entry["conftest"] in (CONFTEST, own), entry
        for path, text in entry["sources"].items():
            name = Path(path).stem.capitalize()
            assert text in (source_of(name), source_of(name) + "\n" + own), entry
        # Its own edits are there after its first draft, and gone once it put them back.
        if entry["step"] == "GenerateTestsAndFixtures":
            assert entry["conftest"] == own
        else:
            assert entry["conftest"] == CONFTEST


def assert_every_edit_caught_and_the_branch_clean(workspace, session, tree_of, show) -> None:
    server = workspace.server
    children = {c["component"]["name"]: c for c in server.children(session["id"])["results"]}
    assert {name: child["status"] for name, child in children.items()} == dict.fromkeys(
        NAMES, "complete"
    )
    for name, child in children.items():
        assert server.steps(child["id"]) == IMPROVED_STEPS
        verify = [
            i
            for i in server.get(f"sessions/{child['id']}/interactions/")["results"]
            if i["step_name"] == "VerifyTests"
        ]
        first = verify[-1]["result"]  # newest first
        assert first["status"] == "error"
        assert first["error_message"] == CHANGED.format(name=name.lower())
        changed = first["data"]["verification"]["changed_files"]
        assert changed == ["conftest.py", f"shop/cart/{name.lower()}.py"]
        assert verify[0]["result"]["status"] == "ok"
    branch = server.session(session["id"])["branch"]
    test_files = sorted(child["state"]["test_file"] for child in children.values())
    sources = [f"shop/cart/{name.lower()}.py" for name in NAMES]
    assert tree_of(branch) == sorted(["README", "conftest.py", *sources, *test_files])
    assert show(f"{branch}:conftest.py") == CONFTEST
    for name in NAMES:
        assert show(f"{branch}:shop/cart/{name.lower()}.py") == source_of(name)


def assert_no_worktree_left(repo: Path, env) -> None:
    listed = git("worktree", "list", "--porcelain", cwd=repo, env=env)
    assert [line for line in listed.splitlines() if line.startswith("worktree ")] == [
        f"worktree {repo}"
    ]
    root = repo / ".git" / "spawnctl" / "worktrees"
    assert not root.exists() or list(root.iterdir()) == []


def test_children_with_an_origin_and_a_second_clone_never_see_each_others_edits(workspace):
    session = prepare(workspace)
    second = workspace.clone("second")
    env = runner_env(workspace)
    helper = workspace.spawnctl(
        "work",
        session["id"],
        "--repo",
        str(second),
        "--jobs",
        "2",
        "--lease-seconds",
        "20",
        "--poll-seconds",
        "0.3",
        env=env,
    )
    try:
        process = workspace.spawnctl(*run_args(workspace, session["id"], workspace.work), env=env)
        done, _ = process.communicate(timeout=300)
        helped, _ = helper.communicate(timeout=120)
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.communicate()

    assert process.returncode == 0, done
    assert helper.returncode == 0, helped
    assert workspace.server.session(session["id"])["status"] == "complete"
    assert_no_child_saw_another(workspace)
    assert_every_edit_caught_and_the_branch_clean(
        workspace,
        session,
        workspace.origin_files,
        lambda spec: git("show", spec, cwd=workspace.origin),
    )
    # Both clones ran children, each in worktrees of its own clone.
    places = {Path(entry["cwd"]).parents[2] for entry in sightings(workspace)}
    assert places == {workspace.work / ".git", second / ".git"}
    assert "session complete" in helped
    for repo in (workspace.work, second):
        assert_no_worktree_left(repo, workspace.env)
    # The user's working copy holds the branch's last commit, detached, with nothing changed.
    branch = workspace.server.session(session["id"])["branch"]
    work = workspace.work
    assert git("rev-parse", "HEAD", cwd=work) == git("rev-parse", f"origin/{branch}", cwd=work)
    assert git("status", "--porcelain", cwd=work) == ""


def test_children_without_an_origin_land_on_the_local_branch(workspace):
    session = prepare(workspace)
    work = workspace.work
    git("remote", "remove", "origin", cwd=work)

    done = subprocess.run(
        [sys.executable, "-m", "spawnctl.cli", *run_args(workspace, session["id"], work)],
        cwd=workspace.root,
        env=runner_env(workspace),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert_no_child_saw_another(workspace)
    assert_every_edit_caught_and_the_branch_clean(
        workspace,
        session,
        lambda branch: sorted(git("ls-tree", "-r", "--name-only", branch, cwd=work).split()),
        lambda spec: git("show", spec, cwd=work),
    )
    assert_no_worktree_left(work, workspace.env)


def context_with(workspace: Workspace, name: str, children: list[str], **settings: object):
    """A context of the stand-in agent's (bin/claude) children, the project set first."""
    server = workspace.server
    response = server.http.patch(f"projects/{server.project}/", json=settings)
    assert response.status_code == 200, response.text
    return server.context(name, [(child, 0) for child in children])


def test_the_setup_command_runs_once_in_each_new_worktree_and_what_it_makes_is_no_change(
    workspace,
):
    log = workspace.root / "setup.log"
    session = context_with(
        workspace,
        "Pair",
        ["Only", "Other"],
        worktree_setup_command=f'echo ready > .setup-done && pwd >> "{log}"',
    )

    done = workspace.run(*run_args(workspace, session["id"], workspace.work))

    assert done.returncode == 0, done.stdout
    children = workspace.server.children(session["id"])["results"]
    assert {child["status"] for child in children} == {"complete"}
    ran_in = log.read_text().splitlines()
    assert sorted(Path(path).name for path in ran_in) == sorted(f"{c['id']}-1" for c in children)
    for child in children:
        assert child["verification"]["problems"] == []
    assert_no_worktree_left(workspace.work, workspace.env)


def test_a_failing_setup_command_fails_the_step_with_its_output_and_keep_worktrees_keeps_it(
    workspace,
):
    session = context_with(
        workspace,
        "Solo",
        ["Only"],
        worktree_setup_command="echo installing; echo 'No such file: requirements-dev.txt' >&2; "
        "exit 3",
    )

    done = workspace.run(
        *run_args(workspace, session["id"], workspace.work),
        "--keep-worktrees",
        "--retry-pause",
        "0",
    )

    assert done.returncode == 1, done.stdout
    (child,) = workspace.server.children(session["id"])["results"]
    reason = "Worktree setup command failed (exit code 3): No such file: requirements-dev.txt"
    assert child["status"] == "failed"
    assert child["failure_reason"] == f"Initialize failed 3 times: {reason}"
    attempts = workspace.server.get(f"sessions/{child['id']}/interactions/")["results"]
    assert [i["step_name"] for i in attempts] == ["Initialize"] * 3
    assert attempts[0]["result"]["stdout"].strip() == "installing"
    kept = workspace.work / ".git" / "spawnctl" / "worktrees" / f"{child['id']}-1"
    assert f"Only: worktree kept at {kept}" in done.stdout
    assert kept.is_dir()
    # A kept worktree is the user's to look at: the next runner leaves it alone.
    again = workspace.run(*run_args(workspace, session["id"], workspace.work))
    assert "left by a runner that stopped" not in again.stdout
    assert kept.is_dir()
