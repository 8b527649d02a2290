"""Sessions, interactions, commands and results in and out of JSON.

Input serializers check shape and visibility (a reference the caller cannot see is a 400);
everything else, including whether a session type exists and whether references share a
project, is the service layer's to decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from components_app import selectors as component_selectors
from components_app.models import Component
from core.api.fields import VisibleObjectField, budget_field
from core.api.serializers import KnownFieldsOnly
from core.errors import CANNOT_CHANGE
from sessions_app import selectors
from sessions_app.models import (
    MAX_LEASE_SECONDS,
    MAX_PARALLEL_CHILDREN,
    RUNNER_MAX_LENGTH,
    Agent,
    Environment,
    ExecutionMode,
    Interaction,
    Session,
    SessionStatus,
)
from sessions_app.workflows.registry import session_types
from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS
from sessions_app.workflows.types import EXECUTION_STRATEGIES, RESULT_STATUSES


class SessionComponentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Component
        fields = ["id", "name", "module_name", "type", "priority"]
        read_only_fields = fields


class SurvivorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    column = serializers.IntegerField()
    operator = serializers.CharField(help_text="The mutation tool's operator.")
    change = serializers.CharField(help_text='What the mutant changed: "old -> new".')


class MutationSerializer(serializers.Serializer):
    sampled = serializers.IntegerField()
    killed = serializers.IntegerField(help_text="Mutants a test failed on.")
    survived = serializers.IntegerField(help_text="Mutants every test passed with.")
    timed_out = serializers.IntegerField(help_text="Mutants stopped at the time limit (caught).")
    incompetent = serializers.IntegerField(help_text="Mutants the tests could not be run on.")
    survivors = SurvivorSerializer(many=True)


class VerificationSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    line_coverage = serializers.FloatField(
        allow_null=True, help_text="Percent of the component's lines run, rounded down."
    )
    branch_coverage = serializers.FloatField(allow_null=True)
    runs = serializers.ListField(child=serializers.IntegerField(), help_text="Exit codes.")
    mutation_score = serializers.FloatField(
        allow_null=True,
        help_text="Percent of the sampled mutants the tests caught, rounded down; null when "
        "no mutation ran.",
    )
    mutation = serializers.SerializerMethodField(
        help_text="The mutation gate's sample by outcome and the surviving mutants; null when "
        "no mutation ran."
    )
    problems = serializers.ListField(child=serializers.CharField())
    verified_at = serializers.DateTimeField()

    @extend_schema_field(MutationSerializer(allow_null=True))
    def get_mutation(self, verification: Any) -> dict[str, Any] | None:
        if verification.mutants_sampled is None:
            return None
        return {
            "sampled": verification.mutants_sampled,
            "killed": verification.mutants_killed,
            "survived": verification.mutants_survived,
            "timed_out": verification.mutants_timed_out,
            "incompetent": verification.mutants_incompetent,
            "survivors": verification.surviving_mutants,
        }


class UsageSerializer(serializers.Serializer):
    cost_usd = serializers.FloatField(help_text="US dollars, as the agent reported them.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    agent_steps = serializers.IntegerField(help_text="Agent steps with a result.")


class SessionSerializer(serializers.ModelSerializer):
    component = SessionComponentSerializer(read_only=True, allow_null=True)
    usage = serializers.SerializerMethodField(
        help_text="What the session's own steps cost, from their results' data.usage."
    )
    run_usage = serializers.SerializerMethodField(
        help_text="A context session's run: it and all its children; null for others."
    )
    max_cost_usd = budget_field(
        read_only=True, help_text="A context session's budget in US dollars; null: none."
    )
    verification = VerificationSerializer(
        source="latest_verification",
        read_only=True,
        allow_null=True,
        help_text="A component session's latest VerifyTests verdict; null before one.",
    )
    child_session_ids = serializers.SerializerMethodField(
        help_text="The children's ids in spawn order: priority descending, then name."
    )

    class Meta:
        model = Session
        fields = [
            "id",
            "project",
            "user",
            "type",
            "status",
            "execution_mode",
            "agent",
            "environment",
            "state",
            "component",
            "parent_session",
            "child_session_ids",
            "external_conversation_id",
            "branch",
            "verification",
            "attempt",
            "runner",
            "leased_until",
            "stalled",
            "max_parallel_children",
            "max_cost_usd",
            "usage",
            "run_usage",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(UsageSerializer)
    def get_usage(self, session: Session) -> dict[str, Any]:
        return selectors.own_usage(session).as_dict()

    @extend_schema_field(UsageSerializer(allow_null=True))
    def get_run_usage(self, session: Session) -> dict[str, Any] | None:
        if session.type != CONTEXT_TESTING_SESSIONS:
            return None
        return selectors.run_usage(session).as_dict()

    stalled = serializers.SerializerMethodField(
        help_text="Active, and the lease of the runner that held it has expired."
    )

    def get_stalled(self, session: Session) -> bool:
        return session.is_stalled(timezone.now())

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_child_session_ids(self, session: Session) -> list[str]:
        return selectors.child_ids_in_spawn_order(session)


class ChildSessionSerializer(SessionSerializer):
    """A child as the children listing shows it: with why it failed, if it did."""

    failure_reason = serializers.SerializerMethodField(
        help_text=(
            "Null unless the child failed; then its state's error, else its latest errored "
            "interaction's error_message, else 'no reason recorded'."
        )
    )

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "failure_reason"]
        read_only_fields = fields

    def get_failure_reason(self, child: Session) -> str | None:
        return selectors.shown_failure_reason(child)


class CoverageSummarySerializer(serializers.Serializer):
    lines_total = serializers.IntegerField()
    lines_covered = serializers.IntegerField()
    line_coverage = serializers.FloatField(allow_null=True)


class MutationSummarySerializer(serializers.Serializer):
    caught = serializers.IntegerField(help_text="Mutants killed or timed out.")
    survived = serializers.IntegerField()
    mutation_score = serializers.FloatField(allow_null=True)


class ChildrenSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    stalled = serializers.IntegerField(help_text="Active children whose lease expired.")
    complete = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    coverage = CoverageSummarySerializer(
        help_text="Over the children's latest verifications: their lines, and the share run."
    )
    mutation = MutationSummarySerializer(
        help_text="Over the children's latest verifications: their mutants caught and "
        "survived, and the share caught (null with none)."
    )
    cost_usd = serializers.FloatField(help_text="What every child's steps cost, in US dollars.")


class ChildrenSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Children listed on all pages (with `status`).")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    summary = ChildrenSummarySerializer(help_text="Every child, whatever the page and filter.")
    results = ChildSessionSerializer(many=True)


def _max_parallel_children_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        allow_null=True,
        min_value=1,
        max_value=MAX_PARALLEL_CHILDREN,
        help_text=(
            "A context testing session's cap on children running (holding a live lease) at "
            "once; null: no cap."
        ),
        **kwargs,
    )


class SessionCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    project = VisibleObjectField(visible_to=component_selectors.projects_for_user)
    type = serializers.CharField(
        max_length=100, help_text=f"A registered workflow: {', '.join(session_types())}."
    )
    component = VisibleObjectField(
        visible_to=component_selectors.components_for_user, allow_null=True, default=None
    )
    parent_session = VisibleObjectField(
        visible_to=selectors.sessions_for_user, allow_null=True, default=None
    )
    agent = serializers.ChoiceField(choices=Agent.choices, allow_null=True, default=None)
    environment = serializers.ChoiceField(
        choices=Environment.choices, allow_null=True, default=None
    )
    execution_mode = serializers.ChoiceField(
        choices=ExecutionMode.choices, default=ExecutionMode.MANUAL
    )
    state = serializers.DictField(default=dict)
    external_conversation_id = serializers.CharField(max_length=255, allow_blank=True, default="")
    max_parallel_children = _max_parallel_children_field(default=None)
    max_cost_usd = budget_field(
        required=False,
        help_text="A context session's budget in US dollars (null: none); default the "
        "project's default_max_cost_usd.",
    )


class SessionUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    """The fields a session's owner may change; any other key is a 400, not ignored."""

    unknown_field_message = CANNOT_CHANGE

    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    state = serializers.DictField(required=False)
    execution_mode = serializers.ChoiceField(choices=ExecutionMode.choices, required=False)
    external_conversation_id = serializers.CharField(
        max_length=255, allow_blank=True, required=False
    )
    max_parallel_children = _max_parallel_children_field(required=False)
    max_cost_usd = budget_field(
        required=False,
        help_text="A context session's budget in US dollars; null: none. Raising it lets a "
        "run whose budget was spent go on.",
    )


