"""Writes of projects and components."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from components_app import selectors, test_paths
from components_app.models import (
    MODULE_NAME_TAKEN,
    Component,
    Project,
    validate_existing_tests,
)
from components_app.signals import components_excluded
from core.errors import Conflict, InvalidInput, NotFound, refuse_unchangeable
from core.json_values import unstorable_reason
from core.scope import Scope

COMPONENT_NOT_FOUND = "Component not found"
UPDATABLE_FIELDS = (
    "name",
    "module_name",
    "type",
    "description",
    "priority",
    "parent_component",
    "source_path",
    "excluded",
    "existing_tests",
)
# A project's settings: what GET and PATCH /api/projects/{id}/ read and change.
PROJECT_SETTINGS = (
    "test_command_template",
    "test_path_template",
    "agent_command_template",
    "base_branch",
    "max_step_attempts",
    "min_line_coverage",
    "min_branch_coverage",
    "test_runs",
    "require_assertions",
    "max_improve_attempts",
    "coverage_command_template",
    "coverage_report_format",
    "min_mutation_score",
    "max_mutants",
    "mutant_timeout_seconds",
    "agent_resume_template",
    "default_max_cost_usd",
    "agent_timeout_seconds",
    "test_timeout_seconds",
    "pull_request_command_template",
    "worktree_setup_command",
)
PROJECT_UPDATABLE_FIELDS = ("name", *PROJECT_SETTINGS)


def _lock_project(scope: Scope) -> Project:
    """The scope's project, its row locked: writers of one project's components (and of its
    test path template) take turns, so the check that no two components share a test file
    sees every committed component, under the template as it stands. Taken before any
    component's row, as a bulk import takes it. (SQLite's IMMEDIATE transactions already
    serialise writers.)"""
    return Project.objects.select_for_update().get(pk=scope.project_id)


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


def _validated_project(project: Project) -> None:
    try:
        project.full_clean()
    except ValidationError as error:
        raise InvalidInput(
            "Invalid project", {k: list(v) for k, v in error.message_dict.items()}
        ) from None


def create_project(*, user: AbstractBaseUser, name: str, **settings: Any) -> Project:
    refuse_unchangeable("Invalid project", settings, PROJECT_SETTINGS)
    project = Project(name=name, **settings)
    _validated_project(project)
    with transaction.atomic():
        project.save()
        project.members.add(user)
    return project


def update_project(*, scope: Scope, **changes: Any) -> Project:
    """Change the scope's project's name and settings under the rules the admin applies: a
    template's placeholders, a valid base branch, and a test path template that gives every
    component a test file of its own."""
    refuse_unchangeable("Invalid project", changes, PROJECT_UPDATABLE_FIELDS)
    with transaction.atomic():
        # Locked, so that a component written meanwhile is judged against the new template.
        project = Project.objects.select_for_update().get(pk=scope.project_id)
        for name, value in changes.items():
            setattr(project, name, value)
        _validated_project(project)
        if changes:
            project.save(update_fields=[*changes, "updated_at"])
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
    source_path: str | None = None,
    excluded: bool = False,
    existing_tests: list[str] | None = None,
) -> Component:
    with transaction.atomic():
        component = Component(
            project=_lock_project(scope),
            name=name,
            module_name=module_name,
            type=type,
            description=description,
            priority=priority,
            parent_component=parent_component,
            source_path=source_path,
            excluded=excluded,
            existing_tests=existing_tests or [],
        )
        return _save(component, force_insert=True)


def update_component(*, scope: Scope, component_id: uuid.UUID, **changes: Any) -> Component:
    """Change a component. Excluding it cancels its active child sessions (their runs no
    longer wait for it)."""
    refuse_unchangeable("Invalid component", changes, UPDATABLE_FIELDS)
    with transaction.atomic():
        project = _lock_project(scope)
        component = (
            Component.objects.select_for_update()
            .filter(project_id=scope.project_id, pk=component_id)
            .first()
        )
        if component is None:
            raise NotFound(COMPONENT_NOT_FOUND)
        component.project = project
        newly_excluded = changes.get("excluded") is True and not component.excluded
        for name, value in changes.items():
            setattr(component, name, value)
        _save(component)
        if newly_excluded:
            announce_excluded(scope=scope, component_ids=[component.pk])
    return component


def announce_excluded(*, scope: Scope, component_ids: list[uuid.UUID]) -> None:
    """Tell the apps above that these components were just excluded (inside the transaction
    that excluded them, so their sessions change with them or not at all)."""
    if component_ids:
        components_excluded.send(sender=Component, scope=scope, component_ids=component_ids)


def delete_component(*, scope: Scope, component_id: uuid.UUID) -> None:
    """Delete a component that no session tests or tested. One with sessions stays, as a
    bulk prune keeps it: deleting it would leave its sessions (a run's children among them)
    with no component to work on, and their history with no name."""
    with transaction.atomic():
        project = _lock_project(scope)
        component = (
            Component.objects.select_for_update()
            .filter(project_id=scope.project_id, pk=component_id)
            .first()
        )
        if component is None:
            raise NotFound(COMPONENT_NOT_FOUND)
        component.project = project
        if component.sessions.exists():
            raise Conflict(HAS_SESSIONS.format(names=component.module_name))
        component.delete()


# --- Describing a codebase in bulk -------------------------------------------------------------

BULK_MAX_ROWS = 10_000
ROW_FIELDS = (
    "module_name",
    "name",
    "type",
    "priority",
    "description",
    "parent_module_name",
    "source_path",
    "excluded",
    "existing_tests",
)
_REQUIRED_TEXT = ("module_name", "name", "type")
# The priority column is a 32-bit integer on PostgreSQL; the API's single create refuses the
# same range, so a bulk row cannot store what a single create could not.
_PRIORITY_RANGE = (-(2**31), 2**31 - 1)

REQUIRED = "This field is required."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
NOT_AN_INTEGER = "A valid integer is required."
NOT_A_BOOLEAN = "Must be a valid boolean."
NOT_AN_OBJECT = "Expected an object with module_name, name and type."
UNKNOWN_FIELD = "Unknown field; a row takes " + ", ".join(ROW_FIELDS) + "."
NULL_PARENT_HINT = "This field may not be blank; use null for a component without a parent."
NULL_SOURCE_HINT = "This field may not be blank; use null for a component without a source path."
BLANK_HINTS = {"parent_module_name": NULL_PARENT_HINT, "source_path": NULL_SOURCE_HINT}
DUPLICATE_ROW = "Row {first} has the same module name."
UNKNOWN_PARENT = "No row and no component of the project has this module name."
OWN_PARENT = "A component cannot be its own parent."
CYCLE = "A component cannot be placed under one of its descendants: {chain}."
PRUNED_PARENT = "The parent {parent} is not in the list, so prune would delete it."
NOT_A_LIST = "Expected a list of components."
TOO_MANY_ROWS = f"Ensure this field has no more than {BULK_MAX_ROWS} elements."
HAS_SESSIONS = "Components with sessions cannot be deleted: {names}"
CHANGED_CONCURRENTLY = (
    "The project's components changed during the import; nothing was written, try again."
)

RowErrors = dict[int, dict[str, list[str]]]
_ROW_FIELD_OF = {"parent_component_id": "parent_module_name"}


class InvalidRows(InvalidInput):
    """Rows that cannot be written, by index and field: ``{"components": {"3": {field: [...]}}}``
    in the API, as DRF names an item of a list."""

    def __init__(self, row_errors: RowErrors) -> None:
        super().__init__("Invalid components")
        self.row_errors = dict(sorted(row_errors.items()))
        self.errors = {"components": {str(i): e for i, e in self.row_errors.items()}}  # type: ignore[dict-item]


CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"


class ComponentAction(NamedTuple):
    """What an import does to one module name: create, update, unchanged or delete."""

    module_name: str
    action: str
    #: The row fields an update changes, in ROW_FIELDS' order.
    changes: tuple[str, ...] = ()
    #: Row field -> value: a create's every field as it is stored, an update's changed fields
    #: before and after (a parent by its module name); empty otherwise.
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True)
class BulkUpsertResult:
    created: int
    updated: int
    unchanged: int
    deleted: int
    #: One component per row, in the rows' order.
    components: list[Component]
    #: One per row in the rows' order, then the pruned components by module name.
    actions: list[ComponentAction]
    #: True when everything was rolled back: the answer a real import would give.
    dry_run: bool = False


class _RolledBack(Exception):
    """Carries a dry run's result out of the transaction it undoes."""

    def __init__(self, result: BulkUpsertResult) -> None:
        super().__init__("dry run")
        self.result = result


def _clean_text(row: dict[str, Any], field: str, errors: dict[str, list[str]]) -> str | None:
    value = row[field]
    if not isinstance(value, str):
        errors[field] = [NOT_A_STRING]
        return None
    # Trimmed as DRF trims every string the single create takes.
    value = value.strip()
    unstorable = unstorable_reason(value)
    if unstorable is not None:
        errors[field] = [unstorable]
        return None
    if not value and field != "description":
        errors[field] = [BLANK_HINTS.get(field, BLANK)]
        return None
    if field != "parent_module_name":
        try:
            Component._meta.get_field(field).run_validators(value)
        except ValidationError as error:
            errors[field] = list(error.messages)
            return None
    return value


def _clean_row(row: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A row's values checked one by one as the model's fields check them; no queries."""
    if not isinstance(row, dict):
        return {}, {"non_field_errors": [NOT_AN_OBJECT]}
    errors: dict[str, list[str]] = {
        str(key): [UNKNOWN_FIELD] for key in row if key not in ROW_FIELDS
    }
    clean: dict[str, Any] = {}
    for field in _REQUIRED_TEXT:
        if field not in row:
            errors[field] = [REQUIRED]
        else:
            clean[field] = _clean_text(row, field, errors)
    if "description" in row:
        clean["description"] = _clean_text(row, "description", errors)
    for nullable in ("parent_module_name", "source_path"):
        if row.get(nullable) is not None:
            clean[nullable] = _clean_text(row, nullable, errors)
        elif nullable in row:
            clean[nullable] = None
    if "excluded" in row:
        if isinstance(row["excluded"], bool):
            clean["excluded"] = row["excluded"]
        else:
            errors["excluded"] = [NOT_A_BOOLEAN]
    if "existing_tests" in row:
        try:
            validate_existing_tests(row["existing_tests"])
        except ValidationError as error:
            errors["existing_tests"] = list(error.messages)
        else:
            clean["existing_tests"] = list(row["existing_tests"])
    if "priority" in row:
        priority = row["priority"]
        low, high = _PRIORITY_RANGE
        if not isinstance(priority, int) or isinstance(priority, bool):
            errors["priority"] = [NOT_AN_INTEGER]
        elif priority < low:
            errors["priority"] = [f"Ensure this value is greater than or equal to {low}."]
        elif priority > high:
            errors["priority"] = [f"Ensure this value is less than or equal to {high}."]
        else:
            clean["priority"] = priority
    return clean, errors


def _cycles(parent_of: dict[str, str | None]) -> dict[str, list[str]]:
    """Each module name on a cycle of ``parent_of``, with the cycle read from it. Every name
    has at most one parent, so one walk per name that stops at anything already walked finds
    them all in linear time."""
    on_cycle: dict[str, list[str]] = {}
    done: set[str] = set()
    for start in parent_of:
        path: list[str] = []
        position: dict[str, int] = {}
        current: str | None = start
        while current is not None and current not in done and current not in position:
            position[current] = len(path)
            path.append(current)
            current = parent_of.get(current)
        if current is not None and current in position:
            loop = path[position[current] :]
            for offset, name in enumerate(loop):
                chain = loop[offset:] + loop[:offset]
                on_cycle[name] = [*chain, name]
        done.update(path)
    return on_cycle


def _check_rows(
    rows: list[Any], existing: dict[str, Component], *, prune: bool
) -> tuple[list[dict[str, Any]], RowErrors]:
    """Rows checked together: duplicates, parents (in the list, or in the project and kept)
    and cycles through the tree the import would leave."""
    module_of = {c.pk: c.module_name for c in existing.values()}
    cleaned: list[dict[str, Any]] = []
    row_errors: RowErrors = {}
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows):
        clean, errors = _clean_row(row)
        module_name = clean.get("module_name")
        if module_name is not None:
            if module_name in first_row:
                errors["module_name"] = [DUPLICATE_ROW.format(first=first_row[module_name])]
            else:
                first_row[module_name] = index
        cleaned.append(clean)
        if errors:
            row_errors[index] = errors

    # The parent each module name ends up with: rows override, the rest keeps its own.
    parent_of: dict[str, str | None] = {
        c.module_name: module_of.get(c.parent_component_id) for c in existing.values()
    }
    checked: dict[str, int] = {}
    for index, clean in enumerate(cleaned):
        module_name = clean.get("module_name")
        if index in row_errors or module_name is None:
            continue
        if "parent_module_name" in clean:
            parent = clean["parent_module_name"]
        else:
            parent = parent_of.get(module_name)
        field_errors: list[str] = []
        if parent == module_name:
            field_errors.append(OWN_PARENT)
        elif parent is not None and parent not in first_row:
            if parent not in existing:
                field_errors.append(UNKNOWN_PARENT)
            elif prune:
                field_errors.append(PRUNED_PARENT.format(parent=parent))
        if field_errors:
            row_errors[index] = {"parent_module_name": field_errors}
            continue
        parent_of[module_name] = parent
        checked[module_name] = index
    for module_name, chain in _cycles(parent_of).items():
        index = checked.get(module_name)
        if index is not None:
            row_errors[index] = {"parent_module_name": [CYCLE.format(chain=" → ".join(chain))]}
    return cleaned, row_errors


def _test_file_collisions(
    project: Project,
    rows: list[Component],
    existing: dict[str, Component],
    named: set[str],
    doomed: list[Component],
) -> RowErrors:
    """Rows whose test file another component of the project would have after the import:
    a component the rows leave as it is, or an earlier row."""
    template = project.test_path_template
    gone = {c.pk for c in doomed}
    owners: dict[str, str] = {}
    for component in existing.values():
        if component.module_name not in named and component.pk not in gone:
            path = test_paths.test_file_of(template, component)
            if path is not None:
                owners.setdefault(path, component.module_name)
    row_errors: RowErrors = {}
    for index, component in enumerate(rows):
        path = test_paths.test_file_of(template, component)
        if path is None:
            continue
        if path in owners:
            message = test_paths.TAKEN.format(path=path, other=owners[path])
            row_errors[index] = {"module_name": [message]}
        else:
            owners[path] = component.module_name
    return row_errors


def _parents_first(components: list[Component]) -> list[Component]:
    """New components ordered so that each comes after its parent when both are new."""
    by_id = {c.pk: c for c in components}
    depth: dict[uuid.UUID, int] = {}
    for component in components:
        chain = []
        current: Component | None = component
        while current is not None and current.pk not in depth:
            chain.append(current)
            current = by_id.get(current.parent_component_id)
        base = depth[current.pk] if current is not None else -1
        for offset, walked in enumerate(reversed(chain), start=1):
            depth[walked.pk] = base + offset
    return sorted(components, key=lambda c: depth[c.pk])


def bulk_upsert_components(
    *, scope: Scope, rows: list[Any], prune: bool = False, dry_run: bool = False
) -> BulkUpsertResult:
    """Create or update the project's components by ``module_name`` in one transaction; with
    ``prune``, delete the project's components the rows do not name.

    A row is ``{module_name, name, type, priority?, description?, parent_module_name?}``; a key
    left out keeps a component's current value (a new one gets the model's default). Every row
    is checked before anything is written: any bad row is an ``InvalidRows`` naming each row
    and field, a component to prune that has sessions a ``Conflict`` naming them. The number
    of queries does not grow with the number of rows (beyond the database's own batches).

    With ``dry_run`` the same checks and writes run and are then rolled back, so the result
    (and any error) is exactly what the import would do; nothing is stored.
    """
    if not isinstance(rows, list):
        raise InvalidInput("Invalid components", {"components": [NOT_A_LIST]})
    if len(rows) > BULK_MAX_ROWS:
        raise InvalidInput("Invalid components", {"components": [TOO_MANY_ROWS]})
    try:
        with transaction.atomic():
            result = _bulk_upsert(scope=scope, rows=rows, prune=prune)
            if dry_run:
                # Raised inside atomic() so that it rolls back, even inside an outer one.
                raise _RolledBack(replace(result, dry_run=True))
            return result
    except _RolledBack as rolled_back:
        return rolled_back.result
    except IntegrityError:
        # A single create took a module name between our read and our insert.
        raise Conflict(CHANGED_CONCURRENTLY) from None


def _row_values(
    component: Component, fields: Sequence[str], module_of: dict[Any, str]
) -> dict[str, Any]:
    """``fields`` of ``component`` as a row names them: its parent by module name."""
    values: dict[str, Any] = {}
    for name in fields:
        if name == "parent_module_name":
            parent = component.parent_component_id
            values[name] = module_of.get(parent) if parent is not None else None
        else:
            values[name] = getattr(component, name)
    return values


def _bulk_upsert(*, scope: Scope, rows: list[Any], prune: bool) -> BulkUpsertResult:
    # Two imports into one project take turns, so each checks the rows against what the
    # other wrote (SQLite's IMMEDIATE transactions already serialize writers).
    Project.objects.select_for_update().filter(pk=scope.project_id).exists()
    existing = selectors.components_by_module_name(scope=scope)
    cleaned, row_errors = _check_rows(rows, existing, prune=prune)
    if row_errors:
        raise InvalidRows(row_errors)

    named = {clean["module_name"] for clean in cleaned}
    doomed = [c for module, c in existing.items() if module not in named] if prune else []
    if doomed:
        with_sessions = selectors.component_ids_with_sessions(scope=scope)
        blocked = sorted(c.module_name for c in doomed if c.pk in with_sessions)
        if blocked:
            raise Conflict(HAS_SESSIONS.format(names=", ".join(blocked)))

    # Ids are chosen here, so a child can point at a parent created in the same insert.
    ids = {module: c.pk for module, c in existing.items()}
    ids.update({c["module_name"]: uuid.uuid4() for c in cleaned if c["module_name"] not in ids})
    module_of = {pk: module for module, pk in ids.items()}
    now = timezone.now()
    components: list[Component] = []
    actions: list[ComponentAction] = []
    created: list[Component] = []
    updated: list[Component] = []
    changed_fields: set[str] = set()
    newly_excluded: list[uuid.UUID] = []
    for clean in cleaned:
        module_name = clean["module_name"]
        values: dict[str, Any] = {
            key: clean[key]
            for key in (
                "name",
                "type",
                "priority",
                "description",
                "source_path",
                "excluded",
                "existing_tests",
            )
            if key in clean
        }
        if "parent_module_name" in clean:
            parent = clean["parent_module_name"]
            values["parent_component_id"] = ids[parent] if parent is not None else None
        component = existing.get(module_name)
        if component is None:
            component = Component(
                id=ids[module_name], project=scope.project, module_name=module_name, **values
            )
            created.append(component)
            actions.append(
                ComponentAction(
                    module_name, CREATE, after=_row_values(component, ROW_FIELDS[1:], module_of)
                )
            )
        else:
            changes = [k for k, v in values.items() if getattr(component, k) != v]
            if "excluded" in changes and values["excluded"]:
                newly_excluded.append(component.pk)
            if changes:
                before = _row_values(
                    component, tuple(_ROW_FIELD_OF.get(k, k) for k in changes), module_of
                )
                for key in changes:
                    setattr(component, key, values[key])
                component.updated_at = now
                changed_fields.update(changes)
                updated.append(component)
                row_fields = tuple(_ROW_FIELD_OF.get(k, k) for k in changes)
                actions.append(
                    ComponentAction(
                        module_name,
                        UPDATE,
                        row_fields,
                        before=before,
                        after=_row_values(component, row_fields, module_of),
                    )
                )
            else:
                actions.append(ComponentAction(module_name, UNCHANGED))
        components.append(component)
    actions += [ComponentAction(m, DELETE) for m in sorted(c.module_name for c in doomed)]
    if taken := _test_file_collisions(scope.project, components, existing, named, doomed):
        raise InvalidRows(taken)

    if created:
        Component.objects.bulk_create(_parents_first(created))
    if updated:
        fields = [name.removesuffix("_id") for name in sorted(changed_fields)]
        fields.append("updated_at")
        Component.objects.bulk_update(updated, fields)
    if doomed:
        Component.objects.filter(pk__in=[c.pk for c in doomed]).delete()
    announce_excluded(scope=scope, component_ids=newly_excluded)
    return BulkUpsertResult(
        created=len(created),
        updated=len(updated),
        unchanged=len(components) - len(created) - len(updated),
        deleted=len(doomed),
        components=components,
        actions=actions,
    )
