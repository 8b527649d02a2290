"""VerifyTests, the runner's part: what the step's metadata asks for, the working copy made
ready for it (``.spawnctl/``, kept out of git), and the verification reported from its runs,
the coverage report the last one wrote and the assertion check of the test file. The runs
themselves are the job's (jobs.py), like any command; the server judges what is reported."""

from __future__ import annotations

import contextlib
import posixpath
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spawnctl import assertions, coverage_reports
from spawnctl import mutation as mutation_gate
from spawnctl.execute import Execution

VERIFY_TESTS = "VerifyTests"
# Where the runner's own files (coverage data and reports) live in a working copy.
RUNNER_DIR = ".spawnctl"
MAX_RUNS = 20
PYTHON_ASSERTIONS = "python"
GIT_TIMEOUT_SECONDS = 30
# Jobs of one runner verify at once in one working copy: one of them adds the exclude line.
_EXCLUDE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """A VerifyTests command's metadata, checked."""

    runs: int
    report_file: str
    report_format: str
    test_file: str | None = None
    source_path: str | None = None
    assertion_check: str | None = None
    #: The mutation gate's part, when the project has one and the file can be mutated.
    mutation: mutation_gate.Plan | None = None


def plan_of(step_name: str, metadata: Mapping[str, Any]) -> Plan | str | None:
    """The verification a command asks for: None when it is not one (a step other than
    VerifyTests with no ``runs`` and ``report_file``), the text of the first problem when its
    metadata cannot be run as one."""
    if step_name != VERIFY_TESTS and not ("runs" in metadata and "report_file" in metadata):
        return None
    runs = metadata.get("runs")
    if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs <= MAX_RUNS:
        return f"VerifyTests: runs must be an integer from 1 to {MAX_RUNS}, not {runs!r}"
    report_file = inside(metadata.get("report_file"), RUNNER_DIR)
    if report_file is None:
        # The runner deletes this file before each run: never one outside its own directory.
        return (
            f"VerifyTests: report_file must be a relative path under {RUNNER_DIR}/, "
            f"not {metadata.get('report_file')!r}"
        )
    report_format = metadata.get("report_format")
    if report_format not in coverage_reports.READERS:
        known = ", ".join(coverage_reports.READERS)
        return f"VerifyTests: no reader for report_format {report_format!r} (known: {known})"
    mutated = mutation_gate.plan_of(metadata.get("mutation"), inside)
    if isinstance(mutated, str):
        return mutated
    return Plan(
        mutation=mutated,
        runs=runs,
        report_file=report_file,
        report_format=report_format,
        test_file=inside(metadata.get("test_file")),
        source_path=inside(metadata.get("source_path")),
        assertion_check=metadata.get("assertion_check") or None,
    )


def inside(path: Any, under: str | None = None) -> str | None:
    """``path`` normalised when it is a relative path that stays in the repository (and under
    ``under``, not ``under`` itself), else None."""
    if not isinstance(path, str) or not path or "\0" in path or posixpath.isabs(path):
        return None
    normal = posixpath.normpath(path)
    parts = normal.split("/")
    if ".." in parts or normal == ".":
        return None
    if under is not None and (len(parts) < 2 or parts[0] != under):
        return None
    return normal


def prepare(repo: Path, plan: Plan, env: Mapping[str, str] | None = None) -> str | None:
    """Make ``.spawnctl/`` and keep it out of git; the text of the problem when it cannot be
    made, or when the report would land outside it (a ``.spawnctl`` that is a symlink)."""
    runner_dir = repo / RUNNER_DIR
    try:
        runner_dir.mkdir(exist_ok=True)
        inside = runner_dir.resolve()
        report = (repo / plan.report_file).resolve()
        if not inside.is_relative_to(repo.resolve()) or not report.is_relative_to(inside):
            return f"VerifyTests: {plan.report_file} is not inside the repository's {RUNNER_DIR}/"
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"VerifyTests: could not make {RUNNER_DIR}/: {error}"
    exclude_runner_dir(repo, env)
    return None


