"""The one service layer the admin, the command line and the API call.

Every function takes keyword arguments and a ``Scope``; it sees nothing outside the scope's
project, owns its transaction, and reports what a user can cause through ``ServiceError``
subclasses carrying the exact text to show.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from components_app.models import Component
from core.errors import Conflict, InvalidInput, NotFound, StepError, refuse_unchangeable
from core.scope import Scope
from core.timefmt import api_time
from sessions_app import selectors, usage
from sessions_app.models import (
    FINISHED_BUCKET_SECONDS,
    MAX_LEASE_SECONDS,
    RUNNER_MAX_LENGTH,
    DailyCost,
    ExecutionMode,
    FinishedCount,
    Interaction,
    Session,
    SessionStatus,
    client_state,
)
from sessions_app.result_rules import result_errors
from sessions_app.workflows import conventions
from sessions_app.workflows.registry import (
    SPAWN_STEP,
    get_workflow,
)
from sessions_app.workflows.session_types import (
    COMPONENT_TEST_SESSIONS,
    CONTEXT_TESTING_SESSIONS,
)
from sessions_app.workflows.steps.common import derived_error_message
from sessions_app.workflows.steps.spawn_component_testing_sessions import (
    CANNOT_SPAWN,
    SESSION_NOT_FOUND,
)
from sessions_app.workflows.types import Command, Result

INTERACTION_NOT_FOUND = "Interaction not found"
RESULT_ALREADY_REPORTED = "A result was already reported for this interaction"
NOT_A_CONTEXT_SESSION = (
    f"Only {CONTEXT_TESTING_SESSIONS} sessions spawn child sessions, this one is {{type}}"
)
NO_REPORT = f"Only {CONTEXT_TESTING_SESSIONS} sessions have a report, this one is {{type}}"
CHILD_EXISTS = "The parent session already has a child session for this component."
UPDATABLE_FIELDS = (
    "status",
    "state",
    "execution_mode",
    "external_conversation_id",
    "max_parallel_children",
    "max_cost_usd",
)
# create_session's budget when none is given: the project's default.
PROJECT_DEFAULT = object()
LEASED_BY = "Session is leased by {runner} until {until}"
SESSION_IS = "Session is {status}"
RETRY_ONLY_FINISHED = "Session is {status}; only failed or cancelled sessions can be retried"
PARENT_FINISHED = "Parent session is {status}"
NO_CHILDREN_TO_RETRY = (
    f"Only {CONTEXT_TESTING_SESSIONS} sessions have child sessions, this one is {{type}}"
)
CHILDREN_CANNOT_BE_RETRIED = "Session is {status}; its children cannot be retried"
SUPERSEDED_BY_RETRY = "Superseded by retry"
STEP_FAILED_TOO_OFTEN = "{step} failed {n} times: {message}"
RUNNER_LENGTH = f"Must be 1 to {RUNNER_MAX_LENGTH} characters."
RUNNER_INVISIBLE = "Must contain a visible character."
LEASE_RANGE = f"Must be an integer from 1 to {MAX_LEASE_SECONDS}."
RETRYABLE = (SessionStatus.FAILED, SessionStatus.CANCELLED)


def _validated(instance: Session, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        raise InvalidInput(
            "Invalid session", {k: list(v) for k, v in error.message_dict.items()}
        ) from None


def _as_client_state(current: dict[str, Any], new: Any) -> Any:
    """``client_state``, its refusal as the service's ``InvalidInput``."""
    try:
        return client_state(current, new)
    except ValidationError as error:
        raise InvalidInput("Invalid session", error.message_dict) from None


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
    max_parallel_children: int | None = None,
    max_cost_usd: Decimal | object | None = PROJECT_DEFAULT,
) -> Session:
    """A new session. A context session's budget (``max_cost_usd``) is the project's
    ``default_max_cost_usd`` unless one is given (None: no limit)."""
    if max_cost_usd is PROJECT_DEFAULT:
        max_cost_usd = (
            scope.project.default_max_cost_usd if type == CONTEXT_TESTING_SESSIONS else None
        )
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
        max_parallel_children=max_parallel_children,
        max_cost_usd=max_cost_usd,
    )
    _validated(session)
    _as_client_state({}, session.state)
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
    refuse_unchangeable("Invalid session", changes, UPDATABLE_FIELDS)
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        new_status = changes.get("status", session.status)
        check_status_change(session=session, new_status=new_status)
        current_state = session.state
        for name, value in changes.items():
            setattr(session, name, value)
        _validated(session, exclude=["project", "user", "component", "parent_session"])
        if "state" in changes:
            session.state = _as_client_state(current_state, session.state)
        fields = [*changes, *_drop_lease_if_finished(session)]
        session.save(update_fields=[*dict.fromkeys(fields), "updated_at"])
        if new_status == SessionStatus.CANCELLED:
            _cancel_running_children(session)
    return session


