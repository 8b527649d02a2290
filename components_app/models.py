import string
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q
from django.utils.deconstruct import deconstructible

from components_app import test_paths
from core import safety

MODULE_NAME_TAKEN = "A component with this module name already exists in the project."
MAX_STEP_ATTEMPTS = 10
MAX_TEST_RUNS = 20
MAX_IMPROVE_ATTEMPTS = 10
# The mutation gate's sample of a component's mutants, and each mutant's time limit.
MAX_MUTANTS = 1000
MAX_MUTANT_SECONDS = 3600


@deconstructible
class TemplateValidator:
    """Accepts a ``str.format`` template that uses only the given placeholders."""

    def __init__(self, *placeholders: str) -> None:
        self.placeholders = placeholders

    def __call__(self, template: str) -> None:
        try:
            fields = string.Formatter().parse(template)
            names = {name for _, name, _, _ in fields if name is not None}
            valid = names <= set(self.placeholders)
            if valid:
                template.format(**dict.fromkeys(self.placeholders, "x"))
        except (ValueError, IndexError, KeyError, AttributeError):
            valid = False
        if not valid:
            allowed = ", ".join(f"{{{name}}}" for name in self.placeholders)
            raise ValidationError(
                f"Use only the placeholders {allowed}; write {{{{ and }}}} for literal braces."
            )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.placeholders == self.placeholders


@deconstructible
class CommandTemplateValidator(TemplateValidator):
    """A command line run with ``sh -c`` where the service puts one shell-quoted value: the
    placeholder must stay a word of its own, where the shell cannot parse the value again."""

    def __call__(self, template: str) -> None:
        super().__call__(template)
        for placeholder in self.placeholders:
            if problem := safety.shell_template_problem(template, placeholder):
                raise ValidationError(problem)


# What the path template is checked with: a module name as the demo data writes them.
SAMPLE_MODULE = "Shop.Accounts.UserToken"
SAMPLE_SOURCE_PATH = "shop/accounts/user_token.py"


@deconstructible
class PathTemplateValidator(TemplateValidator):
    """Where a component's test file lives: a relative path inside the repository."""

    def __call__(self, template: str) -> None:
        super().__call__(template)
        sample = test_paths.render(
            template, module_name=SAMPLE_MODULE, source_path=SAMPLE_SOURCE_PATH
        )
        if problem := safety.test_file_problem(sample):
            raise ValidationError(
                f"The test files it names (e.g. {sample!r}) must be relative paths inside the "
                f"repository: {problem}."
            )


def validate_module_name(value: str) -> None:
    if problem := safety.module_name_problem(value):
        raise ValidationError(problem)


def validate_source_path(value: str) -> None:
    if problem := safety.test_file_problem(value):
        raise ValidationError(f"Must be a relative path inside the repository: {problem}.")


MAX_EXISTING_TESTS = 50


def validate_existing_tests(value: object) -> None:
    if not isinstance(value, list) or len(value) > MAX_EXISTING_TESTS:
        raise ValidationError(f"Must be a list of at most {MAX_EXISTING_TESTS} test file paths.")
    for path in value:
        problem = safety.test_file_problem(path) if isinstance(path, str) else "not a string"
        if problem:
            raise ValidationError(
                f"{path!r} must be a relative path inside the repository: {problem}."
            )


def validate_command_line(value: str) -> None:
    if problem := safety.command_line_problem(value):
        raise ValidationError(problem)


def validate_base_branch(value: str) -> None:
    if problem := safety.branch_name_problem(value):
        raise ValidationError(f"Not a valid git branch name: {problem}.")


# {test_dir}: the test file's directory as a relative path (./store, or . at the top), what
# go test takes.
TEST_COMMAND_PLACEHOLDERS = ("test_file", "test_dir")
validate_test_command_template = CommandTemplateValidator(*TEST_COMMAND_PLACEHOLDERS)
validate_test_path_template = PathTemplateValidator(*test_paths.PLACEHOLDERS)
validate_agent_command_template = CommandTemplateValidator("prompt")
_resume_placeholders = CommandTemplateValidator("prompt", "conversation_id")
RESUME_NEEDS = "A resume template must use both {prompt} and {conversation_id}."


