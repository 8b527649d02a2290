import uuid
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from components_app.models import Component, Project
from core import safety
from core.json_values import unstorable_reason
from sessions_app.expressions import Seconds
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS, is_registered

RUNNER_MAX_LENGTH = 200
BRANCH_IS_BASE = "A run's branch cannot be the base branch {name}"
MAX_PARALLEL_CHILDREN = 1000
MAX_LEASE_SECONDS = 86_400
CONTEXT_ONLY_CAP = f"Only {CONTEXT_TESTING_SESSIONS} sessions have a cap on parallel children."
CONTEXT_ONLY_BUDGET = f"Only {CONTEXT_TESTING_SESSIONS} sessions have a budget."

# State keys the workflows write and read back, with the type each must hold.
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list of strings"}
WORKFLOW_STATE_TYPES: dict[str, type] = {
    "branch_name": str,
    "test_file": str,
    "last_test_output": str,
    "fix_attempts": int,
    "improve_attempts": int,
    "error": str,
    "previous_errors": list,
}

# State keys only the workflow writes: a client that sets one to another value than it has is
# refused (a test file is always the component's, by the template; a fix loop's count is the
# workflow's). "error" stays a client's to set with a failed status: an operator's reason.
WORKFLOW_OWNED_STATE = (
    "test_file",
    "fix_attempts",
    "improve_attempts",
    "previous_errors",
    "verification",
    "last_test_output",
    "pull_request_url",
)
WORKFLOW_OWNED_TEXT = 'state["{key}"] is written by the workflow; a client cannot set it.'


def client_state(current: dict, new: object) -> object:
    """The state a client's ``new`` state makes of ``current``: ``new`` whole, with the
    workflow's own keys it leaves out kept as they are. Raises ``ValidationError`` (under
    ``state``) when it sets one of them to another value."""
    if not isinstance(new, dict):
        return new
    refused = [
        WORKFLOW_OWNED_TEXT.format(key=key)
        for key in WORKFLOW_OWNED_STATE
        if key in new and (key not in current or new[key] != current[key])
    ]
    if refused:
        raise ValidationError({"state": refused})
    kept = {key: current[key] for key in WORKFLOW_OWNED_STATE if key in current and key not in new}
    return {**new, **kept}


# State values that reach the commands handed out, with the rule each follows.
_COMMAND_VALUES = {
    "branch_name": safety.branch_name_problem,
    "test_file": safety.test_file_problem,
}
_COMMAND_VALUE_NAMES = {
    "branch_name": "is not a valid git branch name",
    "test_file": "must be a relative path inside the repository",
}


def state_errors(state: object) -> list[str]:
    """Why ``state`` cannot be a session's state, or nothing."""
    if not isinstance(state, dict):
        return ["State must be a JSON object."]
    problem = unstorable_reason(state)
    if problem is not None:
        return [problem]
    errors = []
    for key, expected in WORKFLOW_STATE_TYPES.items():
        if key not in state:
            continue
        value = state[key]
        if (
            not isinstance(value, expected)
            or isinstance(value, bool)
            or (expected is list and not all(isinstance(item, str) for item in value))
        ):
            errors.append(f'state["{key}"] must be {_TYPE_NAMES[expected]}.')
        elif expected is int and value < 0:
            errors.append(f'state["{key}"] must not be negative.')
        elif key in _COMMAND_VALUES and not value.strip():
            errors.append(f'state["{key}"] must not be empty.')
        elif key in _COMMAND_VALUES and (problem := _COMMAND_VALUES[key](value)):
            errors.append(f'state["{key}"] {_COMMAND_VALUE_NAMES[key]}: {problem}.')
    return errors


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExecutionMode(models.TextChoices):
    MANUAL = "manual", "Manual"
    AUTO = "auto", "Auto"
    AGENTIC = "agentic", "Agentic"


class Agent(models.TextChoices):
    CLAUDE_CODE = "claude_code", "Claude Code"


class Environment(models.TextChoices):
    LOCAL = "local", "Local"
    VSCODE = "vscode", "VS Code"
    CLI = "cli", "CLI"


def _in_choices(field: str, choices: type[models.TextChoices], *, nullable: bool = False) -> Q:
    condition = Q(**{f"{field}__in": choices.values})
    return condition | Q(**{f"{field}__isnull": True}) if nullable else condition


def stalled_at(now: datetime, *, through: str = "") -> Q:
    """Stalled sessions as a query condition: active, with a lease that expired by ``now``.
    ``through`` reaches them over a relation, e.g. ``"child_sessions"``."""
    prefix = f"{through}__" if through else ""
    return Q(**{f"{prefix}status": SessionStatus.ACTIVE, f"{prefix}leased_until__lte": now})


