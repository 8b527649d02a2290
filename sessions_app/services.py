"""The one service layer the admin, the command line and the API call.

Every function takes keyword arguments and a ``Scope``; it sees nothing outside the scope's
project, owns its transaction, and reports what a user can cause through ``ServiceError``
subclasses carrying the exact text to show.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from components_app.models import Component
from core.errors import Conflict, InvalidInput, NotFound, StepError
from core.scope import Scope
from sessions_app import selectors
from sessions_app.models import ExecutionMode, Interaction, Session, SessionStatus
from sessions_app.workflows.registry import (
    SPAWN_STEP,
    get_workflow,
)
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS
from sessions_app.workflows.types import RESULT_STATUSES, Command, Result

SESSION_NOT_FOUND = "Session not found"
INTERACTION_NOT_FOUND = "Interaction not found"
RESULT_ALREADY_REPORTED = "A result was already reported for this interaction"
NOT_A_CONTEXT_SESSION = (
    f"Only {CONTEXT_TESTING_SESSIONS} sessions spawn child sessions, this one is {{type}}"
)
CHILD_EXISTS = "The parent session already has a child session for this component."
UPDATABLE_FIELDS = ("status", "state", "execution_mode", "external_conversation_id")


def _validated(instance: Session, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        raise InvalidInput(
            "Invalid session", {k: list(v) for k, v in error.message_dict.items()}
        ) from None


def _session_or_404(scope: Scope, session_id: uuid.UUID, *, lock: bool = False) -> Session:
    session = selectors.get_session(scope=scope, session_id=session_id, lock=lock)
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    return session


def create_session(
    *,
    scope: Scope,
    type: str,
    component: Component | None = None,
    parent_session: Session | None = None,
    execution_mode: str = ExecutionMode.MANUAL,
    agent: str | None = None,
    environment: str | None = None,
    state: dict[str, Any] | None = None,
    external_conversation_id: str = "",
) -> Session:
    session = Session(
        project=scope.project,
        user=scope.user,
        type=type,
        component=component,
        parent_session=parent_session,
        execution_mode=execution_mode,
        agent=agent,
        environment=environment,
        state={} if state is None else state,
        external_conversation_id=external_conversation_id,
    )
    _validated(session)
    try:
        with transaction.atomic():
            session.save(force_insert=True)
    except IntegrityError:
        # Validation passed, so a concurrent writer (a spawn) took the (parent, component) slot.
        raise InvalidInput("Invalid session", {"component": [CHILD_EXISTS]}) from None
    return session


def update_session(*, scope: Scope, session_id: uuid.UUID, **changes: Any) -> Session:
    """Change a session's status, state, execution mode or conversation id.

    A failed or cancelled session may only be marked ``complete`` (a person accepted its
    work by hand); any other change of a finished session's status is a conflict, since its
    workflow has ended. Setting ``cancelled`` cancels like ``cancel_session``, running
    children included.
    """
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            "Invalid session", {name: ["This field cannot be changed."] for name in unknown}
        )
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        new_status = changes.get("status", session.status)
        if session.status == SessionStatus.COMPLETE and new_status != session.status:
            raise Conflict("Session is complete; its status cannot change")
        if session.is_finished and new_status not in (session.status, SessionStatus.COMPLETE):
            raise Conflict(f"Session is {session.status}; it can only be marked complete")
        for name, value in changes.items():
            setattr(session, name, value)
        _validated(session, exclude=["project", "user", "component", "parent_session"])
        session.save(update_fields=[*changes, "updated_at"])
        if new_status == SessionStatus.CANCELLED:
            _cancel_running_children(session)
    return session


def spawn_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> Command:
    """Run the spawn step's command generation: one agentic child per context component.

    Idempotent: a second call hands out the same children. Raises ``StepError`` with the
    seed's exact texts and ``NotFound`` for a session outside the scope.
    """
    session = _session_or_404(scope, session_id)
    if session.type != CONTEXT_TESTING_SESSIONS:
        raise StepError(NOT_A_CONTEXT_SESSION.format(type=session.type))
    if session.is_finished:
        raise Conflict(f"Session is {session.status}; it cannot spawn child sessions")
    return SPAWN_STEP.get_command(scope, session)


def check_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> Result:
    """The spawn step's result check on its own: ``ok``, or ``error`` naming every child
    that is still running, failed (with its reason) or was cancelled."""
    session = _session_or_404(scope, session_id)
    return SPAWN_STEP.handle_result(scope, session, Result(status="ok")).result


def next_command(*, scope: Scope, session_id: uuid.UUID) -> tuple[Interaction, bool]:
    """The next step's command as a new pending interaction (``True``), or the pending one
    again (``False``) while its result has not been reported."""
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        if session.is_finished:
            raise Conflict(f"Session is {session.status}; it has no next command")
        latest = selectors.interactions_for_session(session=session).first()
        if latest is not None and latest.is_pending:
            return latest, False
        workflow = get_workflow(session.type)
        step_name = workflow.next_step(
            latest.step_name if latest else None, latest.result["status"] if latest else None
        )
        if step_name in (SessionStatus.COMPLETE, SessionStatus.FAILED):
            # Only a session reopened by hand gets here: its workflow has already ended.
            raise Conflict(f"Session's workflow has ended ({step_name}); it has no next command")
        step = workflow.step(step_name)
        command = step.get_command(scope, session)
        interaction = Interaction.objects.create(
            session=session, step_name=step.name, command=command.to_dict()
        )
    return interaction, True


def submit_result(
    *, scope: Scope, session_id: uuid.UUID, interaction_id: uuid.UUID, result: Result
) -> tuple[Interaction, Session]:
    """Report an interaction's result: the step judges it, the final result is stored, and
    the session takes the step's updates and, past its last step, its final status."""
    _validate_result(result)
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        interaction = Interaction.objects.filter(session=session, pk=interaction_id).first()
        if interaction is None:
            raise NotFound(INTERACTION_NOT_FOUND)
        if not interaction.is_pending:
            raise Conflict(RESULT_ALREADY_REPORTED)
        if session.is_finished:
            raise Conflict(f"Session is {session.status}; it takes no more results")

        workflow = get_workflow(session.type)
        outcome = workflow.step(interaction.step_name).handle_result(scope, session, result)
        final = outcome.result
        interaction.result = final.to_dict()
        interaction.completed_at = timezone.now()
        interaction.save(update_fields=["result", "completed_at"])

        changed = dict(outcome.session_updates)
        following = workflow.next_step(interaction.step_name, final.status)
        if following == SessionStatus.COMPLETE:
            changed["status"] = SessionStatus.COMPLETE
        elif following == SessionStatus.FAILED:
            changed["status"] = SessionStatus.FAILED
            state = changed.get("state", session.state)
            changed["state"] = {**state, "error": final.error_message or "Finalize failed"}
        for name, value in changed.items():
            setattr(session, name, value)
        if changed:
            session.save(update_fields=[*changed, "updated_at"])
    return interaction, session