def validate_agent_resume_template(value: str) -> None:
    _resume_placeholders(value)
    if safety.template_fields(value) != {"prompt", "conversation_id"}:
        raise ValidationError(RESUME_NEEDS)


DEFAULT_AGENT_RESUME_COMMAND = (
    "claude -p {prompt} --resume {conversation_id} --output-format json "
    "--permission-mode acceptEdits"
)
MAX_STEP_SECONDS = 86_400
PULL_REQUEST_PLACEHOLDERS = ("branch", "base_branch", "title", "report_file")
validate_pull_request_command_template = CommandTemplateValidator(*PULL_REQUEST_PLACEHOLDERS)
COVERAGE_PLACEHOLDERS = ("test_file", "test_dir", "source_path", "report_file")
validate_coverage_command_template = CommandTemplateValidator(*COVERAGE_PLACEHOLDERS)
# coverage.py measures branch coverage of the test file's run and writes its JSON report, for
# the component's code only; the run's own exit code is the command's, report or not. The data
# file is the shell's own ($$), so children running at once in one working copy keep theirs
# apart.
DEFAULT_COVERAGE_COMMAND = (
    "data=.spawnctl/coverage.$$; "
    "python -m coverage run --branch --data-file=$data -m pytest {test_file}; code=$?; "
    "python -m coverage json --data-file=$data --include={source_path} -q -o {report_file}; "
    "rm -f $data; exit $code"
)


class CoverageReportFormat(models.TextChoices):
    COVERAGE_PY_JSON = "coverage.py-json", "coverage.py JSON"
    LCOV = "lcov", "LCOV"
    COBERTURA = "cobertura", "Cobertura XML"
    GO_COVER = "go-cover", "Go cover profile"


class CodePointOrder(Func):
    """Text compared by Unicode code point on every database, as Python's ``sorted`` does.

    SQLite's default BINARY collation already compares so; PostgreSQL would follow the
    database's locale, and "alpha" and "Zeta" would swap places between the two.
    """

    template = "%(expressions)s"
    output_field = models.CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template='%(expressions)s COLLATE "C"', **extra_context
        )


# The type of a component that is a context: under another context it is a nested context (a
# subpackage's), a run of its own, never a child session of its parent's run.
CONTEXT_TYPE = "context"

# The spawn order of a context's components: priority descending, then name ascending.
SPAWN_ORDER = (F("priority").desc(), CodePointOrder("name").asc())


