"""Judging a verification: what VerifyTests measured of a component's tests, against the
project's bar, as the ordered problem texts. Plain functions; the VerifyTests and ImproveTests
steps call them, and nothing else knows the texts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TESTS_FAILED = "Tests failed in {failed} of {runs} runs"
NO_COVERAGE = "No coverage data for {source_path}"
LINE_BELOW = "Line coverage of {source_path} is {value}%, below {minimum}%"
BRANCH_BELOW = "Branch coverage of {source_path} is {value}%, below {minimum}%"
NO_ASSERTIONS = "Tests without assertions: {names}"
CHANGED_FILES = "Files changed outside the test file: {paths}"
NOT_MET = "Tests do not meet the project's bar after {attempts} improvement attempts: {problems}"
PROBLEM_SEPARATOR = "; "


@dataclass(frozen=True)
class Bar:
    min_line_coverage: int | None
    min_branch_coverage: int | None
    require_assertions: bool

    @classmethod
    def of(cls, project: Any) -> Bar:
        return cls(
            min_line_coverage=project.min_line_coverage,
            min_branch_coverage=project.min_branch_coverage,
            require_assertions=project.require_assertions,
        )


@dataclass(frozen=True)
class Coverage:
    lines_total: int
    lines_covered: int
    branches_total: int | None = None
    branches_covered: int | None = None
    missing_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class Measured:
    """A verification as reported (``data.verification``), checked."""

    runs: tuple[int, ...]
    coverage: Coverage | None = None
    tests_without_assertions: tuple[str, ...] = ()
    changed_files: tuple[str, ...] = ()
    as_reported: dict[str, Any] = field(default_factory=dict)


def tenths(covered: int, total: int) -> int:
    """covered/total as a percentage in tenths, rounded down: 100 of 120 is 833."""
    return covered * 1000 // total


def percent_text(value: int) -> str:
    return f"{value // 10}.{value % 10}"


def percent(covered: int | None, total: int | None) -> float | None:
    """The percentage as a number with one decimal, rounded down; None without a total."""
    if covered is None or not total:
        return None
    return tenths(covered, total) / 10


class Malformed(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"verification.{field} {problem}")
        self.text = f"verification.{field} {problem}"


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(name, "must be an integer.")
    if value < 0:
        raise Malformed(name, "must not be below 0.")
    return value


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed(name, "must be a list of strings.")
    return tuple(value)


def read(verification: Any) -> Measured:
    """``data.verification`` checked; ``Malformed`` naming the first field at fault."""
    if not isinstance(verification, Mapping):
        raise Malformed("", "must be an object.") from None
    runs = verification.get("runs")
    if (
        not isinstance(runs, list)
        or not runs
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in runs)
    ):
        raise Malformed("runs", "must be a non-empty list of integers (each run's exit code).")
    coverage = verification.get("coverage")
    checked: Coverage | None = None
    if coverage is not None:
        if not isinstance(coverage, Mapping):
            raise Malformed("coverage", "must be an object or null.")
        lines_total = _count(coverage.get("lines_total"), "coverage.lines_total")
        lines_covered = _count(coverage.get("lines_covered"), "coverage.lines_covered")
        if lines_covered > lines_total:
            raise Malformed("coverage.lines_covered", "must not be above lines_total.")
        branches_total = branches_covered = None
        if "branches_total" in coverage or "branches_covered" in coverage:
            branches_total = _count(coverage.get("branches_total"), "coverage.branches_total")
            branches_covered = _count(coverage.get("branches_covered"), "coverage.branches_covered")
            if branches_covered > branches_total:
                raise Malformed("coverage.branches_covered", "must not be above branches_total.")
        missing = coverage.get("missing_lines", [])
        if not isinstance(missing, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in missing
        ):
            raise Malformed("coverage.missing_lines", "must be a list of line numbers.")
        checked = Coverage(
            lines_total, lines_covered, branches_total, branches_covered, tuple(sorted(missing))
        )
    return Measured(
        runs=tuple(runs),
        coverage=checked,
        tests_without_assertions=_texts(
            verification.get("tests_without_assertions", []), "tests_without_assertions"
        ),
        changed_files=_texts(verification.get("changed_files", []), "changed_files"),
        as_reported=dict(verification),
    )


def without_measurements(code: int | None, status: str) -> Measured:
    """What a client that measured nothing reported (a result with no ``data.verification``):
    one run, with its exit code; no coverage, no assertion check."""
    exit_code = code if code is not None else (0 if status != "error" else 1)
    return Measured(runs=(exit_code,), as_reported={"runs": [exit_code], "coverage": None})


def problems(measured: Measured, bar: Bar, source_path: str | None) -> list[str]:
    """What keeps the tests below the bar, in the contract's order; empty when they meet it."""
    found: list[str] = []
    failed = sum(1 for code in measured.runs if code != 0)
    if failed:
        found.append(TESTS_FAILED.format(failed=failed, runs=len(measured.runs)))
    coverage = measured.coverage
    wants_coverage = bar.min_line_coverage is not None or bar.min_branch_coverage is not None
    if source_path and wants_coverage:
        if coverage is None:
            found.append(NO_COVERAGE.format(source_path=source_path))
        else:
            found += _coverage_problems(coverage, bar, source_path)
    if bar.require_assertions and measured.tests_without_assertions:
        found.append(NO_ASSERTIONS.format(names=", ".join(measured.tests_without_assertions)))
    if measured.changed_files:
        found.append(CHANGED_FILES.format(paths=", ".join(measured.changed_files)))
    return found


def _coverage_problems(coverage: Coverage, bar: Bar, source_path: str) -> list[str]:
    found = []
    minimum = bar.min_line_coverage
    if minimum is not None and coverage.lines_total:
        value = tenths(coverage.lines_covered, coverage.lines_total)
        if value < minimum * 10:
            found.append(
                LINE_BELOW.format(
                    source_path=source_path, value=percent_text(value), minimum=minimum
                )
            )
    minimum = bar.min_branch_coverage
    # A file with no branches has no branch problem.
    if minimum is not None and coverage.branches_total:
        value = tenths(coverage.branches_covered or 0, coverage.branches_total)
        if value < minimum * 10:
            found.append(
                BRANCH_BELOW.format(
                    source_path=source_path, value=percent_text(value), minimum=minimum
                )
            )
    return found


def line_ranges(lines: Iterable[int]) -> str:
    """[3, 4, 5, 9, 12, 13] → "3-5, 9, 12-13"."""
    ranges: list[list[int]] = []
    for line in sorted(set(lines)):
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)
