"""What a context run's page shows: each child, the steps it went through, and a tag that
changes whenever any of it does (so a polling page gets 304 while nothing happened)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from core.scope import Scope
from sessions_app import selectors
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows.registry import SPAWN_STEP


def visible_sessions(user) -> QuerySet[Session]:
    """The sessions a staff member may open: all for a superuser, else their projects' (the
    admin's own rule, ``ProjectScopedAdmin``)."""
    if user.is_superuser:
        return Session.objects.all()
    return selectors.sessions_for_user(user)


@dataclass(frozen=True)
class Step:
    """One interaction: a step handed out and, once reported, how it ended."""

    name: str
    attempt: int
    started: datetime
    finished: datetime | None
    status: str | None  # the result's status; None while pending
    duration_ms: int | None
    error_message: str | None

    @property
    def seconds(self) -> float | None:
        """Wall time from the command handed out to its result reported."""
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


@dataclass
class ChildRow:
    session: Session
    name: str
    stalled: bool
    reason: str
    steps: list[Step] = field(default_factory=list)

    @property
    def current_steps(self) -> list[Step]:
        """The steps of the child's current attempt (a retry starts the workflow again)."""
        return [step for step in self.steps if step.attempt == self.session.attempt]

    @property
    def current_step(self) -> Step | None:
        steps = self.current_steps
        return steps[-1] if steps else None

    @property
    def started(self) -> datetime | None:
        steps = self.current_steps
        return steps[0].started if steps else None

    @property
    def seconds(self) -> float | None:
        """A finished child's wall time, first step handed out to last result reported."""
        steps = self.current_steps
        if not self.session.is_finished or not steps or steps[-1].finished is None:
            return None
        return (steps[-1].finished - steps[0].started).total_seconds()

    @property
    def command_ms(self) -> int | None:
        """How long its commands ran, as the runner measured them (``duration_ms``)."""
        measured = [s.duration_ms for s in self.current_steps if s.duration_ms is not None]
        return sum(measured) if measured else None

    @property
    def last_test_output(self) -> str:
        output = self.session.state.get("last_test_output") if self.session.state else None
        return output if isinstance(output, str) else ""


@dataclass
class Run:
    session: Session
    children: list[ChildRow]
    summary: selectors.ChildrenSummary
    now: datetime
    #: Child components of the context with no child session (added after the spawn).
    missing: list[str] = field(default_factory=list)
    #: What the spawn step's latest result check said, when it refused to end the run.
    check_message: str = ""
    #: The context's own steps, for its row of the timeline.
    steps: list[Step] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        """An active run with failed, stalled or missing children: it will not end by itself."""
        summary = self.summary
        return not self.session.is_finished and bool(
            summary.failed or summary.stalled or self.missing
        )

    @property
    def progress_text(self) -> str:
        """``1/5 complete, 2 failed, 1 stalled, 1 running``: every count that is not zero."""
        summary = self.summary
        running = summary.active - summary.stalled
        parts = [f"{summary.complete}/{summary.total} complete"]
        for count, word in (
            (summary.failed, "failed"),
            (summary.stalled, "stalled"),
            (running, "running"),
            (summary.cancelled, "cancelled"),
            (len(self.missing), "missing"),
        ):
            if count:
                parts.append(f"{count} {word}")
        return ", ".join(parts)

    @property
    def is_live(self) -> bool:
        """Whether the page should keep polling: something can still change by itself."""
        return not self.session.is_finished or any(
            not row.session.is_finished for row in self.children
        )


def _as_int(value: object) -> int | None:
    # KT gives text on PostgreSQL and a number on SQLite; a client may also have sent junk
    # the service refused, so anything that is not a whole number shows as unknown.
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if number >= 0 else None


def child_steps(*, session: Session) -> dict[object, list[Step]]:
    """Every step of ``session`` and of every child of it, oldest first, by session id: one
    query, and none of the commands' or results' bulk (output is read from the child's
    state)."""
    steps: dict[object, list[Step]] = {}
    rows = (
        Interaction.objects.filter(
            Q(session__parent_session_id=session.pk) | Q(session_id=session.pk)
        )
        .order_by("created_at", "id")
        .values_list(
            "session_id",
            "step_name",
            "attempt",
            "created_at",
            "completed_at",
            KT("result__status"),
            KT("result__duration_ms"),
            KT("result__error_message"),
        )
    )
    for child_id, name, attempt, created, completed, status, duration, error in rows:
        steps.setdefault(child_id, []).append(
            Step(
                name=name,
                attempt=attempt,
                started=created,
                finished=completed,
                status=status,
                duration_ms=_as_int(duration),
                error_message=error,
            )
        )
    return steps


def run_for(*, session: Session, now: datetime | None = None) -> Run:
    """The run page of ``session``: three queries whatever the number of children or steps
    (the children, every step, the components without a child)."""
    now = now or timezone.now()
    children = list(selectors.child_sessions_with_cost(session=session))
    steps = child_steps(session=session)
    missing = (
        [
            component.name
            for component in selectors.components_without_child_session(
                scope=Scope(user=None, project=session.project),
                context_id=session.component_id,
                parent_session=session,
            )
        ]
        if session.component_id and children
        else []
    )
    own = steps.pop(session.pk, [])
    check = next(
        (
            step.error_message
            for step in reversed(own)
            if step.name == SPAWN_STEP.name and step.status == "error"
        ),
        "",
    )
    rows = [
        ChildRow(
            session=child,
            name=selectors.display_name(child),
            stalled=child.is_stalled(now),
            reason=selectors.shown_failure_reason(child) or "",
            steps=steps.get(child.pk, []),
        )
        for child in children
    ]
    return Run(
        session=session,
        children=rows,
        summary=selectors.summarize(children, now=now),
        now=now,
        missing=missing,
        check_message=check or "",
        steps=own,
    )


def run_etag(*, session: Session, now: datetime | None = None) -> str:
    """A tag of everything the run page shows, from two small queries and no rendering.

    Children's rows are hashed whole (a write through ``update()`` does not bump
    ``updated_at``); steps by count and latest times (a step only ever gains a result);
    and which children are stalled at ``now``, which changes with no write at all.
    """
    now = now or timezone.now()
    digest = hashlib.sha256()
    sessions = (
        Session.objects.filter(Q(pk=session.pk) | Q(parent_session_id=session.pk))
        .order_by("id")
        .values_list(
            "id",
            "status",
            "attempt",
            "runner",
            "leased_until",
            "updated_at",
            "state",
            "component",
            "branch",
            "latest_verification",
        )
    )
    for row in sessions:
        status, leased_until = row[1], row[4]
        stalled = (
            status == SessionStatus.ACTIVE and leased_until is not None and leased_until <= now
        )
        digest.update(repr((row, stalled)).encode())
    steps = Interaction.objects.filter(
        Q(session_id=session.pk) | Q(session__parent_session_id=session.pk)
    ).aggregate(count=Count("id"), created=Max("created_at"), completed=Max("completed_at"))
    digest.update(repr(sorted(steps.items())).encode())
    return f'"{digest.hexdigest()[:32]}"'
