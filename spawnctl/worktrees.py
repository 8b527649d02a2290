"""A working copy per child: each component session runs in a git worktree of its own, so
children running at once never see each other's half-written files, and what a child changed
besides its test file can be told.

Worktrees live under ``<git common dir>/spawnctl/worktrees/`` (or a directory the user names),
one per session attempt, made detached from the branch's commit the runner knows (the child's
Initialize then moves it onto the run's branch), and removed when the child ends. A worktree in
use is held by an ``flock`` on a file beside it, so a worktree whose runner died (its locks
went with it) is told from one another runner on this clone is using: the first is pruned by
the next runner, the second left alone. A kept worktree (a failed child's, with
``--keep-worktrees``) carries a marker and is never pruned.

Git commands that write the repository's shared state (``git worktree add``, ``remove``,
``prune``) run under the repository's lock, like the steps that move refs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

GIT_TIMEOUT_SECONDS = 60
WORKTREES_UNDER = Path("spawnctl") / "worktrees"
LOCK_SUFFIX = ".lock"
KEPT_SUFFIX = ".kept"
# The runner's own files in a working copy, and the caches a test run writes: never counted
# as a child's changes.
RUNNER_DIR = ".spawnctl"
CACHE_DIRS = frozenset({"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache"})
COVERAGE_DATA = ".coverage"
# A session id as a worktree's name: the server's are UUIDs.
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class WorktreeError(Exception):
    """A worktree could not be made or removed; the text is git's."""


@dataclass
class Worktree:
    """One child's working copy while a runner holds it."""

    name: str
    path: Path
    handle: IO[str] = field(repr=False)
    ready: bool = False
    # What the working copy held before the child's first step (after the setup command):
    # path -> content digest, so what setup made is never a change of the child's.
    baseline: dict[str, str] = field(default_factory=dict)


def git_common_dir(repo: Path) -> Path | None:
    """The directory git keeps a clone's shared state in (``.git`` of the main working copy,
    for a linked worktree too), read from the files git writes; None when ``repo`` is not a
    git working copy."""
    dot_git = repo / ".git"
    if dot_git.is_dir():
        return dot_git
    if not dot_git.is_file():
        return None
    try:
        first = dot_git.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    if not first.startswith("gitdir: "):
        return None
    git_dir = (repo / first.removeprefix("gitdir: ").strip()).resolve()
    try:
        common = (git_dir / "commondir").read_text().strip()
    except OSError:
        return git_dir
    return (git_dir / common).resolve()