def check_status_change(*, session: Session, new_status: str) -> None:
    """Raise ``Conflict`` when ``session`` may not move to ``new_status`` by hand: the rule
    ``update_session`` applies, for doors that validate before they save (the admin's form)."""
    if session.status == SessionStatus.COMPLETE and new_status != session.status:
        raise Conflict("Session is complete; its status cannot change")
    if session.is_finished and new_status not in (session.status, SessionStatus.COMPLETE):
        raise Conflict(f"Session is {session.status}; it can only be marked complete")


def spawn_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> Command:
    """Run the spawn step's command generation: one agentic child per context component.

    Idempotent: a second call hands out the same children. Raises ``StepError`` with the
    seed's exact texts and ``NotFound`` for a session outside the scope.
    """
    session = _session_or_404(scope, session_id)
    if session.type != CONTEXT_TESTING_SESSIONS:
        raise StepError(NOT_A_CONTEXT_SESSION.format(type=session.type))
    if session.is_finished:
        raise Conflict(CANNOT_SPAWN.format(status=session.status))
    return SPAWN_STEP.get_command(scope, session)


def spawn_missing_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> Command:
    """Create children for the context's components that have none (added after the spawn,
    or whose creation failed), under the spawn step's rules. The command lists every child
    in spawn order (``child_session_ids``), the new ones (``created_session_ids``) and the
    components that could not get one (``failed_components``)."""
    session = _session_or_404(scope, session_id)
    if session.type != CONTEXT_TESTING_SESSIONS:
        raise StepError(NOT_A_CONTEXT_SESSION.format(type=session.type))
    if session.is_finished:
        raise Conflict(CANNOT_SPAWN.format(status=session.status))
    return SPAWN_STEP.spawn_missing(scope, session)


def failed_components_text(command: Command) -> str | None:
    """The components a spawn command could not create a child for, as a person reads them
    (the admin's warning, the command line's); None when every child was created."""
    failed = command.metadata.get("failed_components")
    if not failed:
        return None
    names = ", ".join(f"{f['name']} ({f['reason']})" for f in failed)
    return f"could not create child sessions for {names}"


def check_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> Result:
    """The spawn step's result check on its own: ``ok``, or ``error`` naming every child
    that is still running, failed (with its reason) or was cancelled."""
    session = _session_or_404(scope, session_id)
    return SPAWN_STEP.handle_result(scope, session, Result(status="ok")).result


def next_command(
    *,
    scope: Scope,
    session_id: uuid.UUID,
    runner: str | None = None,
    lease_seconds: int | None = None,
) -> tuple[Interaction, bool]:
    """The next step's command as a new pending interaction (``True``), or the pending one
    again (``False``) while its result has not been reported. With a ``runner``, also takes
    or renews the session's lease (409 while another runner's lease is live); without one,
    the lease is left alone."""
    _validate_lease_request(runner, lease_seconds, runner_required=False)
    with transaction.atomic():
        session, run = _lock_run_then_session(scope, session_id)
        if session.is_finished:
            raise Conflict(f"Session is {session.status}; it has no next command")
        if runner is not None:
            _take_lease(session, runner, lease_seconds)
        return _next_interaction(scope, session, run=run)


def _lock_run_then_session(scope: Scope, session_id: uuid.UUID) -> tuple[Session, Session | None]:
    """The session's row locked, and the context whose budget bounds it (None without one).
    A child of a context with a budget takes the context's row lock first, as claim-child
    does: what the run has spent is then read, and added to, one request at a time, so no
    agent step is handed out once the spent sum reached the budget."""
    context_id = (
        Session.objects.filter(
            project_id=scope.project_id, pk=session_id, parent_session__max_cost_usd__isnull=False
        )
        .values_list("parent_session_id", flat=True)
        .first()
    )
    run = None
    if context_id is not None:
        run = (
            Session.objects.select_for_update()
            .only("id", "max_cost_usd", "project_id")
            .filter(pk=context_id)
            .first()
        )
    return _session_or_404(scope, session_id, lock=True), run