class Session(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="test_sessions"
    )
    type = models.CharField(max_length=100, help_text="A registered workflow's name.")
    status = models.CharField(
        max_length=20, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    execution_mode = models.CharField(
        max_length=20, choices=ExecutionMode.choices, default=ExecutionMode.MANUAL
    )
    # The contract says "nullable": clients send and read null, not an empty string.
    agent = models.CharField(  # noqa: DJ001
        max_length=30, choices=Agent.choices, null=True, blank=True
    )
    environment = models.CharField(  # noqa: DJ001
        max_length=20, choices=Environment.choices, null=True, blank=True
    )
    state = models.JSONField(default=dict, blank=True)
    component = models.ForeignKey(
        Component, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    parent_session = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="child_sessions",
        db_column="session_id",
    )
    external_conversation_id = models.CharField(max_length=255, blank=True, default="")
    # The branch the run uses, set by its Initialize (a child's is its context's, given at
    # spawn); null before.
    branch = models.CharField(  # noqa: DJ001
        max_length=safety.BRANCH_MAX_LENGTH, null=True, blank=True, editable=False
    )
    # 1 for a session never retried; each retry adds one.
    attempt = models.PositiveIntegerField(default=1)
    # The lease: which runner works on the session, and until when. Both or neither.
    runner = models.CharField(  # noqa: DJ001
        max_length=RUNNER_MAX_LENGTH, null=True, blank=True
    )
    leased_until = models.DateTimeField(null=True, blank=True)
    # A context session's cap on children holding a live lease at once; null: no cap.
    max_parallel_children = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PARALLEL_CHILDREN)],
        help_text="How many of a context session's children may run at once; empty: no limit.",
    )
    # A context session's budget: once its run (it and its children) has cost this much, no
    # agent step is handed out in it; null: no limit.
    max_cost_usd = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="A context session's budget in US dollars: no agent step is handed out once "
        "its run has cost this much; empty: no limit.",
    )
    # The latest verification of a component session's tests (VerifyTests), for the lists
    # and summaries that show it without a query per session.
    latest_verification = models.ForeignKey(
        "Verification",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    # What the session's own steps cost, added to as each result is stored (under the
    # session's row lock), so that a run's cost is a sum over its children's rows rather than
    # over every step they took; and when its first step was handed out and its last result
    # came, for its duration (``seconds``, computed by the database). Kept as the steps
    # change; ``sessions_app.services.recount_from_steps`` makes them again from the steps.
    own_cost_usd = models.DecimalField(max_digits=20, decimal_places=6, default=0, editable=False)
    own_input_tokens = models.BigIntegerField(default=0, editable=False)
    own_output_tokens = models.BigIntegerField(default=0, editable=False)
    own_agent_steps = models.BigIntegerField(default=0, editable=False)
    first_step_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_result_at = models.DateTimeField(null=True, blank=True, editable=False)
    seconds = models.GeneratedField(
        expression=Seconds("last_result_at", "first_step_at"),
        output_field=models.FloatField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["parent_session", "component"], name="one_child_session_per_component"
            ),
            models.CheckConstraint(
                condition=Q(own_cost_usd__gte=0)
                & Q(own_input_tokens__gte=0)
                & Q(own_output_tokens__gte=0)
                & Q(own_agent_steps__gte=0),
                name="session_own_usage_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(parent_session=F("id")), name="session_not_its_own_parent"
            ),
            models.CheckConstraint(
                condition=_in_choices("status", SessionStatus), name="session_status_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("execution_mode", ExecutionMode),
                name="session_execution_mode_valid",
            ),
            models.CheckConstraint(
                condition=_in_choices("agent", Agent, nullable=True), name="session_agent_valid"
            ),
            models.CheckConstraint(
                condition=_in_choices("environment", Environment, nullable=True),
                name="session_environment_valid",
            ),
            models.CheckConstraint(condition=~Q(type=""), name="session_type_not_empty"),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="session_attempt_positive"),
            models.CheckConstraint(
                condition=Q(runner__isnull=True, leased_until__isnull=True)
                | (Q(runner__isnull=False, leased_until__isnull=False) & ~Q(runner="")),
                name="session_lease_whole",
            ),
            models.CheckConstraint(
                condition=Q(max_parallel_children__isnull=True)
                | Q(max_parallel_children__gte=1, max_parallel_children__lte=MAX_PARALLEL_CHILDREN),
                name="session_max_parallel_children_range",
            ),
            models.CheckConstraint(
                condition=Q(max_cost_usd__isnull=True) | Q(max_cost_usd__gte=0),
                name="session_max_cost_usd_not_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status"]),
            # The dashboard's median and slowest components: a range of one project's completed
            # component sessions read in duration order, the week filtered in the index.
            models.Index(
                fields=["project", "type", "status", "seconds", "updated_at", "component"],
                name="session_timed_by_project",
            ),
        ]

    def __str__(self) -> str:
        subject = self.component.name if self.component_id and self.component else "no component"
        return f"{self.type} · {subject} · {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status != SessionStatus.ACTIVE

    @property
    def is_context(self) -> bool:
        return self.type == CONTEXT_TESTING_SESSIONS

    def lease_is_live(self, now: datetime) -> bool:
        """Whether a runner holds the session at ``now``."""
        return self.leased_until is not None and self.leased_until > now

    def is_stalled(self, now: datetime) -> bool:
        """Active, but the runner that held it stopped renewing its lease (``stalled_at`` is
        the same rule as a query condition)."""
        return (
            self.status == SessionStatus.ACTIVE
            and self.leased_until is not None
            and self.leased_until <= now
        )

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str | list[str]] = {}
        if self.type and not is_registered(self.type):
            errors["type"] = f"Unknown session type: {self.type}"
        if problems := state_errors(self.state):
            errors["state"] = problems
        elif (
            isinstance(self.state, dict)
            and self.project_id
            and self.state.get("branch_name") == self.project.base_branch
        ):
            # Its commits would land on the branch every run starts from.
            errors["state"] = [BRANCH_IS_BASE.format(name=self.project.base_branch)]
        if self.max_parallel_children is not None and self.type != CONTEXT_TESTING_SESSIONS:
            errors["max_parallel_children"] = CONTEXT_ONLY_CAP
        if self.max_cost_usd is not None and self.type != CONTEXT_TESTING_SESSIONS:
            errors["max_cost_usd"] = CONTEXT_ONLY_BUDGET
        # Related objects are compared through their cached instances so that validating a
        # batch of children costs no query per child.
        component = self.component if self.component_id else None
        if component is not None and component.project_id != self.project_id:
            errors["component"] = "The component must belong to the session's project."
        parent = self.parent_session if self.parent_session_id else None
        if parent is not None:
            if parent.pk == self.pk:
                errors["parent_session"] = "A session cannot be its own parent."
            elif parent.project_id != self.project_id:
                errors["parent_session"] = "The parent session must belong to the same project."
        if errors:
            raise ValidationError(errors)


