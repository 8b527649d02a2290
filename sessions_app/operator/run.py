"""What a context run's page shows: each child, the steps it went through, and a tag that
changes whenever any of it does (so a polling page gets 304 while nothing happened)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from django.db.models import (
    Avg,
    Case,
    Count,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.utils import timezone

from core.scope import Scope
from sessions_app import selectors
from sessions_app.models import Interaction, Session, SessionStatus, stalled_at
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


#: Children per run page: the ones that need a look first (failed, stalled, running).
RUN_PAGE_SIZE = 50
#: Up to this many children the timeline draws one row per child; above it, each step's
#: durations as a distribution, so a run of 5,000 children costs about what 100 cost.
TIMELINE_ROW_LIMIT = 100
#: The distribution's buckets: upper bounds in seconds (the last bucket has none).
DURATION_BUCKETS = (10, 60, 300, 900)
#: The workflows' steps in the order they run, for the distribution's rows.
STEP_ORDER = (
    "Initialize",
    "SpawnComponentTestingSessions",
    "GenerateTestsAndFixtures",
    "RunTests",
    "FixCompilationErrors",
    "VerifyTests",
    "ImproveTests",
    "Finalize",
)


@dataclass(frozen=True)
class StepDistribution:
    """One step over every child of a run: how many ran, how long they took."""

    name: str
    finished: int
    running: int
    errors: int
    #: Finished steps per bucket of ``DURATION_BUCKETS``: under 10 s, under 1 m, ..., longer.
    buckets: tuple[int, ...]
    mean_seconds: float | None
    max_seconds: float | None
    first_started: datetime | None
    last_finished: datetime | None


def step_distributions(*, session: Session) -> list[StepDistribution]:
    """Each step of ``session``'s children, aggregated: one grouped query, whatever the
    number of children or steps."""
    done = Q(completed_at__isnull=False)
    bounds = (0, *DURATION_BUCKETS, None)
    buckets = {}
    for index, (low, high) in enumerate(pairwise(bounds)):
        condition = done & Q(seconds__gte=low) if index else done
        if high is not None:
            condition &= Q(seconds__lt=high)
        buckets[f"bucket_{index}"] = Count("id", filter=condition)
    rows = (
        Interaction.objects.filter(session__parent_session_id=session.pk)
        .values("step_name")
        .annotate(
            finished=Count("id", filter=done),
            running=Count("id", filter=Q(completed_at__isnull=True)),
            errors=Count("id", filter=Q(result__status="error")),
            mean=Avg("seconds", filter=done),
            longest=Max("seconds", filter=done),
            first=Min("created_at"),
            last=Max("completed_at"),
            **buckets,
        )
        .order_by()
    )
    found = [
        StepDistribution(
            name=row["step_name"],
            finished=row["finished"],
            running=row["running"],
            errors=row["errors"],
            buckets=tuple(row[name] for name in buckets),
            mean_seconds=row["mean"],
            max_seconds=row["longest"],
            first_started=row["first"],
            last_finished=row["last"],
        )
        for row in rows
    ]
    order = {name: index for index, name in enumerate(STEP_ORDER)}
    return sorted(found, key=lambda each: (order.get(each.name, len(order)), each.name))


def _attention_rank(now: datetime) -> Case:
    """Failed first, then stalled, then running (a live lease), then waiting, then the rest."""
    return Case(
        When(status=SessionStatus.FAILED, then=Value(0)),
        When(stalled_at(now), then=Value(1)),
        When(status=SessionStatus.ACTIVE, runner__isnull=False, then=Value(2)),
        When(status=SessionStatus.ACTIVE, then=Value(3)),
        default=Value(4),
        output_field=IntegerField(),
    )


def attention_ids(*, session: Session, now: datetime, offset: int, limit: int) -> list[Any]:
    """The ids of one page of ``session``'s children, those that need a look first."""
    return list(
        Session.objects.filter(parent_session_id=session.pk, project_id=session.project_id)
        .annotate(rank=_attention_rank(now))
        .order_by("rank", *selectors.SPAWN_ORDER)
        .values_list("pk", flat=True)[offset : offset + limit]
    )


