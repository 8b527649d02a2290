"""Session type → workflow: its ordered steps and the route from one step to the next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from sessions_app.models import SessionStatus
from sessions_app.workflows.protocol import Step
from sessions_app.workflows.session_types import (
    COMPONENT_TEST_SESSIONS,
    CONTEXT_TESTING_SESSIONS,
    REGISTERED,
)
from sessions_app.workflows.steps.finalize import FinalizeComponent, FinalizeContext
from sessions_app.workflows.steps.fix_compilation_errors import FixCompilationErrors
from sessions_app.workflows.steps.generate_tests_and_fixtures import GenerateTestsAndFixtures
from sessions_app.workflows.steps.improve_tests import ImproveTests
from sessions_app.workflows.steps.initialize import Initialize
from sessions_app.workflows.steps.run_tests import ENVIRONMENT_ERROR, RunTests
from sessions_app.workflows.steps.spawn_component_testing_sessions import (
    SpawnComponentTestingSessions,
)
from sessions_app.workflows.steps.verify_tests import BELOW_BAR, VerifyTests


@dataclass(frozen=True)
class Workflow:
    """Steps in order. By default an ok (or warning) result moves to the next step and an
    error repeats the step (the last step's too: the service fails a session whose step keeps
    failing, after the project's ``max_step_attempts``); past the last step, ok completes the
    session. ``routes`` overrides a (step, outcome) pair; an outcome is "ok" or "error", or a
    finer one a step names for its result (``Step.outcome``)."""

    name: str
    steps: tuple[Step, ...]
    routes: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"{self.name} has no step {name}")

    def following(self, last_step: str | None, result: Mapping[str, Any] | None) -> str:
        """The step to run after ``last_step`` ended with the stored ``result``, or
        ``SessionStatus.COMPLETE`` when the workflow has ended."""
        if last_step is None or result is None:
            return self.next_step(last_step, None)
        step = self.step(last_step)
        outcome = step.outcome(result) if hasattr(step, "outcome") else result.get("status")
        return self.next_step(last_step, outcome)

    def next_step(self, last_step: str | None, outcome: str | None) -> str:
        """The step to run after ``last_step`` ended with ``outcome`` (a result's status, or a
        finer outcome a route names), or ``SessionStatus.COMPLETE`` past the last step."""
        if last_step is None:
            return self.steps[0].name
        if (last_step, outcome) in self.routes:
            return self.routes[(last_step, outcome)]
        outcome = "error" if outcome not in ("ok", "warning", None) else "ok"
        if (last_step, outcome) in self.routes:
            return self.routes[(last_step, outcome)]
        names = [step.name for step in self.steps]
        index = names.index(last_step)
        if outcome == "error":
            return last_step
        return SessionStatus.COMPLETE if index == len(names) - 1 else names[index + 1]


SPAWN_STEP = SpawnComponentTestingSessions()

WORKFLOWS: dict[str, Workflow] = {
    CONTEXT_TESTING_SESSIONS: Workflow(
        name=CONTEXT_TESTING_SESSIONS,
        steps=(Initialize(), SPAWN_STEP, FinalizeContext()),
    ),
    COMPONENT_TEST_SESSIONS: Workflow(
        name=COMPONENT_TEST_SESSIONS,
        steps=(
            Initialize(),
            GenerateTestsAndFixtures(),
            RunTests(),
            FixCompilationErrors(),
            VerifyTests(),
            ImproveTests(),
            FinalizeComponent(),
        ),
        routes={
            ("RunTests", "ok"): "VerifyTests",
            ("RunTests", "error"): "FixCompilationErrors",
            # The test run could not judge the tests: the agent cannot fix that.
            ("RunTests", ENVIRONMENT_ERROR): "RunTests",
            ("FixCompilationErrors", "ok"): "RunTests",
            ("VerifyTests", "ok"): "Finalize",
            ("VerifyTests", BELOW_BAR): "ImproveTests",
            ("ImproveTests", "ok"): "RunTests",
        },
    ),
}


# The names the models validate against and the workflows defined here are one list.
assert tuple(WORKFLOWS) == REGISTERED, "session_types.REGISTERED and WORKFLOWS disagree"


def session_types() -> list[str]:
    return list(WORKFLOWS)


def get_workflow(session_type: str) -> Workflow:
    try:
        return WORKFLOWS[session_type]
    except KeyError:
        raise InvalidInput(
            f"Unknown session type: {session_type}",
            {"type": [f"Unknown session type: {session_type}"]},
        ) from None
