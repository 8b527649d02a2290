"""SpawnComponentTestingSessions: one agentic child session per component of a context.

Follows the seed specification's execution flow. Two things go further than the seed's source
system: the result check reports every unfinished category at once, and children are created
in bulk (constant queries) with a per-child fallback, so one bad row neither sinks the others
nor goes unlogged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone

from components_app import selectors as component_selectors
from components_app.models import Component
from core.errors import Conflict, StepError
from core.scope import Scope
from sessions_app import selectors
from sessions_app.models import ExecutionMode, Session, SessionStatus
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from sessions_app.workflows.types import Command, Result, StepOutcome

logger = logging.getLogger(__name__)

CONTEXT_COMPONENT_NOT_FOUND = "Context component not found"
SESSION_NOT_FOUND = "Session not found"
NO_CHILD_COMPONENTS = "No child components found for context"
FAILED_TO_SPAWN_ANY = "Failed to spawn any child sessions"
CANNOT_SPAWN = "Session is {status}; it cannot spawn child sessions"
# The result check's categories, in the order they are reported.
STILL_RUNNING = "Child sessions still running"
STALLED = "Child sessions stalled"
FAILED = "Child sessions failed"
CANCELLED = "Child sessions cancelled"
WITHOUT_CHILD = "Components without a child session"

# Fields a child gets from objects the step has just loaded; validating them again would cost
# one existence query per child.
_LOADED_RELATIONS = ["project", "user", "component", "parent_session"]
# Once the relations are excluded, a child's id is the only field whose value is its own: every
# other field holds the same value for every child of one spawn.
_OWN_FIELDS = frozenset({"id"})
_ALL_BUT_OWN_FIELDS = frozenset(field.name for field in Session._meta.fields) - _OWN_FIELDS


@dataclass(frozen=True)
class SpawnFailure:
    component: Component
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "component_id": str(self.component.pk),
            "name": self.component.name,
            "reason": self.reason,
        }


def invalid_child_type_message(child_type: str) -> str:
    return f"Invalid child session type: expected {COMPONENT_TEST_SESSIONS}, got {child_type}"


def child_status_error(
    unfinished: list[Session],
    missing: list[Component] = (),
    *,
    now: datetime | None = None,
    budget: str | None = None,
) -> str | None:
    """The result check's verdict: None when every child is complete and every component has
    a child, else every category, in this order: still running, stalled (active, lease
    expired), failed (with reasons), cancelled, the run's spent budget (``budget``, when the
    run cannot end and its budget is why no agent step is handed out), components without a
    child session."""
    now = now or timezone.now()
    active = [c for c in unfinished if c.status == SessionStatus.ACTIVE]
    running = [selectors.display_name(c) for c in active if not c.is_stalled(now)]
    stalled = [selectors.display_name(c) for c in active if c.is_stalled(now)]
    failed = [
        f"{selectors.display_name(c)} ({selectors.failure_reason(c)})"
        for c in unfinished
        if c.status == SessionStatus.FAILED
    ]
    cancelled = [
        selectors.display_name(c) for c in unfinished if c.status == SessionStatus.CANCELLED
    ]
    parts = []
    if running:
        parts.append(f"{STILL_RUNNING}: {', '.join(running)}")
    if stalled:
        parts.append(f"{STALLED}: {', '.join(stalled)}")
    if failed:
        parts.append(f"{FAILED}: {', '.join(failed)}")
    if cancelled:
        parts.append(f"{CANCELLED}: {', '.join(cancelled)}")
    if budget and (parts or missing):
        parts.append(budget)
    if missing:
        parts.append(f"{WITHOUT_CHILD}: {', '.join(c.name for c in missing)}")
    return "; ".join(parts) or None


class SpawnComponentTestingSessions:
    name = "SpawnComponentTestingSessions"
    command_name = "spawn_sessions"

    def get_command(self, scope: Scope, session: Session, **opts: Any) -> Command:
        with transaction.atomic():
            parent, context = self._lock_parent(scope, session)
            existing = self._existing_children(parent)
            if existing:
                self._keep_order(parent, existing)
                return self._command(parent, existing, created=None, failures=[])

            components = component_selectors.list_child_components(
                scope=scope, component_id=context.pk
            )
            if not components:
                raise StepError(NO_CHILD_COMPONENTS)

            created, failures = self._create_children(scope, parent, components)
            if not created:
                raise StepError(FAILED_TO_SPAWN_ANY)
            self._log_partial(parent, created, components, failures)
            # Read back, not taken from ``created``: children of components that tie on
            # priority and name are ordered by their creation time and id.
            self._keep_order(parent, changed=True)
            return self._command(parent, created, created=created, failures=failures)

    def spawn_missing(self, scope: Scope, session: Session) -> Command:
        """Create children for the context's components that have none, under the same
        rules as ``get_command``; the command lists every child, new and old."""
        with transaction.atomic():
            parent, context = self._lock_parent(scope, session)
            existing = self._existing_children(parent)
            components = component_selectors.list_child_components(
                scope=scope, component_id=context.pk
            )
            if not components:
                raise StepError(NO_CHILD_COMPONENTS)
            have_child = {child.component_id for child in existing}
            missing = [c for c in components if c.pk not in have_child]
            created, failures = self._create_children(scope, parent, missing)
            if not existing and not created:
                raise StepError(FAILED_TO_SPAWN_ANY)
            self._log_partial(parent, created, missing, failures)
            children = self._existing_children(parent) if created else existing
            self._keep_order(parent, children, changed=bool(created))
            return self._command(parent, children, created=created, failures=failures)

    def counts_as_failed_attempt(self, result: Any) -> bool:
        """The result check loops back until every child is complete, however many times:
        children finishing elsewhere is what it waits for."""
        return False

    def handle_result(
        self, scope: Scope, session: Session, result: Result, **opts: Any
    ) -> StepOutcome:
        parent = selectors.get_session(scope=scope, session_id=session.id, with_kept_order=True)
        if parent is None:
            raise StepError(SESSION_NOT_FOUND)
        if opts.get("locked") and not selectors.child_order_kept(parent):
            # Forgotten since the spawn (a priority changed, a child was added): kept again
            # here, under the lock submit_result holds, for the answer and what reads next.
            selectors.keep_child_order(parent)
        # Constant queries whatever the number of children: only the children that are not
        # complete are loaded (with their reasons), and the components left without a child.
        unfinished = list(selectors.unfinished_child_sessions(session=parent))
        missing = (
            selectors.components_without_child_session(
                scope=scope, context_id=parent.component_id, parent_session=parent
            )
            if parent.component_id
            else []
        )
        budget = selectors.budget_problem(parent) if unfinished or missing else None
        message = child_status_error(unfinished, missing, budget=budget)
        if message is not None:
            return StepOutcome(session_updates={}, result=result.with_error(message))
        return StepOutcome(session_updates={}, result=result.with_ok())

    def _lock_parent(self, scope: Scope, session: Session) -> tuple[Session, Component]:
        if session.component_id is None:
            raise StepError(CONTEXT_COMPONENT_NOT_FOUND)
        context = component_selectors.get_component(scope=scope, component_id=session.component_id)
        if context is None:
            raise StepError(CONTEXT_COMPONENT_NOT_FOUND)
        # The parent's row lock makes concurrent spawns of one parent take turns, so the
        # second sees the first's children instead of racing it to the unique constraint; and
        # a cancel that committed while this request waited is seen here, under the lock.
        parent = selectors.get_session(
            scope=scope, session_id=session.id, lock=True, with_kept_order=True
        )
        if parent is None:
            raise StepError(SESSION_NOT_FOUND)
        if parent.is_finished:
            raise Conflict(CANNOT_SPAWN.format(status=parent.status))
        return parent, context

    def _keep_order(
        self, parent: Session, children: list[Session] | None = None, *, changed: bool = False
    ) -> None:
        """Keep the parent's children's order (``children``, in spawn order, else read back)
        unless it is kept already; ``changed``: children were just created, so what the
        parent was read with is out of date (the triggers forgot the list)."""
        if changed or not selectors.child_order_kept(parent):
            ids = None if children is None else [str(child.pk) for child in children]
            selectors.keep_child_order(parent, ids)

    def _existing_children(self, parent: Session) -> list[Session]:
        existing = list(selectors.spawned_children(session=parent))
        for child in existing:
            if child.type != COMPONENT_TEST_SESSIONS:
                raise StepError(invalid_child_type_message(child.type))
        return existing

    def _log_partial(
        self,
        parent: Session,
        created: list[Session],
        components: list[Component],
        failures: list[SpawnFailure],
    ) -> None:
        if failures and created:
            logger.warning(
                "Spawned %d of %d child sessions for session %s; could not create: %s",
                len(created),
                len(components),
                parent.pk,
                ", ".join(f.component.name for f in failures),
            )

    def _command(
        self,
        parent: Session,
        children: list[Session],
        *,
        created: list[Session] | None,
        failures: list[SpawnFailure],
    ) -> Command:
        """``created`` is None when the children were all there already."""
        timestamp = timezone.now()
        return Command(
            module=self.name,
            command=self.command_name,
            timestamp=timestamp,
            metadata={
                "timestamp": timestamp.isoformat(),
                "child_session_ids": [str(child.pk) for child in children],
                "created_session_ids": [str(child.pk) for child in created or []],
                "already_spawned": created is None,
                "failed_components": [failure.as_dict() for failure in failures],
                "max_parallel": parent.max_parallel_children,
            },
            execution_strategy="async",
        )

    def _create_children(
        self, scope: Scope, parent: Session, components: list[Component]
    ) -> tuple[list[Session], list[SpawnFailure]]:
        if not components:
            return [], []
        # Every child is built from the same values but its component, so the field rules on
        # those shared values are checked once per spawn (a failure there fails every child,
        # each logged); each child's own id and its model rules (clean(), which check its
        # component and parent) are checked per child. Same checks and messages as full_clean
        # with these exclusions at 40% of its cost: 6 ms instead of 15 ms for 1,000 children,
        # of a spawn taking ~115 ms (issue 7; bench/spawn.py, docs/performance.md). Measured
        # again for issue 15 (bench/spawn.py --sizes 10,1000 --cases service,floor): with
        # full_clean per child, a spawn of 1,000 children takes 1.55x the bulk-insert floor on
        # SQLite (168 vs 108 ms; run by run 1.73x), past the 1.5x target; this way 1.38x (127
        # vs 92 ms). On PostgreSQL both hold (1.23x and 1.20x), the insert dominating there.
        shared = {
            "type": COMPONENT_TEST_SESSIONS,
            "parent_session": parent,
            "execution_mode": ExecutionMode.AGENTIC,
            "agent": parent.agent,
            "environment": parent.environment,
            "branch": parent.branch,
            "project": scope.project,
            # Children belong to the run: the parent's owner owns them, whoever spawns them
            # (an admin's click, the command line, another member's API call).
            "user_id": parent.user_id,
        }
        shared_errors = _field_errors(Session(**shared), exclude=[*_LOADED_RELATIONS, *_OWN_FIELDS])

        failures: list[SpawnFailure] = []
        valid: list[Session] = []
        for component in components:
            child = Session(component=component, **shared)
            error = _validation_error(child, shared_errors)
            if error is not None:
                failures.append(self._failed(component, _describe(error)))
                continue
            valid.append(child)

        if not valid:
            return [], failures
        try:
            with transaction.atomic():
                Session.objects.bulk_create(valid)
            return valid, failures
        except DatabaseError as error:
            logger.info("Bulk insert of child sessions failed (%s); inserting one by one", error)

        created: list[Session] = []
        for child in valid:
            try:
                with transaction.atomic():
                    child.save(force_insert=True)
            except DatabaseError as error:
                failures.append(self._failed(child.component, f"{type(error).__name__}: {error}"))
                continue
            created.append(child)
        # Failures are reported in spawn order, however they were discovered.
        order = {component.pk: index for index, component in enumerate(components)}
        failures.sort(key=lambda failure: order[failure.component.pk])
        return created, failures

    def _failed(self, component: Component, reason: str) -> SpawnFailure:
        logger.error(
            "Failed to create child session for component %s (%s, id %s): %s",
            component.name,
            component.module_name,
            component.pk,
            reason,
        )
        return SpawnFailure(component=component, reason=reason)


def _field_errors(
    session: Session, *, exclude: Collection[str]
) -> dict[str, list[ValidationError]]:
    try:
        session.clean_fields(exclude=exclude)
    except ValidationError as error:
        return error.error_dict
    return {}


def _validation_error(
    child: Session, shared_errors: dict[str, list[ValidationError]]
) -> ValidationError | None:
    """What ``child.full_clean(exclude=_LOADED_RELATIONS, validate_unique=False,
    validate_constraints=False)`` raises, given the verdict on the shared fields: the same
    errors in the same order (fields in model order, the id first; then clean()'s)."""
    errors = _field_errors(child, exclude=_ALL_BUT_OWN_FIELDS)
    for name, messages in shared_errors.items():
        errors.setdefault(name, []).extend(messages)
    try:
        child.clean()
    except ValidationError as error:
        errors = error.update_error_dict(errors)
    return ValidationError(errors) if errors else None


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
