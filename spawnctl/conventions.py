"""Each language's test conventions as project settings: where a component's test file goes,
the command that runs it, and the command that measures its coverage with the format the
language's tools write. ``spawnctl import --conventions`` applies them to the project
(``PATCH /api/projects/{id}/``) before it imports; the server checks them as any change.

For TypeScript/JavaScript the test runner is the project's own, read from ``package.json``
(vitest, then jest, else Node's built-in ``node --test``). Elixir's coverage as LCOV needs a
dependency of the project's: with excoveralls in ``mix.exs`` it is ``mix coveralls.lcov``,
else coverage is left unmeasured (``min_line_coverage`` null) and said so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON, GO, TYPESCRIPT, ELIXIR = "python", "go", "typescript", "elixir"
# The report's file name under .spawnctl/ is the server's ({report_file}); a runner that
# writes a directory (vitest, jest) writes it beside, then copies its lcov.info there.
_LCOV_FROM_DIRECTORY = (
    "dir=.spawnctl/{tool}.$$; {run} {{test_file}} {options}=$dir; code=$?; "
    "cp $dir/lcov.info {{report_file}}; rm -rf $dir; exit $code"
)


@dataclass(frozen=True)
class Conventions:
    language: str
    settings: dict[str, Any]
    #: What the settings leave to the team, said when they are applied.
    notes: list[str] = field(default_factory=list)


def for_language(language: str, repo: Path) -> Conventions:
    """The conventions of ``language`` for the repository at ``repo``."""
    if language == GO:
        return Conventions(
            GO,
            {
                "test_path_template": "{source_dir}/{source_stem}_test.go",
                "test_command_template": "go test {test_dir}",
                # The server refuses a placeholder after a single-dash option ending in c, e or
                # S (python -Ic runs code), so the path reaches -coverprofile through $out.
                "coverage_command_template": (
                    'out={report_file}; go test -coverprofile="$out" {test_dir}'
                ),
                "coverage_report_format": "go-cover",
            },
            ["go test runs the test file's whole package (Go has no test file of its own)."],
        )
    if language == TYPESCRIPT:
        return _typescript(repo)
    if language == ELIXIR:
        return _elixir(repo)
    return Conventions(
        PYTHON,
        {
            "test_path_template": "tests/test_{module_snake}_{module_last}.py",
            "test_command_template": "python -m pytest {test_file}",
            "coverage_report_format": "coverage.py-json",
        },
    )


# The test runners that write LCOV into a directory: how each runs, and the options that make
# it measure the one source file and write there (the directory's option comes last).
_LCOV_RUNNERS = {
    "vitest": (
        "npx vitest run",
        "--coverage.enabled --coverage.reporter=lcov --coverage.include={source_path} "
        "--coverage.reportsDirectory",
    ),
    "jest": (
        "npx jest",
        "--coverage --coverageReporters=lcov --collectCoverageFrom={source_path} "
        "--coverageDirectory",
    ),
}


def _typescript(repo: Path) -> Conventions:
    runner = _test_runner(repo)
    settings: dict[str, Any] = {"test_path_template": "{source_dir}/{source_stem}.test{source_ext}"}
    notes: list[str] = []
    if runner in _LCOV_RUNNERS:
        run, options = _LCOV_RUNNERS[runner]
        settings["test_command_template"] = f"{run} {{test_file}}"
        settings["coverage_command_template"] = _LCOV_FROM_DIRECTORY.format(
            tool=runner, run=run, options=options
        )
    else:
        settings["test_command_template"] = "node --test {test_file}"
        settings["coverage_command_template"] = (
            "node --test --experimental-test-coverage --test-reporter=lcov "
            "--test-reporter-destination={report_file} {test_file}"
        )
        notes.append(
            "no vitest or jest in package.json: node --test (Node 20 or later) runs the tests, "
            "which runs JavaScript; TypeScript needs the project's own runner."
        )
    settings["coverage_report_format"] = "lcov"
    return Conventions(TYPESCRIPT, settings, notes)


def _elixir(repo: Path) -> Conventions:
    settings: dict[str, Any] = {
        "test_path_template": "test/{module_path}_test.exs",
        "test_command_template": "mix test {test_file}",
    }
    if _mix_depends_on(repo, "excoveralls"):
        # excoveralls' LCOV task runs mix test with its arguments and writes cover/lcov.info.
        settings["coverage_command_template"] = (
            "MIX_ENV=test mix coveralls.lcov {test_file}; code=$?; "
            "cp cover/lcov.info {report_file}; rm -f cover/lcov.info; exit $code"
        )
        settings["coverage_report_format"] = "lcov"
        return Conventions(ELIXIR, settings)
    settings.update(
        coverage_command_template="mix test {test_file}",
        min_line_coverage=None,
        min_branch_coverage=None,
    )
    return Conventions(
        ELIXIR,
        settings,
        [
            "coverage is not measured: mix writes LCOV only through a dependency; with "
            "excoveralls in mix.exs (mix coveralls.lcov) --conventions measures it, else set "
            "coverage_command_template, coverage_report_format and min_line_coverage."
        ],
    )


def _mix_depends_on(repo: Path, package: str) -> bool:
    """Whether ``mix.exs`` names the dependency ``:package`` (read as text: it is code)."""
    try:
        text = (repo / "mix.exs").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(rf"\{{\s*:{re.escape(package)}\b", text) is not None


def _test_runner(repo: Path) -> str | None:
    """vitest or jest when ``package.json`` depends on it (any kind of dependency)."""
    try:
        package = json.loads((repo / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(package, dict):
        return None
    named: set[str] = set()
    for key in ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"):
        listed = package.get(key)
        if isinstance(listed, dict):
            named.update(str(name) for name in listed)
    for runner in ("vitest", "jest"):
        if runner in named:
            return runner
    return None
