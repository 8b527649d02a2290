"""How each component did over a project's last runs: the grid of components by runs (as
Airflow draws tasks by DAG runs), one cell per child session, coloured by its status, with
its coverage once VerifyTests measured it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sessions_app import selectors
from sessions_app.models import Session
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS

RUNS_SHOWN = 10


@dataclass
class HistoryRow:
    name: str
    module_name: str
    #: One per run, newest first: the component's child in that run, or None.
    cells: list[Session | None] = field(default_factory=list)


@dataclass
class History:
    runs: list[Session]
    rows: list[HistoryRow]


def component_history(project_id: object, *, runs: int = RUNS_SHOWN) -> History:
    """The project's last ``runs`` context runs and every component any of them tested, in
    the order of the newest run's spawn: two queries whatever the sizes."""
    recent = list(
        Session.objects.filter(project_id=project_id, type=CONTEXT_TESTING_SESSIONS)
        .select_related("component")
        .order_by("-created_at", "-id")[:runs]
    )
    column = {run.pk: index for index, run in enumerate(recent)}
    children = (
        Session.objects.filter(parent_session_id__in=list(column), project_id=project_id)
        .select_related("component", "latest_verification")
        .order_by("parent_session__created_at", *selectors.SPAWN_ORDER)
    )
    rows: dict[object, HistoryRow] = {}
    for child in children:
        key = child.component_id or child.pk
        row = rows.get(key)
        if row is None:
            component = child.component
            row = rows[key] = HistoryRow(
                name=selectors.display_name(child),
                module_name=component.module_name if component else "",
                cells=[None] * len(recent),
            )
        row.cells[column[child.parent_session_id]] = child
    return History(runs=recent, rows=sorted(rows.values(), key=lambda row: row.module_name))