def _next_interaction(
    scope: Scope, session: Session, *, run: Session | None = None
) -> tuple[Interaction, bool]:
    """Under the session's row lock: its pending interaction, or a new one for the step its
    current attempt's history routes to. An agent step is refused (409, nothing created)
    once ``run``'s budget is spent."""
    latest = (
        selectors.interactions_for_session(session=session).filter(attempt=session.attempt).first()
    )
    if latest is not None and latest.is_pending:
        return latest, False
    workflow = get_workflow(session.type)
    step_name = workflow.following(
        latest.step_name if latest else None, latest.result if latest else None
    )
    if step_name in (SessionStatus.COMPLETE, SessionStatus.FAILED):
        # Only a session reopened by hand gets here: its workflow has already ended.
        raise Conflict(f"Session's workflow has ended ({step_name}); it has no next command")
    step = workflow.step(step_name)
    if step.name in usage.AGENT_STEPS and (spent := selectors.budget_problem(run)):
        raise Conflict(spent)
    command = step.get_command(scope, session)
    command.metadata.update(conventions.runner_metadata(scope.project, session.type, step.name))
    interaction = Interaction.objects.create(
        session=session, step_name=step.name, attempt=session.attempt, command=command.to_dict()
    )
    if session.first_step_at is None:  # read under the row lock: its first step indeed
        session.first_step_at = interaction.created_at
        Session.objects.filter(pk=session.pk).update(first_step_at=session.first_step_at)
    return interaction, True


def heartbeat(
    *, scope: Scope, session_id: uuid.UUID, runner: str, lease_seconds: int | None = None
) -> Session:
    """Renew ``runner``'s lease on the session (or take it, when absent or expired)."""
    _validate_lease_request(runner, lease_seconds)
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        if session.is_finished:
            raise Conflict(SESSION_IS.format(status=session.status))
        _take_lease(session, runner, lease_seconds)
    return session


def release(
    *, scope: Scope, session_id: uuid.UUID, runner: str | None = None, force: bool = False
) -> Session:
    """Give the lease up, so that another runner may take the session at once. With
    ``force`` (and no runner) whoever holds it loses it: how a member frees the sessions of a
    runner that died without waiting for its leases to run out."""
    if not force:
        _validate_lease_request(runner, None)
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        if session.is_finished:
            raise Conflict(SESSION_IS.format(status=session.status))
        if not force:
            _refuse_if_leased_to_another(session, runner, timezone.now())
        if session.runner is not None:
            session.runner = session.leased_until = None
            session.save(update_fields=["runner", "leased_until", "updated_at"])
    return session


def claim_child(
    *, scope: Scope, session_id: uuid.UUID, runner: str, lease_seconds: int | None = None
) -> tuple[Session, Interaction] | None:
    """Lease the first claimable child (active, no live lease) in spawn order to ``runner``
    and hand it its next command; ``None`` when no child can be claimed now (none left, the
    context is finished, or ``max_parallel_children`` children hold a live lease).

    The context's row lock makes claimers of one context take turns, so two runners never
    get the same child and the cap holds under any concurrency; the lock is held only for
    this short transaction. Constant queries whatever the number of children."""
    _validate_lease_request(runner, lease_seconds)
    with transaction.atomic():
        parent = _session_or_404(scope, session_id, lock=True)
        if parent.is_finished or selectors.budget_problem(parent):
            return None
        now = timezone.now()
        children = Session.objects.filter(
            parent_session_id=parent.pk, project_id=scope.project_id, status=SessionStatus.ACTIVE
        )
        cap = parent.max_parallel_children
        if cap is not None and children.filter(leased_until__gt=now).count() >= cap:
            return None
        free = children.filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        claimable = free.select_related("component", "parent_session").select_for_update(
            of=("self",), skip_locked=True
        )
        # The first free child's id comes from a subquery, so the database keeps only the
        # best row while it reads the children; locking in spawn order made it sort every free
        # child with its component and parent first (9 ms of a claim at 5,000 children on
        # PostgreSQL, docs/performance.md). A first choice whose row its own request holds
        # right now is skipped, and the full query takes the next one.
        first = free.order_by(*selectors.SPAWN_ORDER).values("pk")[:1]
        child = claimable.filter(pk=Subquery(first)).first() or (
            claimable.order_by(*selectors.SPAWN_ORDER).first()
        )
        if child is None:
            return None
        _take_lease(child, runner, lease_seconds, now=now)
        interaction, _ = _next_interaction(scope, child, run=parent)
    return child, interaction


