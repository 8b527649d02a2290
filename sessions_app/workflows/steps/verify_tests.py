"""VerifyTests: show that the component's tests test it. The runner runs the project's coverage
command ``runs`` times, reads the coverage report and checks the test file for assertions; the
step judges what it reports against the project's bar (``sessions_app.quality_bar``) and keeps
the verification. Below the bar the workflow goes to ImproveTests, until
``max_improve_attempts`` rounds have not been enough."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import InvalidInput
from core.scope import Scope
from sessions_app import quality_bar
from sessions_app.models import Interaction, Session, SessionStatus, Verification
from sessions_app.selectors import short_id
from sessions_app.workflows import conventions
from sessions_app.workflows.steps.common import clip
from sessions_app.workflows.steps.run_tests import current_test_file
from sessions_app.workflows.types import Command, Result, StepOutcome

BELOW_BAR = "below_bar"
REPORT_SUFFIX = {"coverage.py-json": "json", "lcov": "info", "cobertura": "xml", "go-cover": "out"}


def report_file(session: Session, report_format: str) -> str:
    """Where the coverage command writes its report: under .spawnctl/, one per session."""
    return f".spawnctl/coverage-{short_id(session.pk)}.{REPORT_SUFFIX.get(report_format, 'out')}"


# The mutation tool the runner drives (spawnctl/mutation.py says why this one).
MUTATION_TOOL = "cosmic-ray"


def mutation_plan(
    scope: Scope, session: Session, test_file: str, source_path: str | None
) -> dict[str, Any] | None:
    """What the runner needs to run the mutation gate (None when it does not apply): the
    source file to mutate, the test command that judges each mutant (the project's, for the
    component's test file alone), the sample's size, each mutant's time limit, and where the
    tool keeps its session (under .spawnctl/)."""
    project = scope.project
    if not quality_bar.Bar.of(project).wants_mutation(source_path):
        return None
    return {
        "tool": MUTATION_TOOL,
        "source_path": source_path,
        "test_command": conventions.test_command(project, test_file),
        "max_mutants": project.max_mutants,
        "timeout_seconds": project.mutant_timeout_seconds,
        "session_file": f".spawnctl/mutation-{short_id(session.pk)}.sqlite",
    }


class VerifyTests:
    name = "VerifyTests"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        project = scope.project
        test_file = current_test_file(scope, session)
        source_path = session.component.source_path if session.component else None
        report = report_file(session, project.coverage_report_format)
        return Command(
            module=self.name,
            command=conventions.coverage_command(project, test_file, source_path, report),
            metadata={
                "test_file": test_file,
                "source_path": source_path,
                "runs": project.test_runs,
                "report_file": report,
                "report_format": project.coverage_report_format,
                "assertion_check": "python" if test_file.endswith(".py") else None,
                "mutation": mutation_plan(scope, session, test_file, source_path),
            },
        )

    def outcome(self, result: Mapping[str, Any]) -> str | None:
        """``below_bar`` for a verdict with problems (ImproveTests follows), else the status."""
        data = result.get("data")
        if result.get("status") == "error" and isinstance(data, Mapping) and "verification" in data:
            return BELOW_BAR
        return result.get("status")

    def counts_as_failed_attempt(self, result: Mapping[str, Any]) -> bool:
        """A verdict counts towards ``max_improve_attempts`` only; an error of the step itself
        (the command could not run) towards ``max_step_attempts``."""
        return self.outcome(result) == "error"

    def handle_result(
        self,
        scope: Scope,
        session: Session,
        result: Result,
        *,
        interaction: Interaction | None = None,
        **opts: Any,
    ) -> StepOutcome:
        data = result.data if isinstance(result.data, Mapping) else {}
        if "verification" in data:
            try:
                measured = quality_bar.read(data["verification"])
            except quality_bar.Malformed as error:
                raise InvalidInput("Invalid result", {"data": [error.text]}) from None
        elif result.status == "error" and result.error_message:
            # The command itself failed (it could not start, it timed out): no verdict.
            return StepOutcome(session_updates={}, result=result)
        else:
            measured = quality_bar.without_measurements(result.code, result.status)
        source_path = session.component.source_path if session.component else None
        found = quality_bar.problems(measured, quality_bar.Bar.of(scope.project), source_path)
        verification = _store(session, interaction, measured, source_path, found)
        stored = Result(
            **{**result.__dict__, "data": {**data, "verification": measured.as_reported}}
        )
        updates: dict[str, Any] = {"latest_verification": verification}
        if not found:
            return StepOutcome(session_updates=updates, result=stored.with_ok())
        verdict = quality_bar.PROBLEM_SEPARATOR.join(found)
        state = dict(session.state)
        if any(code != 0 for code in measured.runs):
            # What the failing run printed (the runner sends the first failing run's output):
            # ImproveTests shows it, and so do the run page and the admin, so a coverage
            # command that cannot run at all ("No module named coverage") is seen as such.
            output = "\n".join(part for part in (result.stdout, result.stderr) if part)
            state["last_test_output"] = clip(output)
        attempts = session.state.get("improve_attempts", 0)
        if attempts >= scope.project.max_improve_attempts:
            reason = quality_bar.NOT_MET.format(attempts=attempts, problems=verdict)
            updates["status"] = SessionStatus.FAILED
            state["error"] = reason
        if state != session.state:
            updates["state"] = state
        return StepOutcome(session_updates=updates, result=stored.with_error(verdict))


def _store(
    session: Session,
    interaction: Interaction | None,
    measured: quality_bar.Measured,
    source_path: str | None,
    found: list[str],
) -> Verification | None:
    if interaction is None:
        return None
    coverage = measured.coverage
    mutation = measured.mutation
    score = mutation.score() if mutation else None
    return Verification.objects.create(
        session=session,
        interaction=interaction,
        passed=not found,
        runs=list(measured.runs),
        source_path=source_path or "",
        lines_total=coverage.lines_total if coverage else None,
        lines_covered=coverage.lines_covered if coverage else None,
        branches_total=coverage.branches_total if coverage else None,
        branches_covered=coverage.branches_covered if coverage else None,
        line_coverage=quality_bar.percent(
            coverage.lines_covered if coverage else None, coverage.lines_total if coverage else None
        ),
        branch_coverage=quality_bar.percent(
            coverage.branches_covered if coverage else None,
            coverage.branches_total if coverage else None,
        ),
        missing_lines=list(coverage.missing_lines) if coverage else [],
        tests_without_assertions=list(measured.tests_without_assertions),
        changed_files=list(measured.changed_files),
        mutants_sampled=mutation.sampled if mutation else None,
        mutants_killed=mutation.killed if mutation else None,
        mutants_survived=mutation.survived if mutation else None,
        mutants_timed_out=mutation.timed_out if mutation else None,
        mutants_incompetent=mutation.incompetent if mutation else None,
        mutation_score=score / 10 if score is not None else None,
        surviving_mutants=[survivor.as_dict() for survivor in mutation.survivors]
        if mutation
        else [],
        problems=found,
    )
