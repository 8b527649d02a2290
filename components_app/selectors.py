"""Reads of projects and components. Every function is limited to what its caller may see."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from components_app.models import SPAWN_ORDER, Component, Project

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
    """The context's children in spawn order: priority descending, then name ascending."""
    return list(
        Component.objects.filter(
            project_id=scope.project_id, parent_component_id=component_id
        ).order_by(*SPAWN_ORDER)
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