def _validate_lease_request(
    runner: object, lease_seconds: object, *, runner_required: bool = True
) -> None:
    errors: dict[str, list[str]] = {}
    if runner is None and runner_required:
        errors["runner"] = ["This field is required."]
    elif runner is not None and (
        not isinstance(runner, str) or not 1 <= len(runner) <= RUNNER_MAX_LENGTH
    ):
        errors["runner"] = [RUNNER_LENGTH]
    elif runner is not None and not any(
        char.isprintable() and not char.isspace() for char in runner
    ):
        errors["runner"] = [RUNNER_INVISIBLE]
    if lease_seconds is not None and (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int)
        or not 1 <= lease_seconds <= MAX_LEASE_SECONDS
    ):
        errors["lease_seconds"] = [LEASE_RANGE]
    if errors:
        raise InvalidInput("Invalid lease request", errors)


def _visible(text: str) -> bool:
    return any(char.isprintable() and not char.isspace() for char in text)


def _refuse_if_leased_to_another(session: Session, runner: str, now: datetime) -> None:
    if session.runner not in (None, runner) and session.lease_is_live(now):
        raise Conflict(
            LEASED_BY.format(runner=session.runner, until=api_time(session.leased_until))
        )


def _take_lease(
    session: Session, runner: str, lease_seconds: int | None, *, now: datetime | None = None
) -> None:
    """Give ``runner`` the session's lease from now (the session's row is locked)."""
    now = now or timezone.now()
    _refuse_if_leased_to_another(session, runner, now)
    seconds = settings.SESSION_LEASE_SECONDS if lease_seconds is None else lease_seconds
    session.runner = runner
    session.leased_until = now + timedelta(seconds=seconds)
    session.save(update_fields=["runner", "leased_until", "updated_at"])


def _drop_lease_if_finished(session: Session) -> list[str]:
    """A session that ended holds no lease; the fields this changed, for ``save``."""
    if not session.is_finished or (session.runner is None and session.leased_until is None):
        return []
    session.runner = session.leased_until = None
    return ["runner", "leased_until"]


def submit_result(
    *, scope: Scope, session_id: uuid.UUID, interaction_id: uuid.UUID, result: Result
) -> tuple[Interaction, Session]:
    """Report an interaction's result: the step judges it, the final result is stored, and
    the session takes the step's updates and, past its last step, its final status."""
    _validate_result(result)
    reported = usage.of_result_data(result.data)
    with transaction.atomic():
        session, _ = _lock_run_then_session(scope, session_id)
        interaction = Interaction.objects.filter(session=session, pk=interaction_id).first()
        if interaction is None:
            raise NotFound(INTERACTION_NOT_FOUND)
        if not interaction.is_pending:
            raise Conflict(RESULT_ALREADY_REPORTED)
        if session.is_finished:
            raise Conflict(f"Session is {session.status}; it takes no more results")

        workflow = get_workflow(session.type)
        step = workflow.step(interaction.step_name)
        # ``locked``: the step may write what needs the session's row lock.
        outcome = step.handle_result(scope, session, result, interaction=interaction, locked=True)
        final = outcome.result
        if final.status == "error" and not final.error_message:
            final = final.with_error(derived_error_message(final))
        interaction.result = final.to_dict()
        interaction.completed_at = timezone.now()
        stored = ["result", "completed_at"]
        if reported is not None:
            for name, value in reported.columns().items():
                setattr(interaction, name, value)
            stored += list(reported.columns())
        interaction.save(update_fields=stored)

        changed = dict(outcome.session_updates)
        # A later agent step of the session continues this conversation.
        if (
            reported is not None
            and reported.conversation_id
            and interaction.step_name in usage.AGENT_STEPS
            and reported.conversation_id != session.external_conversation_id
        ):
            changed["external_conversation_id"] = reported.conversation_id
        if changed.get("status") != SessionStatus.FAILED:
            if workflow.following(interaction.step_name, interaction.result) == (
                SessionStatus.COMPLETE
            ):
                changed["status"] = SessionStatus.COMPLETE
            elif reason := _step_failed_too_often(scope, session, interaction, step):
                changed["status"] = SessionStatus.FAILED
                changed["state"] = {**changed.get("state", session.state), "error": reason}
        for name, value in changed.items():
            setattr(session, name, value)
        session.last_result_at = interaction.completed_at
        if reported is not None and reported.cost_usd:
            _add_daily_cost(session.project_id, interaction.completed_at, reported.cost_usd)
        fields = [
            *changed,
            "last_result_at",
            *_add_own_usage(
                session, reported, agent_step=interaction.step_name in usage.AGENT_STEPS
            ),
            *_drop_lease_if_finished(session),
        ]
        session.save(update_fields=[*fields, "updated_at"])
    return interaction, session