def exclude_runner_dir(repo: Path, env: Mapping[str, str] | None = None) -> None:
    """Add ``.spawnctl/`` to the repository's ``info/exclude`` once, so the runner's files are
    never committed nor counted as changes. A directory that is not a git work tree, or no
    git at all, is left as it is."""
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree", "--git-path", "info/exclude"],
            cwd=repo,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return
    lines = answer.stdout.splitlines()
    if answer.returncode != 0 or len(lines) != 2 or lines[0] != "true":
        return
    # A worktree's is its main repository's (git names the path; relative ones to ``repo``).
    exclude = repo / lines[1]
    pattern = f"{RUNNER_DIR}/"
    with _EXCLUDE_LOCK, contextlib.suppress(OSError):
        text = exclude.read_text() if exclude.exists() else ""
        if any(line.strip() in (pattern, f"/{pattern}") for line in text.splitlines()):
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as handle:
            handle.write(("\n" if text and not text.endswith("\n") else "") + pattern + "\n")


def clear_report(repo: Path, plan: Plan) -> None:
    """Remove the report an earlier run (or an earlier attempt) left, so what is read after
    the runs is the last run's or nothing."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        (repo / plan.report_file).unlink()


def result(
    repo: Path,
    plan: Plan,
    executions: Sequence[Execution],
    *,
    changed_files: Sequence[str] = (),
    mutated: dict[str, Any] | None = None,
    mutation_ms: int = 0,
) -> dict[str, Any]:
    """The step's result once every run ended: ``ok`` whatever the runs did (the server judges
    them), ``code`` the first non-zero exit code, the output of the first failing run (else the
    last), the runs' time together. ``changed_files``: what the child changed besides its test
    file, known when it has a worktree of its own (a shared working copy holds the other
    children's files too: none are reported then). ``mutated``: the mutation gate's sample,
    reported (as null when it could not run: the tests failed) whenever the plan has one;
    ``mutation_ms``: how long it took, counted in the step's duration."""
    failing = next((run for run in executions if run.code != 0), None)
    shown = failing or executions[-1]
    measured: dict[str, Any] = {
        "runs": [run.code for run in executions],
        "coverage": coverage(repo, plan),
        "tests_without_assertions": without_assertions(repo, plan),
        "changed_files": list(changed_files),
    }
    if plan.mutation is not None:
        measured["mutation"] = mutated
    return {
        "status": "ok",
        "code": failing.code if failing else 0,
        "stdout": shown.stdout,
        "stderr": shown.stderr,
        "duration_ms": sum(run.duration_ms for run in executions) + mutation_ms,
        "data": {"verification": measured},
    }


def coverage(repo: Path, plan: Plan) -> dict[str, Any] | None:
    """The source file's entry in the report, as ``data.verification.coverage``; None without
    a source path, a report that parses, or the file in it."""
    if plan.source_path is None:
        return None
    report = coverage_reports.read_report(repo / plan.report_file, plan.report_format, repo)
    found = coverage_reports.find(report, plan.source_path) if report is not None else None
    if found is None:
        return None
    measured: dict[str, Any] = {
        "source_path": plan.source_path,
        "lines_total": found.lines_total,
        "lines_covered": found.lines_covered,
        "missing_lines": list(found.missing_lines),
    }
    if found.branches_total is not None and found.branches_covered is not None:
        measured["branches_total"] = found.branches_total
        measured["branches_covered"] = found.branches_covered
    return measured


def without_assertions(repo: Path, plan: Plan) -> list[str]:
    """The test functions that assert nothing; none known when the check is not Python's, or
    the file is missing or does not parse (the runs fail then and say why)."""
    if plan.assertion_check != PYTHON_ASSERTIONS or plan.test_file is None:
        return []
    path = repo / plan.test_file
    try:
        if not path.resolve().is_relative_to(repo.resolve()):
            return []
        source = path.read_bytes()
    except OSError:
        return []
    return assertions.assertionless_tests(source) or []
