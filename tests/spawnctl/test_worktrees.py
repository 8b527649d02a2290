"""A worktree per child, the runner's part: made detached where the run's branch is, removed
at the end (or kept, marked), pruned when the runner that held it died, never while a live one
holds it; one lock per clone, its worktrees' too; and which files a child changed, told from
the worktree with hostile file names under a real git."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from spawnctl import worktrees
from spawnctl.jobs import repository_lock
from spawnctl.worktrees import Worktree, WorktreeError, Worktrees, changed_files, lock_path

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
REPO_ROOT = Path(__file__).resolve().parents[2]
SID = "0b5e6f1c-0000-4000-8000-000000000001"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=_env()
    ).stdout


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "Agent"
        env[f"GIT_{role}_EMAIL"] = "agent@example.com"
    return env


@pytest.fixture
def repo(tmp_path) -> Path:
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "conftest.py").write_text("import pytest\n")
    (work / "shop").mkdir()
    (work / "shop" / "cart.py").write_text("def total(items):\n    return sum(items)\n")
    (work / ".gitignore").write_text("*.log\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "initial", cwd=work)
    git("branch", "agentic-tests/run", cwd=work)
    (work / "later.txt").write_text("on the branch only\n")
    git("switch", "-q", "agentic-tests/run", cwd=work)
    git("add", "later.txt", cwd=work)
    git("commit", "-q", "-m", "branch commit", cwd=work)
    git("switch", "-q", "main", cwd=work)
    return work


def manager(repo: Path, root: Path | None = None) -> Worktrees:
    return Worktrees(repo, root, env=_env(), repository_lock=lambda: repository_lock(repo))


def registered(repo: Path) -> list[str]:
    out = git("worktree", "list", "--porcelain", cwd=repo)
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def test_a_worktree_is_made_detached_at_the_branch_under_the_git_dir_and_removed(repo):
    trees = manager(repo)

    tree = trees.open(SID, 1, ["refs/heads/agentic-tests/run"])

    assert tree.path == repo / ".git" / "spawnctl" / "worktrees" / f"{SID}-1"
    assert (tree.path / "later.txt").exists()
    assert git("branch", "--show-current", cwd=tree.path).strip() == ""
    assert str(tree.path) in registered(repo)
    trees.close(tree)
    assert not tree.path.exists()
    assert str(tree.path) not in registered(repo)
    assert not tree.path.with_name(tree.path.name + ".lock").exists()
    # The main working copy never moved.
    assert git("branch", "--show-current", cwd=repo).strip() == "main"


def test_a_branch_the_clone_does_not_have_falls_back_to_head(repo):
    tree = manager(repo).open(SID, 1, ["refs/heads/nowhere", "refs/remotes/origin/nowhere"])

    assert git("rev-parse", "HEAD", cwd=tree.path) == git("rev-parse", "main", cwd=repo)


def test_worktrees_go_where_they_are_told(repo, tmp_path):
    trees = manager(repo, tmp_path / "elsewhere")

    tree = trees.open(SID, 2)

    assert tree.path == tmp_path / "elsewhere" / f"{SID}-2"
    trees.close(tree)
    assert not tree.path.exists()


def test_a_kept_worktree_stays_and_no_runner_prunes_it(repo):
    trees = manager(repo)
    tree = trees.open(SID, 1)
    (tree.path / "notes.txt").write_text("look here\n")

    trees.close(tree, keep=True)

    assert (tree.path / "notes.txt").exists()
    assert manager(repo).prune() == []
    assert tree.path.exists()


def test_a_retried_attempt_gets_a_worktree_of_its_own_beside_a_kept_one(repo):
    trees = manager(repo)
    first = trees.open(SID, 1)
    trees.close(first, keep=True)

    second = trees.open(SID, 2)

    assert first.path.exists() and second.path.exists() and first.path != second.path


def test_a_worktree_nobody_holds_is_pruned_with_gits_record_of_it(repo):
    trees = manager(repo)
    tree = trees.open(SID, 1)
    tree.handle.close()  # as a runner that died lets its lock go

    assert manager(repo).prune() == [tree.path]
    assert not tree.path.exists()
    assert str(tree.path) not in registered(repo)


def test_a_worktree_a_live_runner_holds_is_not_pruned(repo):
    held = manager(repo).open(SID, 1)

    assert manager(repo).prune() == []
    assert held.path.exists()
    with pytest.raises(WorktreeError, match="in use by another runner"):
        manager(repo).open(SID, 1)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from spawnctl.worktrees import Worktrees
    tree = Worktrees(Path(sys.argv[1])).open(sys.argv[2], 1)
    (tree.path / "half-written.py").write_text("def test_x(:\\n")
    print(tree.path, flush=True)
    time.sleep(600)
    """
)


def test_a_worktree_left_by_a_runner_killed_with_sigkill_is_pruned_by_the_next(repo):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo), SID],
        stdout=subprocess.PIPE,
        text=True,
        env={**_env(), "PYTHONPATH": str(REPO_ROOT)},
    )
    path = Path(holder.stdout.readline().strip())
    assert (path / "half-written.py").exists()
    # Alive, it keeps its worktree.
    assert manager(repo).prune() == []

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    assert manager(repo).prune() == [path]
    assert not path.exists()
    # And the session's worktree can be made again, fresh.
    again = manager(repo).open(SID, 1)
    assert not (again.path / "half-written.py").exists()


def test_a_leftover_directory_git_no_longer_knows_is_removed_too(repo):
    tree = manager(repo).open(SID, 1)
    tree.handle.close()
    git("worktree", "prune", cwd=repo)
    shutil.rmtree(repo / ".git" / "worktrees", ignore_errors=True)

    assert manager(repo).prune() == [tree.path]
    assert not tree.path.exists()