OWN_USAGE_FIELDS = ("own_cost_usd", "own_input_tokens", "own_output_tokens", "own_agent_steps")
STEP_TOTAL_FIELDS = (*OWN_USAGE_FIELDS, "first_step_at", "last_result_at")


def _add_daily_cost(project_id: Any, completed_at: datetime, cost: Decimal) -> None:
    """Add ``cost`` to the project's cost of the day ``completed_at`` falls on. Two results
    of one project may come at once: the second to create the day's row waits for the first
    and adds to it instead."""
    day = timezone.localdate(completed_at)
    added = F("cost_usd") + cost
    if DailyCost.objects.filter(project_id=project_id, day=day).update(cost_usd=added):
        return
    try:
        with transaction.atomic():
            DailyCost.objects.create(project_id=project_id, day=day, cost_usd=cost)
    except IntegrityError:
        DailyCost.objects.filter(project_id=project_id, day=day).update(cost_usd=added)


def _add_own_usage(
    session: Session, reported: usage.Usage | None, *, agent_step: bool
) -> list[str]:
    """Add a finished step's usage to its session's totals (the caller holds the session's
    row lock, so the values read are current); the fields changed."""
    added = {
        "own_cost_usd": reported.cost_usd if reported else None,
        "own_input_tokens": reported.input_tokens if reported else None,
        "own_output_tokens": reported.output_tokens if reported else None,
        "own_agent_steps": 1 if agent_step else None,
    }
    changed = []
    for name, value in added.items():
        if value:
            setattr(session, name, getattr(session, name) + value)
            changed.append(name)
    return changed


def recount_from_steps(sessions: QuerySet[Session]) -> int:
    """Make ``sessions``' own usage totals and step times again from their steps (for data
    written around the service, as a benchmark's bulk inserts are); how many sessions were
    written."""
    rows = {
        row.pop("session_id"): row
        for row in Interaction.objects.filter(session__in=sessions)
        .values("session_id")
        .annotate(
            own_cost_usd=Sum("cost_usd"),
            own_input_tokens=Sum("input_tokens"),
            own_output_tokens=Sum("output_tokens"),
            own_agent_steps=Count(
                "id", filter=Q(step_name__in=usage.AGENT_STEPS, completed_at__isnull=False)
            ),
            first_step_at=Min("created_at"),
            last_result_at=Max("completed_at"),
        )
        .order_by()
    }
    changed = []
    for session in sessions.only("pk"):
        row = rows.get(session.pk, {})
        for name in OWN_USAGE_FIELDS:
            setattr(session, name, row.get(name) or 0)
        session.first_step_at = row.get("first_step_at")
        session.last_result_at = row.get("last_result_at")
        changed.append(session)
    Session.objects.bulk_update(changed, STEP_TOTAL_FIELDS, batch_size=2000)
    return len(changed)


