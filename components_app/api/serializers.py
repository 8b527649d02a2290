"""Projects and components in and out of JSON. Validation of shape only; the services decide."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from components_app import selectors
from components_app.models import (
    MAX_EXISTING_TESTS,
    MAX_IMPROVE_ATTEMPTS,
    MAX_MUTANT_SECONDS,
    MAX_MUTANTS,
    MAX_STEP_ATTEMPTS,
    MAX_STEP_SECONDS,
    MAX_TEST_RUNS,
    Component,
    CoverageReportFormat,
    Project,
)
from components_app.services import BULK_MAX_ROWS, PROJECT_SETTINGS
from core.api.fields import VisibleObjectField, budget_field, int32_field
from core.api.serializers import UNKNOWN_FIELD, KnownFieldsOnly
from core.errors import CANNOT_CHANGE
from core.safety import COMMAND_LINE_MAX_LENGTH


class ProjectSerializer(serializers.ModelSerializer):
    default_max_cost_usd = budget_field(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", *PROJECT_SETTINGS, "created_at", "updated_at"]
        read_only_fields = fields


class ProjectCreateSerializer(KnownFieldsOnly, serializers.Serializer):
    name = serializers.CharField(max_length=200)


class ProjectUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    """A project's name and settings; the service validates them as the admin does (a
    template's placeholders and shell safety, the base branch, test files of their own)."""

    unknown_field_message = CANNOT_CHANGE

    name = serializers.CharField(max_length=200, required=False)
    test_command_template = serializers.CharField(
        max_length=500, required=False, help_text="Runs one component's tests: {test_file}."
    )
    test_path_template = serializers.CharField(
        max_length=500,
        required=False,
        help_text="A component's test file: {module}, {module_snake}, {module_last}, "
        "{source_path}. No two components may get the same file.",
    )
    agent_command_template = serializers.CharField(
        max_length=500, required=False, help_text="The coding agent's command line: {prompt}."
    )
    base_branch = serializers.CharField(
        max_length=200, required=False, help_text="The branch a run's branch starts from."
    )
    max_step_attempts = serializers.IntegerField(
        min_value=1,
        max_value=MAX_STEP_ATTEMPTS,
        required=False,
        help_text="A step whose result is an error this many times in a row fails its session.",
    )
    min_line_coverage = serializers.IntegerField(
        min_value=0,
        max_value=100,
        allow_null=True,
        required=False,
        help_text="Percent of a component's lines its tests must run; null: not checked.",
    )
    min_branch_coverage = serializers.IntegerField(
        min_value=0,
        max_value=100,
        allow_null=True,
        required=False,
        help_text="Percent of a component's branches its tests must take; null: not checked.",
    )
    test_runs = serializers.IntegerField(
        min_value=1,
        max_value=MAX_TEST_RUNS,
        required=False,
        help_text="How many times VerifyTests runs the test file; every run must pass.",
    )
    require_assertions = serializers.BooleanField(
        required=False, help_text="Every test function must assert something."
    )
    max_improve_attempts = serializers.IntegerField(
        min_value=0,
        max_value=MAX_IMPROVE_ATTEMPTS,
        required=False,
        help_text="ImproveTests rounds before tests below the bar fail the session.",
    )
    coverage_command_template = serializers.CharField(
        max_length=500,
        required=False,
        help_text="Runs the test file measuring coverage: {test_file}, {source_path}, "
        "{report_file}.",
    )
    coverage_report_format = serializers.ChoiceField(
        choices=CoverageReportFormat.choices,
        required=False,
        help_text="What the coverage command writes to {report_file}.",
    )
    min_mutation_score = serializers.IntegerField(
        min_value=0,
        max_value=100,
        allow_null=True,
        required=False,
        help_text="Percent of a component's sampled mutants its tests must catch; null: the "
        "mutation gate is off.",
    )
    max_mutants = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MUTANTS,
        required=False,
        help_text="How many of a component's mutants the mutation gate samples.",
    )
    mutant_timeout_seconds = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MUTANT_SECONDS,
        required=False,
        help_text="A mutant's test run is stopped after this many seconds (and counts as caught).",
    )
    agent_resume_template = serializers.CharField(
        max_length=500,
        required=False,
        help_text="How a later agent step continues the agent's conversation: {prompt}, "
        "{conversation_id}.",
    )
    default_max_cost_usd = budget_field(
        required=False, help_text="A new context session's budget in US dollars; null: none."
    )
    agent_timeout_seconds = serializers.IntegerField(
        min_value=1,
        max_value=MAX_STEP_SECONDS,
        required=False,
        help_text="An agent step is stopped after this many seconds.",
    )
    test_timeout_seconds = serializers.IntegerField(
        min_value=1,
        max_value=MAX_STEP_SECONDS,
        required=False,
        help_text="A test run is stopped after this many seconds.",
    )
    pull_request_command_template = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Opens a pull request after a context's push: {branch}, {base_branch}, "
        '{title}, {report_file}; "" or null: none.',
    )
    worktree_setup_command = serializers.CharField(
        max_length=COMMAND_LINE_MAX_LENGTH,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Run in each child's new git worktree before its first step (e.g. npm ci); "
        '"" or null: nothing.',
    )

    def validate_worktree_setup_command(self, value: str | None) -> str:
        return value or ""

    def validate_pull_request_command_template(self, value: str | None) -> str:
        return value or ""


class ComponentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Component
        fields = [
            "id",
            "project",
            "name",
            "module_name",
            "type",
            "description",
            "priority",
            "parent_component",
            "source_path",
            "excluded",
            "existing_tests",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ComponentUpdateSerializer(KnownFieldsOnly, serializers.Serializer):
    """The fields a component's owner may change; any other key is a 400, not ignored."""

    unknown_field_message = CANNOT_CHANGE

    name = serializers.CharField(max_length=255, required=False)
    module_name = serializers.CharField(max_length=255, required=False)
    type = serializers.CharField(max_length=50, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    priority = int32_field(required=False, help_text="Higher runs first.")
    parent_component = VisibleObjectField(
        visible_to=selectors.components_for_user,
        allow_null=True,
        required=False,
        help_text="A component of the same project, or null for a root.",
    )
    source_path = serializers.CharField(
        max_length=500,
        allow_null=True,
        required=False,
        help_text="The component's code, relative to the repository; null when unknown.",
    )
    excluded = serializers.BooleanField(
        required=False,
        help_text="Left out of runs; excluding a component cancels its active child sessions.",
    )
    existing_tests = serializers.ListField(
        child=serializers.CharField(max_length=500),
        max_length=MAX_EXISTING_TESTS,
        required=False,
        help_text="Test files that already exercise it; the agent is pointed at them.",
    )


class ComponentCreateSerializer(ComponentUpdateSerializer):
    """Every field, with the contract's defaults; an unknown key is a 400."""

    unknown_field_message = UNKNOWN_FIELD

    project = VisibleObjectField(visible_to=selectors.projects_for_user)
    name = serializers.CharField(max_length=255)
    module_name = serializers.CharField(max_length=255, help_text="Unique within the project.")
    type = serializers.CharField(max_length=50, help_text="Free text: context, schema, ...")
    description = serializers.CharField(allow_blank=True, default="")
    priority = int32_field(default=0, help_text="Higher runs first.")
    parent_component = VisibleObjectField(
        visible_to=selectors.components_for_user,
        allow_null=True,
        default=None,
        help_text="A component of the same project, or null for a root.",
    )
    source_path = serializers.CharField(
        max_length=500,
        allow_null=True,
        default=None,
        help_text="The component's code, relative to the repository; null when unknown.",
    )
    excluded = serializers.BooleanField(default=False, help_text="Left out of runs.")
    existing_tests = serializers.ListField(
        child=serializers.CharField(max_length=500),
        max_length=MAX_EXISTING_TESTS,
        default=list,
        help_text="Test files that already exercise it; the agent is pointed at them.",
    )


class BulkComponentRowSerializer(serializers.Serializer):
    """One row of a bulk import, for the schema: the service checks rows itself, so that the
    admin's import reads them by the same rules."""

    module_name = serializers.CharField(max_length=255, help_text="The key: unique in the list.")
    name = serializers.CharField(max_length=255)
    type = serializers.CharField(max_length=50, help_text="Free text: context, module, ...")
    priority = int32_field(required=False, help_text="Higher runs first; left out: kept or 0.")
    description = serializers.CharField(
        allow_blank=True, required=False, help_text="Left out: kept, or empty."
    )
    parent_module_name = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="A row of the list or a component of the project; null for a root; "
        "left out: kept, or none.",
    )
    source_path = serializers.CharField(
        allow_null=True, required=False, help_text="Left out: kept, or none."
    )
    excluded = serializers.BooleanField(required=False, help_text="Left out: kept, or false.")
    existing_tests = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Left out: kept, or none."
    )


@extend_schema_field(BulkComponentRowSerializer(many=True))
class BulkRowsField(serializers.ListField):
    """The rows as sent; each is checked by the service, which names its index and field."""

    def __init__(self, **kwargs: Any) -> None:
        # Any JSON value: a row that is no object is the service's error, named like the rest.
        super().__init__(child=serializers.JSONField(), max_length=BULK_MAX_ROWS, **kwargs)


class BulkComponentsSerializer(KnownFieldsOnly, serializers.Serializer):
    project = serializers.UUIDField(help_text="One of the caller's projects.")
    components = BulkRowsField()
    prune = serializers.BooleanField(
        default=False,
        help_text="Also delete the project's components the list does not name (never one "
        "that has sessions: 409).",
    )
    dry_run = serializers.BooleanField(
        default=False,
        help_text="Check and apply everything, then roll it back: the answer (or the error) "
        "is the import's, and nothing is stored.",
    )


class BulkComponentActionSerializer(serializers.Serializer):
    module_name = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "update", "unchanged", "delete"])
    changes = serializers.ListField(
        child=serializers.CharField(), help_text="The row fields an update changes."
    )
    before = serializers.DictField(
        help_text="An update's changed row fields as they were (a parent by module name)."
    )
    after = serializers.DictField(
        help_text="A create's every row field, an update's changed ones, as they will be."
    )


class BulkComponentsResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    deleted = serializers.IntegerField()
    components = ComponentSerializer(
        many=True,
        help_text="One per row, in the rows' order (in a dry run, a new one's id is not stored).",
    )
    dry_run = serializers.BooleanField(help_text="True when nothing was stored.")
    actions = BulkComponentActionSerializer(
        many=True, help_text="One per row in the rows' order, then the deleted by module name."
    )
