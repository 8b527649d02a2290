"""What the loops tell the reporter. Plain values: the loops emit them, ``progress`` shows
them, and tests collect them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Spawned:
    """The context's children, in spawn order."""

    context_id: str
    children: tuple[str, ...]  # names


@dataclass(frozen=True)
class ChildrenCounted:
    """The context's children as the server counts them (its children summary): every child,
    whoever runs it, so the run's overall progress is right with several runners."""

    context_id: str
    total: int
    complete: int
    failed: int
    cancelled: int
    active: int = 0
    stalled: int = 0

    @classmethod
    def of(cls, context_id: str, summary: Mapping[str, object]) -> ChildrenCounted:
        def count(name: str) -> int:
            value = summary.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            context_id,
            total=count("total"),
            complete=count("complete"),
            failed=count("failed"),
            cancelled=count("cancelled"),
            active=count("active"),
            stalled=count("stalled"),
        )


@dataclass(frozen=True)
class StepStarted:
    session_id: str
    name: str
    step: str
    is_child: bool


@dataclass(frozen=True)
class StepEnded:
    session_id: str
    name: str
    step: str
    status: str  # the result as the server judged it: ok, error, warning
    code: int | None
    duration_ms: int
    error_message: str | None
    is_child: bool


@dataclass(frozen=True)
class Retrying:
    """A step whose result was an error runs again after ``seconds``."""

    session_id: str
    name: str
    step: str
    seconds: float
    is_child: bool


@dataclass(frozen=True)
class SessionEnded:
    session_id: str
    name: str
    status: str
    reason: str | None
    attempt: int
    is_child: bool


@dataclass(frozen=True)
class Released:
    """A session given up unfinished (stopped, or its lease was lost)."""

    session_id: str
    name: str
    why: str
    is_child: bool


@dataclass(frozen=True)
class WorktreeSetUp:
    """The project's setup command ran in a child's new worktree."""

    session_id: str
    name: str
    ok: bool
    duration_ms: int


@dataclass(frozen=True)
class WorktreeKept:
    """A failed child's worktree, left in place for a look (``--keep-worktrees``)."""

    session_id: str
    name: str
    path: str


@dataclass(frozen=True)
class WorktreesPruned:
    """Worktrees left by runners that stopped, removed before this one starts."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class LeaseHeld:
    """Waiting for a session another runner holds; it is taken over once ``until`` passes."""

    session_id: str
    name: str
    runner: str
    until: str


@dataclass(frozen=True)
class Waiting:
    """Nothing to run here now; ``message`` says what is awaited."""

    message: str


@dataclass(frozen=True)
class CannotContinue:
    message: str


@dataclass(frozen=True)
class Notice:
    """Something went wrong that the loop survives (a request that failed, a lost lease)."""

    message: str


Event = (
    Spawned
    | ChildrenCounted
    | StepStarted
    | StepEnded
    | Retrying
    | SessionEnded
    | Released
    | WorktreeSetUp
    | WorktreeKept
    | WorktreesPruned
    | LeaseHeld
    | Waiting
    | CannotContinue
    | Notice
)
Emit = Callable[[Event], None]