class DailyCost(models.Model):
    """What a project's steps cost on one day (a date in the server's ``TIME_ZONE``, by when
    each step's result came), added to as each costed result is stored: the dashboard's week
    reads seven rows instead of every step. Money spent stays counted when a session is
    deleted."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="daily_costs")
    day = models.DateField()
    cost_usd = models.DecimalField(max_digits=20, decimal_places=6, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "day"], name="one_daily_cost_per_day"),
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="daily_cost_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.project} · {self.day} · ${self.cost_usd}"


#: The length of a ``FinishedCount`` bucket. Every time zone's offset is a multiple of it, so a
#: local day is a whole number of buckets.
FINISHED_BUCKET_SECONDS = 900


class FinishedCount(models.Model):
    """How many of a project's sessions finished (``complete`` or ``failed``) in one quarter
    hour, by their last update, split by run (no parent) and component session: the
    dashboard's week read from a few hundred rows at most instead of every session.

    Kept by triggers on the session table (migration 0010), not by the services, so that
    every write counts: a result, a retry, a bulk ``update()``, a cascade delete, raw SQL. A
    session leaving its bucket (updated again, retried, deleted) is taken off it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    #: The start of the quarter hour (UTC).
    quarter = models.DateTimeField()
    status = models.CharField(max_length=20)
    is_run = models.BooleanField()
    is_component = models.BooleanField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "quarter", "status", "is_run", "is_component"],
                name="one_finished_count_per_bucket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} · {self.quarter} · {self.status} · {self.count}"


class ChildOrder(models.Model):
    """A session's children's ids in spawn order, as its JSON lists them: a run of thousands
    of children answered without joining them to their components and sorting them again.

    Spawn order is live (the components' priority and name as they are now), so the list is
    forgotten, by triggers on the session and component tables (migration 0012), on every
    write that could move it: a child inserted, deleted, or given another parent, component
    or creation time, and a child's component given another priority or name; whatever wrote
    it (a service, a bulk ``update()``, a cascade, raw SQL). Where it is missing the ids are
    read live. It is written only by a transaction that holds the parent's row lock
    (``selectors.keep_child_order``), and on PostgreSQL the triggers take a lock on the
    parent's row that waits for it, so a list read before a concurrent change can never be
    kept after it."""

    parent = models.OneToOneField(
        Session, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    #: The ids in their JSON form, comma-separated; empty for none.
    ids = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.parent_id} · {self.ids.count(',') + 1 if self.ids else 0} children"