def page_ids(
    *, session: Session, summary: selectors.ChildrenSummary, page: object, now: datetime
) -> list[Any]:
    """The ids of the children run page ``page`` shows, in the order shown."""
    shown = RunPage.of(summary.total, page)
    return attention_ids(session=session, now=now, offset=shown.offset, limit=RUN_PAGE_SIZE)


@dataclass(frozen=True)
class RunPage:
    """Which children a run page shows: page ``number`` of ``count`` pages."""

    number: int
    count: int
    offset: int

    @classmethod
    def of(cls, total: int, asked: object) -> RunPage:
        pages = max(1, -(-total // RUN_PAGE_SIZE))
        try:
            number = int(str(asked))
        except ValueError:
            number = 1
        number = min(max(number, 1), pages)
        return cls(number=number, count=pages, offset=(number - 1) * RUN_PAGE_SIZE)

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


@dataclass
class Run:
    session: Session
    #: One page of the children, those that need a look first.
    children: list[ChildRow]
    summary: selectors.ChildrenSummary
    now: datetime
    page: RunPage = field(default_factory=lambda: RunPage(1, 1, 0))
    #: Child components of the context with no child session (added after the spawn).
    missing: list[str] = field(default_factory=list)
    #: What the spawn step's latest result check said, when it refused to end the run.
    check_message: str = ""
    #: The context's own steps, for its row of the timeline.
    steps: list[Step] = field(default_factory=list)
    #: Every child's rows for the timeline, when there are at most ``TIMELINE_ROW_LIMIT``.
    timeline_children: list[ChildRow] = field(default_factory=list)
    #: Above the limit, each step's distribution over every child instead.
    distributions: list[StepDistribution] = field(default_factory=list)

    @property
    def child_ids(self) -> list[Any]:
        """The page's children's ids, in the order shown."""
        return [row.session.pk for row in self.children]

    @property
    def aggregated(self) -> bool:
        return self.summary.total > TIMELINE_ROW_LIMIT

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
        return not self.session.is_finished or bool(self.summary.active)

    @property
    def total_seconds(self) -> float | None:
        """The run's time so far: its first step handed out to its last result (or now)."""
        starts = [step.started for step in self.steps]
        ends = [step.finished or self.now for step in self.steps]
        for row in self.timeline_children:
            starts += [step.started for step in row.steps]
            ends += [step.finished or self.now for step in row.steps]
        for each in self.distributions:
            if each.first_started is not None:
                starts.append(each.first_started)
            ends.append(self.now if each.running else each.last_finished or each.first_started)
        ends = [end for end in ends if end is not None]
        if not starts or not ends:
            return None
        return (max(ends) - min(starts)).total_seconds()


def _as_int(value: object) -> int | None:
    # KT gives text on PostgreSQL and a number on SQLite; a client may also have sent junk
    # the service refused, so anything that is not a whole number shows as unknown.
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if number >= 0 else None


def child_steps(
    *, session: Session, child_ids: list[Any] | None = None
) -> dict[object, list[Step]]:
    """Every step of ``session`` and of its children (``child_ids``: of those only), oldest
    first, by session id: one query, and none of the commands' or results' bulk (output is
    read from the child's state)."""
    steps: dict[object, list[Step]] = {}
    children = (
        Q(session__parent_session_id=session.pk)
        if child_ids is None
        else Q(session_id__in=child_ids)
    )
    rows = (
        Interaction.objects.filter(children | Q(session_id=session.pk))
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


def _rows(children: list[Session], steps: dict[object, list[Step]], now: datetime) -> list:
    return [
        ChildRow(
            session=child,
            name=selectors.display_name(child),
            stalled=child.is_stalled(now),
            reason=selectors.shown_failure_reason(child) or "",
            steps=steps.get(child.pk, []),
        )
        for child in children
    ]


def run_for(
    *,
    session: Session,
    page: object = 1,
    now: datetime | None = None,
    summary: selectors.ChildrenSummary | None = None,
    ids: list[Any] | None = None,
    distributions: list[StepDistribution] | None = None,
) -> Run:
    """The run page of ``session``: a fixed number of queries whatever the number of
    children or steps (the summary, a page of children, their steps or every child's up to
    ``TIMELINE_ROW_LIMIT``, the steps' distribution above it, the components without a
    child). The page's ``ids`` and the ``distributions`` a tag was just made from are not read
    again."""
    now = now or timezone.now()
    summary = summary or selectors.children_summary(session, now=now)
    shown = RunPage.of(summary.total, page)
    if ids is None:
        ids = page_ids(session=session, summary=summary, page=page, now=now)
    children = selectors.children_in_order(session=session, ids=ids, with_cost=True)
    aggregated = summary.total > TIMELINE_ROW_LIMIT
    steps = child_steps(session=session, child_ids=ids if aggregated else None)
    missing = (
        [
            component.name
            for component in selectors.components_without_child_session(
                scope=Scope(user=None, project=session.project),
                context_id=session.component_id,
                parent_session=session,
            )
        ]
        if session.component_id and summary.total
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
    timeline_children: list[ChildRow] = []
    if not aggregated and summary.total:
        every = (
            Session.objects.filter(parent_session_id=session.pk, project_id=session.project_id)
            .select_related("component")
            .only("id", "status", "attempt", "runner", "leased_until", "component__name")
            .order_by(*selectors.SPAWN_ORDER)
        )
        timeline_children = [
            ChildRow(
                session=child,
                name=selectors.display_name(child),
                stalled=child.is_stalled(now),
                reason="",
                steps=steps.get(child.pk, []),
            )
            for child in every
        ]
    return Run(
        session=session,
        children=_rows(children, steps, now),
        summary=summary,
        now=now,
        page=shown,
        missing=missing,
        check_message=check or "",
        steps=own,
        timeline_children=timeline_children,
        distributions=_distributions(session, aggregated, distributions),
    )


def _distributions(
    session: Session, aggregated: bool, known: list[StepDistribution] | None
) -> list[StepDistribution]:
    """The steps' distributions a large run's page draws: those already read, else read."""
    if not aggregated:
        return []
    return known if known is not None else step_distributions(session=session)


def run_etag(
    *,
    session: Session,
    page: object = 1,
    now: datetime | None = None,
    summary: selectors.ChildrenSummary | None = None,
    ids: list[Any] | None = None,
    distributions: list[StepDistribution] | None = None,
) -> str:
    """A tag of everything the run page shows, from a fixed number of small queries and no
    rendering: the summary (every child counted, stalled ones included, which changes with
    no write at all), the page's children hashed whole (a write through ``update()`` does not
    bump ``updated_at``) in the order shown, the context's row, and the steps by count and
    latest times (a step only ever gains a result). Above ``TIMELINE_ROW_LIMIT`` children the
    children's steps are the ``distributions`` the page draws (each step's counts change
    whenever one is handed out or finishes), read here unless given, and the context's own
    steps are counted apart: the page's own reads, not a second scan of every step."""
    now = now or timezone.now()
    digest = hashlib.sha256()
    summary = summary or selectors.children_summary(session, now=now)
    digest.update(repr(summary.as_dict()).encode())
    if ids is None:  # a page already read (``Run.child_ids``) is not sorted out again
        ids = page_ids(session=session, summary=summary, page=page, now=now)
    columns = (
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
        "max_cost_usd",
    )
    rows = dict(
        (row[0], row)
        for row in Session.objects.filter(Q(pk=session.pk) | Q(pk__in=ids)).values_list(*columns)
    )
    for pk in [session.pk, *ids]:
        row = rows.get(pk)
        stalled = (
            row is not None
            and row[1] == SessionStatus.ACTIVE
            and (row[4] is not None and row[4] <= now)
        )
        digest.update(repr((row, stalled)).encode())
    counted = Count("id"), Max("created_at"), Max("completed_at")
    if summary.total > TIMELINE_ROW_LIMIT:
        if distributions is None:
            distributions = step_distributions(session=session)
        digest.update(repr(distributions).encode())
        steps = Interaction.objects.filter(session_id=session.pk).aggregate(*counted)
    else:
        steps = Interaction.objects.filter(
            Q(session_id=session.pk) | Q(session__parent_session_id=session.pk)
        ).aggregate(*counted)
    digest.update(repr(sorted(steps.items())).encode())
    return f'"{digest.hexdigest()[:32]}"'