def test_a_directory_that_is_not_a_git_working_copy_has_no_worktrees(tmp_path):
    with pytest.raises(WorktreeError, match="not a git working copy"):
        Worktrees(tmp_path)


def test_an_empty_repository_has_no_commit_to_start_from(tmp_path):
    git("init", "-q", str(tmp_path / "empty"), cwd=tmp_path)

    with pytest.raises(WorktreeError, match="has no commit"):
        manager(tmp_path / "empty").open(SID, 1)


def test_one_lock_serves_a_clone_and_its_worktrees(repo):
    tree = manager(repo).open(SID, 1)

    assert lock_path(tree.path) == lock_path(repo) == repo / ".git" / "spawnctl.lock"


def test_worktrees_made_at_once_by_many_threads_are_all_made(repo):
    trees = manager(repo)
    made: list[Worktree] = []
    errors: list[BaseException] = []

    def make(n: int) -> None:
        try:
            made.append(trees.open(f"{SID[:-2]}{n:02d}", 1, ["refs/heads/agentic-tests/run"]))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=make, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(registered(repo)) == 9
    assert all((tree.path / "later.txt").exists() for tree in made)


@pytest.mark.parametrize(
    ("session_id", "attempt"),
    [
        ("../../../victim", 1),
        ("..", 1),
        ("a/b", 1),
        ("-rf", 1),
        ("", 1),
        ("x\nlater", 1),
        ("x" * 101, 1),
        (None, 1),
        (SID, 0),
        (SID, "1; rm -rf ~"),
        (SID, True),
    ],
)
def test_a_session_id_or_attempt_that_is_not_a_plain_name_never_becomes_a_path(
    repo, tmp_path, session_id, attempt
):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")

    with pytest.raises(WorktreeError, match="a worktree can be named by"):
        manager(repo).open(session_id, attempt)

    assert (victim / "precious").read_text() == "keep me\n"
    assert registered(repo) == [str(repo)]


# What a child changed


def child_tree(repo: Path) -> Worktree:
    tree = manager(repo).open(SID, 1)
    tree.baseline = worktrees.snapshot(tree.path, _env())
    return tree


HOSTILE_NAMES = [
    "new file.py",
    "-rf",
    "quote'd.py",
    'dq"x.py',
    "line\nbreak.py",
    "tab\tname.py",
    "ünïcode.py",
    "$(touch PWNED).py",
]


def test_every_change_outside_the_test_file_is_named_whatever_its_name(repo):
    tree = child_tree(repo)
    (tree.path / "conftest.py").write_text("import pytest\n# rewritten by an agent\n")
    (tree.path / "shop" / "cart.py").unlink()
    for name in HOSTILE_NAMES:
        (tree.path / name).write_text("x = 1\n")
    (tree.path / "tests").mkdir()
    (tree.path / "tests" / "test_cart.py").write_text("def test_x():\n    assert True\n")

    changed = changed_files(tree, "tests/test_cart.py", _env())

    assert changed == sorted(["conftest.py", "shop/cart.py", *HOSTILE_NAMES])
    assert not (tree.path / "PWNED").exists()


def test_the_runners_files_caches_and_ignored_files_are_not_changes(repo):
    tree = child_tree(repo)
    for path in [
        ".spawnctl/coverage.123",
        ".spawnctl/coverage-abc.json",
        "shop/__pycache__/cart.cpython-311.pyc",
        "__pycache__/conftest.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".hypothesis/examples/x",
        ".coverage",
        ".coverage.host.123.456",
        "debug.log",
    ]:
        (tree.path / path).parent.mkdir(parents=True, exist_ok=True)
        (tree.path / path).write_text("x")

    assert changed_files(tree, "tests/test_cart.py", _env()) == []


def test_what_the_setup_command_made_is_not_a_change_until_the_child_changes_it(repo):
    tree = manager(repo).open(SID, 1)
    (tree.path / "shop.egg-info").mkdir()
    (tree.path / "shop.egg-info" / "PKG-INFO").write_text("Name: shop\n")
    (tree.path / ".env").write_text("SECRET=1\n")
    tree.baseline = worktrees.snapshot(tree.path, _env())

    assert changed_files(tree, None, _env()) == []

    (tree.path / ".env").write_text("SECRET=2\n")
    assert changed_files(tree, None, _env()) == [".env"]


def test_a_file_put_back_as_it_was_is_no_longer_a_change(repo):
    tree = child_tree(repo)
    (tree.path / "conftest.py").write_text("changed\n")
    assert changed_files(tree, None, _env()) == ["conftest.py"]

    git("checkout", "--", "conftest.py", cwd=tree.path)

    assert changed_files(tree, None, _env()) == []


def test_a_failing_git_status_is_an_error_not_an_empty_list(repo, tmp_path):
    tree = child_tree(repo)
    shutil.rmtree(tree.path)
    tree.path.mkdir()

    with pytest.raises(WorktreeError, match="git status failed"):
        changed_files(tree, None, {**_env(), "GIT_CEILING_DIRECTORIES": str(tmp_path)})


def test_the_markers_of_a_worktree_removed_by_hand_are_swept(repo):
    trees = manager(repo)
    kept = trees.open(SID, 1)
    trees.close(kept, keep=True)
    git("worktree", "remove", "--force", str(kept.path), cwd=repo)
    held = trees.open(SID, 2)  # alive: its lock stays

    assert trees.prune() == []

    names = sorted(path.name for path in trees.root.iterdir())
    assert names == [f"{SID}-2", f"{SID}-2.lock"]
    trees.close(held)