class Interaction(models.Model):
    """One step of a session: the command handed out and, once reported, its result."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="interactions")
    step_name = models.CharField(max_length=100)
    # The session's attempt this step belongs to: a retry starts the workflow again, and the
    # route to the next step only reads the current attempt's history.
    attempt = models.PositiveIntegerField(default=1)
    command = models.JSONField()
    result = models.JSONField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # What the step cost, from its result's data.usage (null: not reported), kept in columns
    # so that a session's or a run's cost is a sum in the database.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_tokens = models.BigIntegerField(null=True, blank=True)
    turns = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    # How long the step took, from its hand-out to its result, in seconds (null while it
    # runs): computed by the database as the row is written, so that a run's distribution of
    # step times compares a column rather than computing every step's duration again.
    seconds = models.GeneratedField(
        expression=Seconds("completed_at", "created_at"),
        output_field=models.FloatField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A result and its completion time are recorded together or not at all.
            models.CheckConstraint(
                condition=Q(result__isnull=True, completed_at__isnull=True)
                | Q(result__isnull=False, completed_at__isnull=False),
                name="interaction_result_with_completed_at",
            ),
            models.UniqueConstraint(
                fields=["session"],
                condition=Q(completed_at__isnull=True),
                name="one_pending_interaction_per_session",
            ),
            models.CheckConstraint(
                condition=(Q(cost_usd__isnull=True) | Q(cost_usd__gte=0))
                & (Q(input_tokens__isnull=True) | Q(input_tokens__gte=0))
                & (Q(output_tokens__isnull=True) | Q(output_tokens__gte=0))
                & (Q(cache_read_tokens__isnull=True) | Q(cache_read_tokens__gte=0))
                & (Q(cache_creation_tokens__isnull=True) | Q(cache_creation_tokens__gte=0)),
                name="interaction_usage_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["session", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.step_name} ({'done' if self.completed_at else 'pending'})"

    @property
    def is_pending(self) -> bool:
        return self.completed_at is None


class Verification(models.Model):
    """What one VerifyTests step measured of a component's tests, and the verdict against the
    project's bar (``sessions_app.quality_bar``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="verifications")
    interaction = models.OneToOneField(
        Interaction, on_delete=models.CASCADE, related_name="verification"
    )
    passed = models.BooleanField()
    #: Each run's exit code, in order.
    runs = models.JSONField(default=list)
    source_path = models.CharField(max_length=safety.TEST_FILE_MAX_LENGTH, blank=True, default="")
    lines_total = models.PositiveIntegerField(null=True, blank=True)
    lines_covered = models.PositiveIntegerField(null=True, blank=True)
    branches_total = models.PositiveIntegerField(null=True, blank=True)
    branches_covered = models.PositiveIntegerField(null=True, blank=True)
    #: Percent, rounded down to one decimal; null without data.
    line_coverage = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    branch_coverage = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    missing_lines = models.JSONField(default=list)
    tests_without_assertions = models.JSONField(default=list)
    changed_files = models.JSONField(default=list)
    #: The mutation gate's sample of the source file's mutants, by outcome; null when no
    #: mutation ran (the gate off, the tests failing, no source file).
    mutants_sampled = models.PositiveIntegerField(null=True, blank=True)
    mutants_killed = models.PositiveIntegerField(null=True, blank=True)
    mutants_survived = models.PositiveIntegerField(null=True, blank=True)
    mutants_timed_out = models.PositiveIntegerField(null=True, blank=True)
    mutants_incompetent = models.PositiveIntegerField(null=True, blank=True)
    #: (killed + timed out) / (killed + timed out + survived), rounded down to one decimal.
    mutation_score = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    #: Each surviving mutant: ``line``, ``column``, ``operator``, ``change`` ("old -> new").
    surviving_mutants = models.JSONField(default=list)
    #: The problems found, in the order the bar names them; empty when it passed.
    problems = models.JSONField(default=list)
    verified_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-verified_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(lines_covered__isnull=True)
                | Q(lines_total__isnull=False, lines_covered__lte=F("lines_total")),
                name="verification_lines_covered_within_total",
            ),
            models.CheckConstraint(
                condition=Q(branches_covered__isnull=True)
                | Q(branches_total__isnull=False, branches_covered__lte=F("branches_total")),
                name="verification_branches_covered_within_total",
            ),
            models.CheckConstraint(
                condition=Q(mutants_sampled__isnull=True)
                | Q(
                    mutants_killed__isnull=False,
                    mutants_survived__isnull=False,
                    mutants_timed_out__isnull=False,
                    mutants_incompetent__isnull=False,
                    mutants_sampled=F("mutants_killed")
                    + F("mutants_survived")
                    + F("mutants_timed_out")
                    + F("mutants_incompetent"),
                ),
                name="verification_mutants_add_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{'passed' if self.passed else 'below the bar'} ({self.verified_at:%Y-%m-%d %H:%M})"