class LeaseSerializer(KnownFieldsOnly, serializers.Serializer):
    """Who asks (``runner``) and for how long its lease should run from now."""

    runner = serializers.CharField(
        max_length=RUNNER_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The runner's free-text id, 1 to 200 characters.",
    )
    lease_seconds = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LEASE_SECONDS,
        required=False,
        help_text="How long the lease runs from now; default SESSION_LEASE_SECONDS (600).",
    )


class OptionalLeaseSerializer(LeaseSerializer):
    """next-command's optional body: without ``runner`` the lease is left alone."""

    runner = serializers.CharField(
        max_length=RUNNER_MAX_LENGTH,
        trim_whitespace=False,
        required=False,
        help_text="The runner's free-text id; with it, takes or renews the session's lease.",
    )


class ReleaseSerializer(KnownFieldsOnly, serializers.Serializer):
    runner = serializers.CharField(
        max_length=RUNNER_MAX_LENGTH,
        trim_whitespace=False,
        required=False,
        help_text="The runner giving its lease up.",
    )
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Without runner: release whoever holds the lease (an operator freeing a "
        "dead runner's session).",
    )

    def to_internal_value(self, data: Any) -> Any:
        # Whether runner is missing is said beside any other field's error, as for every
        # required field.
        errors: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            forced = data.get("force") is True
            if forced and "runner" in data:
                errors["force"] = [FORCE_WITHOUT_RUNNER]
            elif not forced and "runner" not in data:
                errors["runner"] = ["This field is required."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if errors and isinstance(error.detail, dict):
                raise serializers.ValidationError({**error.detail, **errors}) from None
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value


FORCE_WITHOUT_RUNNER = "A forced release names no runner: it frees whoever holds the lease."


class RetriedChildrenSerializer(serializers.Serializer):
    retried_session_ids = serializers.ListField(
        child=serializers.UUIDField(), help_text="The retried children, in spawn order."
    )


class CommandSerializer(serializers.Serializer):
    module = serializers.CharField(help_text="The step's name.")
    command = serializers.CharField()
    metadata = serializers.DictField()
    execution_strategy = serializers.ChoiceField(choices=EXECUTION_STRATEGIES)
    timestamp = serializers.DateTimeField()


class ResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RESULT_STATUSES)
    data = serializers.JSONField(allow_null=True)
    code = serializers.IntegerField(allow_null=True)
    error_message = serializers.CharField(allow_null=True)
    stdout = serializers.CharField(allow_null=True)
    stderr = serializers.CharField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    timestamp = serializers.DateTimeField()


class InteractionSerializer(serializers.ModelSerializer):
    command = CommandSerializer(read_only=True)
    result = ResultSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Interaction
        fields = ["id", "session", "step_name", "command", "result", "completed_at", "created_at"]
        read_only_fields = fields


class ResultSubmittedSerializer(serializers.Serializer):
    interaction = InteractionSerializer()
    session = SessionSerializer()


class ClaimedChildSerializer(serializers.Serializer):
    session = SessionSerializer(help_text="The child, now leased to the runner.")
    interaction = InteractionSerializer(help_text="The child's pending interaction.")
