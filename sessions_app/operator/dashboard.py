"""What the dashboard shows for each project a staff member can see.

Definitions the page states too: a *run* is a session without a parent (a context testing
session, usually); a *component session* is a ``ComponentTestSessions`` session, the unit
that passes or fails. A finished session's finishing time is its last update (the status
change); its duration is from its first step handed out to its last result reported.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from components_app.models import Project
from sessions_app import selectors
from sessions_app.models import Interaction, Session, SessionStatus, stalled_at
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SLOWEST = 5
RECENT_RUNS = 5
STALLED_SHOWN = 20


@dataclass
class Window:
    complete: int = 0
    failed: int = 0


@dataclass
class Finished:
    """A finished session as the dashboard counts it."""

    id: object
    type: str
    status: str
    parent_id: object
    component: str | None
    finished_at: datetime
    seconds: float | None


@dataclass
class ProjectDashboard:
    project: Project
    runs_in_flight: int = 0
    components_in_flight: int = 0
    runs_day: Window = field(default_factory=Window)
    runs_week: Window = field(default_factory=Window)
    components_day: Window = field(default_factory=Window)
    components_week: Window = field(default_factory=Window)
    median_seconds: float | None = None
    slowest: list[tuple[str, float]] = field(default_factory=list)
    daily: list[tuple[str, int, int]] = field(default_factory=list)
    stalled: list[Session] = field(default_factory=list)
    stalled_count: int = 0
    recent_runs: list[Session] = field(default_factory=list)
    #: What the project's steps cost over the last 7 days, and on each of them.
    cost_week: Decimal = Decimal(0)
    daily_cost: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def pass_rate(self) -> float | None:
        """Share of the week's finished component sessions that completed (failed and
        completed count; cancelled ones were stopped, not judged)."""
        judged = self.components_week.complete + self.components_week.failed
        return None if not judged else self.components_week.complete / judged


def visible_projects(user) -> list[Project]:
    projects = Project.objects.order_by("name", "id")
    return list(projects if user.is_superuser else projects.filter(members=user))


def _finished_this_week(projects: list[Project], now: datetime) -> dict[object, list[Finished]]:
    first_step = (
        Interaction.objects.filter(session=OuterRef("pk"))
        .order_by("created_at")
        .values("created_at")[:1]
    )
    last_result = (
        Interaction.objects.filter(session=OuterRef("pk"), completed_at__isnull=False)
        .order_by("-completed_at")
        .values("completed_at")[:1]
    )
    rows = (
        Session.objects.filter(
            project__in=projects,
            status__in=[SessionStatus.COMPLETE, SessionStatus.FAILED],
            updated_at__gte=now - WEEK,
        )
        .annotate(started=Subquery(first_step), ended=Subquery(last_result))
        .values_list(
            "project_id",
            "id",
            "type",
            "status",
            "parent_session_id",
            "component__name",
            "updated_at",
            "started",
            "ended",
        )
    )
    by_project: dict[object, list[Finished]] = defaultdict(list)
    for project_id, pk, type_, status, parent, component, updated, started, ended in rows:
        seconds = (ended - started).total_seconds() if started and ended else None
        by_project[project_id].append(
            Finished(pk, type_, status, parent, component, updated, seconds)
        )
    return by_project


def dashboards_for(user, *, now: datetime | None = None) -> list[ProjectDashboard]:
    """The dashboard of every project ``user`` can see: six queries plus one per project
    (its latest runs with their children's counts and cost)."""
    now = now or timezone.now()
    projects = visible_projects(user)
    boards = {project.pk: ProjectDashboard(project=project) for project in projects}
    if not projects:
        return []

    in_flight = (
        Session.objects.filter(project__in=projects, status=SessionStatus.ACTIVE)
        .values("project_id")
        .annotate(
            runs=Count("id", filter=Q(parent_session__isnull=True)),
            components=Count("id", filter=Q(type=COMPONENT_TEST_SESSIONS)),
            stalled=Count("id", filter=stalled_at(now)),
        )
    )
    for row in in_flight:
        board = boards[row["project_id"]]
        board.runs_in_flight = row["runs"]
        board.components_in_flight = row["components"]
        board.stalled_count = row["stalled"]

    stalled = (
        Session.objects.filter(stalled_at(now), project__in=projects)
        .select_related("component", "parent_session__component")
        .order_by("leased_until")
    )
    for session in stalled[: STALLED_SHOWN * len(projects)]:
        board = boards[session.project_id]
        if len(board.stalled) < STALLED_SHOWN:
            board.stalled.append(session)

    for project_id, finished in _finished_this_week(projects, now).items():
        _count_finished(boards[project_id], finished, now)
    _count_costs(boards, projects, now)

    for board in boards.values():
        board.recent_runs = list(
            Session.objects.filter(project=board.project, parent_session__isnull=True)
            .select_related("component")
            .order_by("-created_at")[:RECENT_RUNS]
        )
    selectors.with_children_progress(
        [run for board in boards.values() for run in board.recent_runs], now=now
    )
    return list(boards.values())


def _count_costs(
    boards: dict[object, ProjectDashboard], projects: list[Project], now: datetime
) -> None:
    """Each project's cost per day over the last 7 days (by when each step's result came),
    and their sum: one query, summed in the database."""
    today = timezone.localtime(now).date()
    days = [today - timedelta(days=back) for back in range(6, -1, -1)]
    spent: dict[tuple[object, object], Decimal] = {}
    rows = (
        Interaction.objects.filter(
            session__project__in=projects,
            cost_usd__isnull=False,
            completed_at__gte=timezone.localtime(now).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            - timedelta(days=6),
        )
        .annotate(day=TruncDate("completed_at", tzinfo=timezone.get_current_timezone()))
        .values("session__project_id", "day")
        .annotate(cost=Sum("cost_usd"))
        .order_by()
    )
    for row in rows:
        spent[(row["session__project_id"], row["day"])] = Decimal(row["cost"] or 0)
    for project_id, board in boards.items():
        board.daily_cost = [
            (day.strftime("%a"), spent.get((project_id, day), Decimal(0))) for day in days
        ]
        board.cost_week = sum((cost for _, cost in board.daily_cost), Decimal(0))


def _count_finished(board: ProjectDashboard, finished: list[Finished], now: datetime) -> None:
    today = timezone.localtime(now).date()
    days = {today - timedelta(days=back): [0, 0] for back in range(6, -1, -1)}
    slowest: dict[str, float] = {}
    completed_seconds = []
    for each in finished:
        is_run = each.parent_id is None
        is_component = each.type == COMPONENT_TEST_SESSIONS
        complete = each.status == SessionStatus.COMPLETE
        recent = each.finished_at >= now - DAY
        for counts, applies in (
            (board.runs_week, is_run),
            (board.runs_day, is_run and recent),
            (board.components_week, is_component),
            (board.components_day, is_component and recent),
        ):
            if applies:
                counts.complete += complete
                counts.failed += not complete
        if not is_component:
            continue
        day = timezone.localtime(each.finished_at).date()
        if day in days:
            days[day][0 if complete else 1] += 1
        if complete and each.seconds is not None:
            completed_seconds.append(each.seconds)
            name = each.component or "(no component)"
            slowest[name] = max(slowest.get(name, 0.0), each.seconds)
    board.median_seconds = statistics.median(completed_seconds) if completed_seconds else None
    board.slowest = sorted(slowest.items(), key=lambda item: (-item[1], item[0]))[:SLOWEST]
    board.daily = [(day.strftime("%a"), done, failed) for day, (done, failed) in days.items()]