def toplevel_of(directory: Path) -> Path | None:
    """The top directory of the git working copy ``directory`` is in, or None."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if found.returncode != 0 or not found.stdout.strip():
        return None
    return Path(found.stdout.strip()).resolve()


def lock_path(repo: Path) -> Path:
    """The repository's lock file: in the clone's common git directory (one for the main
    working copy and all its worktrees), else one per path in the temporary directory."""
    common = git_common_dir(repo)
    if common is not None:
        return common / "spawnctl.lock"
    digest = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"spawnctl-{digest}.lock"


def default_root(repo: Path) -> Path | None:
    common = git_common_dir(repo)
    return common / WORKTREES_UNDER if common is not None else None


def _git(args: list[str], cwd: Path, env: Mapping[str, str] | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _try_lock(path: Path) -> IO[str] | None:
    """The open lock file, locked; None when another process holds it."""
    handle = open(path, "a")  # noqa: SIM115 - held for the worktree's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Worktrees:
    """The worktrees of one runner process in one clone."""

    def __init__(
        self,
        repo: Path,
        root: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        repository_lock: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.repo = repo
        found = root if root is not None else default_root(repo)
        if found is None:
            raise WorktreeError(f"{repo} is not a git working copy")
        self.root = found
        self.env = env
        self._locked = repository_lock or contextlib.nullcontext

    def path_of(self, session_id: str, attempt: int) -> Path:
        """Where the session's attempt gets its worktree. The id is the server's: one that is
        not a plain name (``../..``, a slash, a leading dash) never becomes a path."""
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            raise WorktreeError(f"{session_id!r} is not a session id a worktree can be named by")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise WorktreeError(f"{attempt!r} is not an attempt a worktree can be named by")
        return self.root / f"{session_id}-{attempt}"

    def open(self, session_id: str, attempt: int, starts: Sequence[str] = ()) -> Worktree:
        """A fresh worktree for the session's attempt, detached at the first of ``starts``
        (refs or commits) the clone has, else at HEAD. One left there by a runner that died is
        removed first; one another live runner holds is an error."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_of(session_id, attempt)
        handle = _try_lock(path.with_name(path.name + LOCK_SUFFIX))
        if handle is None:
            raise WorktreeError(f"worktree {path} is in use by another runner")
        try:
            with self._locked():
                self._remove(path)
                path.with_name(path.name + KEPT_SUFFIX).unlink(missing_ok=True)
                commit = self._start_commit(starts)
                made = _git(
                    ["worktree", "add", "--quiet", "--detach", str(path), commit],
                    self.repo,
                    self.env,
                )
            if made.returncode != 0:
                raise WorktreeError(
                    f"could not make a worktree at {path}: "
                    f"{_last_line(made.stderr) or f'git exited {made.returncode}'}"
                )
        except BaseException:
            handle.close()
            raise
        return Worktree(name=path.name, path=path, handle=handle)

    def _start_commit(self, starts: Sequence[str]) -> str:
        for ref in [*starts, "HEAD"]:
            found = _git(["rev-parse", "-q", "--verify", f"{ref}^{{commit}}"], self.repo, self.env)
            if found.returncode == 0 and found.stdout.strip():
                return found.stdout.strip()
        raise WorktreeError(f"{self.repo} has no commit to make a worktree from")

    def close(self, worktree: Worktree, *, keep: bool = False) -> None:
        """Remove the worktree (``keep``: leave it, marked so that no runner prunes it) and
        let its lock go."""
        try:
            if keep:
                worktree.path.with_name(worktree.name + KEPT_SUFFIX).touch()
            else:
                with self._locked():
                    self._remove(worktree.path)
                worktree.path.with_name(worktree.name + LOCK_SUFFIX).unlink(missing_ok=True)
        finally:
            worktree.handle.close()

    def prune(self) -> list[Path]:
        """Remove the worktrees no live runner holds and none kept: what runners that died left.
        The removed paths."""
        if not self.root.is_dir():
            return []
        removed: list[Path] = []
        for path in sorted(self.root.iterdir()):
            if not path.is_dir() or path.name.endswith((LOCK_SUFFIX, KEPT_SUFFIX)):
                continue
            if path.with_name(path.name + KEPT_SUFFIX).exists():
                continue
            lock = path.with_name(path.name + LOCK_SUFFIX)
            handle = _try_lock(lock)
            if handle is None:
                continue
            try:
                with self._locked():
                    self._remove(path)
                lock.unlink(missing_ok=True)
            finally:
                handle.close()
            removed.append(path)
        self._sweep_markers()
        with self._locked():
            _git(["worktree", "prune"], self.repo, self.env)
        return removed

    def _sweep_markers(self) -> None:
        """Lock and kept markers whose worktree is gone (removed by hand with ``git worktree
        remove``), unless a live runner holds the lock."""
        for marker in sorted(self.root.iterdir()):
            for suffix in (LOCK_SUFFIX, KEPT_SUFFIX):
                if not marker.name.endswith(suffix):
                    continue
                tree = marker.with_name(marker.name.removesuffix(suffix))
                if tree.exists():
                    continue
                lock = tree.with_name(tree.name + LOCK_SUFFIX)
                handle = _try_lock(lock) if lock.exists() else None
                if lock.exists() and handle is None:
                    continue
                try:
                    marker.unlink(missing_ok=True)
                    if handle is not None:
                        lock.unlink(missing_ok=True)
                finally:
                    if handle is not None:
                        handle.close()

    def _remove(self, path: Path) -> None:
        """The worktree at ``path`` gone, git's record of it too (called under the lock)."""
        if not path.exists():
            return
        _git(["worktree", "remove", "--force", "--force", str(path)], self.repo, self.env)
        if path.exists():
            # Not a worktree git knows (its record pruned by hand): the directory alone.
            shutil.rmtree(path, ignore_errors=True)
            _git(["worktree", "prune"], self.repo, self.env)
        if path.exists():
            raise WorktreeError(f"could not remove {path}")


# --- what a child changed --------------------------------------------------------------


def _digest(path: Path) -> str:
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        if path.is_dir():
            return "dir"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "gone"


def _is_own_or_cache(path: str) -> bool:
    parts = path.split("/")
    if parts[0] == RUNNER_DIR or any(part in CACHE_DIRS for part in parts[:-1]):
        return True
    name = parts[-1]
    return name == COVERAGE_DATA or name.startswith(COVERAGE_DATA + ".") or name.endswith(".pyc")


def _status_paths(worktree: Path, env: Mapping[str, str] | None) -> Iterator[str]:
    """Every path ``git status`` names: tracked files modified, deleted or renamed (both
    names), untracked files git does not ignore. NUL-separated, so no name is misread."""
    answer = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"],
        cwd=worktree,
        env=dict(env) if env is not None else None,
        capture_output=True,
        timeout=GIT_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    if answer.returncode != 0:
        raise WorktreeError(
            "git status failed: " + _last_line(answer.stderr.decode("utf-8", "replace"))
        )
    for entry in answer.stdout.split(b"\0"):
        if len(entry) > 3:
            yield entry[3:].decode("utf-8", "surrogateescape")


def snapshot(worktree: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What differs from the worktree's commit now: path -> content digest."""
    return {path: _digest(worktree / path) for path in _status_paths(worktree, env)}


def changed_files(
    worktree: Worktree, test_file: str | None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The files the child changed: what differs from the worktree's commit and did not before
    its first step (or differs otherwise now), other than its test file, the runner's own files
    and the caches a test run writes. Sorted."""
    now = snapshot(worktree.path, env)
    return sorted(
        path
        for path, digest in now.items()
        if path != test_file
        and not _is_own_or_cache(path)
        and worktree.baseline.get(path) != digest
    )
