"""A run on a real third-party package, as a user makes one: click's source from PyPI (a src/
layout with ``utils`` beside ``_utils`` and a Windows-only module), imported with ``spawnctl
import --exclude``, configured through the project's settings API, and run with ``spawnctl
run --project --context``, with a scripted agent that writes real pytest files importing the
module they test. Without PyPI, a package made here with the same shapes stands in.

What lands on the pushed branch is the point: every component's test file, none overwritten,
and nothing but the run's commits on top of the base branch (the working copy was left on
somebody's work-in-progress branch).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.spawnctl.conftest import REPO, Workspace, git

AGENT = Path(__file__).resolve().parent / "agents" / "importing_agent.py"
WINDOWS_ONLY = "_winconsole"

pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="one real-package run is enough: it runs on the SQLite pass",
)


def fetch_click(into: Path) -> Path | None:
    """click's sdist from PyPI, unpacked; its ``src`` directory, or None without PyPI."""
    download = into / "download"
    try:
        fetched = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"),
                *("--disable-pip-version-check", "-q", "-d", str(download), "click>=8.2"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired:
        return None
    archives = sorted(download.glob("click-*.tar.gz")) if fetched.returncode == 0 else []
    if not archives:
        return None
    with tarfile.open(archives[-1]) as archive:
        archive.extractall(into / "sdist", filter="data")
    [root] = (into / "sdist").iterdir()
    src = root / "src"
    shapes = {"utils.py", "_utils.py", f"{WINDOWS_ONLY}.py"}
    if not shapes <= {path.name for path in (src / "click").glob("*.py")}:
        return None
    return src


def make_stand_in(into: Path) -> Path:
    """A package with click's shapes, for a machine without PyPI."""
    package = into / "src" / "click"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A stand-in for click."""\n')
    for name in ("core", "utils", "_utils", "types", "_compat"):
        (package / f"{name}.py").write_text(
            f'"""{name}."""\n\n\ndef {name.strip("_")}():\n    pass\n'
        )
    (package / f"{WINDOWS_ONLY}.py").write_text(
        "import sys\n\nif sys.platform != 'win32':\n    raise ImportError('Windows only')\n"
    )
    return into / "src"


def commit_package(workspace: Workspace, src: Path) -> list[str]:
    """The package on main, pushed; the module names it has."""
    work, env = workspace.work, workspace.env
    shutil.copytree(src, work / "src", ignore=shutil.ignore_patterns("__pycache__"))
    git("add", "src", cwd=work, env=env)
    git("commit", "-q", "-m", "Add the package", cwd=work, env=env)
    git("push", "-q", "origin", "main", cwd=work, env=env)
    return sorted(f"click.{path.stem}" for path in (work / "src" / "click").glob("*.py"))


def test_import_and_run_on_click_keeps_every_test_and_starts_from_main(workspace, tmp_path):
    server, work, env = workspace.server, workspace.work, workspace.env
    src = fetch_click(tmp_path) or make_stand_in(tmp_path / "made")
    modules = [m for m in commit_package(workspace, src) if m != "click.__init__"]
    main_commits = git("rev-list", "main", cwd=work, env=env).split()
    # The working copy is left on someone's unfinished work, as a user's often is.
    git("switch", "-q", "-c", "someone/wip", cwd=work, env=env)
    (work / "wip.txt").write_text("half done\n")
    git("add", "wip.txt", cwd=work, env=env)
    git("commit", "-q", "-m", "WIP", cwd=work, env=env)

    settings = server.http.patch(
        f"projects/{server.project}/",
        json={
            "agent_command_template": f"python3 {AGENT} -p {{prompt}}",
            "test_command_template": "python -m pytest -q {test_file}",
            # The scripted agent's tests only import their module: what this run proves is
            # that every test lands on the branch. The bar has end-to-end tests of its own.
            "min_line_coverage": None,
        },
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["base_branch"] == "main"

    imported = workspace.run(
        "import", "--repo", str(work), "--project", server.project,
        "--exclude", f"click.{WINDOWS_ONLY}",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout
    components = {
        c["module_name"]: c
        for c in server.get(f"components/?project={server.project}&page_size=1000")["results"]
    }
    assert set(components) == {"click", *modules}
    assert components["click.utils"]["source_path"] == "src/click/utils.py"
    assert components[f"click.{WINDOWS_ONLY}"]["excluded"] is True

    done = workspace.run(
        "run", "--project", server.project, "--context", "click", "--repo", str(work),
        "--jobs", "4", "--lease-seconds", "30",
        timeout=600,
        PYTHONPATH=os.pathsep.join(["src", str(REPO)]),
    )  # fmt: skip

    assert done.returncode == 0, done.stdout
    started = next(line for line in done.stdout.splitlines() if line.startswith("Started session"))
    session = server.session(started.split()[2])
    assert session["status"] == "complete"
    children = server.children(session["id"])["results"]
    tested = {child["component"]["module_name"]: child for child in children}
    assert set(tested) == set(modules) - {f"click.{WINDOWS_ONLY}"}
    assert all(child["status"] == "complete" for child in children)
    test_files = {module: child["state"]["test_file"] for module, child in tested.items()}
    assert len(set(test_files.values())) == len(test_files)
    assert test_files["click.utils"] == "tests/test_click_utils_utils.py"
    assert test_files["click._utils"] == "tests/test_click_utils__utils.py"

    branch = session["branch"]
    assert branch == session["state"]["branch_name"]
    on_branch = workspace.origin_files(branch)
    assert set(test_files.values()) <= set(on_branch)
    assert "wip.txt" not in on_branch
    for module, path in test_files.items():
        # Each file is its own component's, not another's written over it.
        text = git("show", f"{branch}:{path}", cwd=workspace.origin)
        assert f"importlib.import_module({module!r})" in text
    # The branch is main plus the run's own commits: one per child and the context's.
    run_commits = git("rev-list", branch, "--not", "main", cwd=workspace.origin).split()
    assert git("merge-base", "main", branch, cwd=workspace.origin).strip() == main_commits[0]
    subjects = git("log", "--format=%s", branch, "--not", "main", cwd=workspace.origin)
    assert len(run_commits) == len(tested) + 1
    assert all(subject.startswith("Add tests for ") for subject in subjects.splitlines())
    assert git("rev-parse", "main", cwd=workspace.origin).strip() == main_commits[0]
