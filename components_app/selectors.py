"""Reads of projects and components. Every function is limited to what its caller may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from components_app.models import CONTEXT_TYPE, SPAWN_ORDER, Component, Project

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from core.scope import Scope


def projects_for_user(user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(members=user)


def components_for_user(user: AbstractBaseUser) -> QuerySet[Component]:
    return Component.objects.filter(project__members=user).select_related("parent_component")


def get_component(*, scope: Scope, component_id: uuid.UUID) -> Component | None:
    return Component.objects.filter(project_id=scope.project_id, pk=component_id).first()


def list_child_components(*, scope: Scope, component_id: uuid.UUID) -> list[Component]:
    """The context's children that runs test, in spawn order: priority descending, then name
    ascending. Excluded components are left out, and so are nested contexts (children of type
    ``context``: a subpackage's), which are runs of their own."""
    return list(
        Component.objects.filter(
            project_id=scope.project_id, parent_component_id=component_id, excluded=False
        )
        .exclude(type=CONTEXT_TYPE)
        .order_by(*SPAWN_ORDER)
    )


def components_by_module_name(*, scope: Scope) -> dict[str, Component]:
    """Every component of the project, by module name: what a bulk import compares against."""
    return {c.module_name: c for c in Component.objects.filter(project_id=scope.project_id)}


def component_ids_with_sessions(*, scope: Scope) -> set[uuid.UUID]:
    """The project's components that some session tests (or tested): never pruned."""
    return set(
        Component.objects.filter(project_id=scope.project_id, sessions__isnull=False)
        .order_by()
        .values_list("pk", flat=True)
        .distinct()
    )


@dataclass(frozen=True)
class TreeRow:
    """One line of a project's component tree, with its session history at a glance."""

    component: Component
    depth: int
    session_count: int
    #: The newest session's id, start and status; None when it was never tested.
    last_session_id: uuid.UUID | None
    last_run_at: datetime | None
    last_status: str | None
    #: The newest verification's line coverage (percent) of any of its sessions; None when
    #: never measured.
    last_line_coverage: float | None = None


def component_tree(*, scope: Scope) -> list[TreeRow]:
    """The project's components depth first (each context, then its components), siblings in
    spawn order, in one query whatever their number."""
    # Sessions belong to the other app, which imports this one; reach them through the
    # relation instead of an import.
    sessions = Component._meta.get_field("sessions").related_model.objects
    newest = sessions.filter(component=OuterRef("pk")).order_by("-created_at", "-pk")
    measured = sessions.filter(
        component=OuterRef("pk"), latest_verification__line_coverage__isnull=False
    ).order_by("-latest_verification__verified_at")
    counted = (
        sessions.filter(component=OuterRef("pk"))
        .order_by()
        .values("component")
        .annotate(n=Count("pk"))
        .values("n")
    )
    components = list(
        Component.objects.filter(project_id=scope.project_id)
        .annotate(
            session_count=Coalesce(Subquery(counted, output_field=IntegerField()), 0),
            last_session_id=Subquery(newest.values("pk")[:1]),
            last_run_at=Subquery(newest.values("created_at")[:1]),
            last_status=Subquery(newest.values("status")[:1]),
            last_line_coverage=Subquery(measured.values("latest_verification__line_coverage")[:1]),
        )
        .order_by(*SPAWN_ORDER)
    )
    known = {c.pk for c in components}
    children: dict[uuid.UUID | None, list[Component]] = {}
    for component in components:
        parent = component.parent_component_id if component.parent_component_id in known else None
        children.setdefault(parent, []).append(component)
    rows: list[TreeRow] = []
    seen: set[uuid.UUID] = set()
    pending = [(c, 0) for c in reversed(children.get(None, []))]
    while pending:
        component, depth = pending.pop()
        if component.pk in seen:
            continue
        seen.add(component.pk)
        rows.append(
            TreeRow(
                component=component,
                depth=depth,
                session_count=component.session_count,
                last_session_id=component.last_session_id,
                last_run_at=component.last_run_at,
                last_status=component.last_status,
                last_line_coverage=component.last_line_coverage,
            )
        )
        pending.extend((c, depth + 1) for c in reversed(children.get(component.pk, [])))
    return rows