class Project(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="projects", blank=True)
    test_command_template = models.CharField(
        max_length=500,
        default="pytest {test_file}",
        validators=[validate_test_command_template],
        help_text="Command that runs one component's tests; {test_file} is replaced.",
    )
    test_path_template = models.CharField(
        max_length=500,
        default=test_paths.DEFAULT_TEMPLATE,
        validators=[validate_test_path_template],
        help_text="Where a component's test file lives: {module} (the module name), "
        "{module_snake} (shop_accounts_user_token), {module_last} (its last dotted part) and "
        "{source_path} are replaced. No two components may get the same file.",
    )
    agent_command_template = models.CharField(
        max_length=500,
        default="claude -p {prompt} --output-format json --permission-mode acceptEdits",
        validators=[validate_agent_command_template],
        help_text="The coding agent's command line; {prompt} is replaced by the quoted prompt.",
    )
    base_branch = models.CharField(
        max_length=safety.BRANCH_MAX_LENGTH,
        default="main",
        validators=[validate_base_branch],
        help_text="The branch a run's branch starts from (origin's copy when origin has it).",
    )
    max_step_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STEP_ATTEMPTS)],
        help_text="A step whose result is an error this many times in a row fails its session.",
    )
    # The quality bar VerifyTests judges a component's tests by.
    min_line_coverage = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=80,
        validators=[MaxValueValidator(100)],
        help_text="Percent of the component's lines its tests must run; empty: not checked.",
    )
    min_branch_coverage = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="Percent of the component's branches its tests must take; empty: not checked.",
    )
    test_runs = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TEST_RUNS)],
        help_text="How many times VerifyTests runs the test file; every run must pass.",
    )
    require_assertions = models.BooleanField(
        default=True, help_text="Every test function must assert something."
    )
    max_improve_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(MAX_IMPROVE_ATTEMPTS)],
        help_text="ImproveTests rounds before tests below the bar fail the session.",
    )
    # The mutation gate (off by default): a sample of the source file's mutants, each run
    # against the component's test file, must mostly fail it.
    min_mutation_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="Percent of the sampled mutants of a component's source file its tests must "
        "catch (fail on, or time out); empty: not checked.",
    )
    max_mutants = models.PositiveSmallIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_MUTANTS)],
        help_text="How many of a component's mutants the mutation gate samples.",
    )
    mutant_timeout_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_MUTANT_SECONDS)],
        help_text="A mutant whose test run lasts longer is stopped and counts as caught.",
    )
    coverage_command_template = models.CharField(
        max_length=500,
        default=DEFAULT_COVERAGE_COMMAND,
        validators=[validate_coverage_command_template],
        help_text="Runs the test file measuring coverage and writes the report: {test_file}, "
        "{source_path}, {report_file}.",
    )
    coverage_report_format = models.CharField(
        max_length=20,
        choices=CoverageReportFormat.choices,
        default=CoverageReportFormat.COVERAGE_PY_JSON,
        help_text="What the coverage command writes to {report_file}.",
    )
    agent_resume_template = models.CharField(
        max_length=500,
        default=DEFAULT_AGENT_RESUME_COMMAND,
        validators=[validate_agent_resume_template],
        help_text="How a later agent step of a session continues the agent's conversation: "
        "{prompt} and {conversation_id} are replaced.",
    )
    default_max_cost_usd = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="A new context session's budget in US dollars; empty: no limit.",
    )
    agent_timeout_seconds = models.PositiveIntegerField(
        default=1800,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STEP_SECONDS)],
        help_text="An agent step is stopped after this many seconds.",
    )
    test_timeout_seconds = models.PositiveIntegerField(
        default=600,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STEP_SECONDS)],
        help_text="A test run (RunTests, each run of VerifyTests) is stopped after this many "
        "seconds.",
    )
    pull_request_command_template = models.CharField(
        max_length=500,
        blank=True,
        default="",
        validators=[validate_pull_request_command_template],
        help_text="Run by a context's Finalize after its push to open a pull request: {branch}, "
        "{base_branch}, {title} and {report_file} (the run's report, Markdown) are replaced; the "
        "first URL it prints is kept. Empty: none.",
    )
    worktree_setup_command = models.CharField(
        max_length=safety.COMMAND_LINE_MAX_LENGTH,
        blank=True,
        default="",
        validators=[validate_command_line],
        help_text="Run in each child's new git worktree before its first step, e.g. "
        "npm ci, or python -m venv .venv && .venv/bin/pip install -e . ; empty: nothing.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="project_name_not_empty"),
            models.CheckConstraint(
                condition=Q(max_step_attempts__gte=1, max_step_attempts__lte=MAX_STEP_ATTEMPTS),
                name="project_max_step_attempts_range",
            ),
            models.CheckConstraint(
                condition=(Q(min_line_coverage__isnull=True) | Q(min_line_coverage__lte=100))
                & (Q(min_branch_coverage__isnull=True) | Q(min_branch_coverage__lte=100))
                & Q(test_runs__gte=1, test_runs__lte=MAX_TEST_RUNS)
                & Q(max_improve_attempts__lte=MAX_IMPROVE_ATTEMPTS),
                name="project_quality_bar_ranges",
            ),
            models.CheckConstraint(
                condition=(Q(min_mutation_score__isnull=True) | Q(min_mutation_score__lte=100))
                & Q(max_mutants__gte=1, max_mutants__lte=MAX_MUTANTS)
                & Q(mutant_timeout_seconds__gte=1, mutant_timeout_seconds__lte=MAX_MUTANT_SECONDS),
                name="project_mutation_gate_ranges",
            ),
            models.CheckConstraint(
                condition=(Q(default_max_cost_usd__isnull=True) | Q(default_max_cost_usd__gte=0))
                & Q(agent_timeout_seconds__gte=1, agent_timeout_seconds__lte=MAX_STEP_SECONDS)
                & Q(test_timeout_seconds__gte=1, test_timeout_seconds__lte=MAX_STEP_SECONDS),
                name="project_budget_and_time_limits",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        # Only a stored project has components whose test files the template could merge.
        if self.pk is None or self._state.adding:
            return
        collision = test_paths.first_collision(
            self.test_path_template,
            Component.objects.filter(project_id=self.pk).only("module_name", "source_path"),
        )
        if collision:
            raise ValidationError({"test_path_template": collision})


class Component(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="components")
    name = models.CharField(max_length=255)
    module_name = models.CharField(max_length=255, validators=[validate_module_name])
    type = models.CharField(max_length=50, help_text="Free text: context, schema, ...")
    description = models.TextField(blank=True, default="")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    source_path = models.CharField(  # noqa: DJ001
        max_length=safety.TEST_FILE_MAX_LENGTH,
        null=True,
        blank=True,
        validators=[validate_source_path],
        help_text="The component's code, relative to the repository (e.g. src/shop/user.py).",
    )
    existing_tests = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_existing_tests],
        help_text="Test files that already exercise the component (the importer finds them); "
        "the agent is pointed at them.",
    )
    excluded = models.BooleanField(
        default=False,
        help_text="Left out of runs: no child session is spawned for it and its context "
        "does not wait for it.",
    )
    parent_component = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="child_components",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The spawn order: every list of components a user sees follows it.
        ordering = SPAWN_ORDER
        constraints = [
            models.UniqueConstraint(
                fields=["project", "module_name"],
                name="component_module_name_unique_in_project",
                violation_error_message=MODULE_NAME_TAKEN,
            ),
            models.CheckConstraint(
                condition=~Q(parent_component=F("id")), name="component_not_its_own_parent"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="component_name_not_empty"),
            models.CheckConstraint(
                condition=~Q(module_name=""), name="component_module_name_not_empty"
            ),
        ]
        indexes = [
            models.Index(fields=["parent_component", "-priority", "name"]),
            # What a run's result check asks of every component of its context (is it one
            # that should have a child, and which is it), read from the index alone: 3.0 ms
            # -> 1.9 ms at 5,000 components on SQLite (docs/performance.md).
            models.Index(
                fields=["parent_component", "excluded", "type", "project", "id"],
                name="component_children_check",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.module_name})"

    def clean(self) -> None:
        super().clean()
        if self.pk is not None:
            stored_project = (
                Component.objects.filter(pk=self.pk).values_list("project_id", flat=True).first()
            )
            if stored_project is not None and stored_project != self.project_id:
                raise ValidationError({"project": "A component cannot move to another project."})
        self._check_test_file()
        parent = self.parent_component
        if parent is None:
            return
        if parent.project_id != self.project_id:
            raise ValidationError(
                {"parent_component": "The parent component must belong to the same project."}
            )
        if parent.pk == self.pk:
            raise ValidationError({"parent_component": "A component cannot be its own parent."})
        if self.pk is not None and self._is_ancestor_of(parent):
            raise ValidationError(
                {"parent_component": "A component cannot be placed under one of its descendants."}
            )

    def _check_test_file(self) -> None:
        """No other component of the project may have the same test file."""
        if not self.project_id or not self.module_name:
            return
        template = self.project.test_path_template
        others = (
            Component.objects.filter(project_id=self.project_id)
            .exclude(pk=self.pk)
            .only("module_name", "source_path")
        )
        if collision := test_paths.collision_with(template, self, others):
            raise ValidationError({"module_name": collision})

    def _is_ancestor_of(self, component: "Component") -> bool:
        """Walk up from ``component``; one query per level, bounded by the tree's depth."""
        seen: set[uuid.UUID] = set()
        current_id = component.parent_component_id
        while current_id is not None and current_id not in seen:
            if current_id == self.pk:
                return True
            seen.add(current_id)
            current_id = (
                Component.objects.filter(pk=current_id)
                .values_list("parent_component_id", flat=True)
                .first()
            )
        return False


# The admin's members inline names each row by its person, not "Project_members object (1)".
Project.members.through.__str__ = lambda membership: str(membership.user)