def _validate_result(result: Result) -> None:
    errors: dict[str, list[str]] = {}
    if result.status not in RESULT_STATUSES:
        errors["status"] = [f"Must be one of: {', '.join(RESULT_STATUSES)}."]
    if result.code is not None and (
        isinstance(result.code, bool) or not isinstance(result.code, int)
    ):
        errors["code"] = ["Must be an integer."]
    if result.duration_ms is not None and (
        isinstance(result.duration_ms, bool)
        or not isinstance(result.duration_ms, int)
        or result.duration_ms < 0
    ):
        errors["duration_ms"] = ["Must be a non-negative integer."]
    for name in ("error_message", "stdout", "stderr"):
        if getattr(result, name) is not None and not isinstance(getattr(result, name), str):
            errors[name] = ["Must be a string."]
    if errors:
        raise InvalidInput("Invalid result", errors)


def cancel_session(*, scope: Scope, session_id: uuid.UUID) -> Session:
    """Cancel a session and its children that are still active. Cancelling a cancelled
    session changes nothing; a complete or failed one is a conflict."""
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        if session.status == SessionStatus.CANCELLED:
            return session
        if session.is_finished:
            raise Conflict(f"Session is {session.status}; it cannot be cancelled")
        session.status = SessionStatus.CANCELLED
        session.save(update_fields=["status", "updated_at"])
        _cancel_running_children(session)
    return session


def _cancel_running_children(session: Session) -> None:
    Session.objects.filter(parent_session_id=session.pk, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.CANCELLED, updated_at=timezone.now()
    )
