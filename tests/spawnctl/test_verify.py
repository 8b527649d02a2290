"""VerifyTests' pieces: its metadata checked, ``.spawnctl/`` made and kept out of git, and the
result built from the runs, the report and the test file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from spawnctl.execute import Execution
from spawnctl.verify import Plan, clear_report, plan_of, prepare, result

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "coverage"
METADATA = {
    "test_file": "tests/test_pricing.py",
    "source_path": "src/shop/pricing.py",
    "runs": 3,
    "report_file": ".spawnctl/coverage-1a2b.json",
    "report_format": "coverage.py-json",
    "assertion_check": "python",
}
PLAN = Plan(
    runs=3,
    report_file=".spawnctl/coverage-1a2b.json",
    report_format="coverage.py-json",
    test_file="tests/test_pricing.py",
    source_path="src/shop/pricing.py",
    assertion_check="python",
)


def test_a_verify_tests_command_is_planned_from_its_metadata():
    assert plan_of("VerifyTests", METADATA) == PLAN
    # Any step asking for runs and a report is one; other steps are not.
    assert plan_of("CheckTests", METADATA) == PLAN
    assert plan_of("RunTests", {"test_file": "tests/test_pricing.py"}) is None
    lines_only = {**METADATA, "source_path": None, "assertion_check": None}
    assert plan_of("VerifyTests", lines_only) == Plan(
        3, ".spawnctl/coverage-1a2b.json", "coverage.py-json", "tests/test_pricing.py"
    )


RUNS = "VerifyTests: runs must be an integer from 1 to 20, not "
REPORT = "VerifyTests: report_file must be a relative path under .spawnctl/, not "


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"runs": 0}, RUNS + "0"),
        ({"runs": 21}, RUNS + "21"),
        ({"runs": True}, RUNS + "True"),
        ({"runs": "3"}, RUNS + "'3'"),
        ({"report_file": "../outside.json"}, REPORT + "'../outside.json'"),
        (
            {"report_file": ".spawnctl/../src/shop/pricing.py"},
            REPORT + "'.spawnctl/../src/shop/pricing.py'",
        ),
        ({"report_file": "/etc/passwd"}, REPORT + "'/etc/passwd'"),
        ({"report_file": "src/shop/pricing.py"}, REPORT + "'src/shop/pricing.py'"),
        ({"report_file": ".spawnctl"}, REPORT + "'.spawnctl'"),
        ({"report_file": None}, REPORT + "None"),
        (
            {"report_format": "jacoco"},
            "VerifyTests: no reader for report_format 'jacoco' (known: coverage.py-json, lcov,"
            " cobertura, go-cover)",
        ),
    ],
)
def test_metadata_that_cannot_be_run_is_said(changes, problem):
    assert plan_of("VerifyTests", {**METADATA, **changes}) == problem


def test_paths_leaving_the_repository_are_not_read():
    plan = plan_of("VerifyTests", {**METADATA, "test_file": "../x.py", "source_path": "/etc/x"})
    assert isinstance(plan, Plan)
    assert (plan.test_file, plan.source_path) == (None, None)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def clone(tmp_path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    return repo


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("*.log", "*.log\n.spawnctl/\n"),  # a line the user wrote, without its newline
        ("", ".spawnctl/\n"),
        ("/.spawnctl/\n", "/.spawnctl/\n"),  # the user's own way of saying it
    ],
)
def test_the_runners_directory_is_made_and_kept_out_of_git_once(clone, before, after):
    exclude = clone / ".git" / "info" / "exclude"
    exclude.write_text(before)

    assert prepare(clone, PLAN) is None
    assert prepare(clone, PLAN) is None

    assert exclude.read_text() == after
    (clone / ".spawnctl" / "coverage-1a2b.json").write_text("{}")
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""


def test_a_worktree_keeps_the_directory_out_through_its_repositorys_exclude(clone):
    (clone / "README").write_text("x\n")
    git("add", "README", cwd=clone)
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "one", cwd=clone)
    worktree = clone.parent / "child"
    git("worktree", "add", "-q", "-b", "child", str(worktree), cwd=clone)

    assert prepare(worktree, PLAN) is None

    (worktree / ".spawnctl" / "coverage-1a2b.json").write_text("{}")
    assert git("status", "--porcelain", "--untracked-files=all", cwd=worktree) == ""
    assert (clone / ".git" / "info" / "exclude").read_text().splitlines()[-1] == ".spawnctl/"


def test_a_directory_that_is_not_a_git_work_tree_gets_the_directory_alone(tmp_path):
    assert prepare(tmp_path, PLAN) is None
    assert (tmp_path / ".spawnctl").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".spawnctl"]


def test_a_bare_repository_is_no_work_tree_to_keep_it_out_of(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    git("init", "-q", "--bare", str(tmp_path / "bare.git"), cwd=tmp_path)
    exclude = tmp_path / "bare.git" / "info" / "exclude"
    before = exclude.read_text()

    assert prepare(tmp_path / "bare.git", PLAN) is None
    assert exclude.read_text() == before


def test_a_machine_without_git_gets_the_directory_alone(clone):
    assert prepare(clone, PLAN, env={"PATH": str(clone / "no-such-bin")}) is None
    assert (clone / ".spawnctl").is_dir()
    assert ".spawnctl/" not in (clone / ".git" / "info" / "exclude").read_text()


def test_a_directory_that_cannot_be_made_is_said(tmp_path):
    (tmp_path / "file").write_text("")
    problem = prepare(tmp_path / "file", PLAN)
    assert problem is not None
    assert problem.startswith("VerifyTests: could not make .spawnctl/: [Errno 20] Not a directory")


def test_a_runners_directory_leading_out_of_the_repository_is_refused(tmp_path):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (repo / ".spawnctl").symlink_to(elsewhere)
    victim = elsewhere / "coverage-1a2b.json"
    victim.write_text("kept")

    assert prepare(repo, PLAN) == (
        "VerifyTests: .spawnctl/coverage-1a2b.json is not inside the repository's .spawnctl/"
    )
    assert victim.read_text() == "kept"


def test_a_report_left_by_an_earlier_run_is_removed(tmp_path):
    prepare(tmp_path, PLAN)
    (tmp_path / PLAN.report_file).write_text("{}")
    clear_report(tmp_path, PLAN)
    clear_report(tmp_path, PLAN)  # and none is no error
    assert not (tmp_path / PLAN.report_file).exists()


def _run(code: int, out: str = "", err: str = "", ms: int = 10) -> Execution:
    return Execution(code, out, err, ms)


def test_the_result_is_ok_with_every_runs_code_and_the_first_failings_output(tmp_path):
    runs = [_run(0, "o1", "e1", 5), _run(2, "o2", "e2", 7), _run(-9, "o3", "e3", 11), _run(0)]
    plan = Plan(4, ".spawnctl/r.json", "coverage.py-json")

    assert result(tmp_path, plan, runs) == {
        "status": "ok",
        "code": 2,
        "stdout": "o2",
        "stderr": "e2",
        "duration_ms": 33,
        "data": {
            "verification": {
                "runs": [0, 2, -9, 0],
                "coverage": None,
                "tests_without_assertions": [],
                "changed_files": [],
            }
        },
    }
    passing = result(tmp_path, plan, [_run(0, "a"), _run(0, "b")])
    assert (passing["code"], passing["stdout"]) == (0, "b")


def _verification(repo: Path, plan: Plan) -> dict:
    return result(repo, plan, [_run(0)])["data"]["verification"]


def test_the_coverage_of_the_source_file_comes_from_the_report(tmp_path):
    (tmp_path / ".spawnctl").mkdir()
    shutil.copy(FIXTURES / "coverage.lcov", tmp_path / ".spawnctl" / "r.info")
    plan = Plan(1, ".spawnctl/r.info", "lcov", source_path="src/shop/pricing.py")

    assert _verification(tmp_path, plan)["coverage"] == {
        "source_path": "src/shop/pricing.py",
        "lines_total": 8,
        "lines_covered": 4,
        "missing_lines": [9, 13, 14, 15],
        "branches_total": 4,
        "branches_covered": 1,
    }
    lines_only = FIXTURES / "coverage-lines.json"
    shutil.copy(lines_only, tmp_path / ".spawnctl" / "r.json")
    plan = Plan(1, ".spawnctl/r.json", "coverage.py-json", source_path="src/shop/pricing.py")
    assert _verification(tmp_path, plan)["coverage"] == {
        "source_path": "src/shop/pricing.py",
        "lines_total": 8,
        "lines_covered": 4,
        "missing_lines": [9, 13, 14, 15],
    }


@pytest.mark.parametrize(
    ("report", "source_path"),
    [
        (None, "src/shop/pricing.py"),
        ("coverage.lcov", None),
        ("coverage.lcov", "src/shop/other.py"),
        ("coverage.json", "src/shop/pricing.py"),  # not LCOV
    ],
)
def test_no_report_no_source_path_or_no_entry_is_no_coverage(tmp_path, report, source_path):
    (tmp_path / ".spawnctl").mkdir()
    if report:
        shutil.copy(FIXTURES / report, tmp_path / ".spawnctl" / "r.info")
    plan = Plan(1, ".spawnctl/r.info", "lcov", source_path=source_path)
    assert _verification(tmp_path, plan)["coverage"] is None


def test_the_test_files_functions_without_assertions_are_listed(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "def test_a():\n    assert 1\n\ndef test_b():\n    pass\n"
    )
    plan = Plan(1, ".spawnctl/r.json", "coverage.py-json", test_file="tests/test_x.py")

    assert _verification(tmp_path, plan)["tests_without_assertions"] == []  # no check asked
    checked = Plan(**{**plan.__dict__, "assertion_check": "python"})
    assert _verification(tmp_path, checked)["tests_without_assertions"] == ["test_b"]
    (tmp_path / "tests" / "test_x.py").write_text("def test_a(:\n")
    assert _verification(tmp_path, checked)["tests_without_assertions"] == []
    missing = Plan(**{**checked.__dict__, "test_file": "tests/test_gone.py"})
    assert _verification(tmp_path, missing)["tests_without_assertions"] == []


def test_a_test_file_that_is_a_symlink_out_of_the_repository_is_not_read(tmp_path):
    (tmp_path / "outside.py").write_text("def test_secret():\n    pass\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "test_x.py").symlink_to(tmp_path / "outside.py")
    plan = Plan(1, ".spawnctl/r.json", "coverage.py-json", "test_x.py", None, "python")

    assert _verification(repo, plan)["tests_without_assertions"] == []
