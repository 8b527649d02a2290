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
NO_MUTATION = "No mutation data for {source_path}"
MUTATION_BELOW = "Mutation score of {source_path} is {value}%, below {minimum}%"
NOT_MET = "Tests do not meet the project's bar after {attempts} improvement attempts: {problems}"
PROBLEM_SEPARATOR = "; "


@dataclass(frozen=True)
class Bar:
    min_line_coverage: int | None
    min_branch_coverage: int | None
    require_assertions: bool
    min_mutation_score: int | None = None

    @classmethod
    def of(cls, project: Any) -> Bar:
        return cls(
            min_line_coverage=project.min_line_coverage,
            min_branch_coverage=project.min_branch_coverage,
            require_assertions=project.require_assertions,
            min_mutation_score=project.min_mutation_score,
        )

    def wants_mutation(self, source_path: str | None) -> bool:
        """Whether the mutation gate applies to a component with ``source_path``: it is on, and
        the file is one the mutation tool can change (Python, for cosmic-ray)."""
        return (
            self.min_mutation_score is not None
            and bool(source_path)
            and str(source_path).endswith(MUTABLE_SUFFIXES)
        )


# The source files the mutation gate's tool (cosmic-ray) mutates.
MUTABLE_SUFFIXES = (".py",)
# How many surviving mutants a verification lists (the counts cover them all).
MAX_SURVIVORS = 100
MAX_CHANGE_LENGTH = 1000


@dataclass(frozen=True)
class Coverage:
    lines_total: int
    lines_covered: int
    branches_total: int | None = None
    branches_covered: int | None = None
    missing_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class Survivor:
    """A mutant the tests did not catch: where it is, and what it changed."""

    line: int
    column: int
    operator: str
    change: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "column": self.column,
            "operator": self.operator,
            "change": self.change,
        }

    def text(self, source_path: str) -> str:
        return f"{source_path}:{self.line}: {self.change}"


@dataclass(frozen=True)
class Mutation:
    """The sampled mutants of the source file, by outcome (each counted once)."""

    sampled: int
    killed: int
    survived: int
    timed_out: int
    incompetent: int = 0
    survivors: tuple[Survivor, ...] = ()

    @property
    def judged(self) -> int:
        """The mutants the tests ran against: caught (killed or timed out) or not."""
        return self.killed + self.timed_out + self.survived

    def score(self) -> int | None:
        """Caught over judged in tenths of a percent, rounded down; None with none judged."""
        if not self.judged:
            return None
        return tenths(self.killed + self.timed_out, self.judged)


@dataclass(frozen=True)
class Measured:
    """A verification as reported (``data.verification``), checked."""

    runs: tuple[int, ...]
    coverage: Coverage | None = None
    tests_without_assertions: tuple[str, ...] = ()
    changed_files: tuple[str, ...] = ()
    mutation: Mutation | None = None
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


# What the database keeps of a count (a PositiveIntegerField on every backend).
MAX_COUNT = 2**31 - 1


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(name, "must be an integer.")
    if value < 0:
        raise Malformed(name, "must not be below 0.")
    if value > MAX_COUNT:
        raise Malformed(name, f"must be at most {MAX_COUNT}.")
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
        mutation=_mutation(verification.get("mutation")),
        as_reported=dict(verification),
    )


def _mutation(reported: Any) -> Mutation | None:
    if reported is None:
        return None
    if not isinstance(reported, Mapping):
        raise Malformed("mutation", "must be an object or null.")
    counts = {
        name: _count(reported.get(name, 0 if name == "incompetent" else None), f"mutation.{name}")
        for name in ("sampled", "killed", "survived", "timed_out", "incompetent")
    }
    if (
        counts["killed"] + counts["survived"] + counts["timed_out"] + counts["incompetent"]
        != (counts["sampled"])
    ):
        raise Malformed("mutation.sampled", "must be killed + survived + timed_out + incompetent.")
    listed = reported.get("survivors", [])
    if not isinstance(listed, list):
        raise Malformed("mutation.survivors", "must be a list.")
    if len(listed) > min(counts["survived"], MAX_SURVIVORS):
        raise Malformed(
            "mutation.survivors",
            f"must list at most the {counts['survived']} survived (and {MAX_SURVIVORS}).",
        )
    return Mutation(**counts, survivors=tuple(_survivor(item, n) for n, item in enumerate(listed)))


def _survivor(item: Any, index: int) -> Survivor:
    name = f"mutation.survivors[{index}]"
    if not isinstance(item, Mapping):
        raise Malformed(name, "must be an object.")
    line = _count(item.get("line"), f"{name}.line")
    if line < 1:
        raise Malformed(f"{name}.line", "must be a line number (from 1).")
    column = _count(item.get("column", 0), f"{name}.column")
    texts = {}
    for key in ("operator", "change"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_CHANGE_LENGTH:
            raise Malformed(
                f"{name}.{key}", f"must be a text of 1 to {MAX_CHANGE_LENGTH} characters."
            )
        texts[key] = value
    return Survivor(line=line, column=column, **texts)


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
    if bar.wants_mutation(source_path):
        found += _mutation_problems(measured, bar, str(source_path), tests_failed=bool(failed))
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


def _mutation_problems(
    measured: Measured, bar: Bar, source_path: str, *, tests_failed: bool
) -> list[str]:
    """Mutants are run only against tests that pass: failing tests are their own problem,
    and no mutation data is one only when they passed."""
    mutation = measured.mutation
    if mutation is None:
        return [] if tests_failed else [NO_MUTATION.format(source_path=source_path)]
    value = mutation.score()
    if value is None:
        # Nothing to mutate passes; mutants none of which could be judged are no data.
        return [NO_MUTATION.format(source_path=source_path)] if mutation.sampled else []
    if bar.min_mutation_score is None or value >= bar.min_mutation_score * 10:
        return []
    return [
        MUTATION_BELOW.format(
            source_path=source_path, value=percent_text(value), minimum=bar.min_mutation_score
        )
    ]


def line_ranges(lines: Iterable[int]) -> str:
    """[3, 4, 5, 9, 12, 13] → "3-5, 9, 12-13"."""
    ranges: list[list[int]] = []
    for line in sorted(set(lines)):
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)