def recount_daily_costs(project_ids: list[Any]) -> int:
    """Make the projects' costs per day again from their steps (for data written around the
    service); how many days were written."""
    spent: dict[tuple[Any, Any], Decimal] = {}
    costed = Interaction.objects.filter(
        session__project_id__in=project_ids, cost_usd__isnull=False, completed_at__isnull=False
    ).values_list("session__project_id", "completed_at", "cost_usd")
    for project_id, completed_at, cost in costed.iterator(chunk_size=2000):
        key = (project_id, timezone.localdate(completed_at))
        spent[key] = spent.get(key, Decimal(0)) + cost
    with transaction.atomic():
        DailyCost.objects.filter(project_id__in=project_ids).delete()
        DailyCost.objects.bulk_create(
            [DailyCost(project_id=p, day=day, cost_usd=cost) for (p, day), cost in spent.items()]
        )
    return len(spent)


def quarter_of(moment: datetime) -> datetime:
    """The start of the ``FinishedCount`` bucket (a quarter hour, UTC) ``moment`` falls in, as
    the session table's triggers compute it."""
    seconds = int(moment.timestamp()) // FINISHED_BUCKET_SECONDS * FINISHED_BUCKET_SECONDS
    return datetime.fromtimestamp(seconds, tz=UTC)


def recount_finished(project_ids: list[Any]) -> int:
    """Make the projects' ``FinishedCount`` rows again from their sessions (the triggers keep
    them; this is for a table restored without its triggers); how many rows were written."""
    counted: dict[tuple[Any, ...], int] = {}
    finished = Session.objects.filter(
        project_id__in=project_ids, status__in=[SessionStatus.COMPLETE, SessionStatus.FAILED]
    ).values_list("project_id", "updated_at", "status", "parent_session_id", "type")
    for project_id, updated_at, status, parent_id, type_name in finished.iterator(chunk_size=2000):
        key = (
            project_id,
            quarter_of(updated_at),
            status,
            parent_id is None,
            type_name == COMPONENT_TEST_SESSIONS,
        )
        counted[key] = counted.get(key, 0) + 1
    with transaction.atomic():
        FinishedCount.objects.filter(project_id__in=project_ids).delete()
        FinishedCount.objects.bulk_create(
            FinishedCount(
                project_id=key[0],
                quarter=key[1],
                status=key[2],
                is_run=key[3],
                is_component=key[4],
                count=count,
            )
            for key, count in counted.items()
        )
    return len(counted)


def _step_failed_too_often(
    scope: Scope, session: Session, interaction: Interaction, step: Any
) -> str | None:
    """``<StepName> failed <n> times: <last error message>`` when ``interaction``'s result is
    the project's ``max_step_attempts``-th error of its step in a row (an ok result of the
    step, or a retry of the session, starts the count again); else None."""
    counts = getattr(step, "counts_as_failed_attempt", None) or _is_error
    if not counts(interaction.result):
        return None
    limit = scope.project.max_step_attempts
    earlier = (
        Interaction.objects.filter(
            session=session,
            attempt=session.attempt,
            step_name=interaction.step_name,
            completed_at__isnull=False,
        )
        .exclude(pk=interaction.pk)
        .order_by("-created_at")
        .values_list("result", flat=True)[: limit - 1]
        if limit > 1
        else []
    )
    streak = 1
    for result in earlier:
        if not counts(result):
            break
        streak += 1
    if streak < limit:
        return None
    message = interaction.result.get("error_message")
    return STEP_FAILED_TOO_OFTEN.format(step=interaction.step_name, n=streak, message=message)


def _is_error(result: dict[str, Any]) -> bool:
    return result.get("status") == "error"


def _validate_result(result: Result) -> None:
    if errors := result_errors(result):
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
        session.save(update_fields=["status", *_drop_lease_if_finished(session), "updated_at"])
        _cancel_running_children(session)
    return session


def cancel_children_of_excluded(*, scope: Scope, component_ids: list[uuid.UUID]) -> int:
    """Cancel the active child sessions of components that were just excluded; how many."""
    return Session.objects.filter(
        project_id=scope.project_id,
        component_id__in=component_ids,
        parent_session__isnull=False,
        status=SessionStatus.ACTIVE,
    ).update(
        status=SessionStatus.CANCELLED, runner=None, leased_until=None, updated_at=timezone.now()
    )


def _cancel_running_children(session: Session) -> None:
    Session.objects.filter(parent_session_id=session.pk, status=SessionStatus.ACTIVE).update(
        status=SessionStatus.CANCELLED, runner=None, leased_until=None, updated_at=timezone.now()
    )


