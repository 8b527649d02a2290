"""Writes of projects and components."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from components_app.models import MODULE_NAME_TAKEN, Component, Project
from core.errors import InvalidInput, NotFound
from core.scope import Scope

COMPONENT_NOT_FOUND = "Component not found"
UPDATABLE_FIELDS = ("name", "module_name", "type", "description", "priority", "parent_component")


def _save(component: Component, **save_kwargs: Any) -> Component:
    try:
        component.full_clean()
    except ValidationError as error:
        errors = {k: list(v) for k, v in error.message_dict.items()}
        # The unique constraint reports under __all__; the client wants the field it is about.
        general = [m for m in errors.pop("__all__", []) if m != MODULE_NAME_TAKEN]
        if len(general) < len(error.message_dict.get("__all__", [])):
            errors["module_name"] = [MODULE_NAME_TAKEN]
        if general:
            errors["__all__"] = general
        raise InvalidInput("Invalid component", errors) from None
    try:
        with transaction.atomic():
            component.save(**save_kwargs)
    except IntegrityError:
        # A concurrent writer took the module name between validation and insert.
        raise InvalidInput("Invalid component", {"module_name": [MODULE_NAME_TAKEN]}) from None
    return component


def create_project(*, user: AbstractBaseUser, name: str) -> Project:
    project = Project(name=name)
    try:
        project.full_clean()
    except ValidationError as error:
        raise InvalidInput(
            "Invalid project", {k: list(v) for k, v in error.message_dict.items()}
        ) from None
    with transaction.atomic():
        project.save()
        project.members.add(user)
    return project


def create_component(
    *,
    scope: Scope,
    name: str,
    module_name: str,
    type: str,
    description: str = "",
    priority: int = 0,
    parent_component: Component | None = None,
) -> Component:
    component = Component(
        project=scope.project,
        name=name,
        module_name=module_name,
        type=type,
        description=description,
        priority=priority,
        parent_component=parent_component,
    )
    return _save(component, force_insert=True)


def update_component(*, scope: Scope, component_id: uuid.UUID, **changes: Any) -> Component:
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            "Invalid component", {name: ["This field cannot be changed."] for name in unknown}
        )
    component = Component.objects.filter(project_id=scope.project_id, pk=component_id).first()
    if component is None:
        raise NotFound(COMPONENT_NOT_FOUND)
    for name, value in changes.items():
        setattr(component, name, value)
    return _save(component)


def delete_component(*, scope: Scope, component_id: uuid.UUID) -> None:
    deleted, _ = Component.objects.filter(project_id=scope.project_id, pk=component_id).delete()
    if not deleted:
        raise NotFound(COMPONENT_NOT_FOUND)
