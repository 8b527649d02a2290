"""What the dashboard shows for each project a staff member can see.

Definitions the page states too: a *run* is a session without a parent (a context testing
session, usually); a *component session* is a ``ComponentTestSessions`` session, the unit
that passes or fails. A finished session's finishing time is its last update (the status
change); its duration is from its first step handed out to its last result reported.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from components_app.models import Project
from sessions_app import selectors, services
from sessions_app.models import DailyCost, FinishedCount, Session, SessionStatus, stalled_at
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


def _count_finished_this_week(
    boards: dict[object, ProjectDashboard], projects: list[Project], now: datetime
) -> None:
    """The week's finished runs and component sessions counted, per day too, from the
    quarter hours' ``FinishedCount`` rows (kept by the session table's triggers): a few hundred
    rows a project at most, whatever the number of sessions. A local day is a whole number of
    quarter hours; the last 24 hours and the last 7 days start at the quarter hour they start
    in, so they may count a session finished up to 15 minutes before."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=back) for back in range(6, -1, -1)]
    per_day = {
        f"day_{index}": Sum("count", filter=Q(quarter__gte=start, quarter__lt=start + DAY))
        for index, start in enumerate(starts)
    }
    rows = (
        FinishedCount.objects.filter(
            project__in=projects, quarter__gte=services.quarter_of(now - WEEK)
        )
        .values("project_id", "status", "is_run", "is_component")
        .annotate(
            week=Sum("count"),
            day=Sum("count", filter=Q(quarter__gte=services.quarter_of(now - DAY))),
            **per_day,
        )
        .order_by()
    )
    for board in boards.values():
        board.daily = [(start.strftime("%a"), 0, 0) for start in starts]
    for row in rows:
        board = boards[row["project_id"]]
        complete = row["status"] == SessionStatus.COMPLETE
        for window, applies, count in (
            (board.runs_week, row["is_run"], row["week"]),
            (board.runs_day, row["is_run"], row["day"]),
            (board.components_week, row["is_component"], row["week"]),
            (board.components_day, row["is_component"], row["day"]),
        ):
            if applies:
                if complete:
                    window.complete += count or 0
                else:
                    window.failed += count or 0
        if row["is_component"]:
            board.daily = [
                (
                    label,
                    done + complete * (row[f"day_{index}"] or 0),
                    failed + (not complete) * (row[f"day_{index}"] or 0),
                )
                for index, (label, done, failed) in enumerate(board.daily)
            ]


def _time_taken(boards: dict[object, ProjectDashboard], projects: list[Project], now: datetime):
    """Each project's median and slowest components of the week's completed component
    sessions, from their rows' durations (``Session.seconds``, kept as their steps come and
    go). Three small queries a project, each a range of one index
    (``session_timed_by_project``) read in duration order: how many, the middle one or two
    at their offset, and the longest rows until ``SLOWEST`` components are named."""
    for project in projects:
        timed = Session.objects.filter(
            project=project,
            type=COMPONENT_TEST_SESSIONS,
            status=SessionStatus.COMPLETE,
            seconds__isnull=False,
            updated_at__gte=now - WEEK,
        )
        total = timed.count()
        if not total:
            continue
        board = boards[project.pk]
        middle = timed.order_by("seconds").values_list("seconds", flat=True)
        middle = middle[(total - 1) // 2 : total // 2 + 1]
        board.median_seconds = statistics.mean(middle)
        board.slowest = _slowest_components(timed)


def _slowest_components(timed) -> list[tuple[str, float]]:
    """The ``SLOWEST`` components whose longest session took longest (ties by name). Read
    from the longest sessions down, a page of rows: usually that settles it, in one query. A
    second query only when it cannot: the names of every row as long as the last component
    kept when the page ends on a tie with it, or, when the page held fewer components than
    that (one component's many sessions), every component's longest."""
    rows = timed.order_by("-seconds").values_list("component__name", "seconds")
    page = list(rows[: SLOWEST * 10])
    longest: dict[str, float] = {}
    for name, seconds in page:
        longest.setdefault(_named(name), seconds)
    ranked = sorted(longest.items(), key=lambda item: (-item[1], item[0]))
    if len(page) == SLOWEST * 10:
        if len(ranked) < SLOWEST:
            every = timed.values("component__name").annotate(longest=Max("seconds"))
            longest = {_named(row["component__name"]): row["longest"] for row in every}
            ranked = sorted(longest.items(), key=lambda item: (-item[1], item[0]))
        elif page[-1][1] == ranked[SLOWEST - 1][1]:
            # Rows past the page as long as the last one kept may be components that rank
            # above it by name; every row longer than it is in the page already.
            cutoff = page[-1][1]
            tied = timed.filter(seconds=cutoff).values_list("component__name", flat=True)
            for name in tied.distinct():
                longest.setdefault(_named(name), cutoff)
            ranked = sorted(longest.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:SLOWEST]


def _named(name: str | None) -> str:
    return name or "(no component)"


def dashboards_for(user, *, now: datetime | None = None) -> list[ProjectDashboard]:
    """The dashboard of every project ``user`` can see: seven queries, one per project (its
    latest runs), and one for the latest runs' children's counts and cost; none grows with
    the number of sessions."""
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

    _count_finished_this_week(boards, projects, now)
    _time_taken(boards, projects, now)
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
    and their sum: seven rows a project (``DailyCost``, added to as costed results come),
    whatever the number of steps."""
    today = timezone.localdate(now)
    days = [today - timedelta(days=back) for back in range(6, -1, -1)]
    spent = {
        (project_id, day): cost
        for project_id, day, cost in DailyCost.objects.filter(
            project__in=projects, day__gte=days[0], day__lte=today
        ).values_list("project_id", "day", "cost_usd")
    }
    for project_id, board in boards.items():
        board.daily_cost = [
            (day.strftime("%a"), Decimal(spent.get((project_id, day)) or 0)) for day in days
        ]
        board.cost_week = sum((cost for _, cost in board.daily_cost), Decimal(0))