def retry_session(*, scope: Scope, session_id: uuid.UUID) -> Session:
    """Make a failed or cancelled session active again; its next command starts its workflow
    at the first step. The history stays: ``attempt`` goes up by one, ``state["error"]``
    moves to the end of ``state["previous_errors"]``, a pending interaction is closed with an
    error result ``Superseded by retry``. A child of a finished parent cannot be retried."""
    with transaction.atomic():
        probe = _session_or_404(scope, session_id)
        # Parent before child, the order cancel takes them in, so a retry and the parent's
        # cancel never deadlock and the cancel sees the retried child.
        parent = (
            _session_or_404(scope, probe.parent_session_id, lock=True)
            if probe.parent_session_id
            else None
        )
        session = _session_or_404(scope, session_id, lock=True)
        if session.status not in RETRYABLE:
            raise Conflict(RETRY_ONLY_FINISHED.format(status=session.status))
        if parent is not None and parent.is_finished:
            raise Conflict(PARENT_FINISHED.format(status=parent.status))
        _reopen([session])
    return session


def retry_child_sessions(*, scope: Scope, session_id: uuid.UUID) -> list[Session]:
    """Retry every failed or cancelled child of an active context session; the retried
    children in spawn order. Constant queries whatever the number of children."""
    with transaction.atomic():
        session = _session_or_404(scope, session_id, lock=True)
        if session.type != CONTEXT_TESTING_SESSIONS:
            raise StepError(NO_CHILDREN_TO_RETRY.format(type=session.type))
        if session.is_finished:
            raise Conflict(CHILDREN_CANNOT_BE_RETRIED.format(status=session.status))
        children = list(
            Session.objects.filter(
                parent_session_id=session.pk, project_id=scope.project_id, status__in=RETRYABLE
            )
            # A child of an excluded component stays as it is: the run does not wait for it.
            .exclude(component__excluded=True)
            .select_related("component")
            .order_by(*selectors.SPAWN_ORDER)
            .select_for_update(of=("self",))
        )
        _reopen(children)
    return children


def _reopen(sessions: list[Session]) -> None:
    """Reopen locked, failed or cancelled sessions as their next attempt."""
    if not sessions:
        return
    now = timezone.now()
    for session in sessions:
        state = dict(session.state)
        previous = list(state.get("previous_errors") or [])
        if "error" in state:
            previous.append(state.pop("error"))
        state["previous_errors"] = previous
        # The fix and improvement loops' budgets are per attempt.
        state.pop("fix_attempts", None)
        state.pop("improve_attempts", None)
        session.state = state
        session.status = SessionStatus.ACTIVE
        session.attempt += 1
        session.runner = session.leased_until = None
        session.updated_at = now
    # A pending step closed as superseded is the session's last result so far, and a pending
    # agent step so closed still counts as an agent step taken.
    closed = dict(
        Interaction.objects.filter(session__in=[s.pk for s in sessions], completed_at__isnull=True)
        .values("session_id")
        .annotate(agent=Count("id", filter=Q(step_name__in=usage.AGENT_STEPS)))
        .order_by()
        .values_list("session_id", "agent")
    )
    for session in sessions:
        if session.pk in closed:
            session.own_agent_steps += closed[session.pk]
            session.last_result_at = now
    Session.objects.bulk_update(
        sessions,
        [
            *("state", "status", "attempt", "runner", "leased_until", "updated_at"),
            *("own_agent_steps", "last_result_at"),
        ],
    )
    superseded = Result(status="error", error_message=SUPERSEDED_BY_RETRY, timestamp=now)
    Interaction.objects.filter(
        session__in=[s.pk for s in sessions], completed_at__isnull=True
    ).update(result=superseded.to_dict(), completed_at=now)


def run_report(*, scope: Scope, session_id: uuid.UUID, run_page_url: str) -> dict[str, Any]:
    """What a context session's run produced (``sessions_app.report``)."""
    from sessions_app import report

    session = _session_or_404(scope, session_id)
    if session.type != CONTEXT_TESTING_SESSIONS:
        raise StepError(NO_REPORT.format(type=session.type))
    return report.build(session=session, links=report.Links(run_page=run_page_url))
