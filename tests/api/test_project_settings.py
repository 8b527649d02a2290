"""A project's settings through the API (GET and PATCH /api/projects/{id}/), the service under
it and the admin's project form: every setting read and written, the same validation at every
door, and no template that gives two components one test file."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from components_app import services
from components_app.models import DEFAULT_COVERAGE_COMMAND, Component, Project
from components_app.test_paths import DEFAULT_TEMPLATE
from core.errors import InvalidInput
from tests.api.conftest import client_for
from tests.factories import make_component, make_project, make_user

PROJECT_KEYS = {
    "id",
    "name",
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
    "created_at",
    "updated_at",
}
DEFAULTS = {
    "test_command_template": "pytest {test_file}",
    "test_path_template": "tests/test_{module_snake}_{module_last}.py",
    "agent_command_template": (
        "claude -p {prompt} --output-format json --permission-mode acceptEdits"
    ),
    "base_branch": "main",
    "max_step_attempts": 3,
    "min_line_coverage": 80,
    "min_branch_coverage": None,
    "test_runs": 3,
    "require_assertions": True,
    "max_improve_attempts": 3,
    "coverage_command_template": DEFAULT_COVERAGE_COMMAND,
    "coverage_report_format": "coverage.py-json",
    "min_mutation_score": None,
    "max_mutants": 20,
    "mutant_timeout_seconds": 60,
    "agent_resume_template": (
        "claude -p {prompt} --resume {conversation_id} --output-format json "
        "--permission-mode acceptEdits"
    ),
    "default_max_cost_usd": None,
    "agent_timeout_seconds": 1800,
    "test_timeout_seconds": 600,
    "pull_request_command_template": "",
    "worktree_setup_command": "",
}
EVERY_SETTING = {
    "name": "Shop (renamed)",
    "test_command_template": "python -m pytest -x {test_file}",
    "test_path_template": "tests/unit/test_{module_last}_{module_snake}.py",
    "agent_command_template": "claude -p {prompt} --model opus",
    "base_branch": "release/2.x",
    "max_step_attempts": 7,
    "min_line_coverage": 90,
    "min_branch_coverage": 75,
    "test_runs": 5,
    "require_assertions": False,
    "max_improve_attempts": 0,
    "coverage_command_template": "npx jest --coverage {test_file} --outputFile={report_file}",
    "coverage_report_format": "lcov",
    "min_mutation_score": 60,
    "max_mutants": 40,
    "mutant_timeout_seconds": 15,
    "agent_resume_template": "claude -p {prompt} --resume {conversation_id} --model opus",
    "default_max_cost_usd": 12.5,
    "agent_timeout_seconds": 900,
    "test_timeout_seconds": 120,
    "pull_request_command_template": (
        "gh pr create --head {branch} --base {base_branch} --title {title} "
        "--body-file {report_file}"
    ),
    "worktree_setup_command": "npm ci --silent && cp ../.env.test .env",
}
SNAKE_ONLY = "tests/test_{module_snake}.py"
CLICK_TAKEN = "Test file tests/test_click_utils.py is already the test file of click._utils"


def url(project) -> str:
    return f"/api/projects/{project.pk}/"


def stored(project) -> dict:
    return Project.objects.filter(pk=project.pk).values("name", *DEFAULTS).get()


def create_component(api, project, module_name, **fields):
    body = {
        "project": str(project.pk),
        "name": module_name.rsplit(".", 1)[-1] or module_name,
        "module_name": module_name,
        "type": "module",
        **fields,
    }
    return api.post("/api/components/", body, format="json")


# GET


def test_get_answers_the_project_with_every_setting_at_its_default(api, project):
    response = api.get(url(project))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PROJECT_KEYS
    assert (body["id"], body["name"]) == (str(project.pk), "Shop")
    assert {key: body[key] for key in DEFAULTS} == DEFAULTS
    assert DEFAULTS["test_path_template"] == DEFAULT_TEMPLATE


def test_get_shows_settings_as_stored(api, project):
    Project.objects.filter(pk=project.pk).update(base_branch="develop", max_step_attempts=1)

    body = api.get(url(project)).json()

    assert (body["base_branch"], body["max_step_attempts"]) == ("develop", 1)


def test_the_list_shows_the_same_project_json(api, project):
    listed = api.get("/api/projects/").json()["results"]

    assert listed == [api.get(url(project)).json()]


def test_another_users_project_is_404_to_read(api):
    stranger = make_user("mallory")
    theirs = make_project(stranger, name="Elsewhere")

    response = api.get(url(theirs))

    assert response.status_code == 404
    assert response.json() == {"detail": "Project not found"}


def test_an_anonymous_read_is_401(anonymous, project):
    assert anonymous.get(url(project)).status_code == 401


# PATCH: what it changes


def test_a_patch_of_every_setting_round_trips(api, project):
    response = api.patch(url(project), EVERY_SETTING, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == PROJECT_KEYS
    assert {key: body[key] for key in EVERY_SETTING} == EVERY_SETTING
    assert api.get(url(project)).json() == body
    assert stored(project) == EVERY_SETTING


@pytest.mark.parametrize(("field", "value"), [*EVERY_SETTING.items()])
def test_a_patch_of_one_setting_changes_only_that_setting(api, project, field, value):
    before = api.get(url(project)).json()

    response = api.patch(url(project), {field: value}, format="json")

    assert response.status_code == 200, response.content
    after = response.json()
    assert after[field] == value
    unchanged = PROJECT_KEYS - {field, "updated_at"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert after["updated_at"] > before["updated_at"]


@pytest.mark.parametrize("attempts", [1, 10])
def test_max_step_attempts_takes_both_ends_of_its_range(api, project, attempts):
    response = api.patch(url(project), {"max_step_attempts": attempts}, format="json")

    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).max_step_attempts == attempts


@pytest.mark.parametrize("branch", ["main", "develop", "release/2.x", "feature/a-b_c.d", "v1+2"])
def test_a_valid_base_branch_is_kept(api, project, branch):
    response = api.patch(url(project), {"base_branch": branch}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["base_branch"] == branch


def test_an_empty_patch_changes_nothing(api, project):
    before = api.get(url(project)).json()

    response = api.patch(url(project), {}, format="json")

    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_any_member_may_change_the_settings(project):
    colleague = make_user("bob")
    project.members.add(colleague)

    response = client_for(colleague).patch(url(project), {"base_branch": "trunk"}, format="json")

    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).base_branch == "trunk"


# PATCH: what it refuses

BRANCH_PREFIX = "Not a valid git branch name: "
REFUSED = [
    ("name", "", "This field may not be blank."),
    ("name", None, "This field may not be null."),
    ("name", "x" * 201, "Ensure this field has no more than 200 characters."),
    ("base_branch", "+main", BRANCH_PREFIX + 'it starts with "+".'),
    ("base_branch", "-x", BRANCH_PREFIX + 'it starts with "-".'),
    ("base_branch", "a..b", BRANCH_PREFIX + 'it contains "..".'),
    ("base_branch", "HEAD", BRANCH_PREFIX + "HEAD is not a branch name."),
    ("base_branch", "a b", BRANCH_PREFIX + "it contains the character U+0020."),
    ("base_branch", "topic.lock", BRANCH_PREFIX + 'a part of it ends with ".lock".'),
    ("base_branch", "", "This field may not be blank."),
    ("base_branch", None, "This field may not be null."),
    ("max_step_attempts", 0, "Ensure this value is greater than or equal to 1."),
    ("max_step_attempts", 11, "Ensure this value is less than or equal to 10."),
    ("max_step_attempts", "many", "A valid integer is required."),
    ("max_step_attempts", None, "This field may not be null."),
    ("test_command_template", "", "This field may not be blank."),
    ("agent_command_template", "", "This field may not be blank."),
    ("test_path_template", "", "This field may not be blank."),
    (
        "worktree_setup_command",
        "pip install -e .\nrm -rf ~",
        "Write the command on one line, without control characters.",
    ),
    (
        "worktree_setup_command",
        "pip install \u202e-e .",
        "Write the command on one line, without control characters.",
    ),
    (
        "worktree_setup_command",
        "echo 'unclosed",
        "The command is not valid shell: a quote, $( or ${ is not closed.",
    ),
    (
        "worktree_setup_command",
        "echo $(date",
        "The command is not valid shell: a quote, $( or ${ is not closed.",
    ),
    ("default_max_cost_usd", -1, "Ensure this value is greater than or equal to 0."),
    ("default_max_cost_usd", "lots", "A valid number is required."),
    (
        "default_max_cost_usd",
        1.23456,
        "Ensure that there are no more than 4 decimal places.",
    ),
    ("agent_timeout_seconds", 0, "Ensure this value is greater than or equal to 1."),
    ("test_timeout_seconds", 86_401, "Ensure this value is less than or equal to 86400."),
    ("agent_timeout_seconds", None, "This field may not be null."),
    (
        "agent_resume_template",
        "claude -p {prompt} --continue",
        "A resume template must use both {prompt} and {conversation_id}.",
    ),
    (
        "worktree_setup_command",
        "x" * 1001,
        "Ensure this field has no more than 1000 characters.",
    ),
]


@pytest.mark.parametrize(("field", "value", "message"), REFUSED)
def test_a_bad_setting_is_a_400_naming_the_field_with_the_reason(
    api, project, unchanged_db, field, value, message
):
    with unchanged_db():
        response = api.patch(url(project), {field: value}, format="json")

    assert response.status_code == 400
    assert response.json() == {field: [message]}


UNSAFE_TEMPLATES = [
    ("test_command_template", "pytest {oops}"),
    ("test_command_template", "pytest {test_file"),
    ("test_command_template", "sh -c {test_file}"),
    ("test_command_template", "pytest '{test_file}'"),
    ("test_command_template", "eval {test_file}"),
    ("test_command_template", "pytest $({test_file})"),
    ("agent_command_template", "claude -p {task}"),
    ("agent_command_template", "bash -c {prompt}"),
    ("agent_command_template", "claude -p {prompt};{prompt}x"),
    ("agent_resume_template", "claude -p {prompt} --resume '{conversation_id}'"),
    ("agent_resume_template", "sh -c {conversation_id} {prompt}"),
    ("agent_resume_template", "claude -p {prompt} --resume {session}"),
    ("pull_request_command_template", "gh pr create --title '{title}'"),
    ("pull_request_command_template", "gh pr create --title {name}"),
    ("pull_request_command_template", "sh -c {title}"),
    ("pull_request_command_template", "gh pr create --body $(cat {report_file})"),
    ("test_path_template", "tests/{oops}.py"),
    ("test_path_template", "/tmp/test_{module_snake}.py"),
    ("test_path_template", "../test_{module_snake}.py"),
    ("test_path_template", "-tests/test_{module_snake}.py"),
    ("test_path_template", "tests/{module}/../x.py"),
    ("test_path_template", "tests/{0}.py"),
]


@pytest.mark.parametrize(("field", "template"), UNSAFE_TEMPLATES)
def test_a_template_with_an_unknown_placeholder_or_an_unsafe_use_is_a_400_naming_it(
    api, project, unchanged_db, field, template
):
    with unchanged_db():
        response = api.patch(url(project), {field: template}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {field}
    assert len(body[field]) == 1 and body[field][0]


def test_an_unknown_placeholder_is_named_with_the_allowed_ones(api, project):
    response = api.patch(url(project), {"test_path_template": "tests/{oops}.py"}, format="json")

    assert response.json() == {
        "test_path_template": [
            "Use only the placeholders {module}, {module_snake}, {module_last}, {module_path}, "
            "{source_path}, {source_dir}, {source_stem}, {source_ext}; "
            "write {{ and }} for literal braces."
        ]
    }


def test_two_bad_settings_are_both_named(api, project, unchanged_db):
    with unchanged_db():
        response = api.patch(
            url(project),
            {"base_branch": "+main", "test_path_template": "tests/{oops}.py"},
            format="json",
        )

    assert response.status_code == 400
    assert set(response.json()) == {"base_branch", "test_path_template"}


@pytest.mark.parametrize(
    "key", ["id", "created_at", "updated_at", "members", "components", "mutation_score"]
)
def test_a_key_that_is_not_a_setting_is_a_400(api, project, unchanged_db, key):
    with unchanged_db():
        response = api.patch(url(project), {key: "x", "base_branch": "develop"}, format="json")

    assert response.status_code == 400
    assert response.json() == {key: ["This field cannot be changed."]}


def test_another_users_project_is_404_to_change_and_is_not_changed(api):
    stranger = make_user("mallory")
    theirs = make_project(stranger, name="Elsewhere")
    before = stored(theirs)

    response = api.patch(url(theirs), {"base_branch": "develop"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Project not found"}
    assert stored(theirs) == before


def test_another_users_project_is_404_even_for_a_bad_patch(api):
    theirs = make_project(make_user("mallory"), name="Elsewhere")

    response = api.patch(url(theirs), {"base_branch": "+main"}, format="json")

    assert response.status_code == 404


def test_an_anonymous_patch_is_401(anonymous, project):
    response = anonymous.patch(url(project), {"base_branch": "develop"}, format="json")

    assert response.status_code == 401
    assert Project.objects.get(pk=project.pk).base_branch == "main"


# Test files of their own


def test_a_patch_of_test_path_template_that_would_merge_two_components_is_400(
    api, project, unchanged_db
):
    for module_name in ("click.utils", "click._utils"):
        assert create_component(api, project, module_name).status_code == 201

    with unchanged_db():
        response = api.patch(
            url(project), {"test_path_template": SNAKE_ONLY, "name": "Renamed"}, format="json"
        )

    assert response.status_code == 400
    assert response.json() == {"test_path_template": [CLICK_TAKEN]}
    assert stored(project)["test_path_template"] == DEFAULT_TEMPLATE
    assert stored(project)["name"] == "Shop"


def test_a_merging_template_names_the_pair_whose_module_names_sort_first(api, project):
    # Three pairs would share a file under SNAKE_ONLY; "a._x" < "a.x" < "b._y" < ...
    for module_name in ("b.y", "b._y", "z.q", "a.x", "z._q", "a._x", "m.only"):
        make_component(project, module_name, module_name=module_name)

    response = api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "test_path_template": ["Test file tests/test_a_x.py is already the test file of a._x"]
    }


def test_a_template_that_keeps_every_component_apart_is_taken(api, project):
    for module_name in ("click.utils", "click.core"):
        make_component(project, module_name, module_name=module_name)

    response = api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")

    assert response.status_code == 200
    assert response.json()["test_path_template"] == SNAKE_ONLY


def test_excluded_components_still_need_a_test_file_of_their_own(api, project):
    make_component(project, "utils", module_name="click.utils")
    make_component(project, "_utils", module_name="click._utils", excluded=True)

    response = api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")

    assert response.status_code == 400
    assert response.json() == {"test_path_template": [CLICK_TAKEN]}


def test_another_projects_components_do_not_collide(api, user, project):
    make_component(project, "utils", module_name="click.utils")
    other = make_project(user, name="Other")
    make_component(other, "_utils", module_name="click._utils")

    response = api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")

    assert response.status_code == 200


NEAR_PAIRS = [
    ("click.utils", "click._utils"),
    ("a.b_c", "a.b.c"),
    ("pkg.fooBar", "pkg.foo_bar"),
    ("pkg.__main__", "pkg.main"),
]


def test_the_default_template_keeps_apart_modules_that_snake_case_folds_together(api, project):
    for first, second in NEAR_PAIRS:
        for module_name in (first, second):
            response = create_component(api, project, module_name)
            assert response.status_code == 201, (module_name, response.content)

    assert Component.objects.filter(project=project).count() == 8
    # The same components under {module_snake} alone: the first pair by module name collides.
    refused = api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")
    assert refused.json() == {
        "test_path_template": ["Test file tests/test_a_b_c.py is already the test file of a.b.c"]
    }


@pytest.mark.parametrize(("first", "second"), NEAR_PAIRS)
def test_under_snake_case_alone_each_near_pair_collides(api, project, first, second):
    api.patch(url(project), {"test_path_template": SNAKE_ONLY}, format="json")
    assert create_component(api, project, first).status_code == 201

    response = create_component(api, project, second)

    assert response.status_code == 400
    [message] = response.json()["module_name"]
    assert message.endswith(f" is already the test file of {first}")


def test_a_source_path_template_and_components_without_one_is_fine(api, project):
    response = api.patch(url(project), {"test_path_template": "tests/{source_path}"}, format="json")
    assert response.status_code == 200

    # Neither has a test file to collide with.
    for module_name in ("shop.user", "shop.cart"):
        assert create_component(api, project, module_name).status_code == 201
    assert create_component(
        api, project, "shop.token", source_path="shop/token.py"
    ).status_code == (201)


def test_a_source_path_template_is_taken_when_components_have_no_source_path(api, project):
    for module_name in ("click.utils", "click._utils"):
        make_component(project, module_name, module_name=module_name)

    response = api.patch(url(project), {"test_path_template": "tests/{source_path}"}, format="json")

    assert response.status_code == 200


def test_a_source_path_template_refuses_two_components_of_one_source_path(api, project):
    make_component(project, "b", module_name="pkg.b", source_path="pkg/shared.py")
    make_component(project, "a", module_name="pkg.a", source_path="pkg/shared.py")

    response = api.patch(
        url(project), {"test_path_template": "tests/test_{source_path}"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "test_path_template": [
            "Test file tests/test_pkg/shared.py is already the test file of pkg.a"
        ]
    }


# The service under the API


def test_the_service_refuses_a_merging_template_with_the_same_text(scope, project):
    make_component(project, "utils", module_name="click.utils")
    make_component(project, "_utils", module_name="click._utils")

    with pytest.raises(InvalidInput) as error:
        services.update_project(scope=scope, test_path_template=SNAKE_ONLY)

    assert error.value.errors == {"test_path_template": [CLICK_TAKEN]}
    assert stored(project)["test_path_template"] == DEFAULT_TEMPLATE


def test_the_service_changes_every_setting(scope, project):
    updated = services.update_project(scope=scope, **EVERY_SETTING)

    assert {key: getattr(updated, key) for key in EVERY_SETTING} == EVERY_SETTING
    assert stored(project) == EVERY_SETTING


def test_the_service_refuses_a_field_that_is_not_a_setting(scope, project):
    with pytest.raises(InvalidInput) as error:
        services.update_project(scope=scope, members=[])

    assert error.value.errors == {"members": ["This field cannot be changed."]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("base_branch", "+main"), ("max_step_attempts", 0), ("max_step_attempts", 11)],
)
def test_the_service_refuses_what_the_api_refuses(scope, project, field, value):
    with pytest.raises(InvalidInput) as error:
        services.update_project(scope=scope, **{field: value})

    assert set(error.value.errors) == {field}
    assert stored(project)[field] == DEFAULTS[field]


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_or_null_setup_command_means_none(api, project, empty):
    Project.objects.filter(pk=project.pk).update(worktree_setup_command="make setup")

    response = api.patch(url(project), {"worktree_setup_command": empty}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["worktree_setup_command"] == ""
    assert stored(project)["worktree_setup_command"] == ""


@pytest.mark.parametrize(
    "template",
    [
        "gh pr create --head {branch} --base {base_branch} --title {title} "
        "--body-file {report_file} || gh pr view {branch} --json url --jq .url",
        "body={report_file}; glab mr create --source-branch {branch} --target-branch "
        '{base_branch} --title {title} --description "$(cat "$body")" --yes',
    ],
)
def test_the_readmes_pull_request_templates_are_taken(api, project, template):
    response = api.patch(url(project), {"pull_request_command_template": template}, format="json")

    assert response.status_code == 200, response.json()
    assert stored(project)["pull_request_command_template"] == template


def test_a_new_project_can_be_created_with_settings(user):
    created = services.create_project(user=user, name="Billing", base_branch="develop")

    assert (created.base_branch, created.max_step_attempts) == ("develop", 3)


# The admin's project form


@pytest.fixture
def admin_client(client, user):
    user.is_staff = True
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="components_app", codename__regex=r"^(view|change|add)_"
        )
    )
    client.force_login(user)
    return client


def admin_url(project) -> str:
    return f"/admin/components_app/project/{project.pk}/change/"


def admin_form(project, **changes) -> dict:
    # A form posts an empty box for null, and a checkbox only when it is ticked.
    posted = {key: "" if value is None else value for key, value in DEFAULTS.items()}
    return {
        "name": project.name,
        **posted,
        "Project_members-TOTAL_FORMS": "0",
        "Project_members-INITIAL_FORMS": "0",
        **changes,
    }


def test_the_admin_project_form_shows_every_setting_under_how_runs_work(admin_client, project):
    response = admin_client.get(admin_url(project))

    assert response.status_code == 200
    fieldsets = {
        fieldset.name: [field for line in fieldset for field in line.fields]
        for fieldset in response.context["adminform"]
    }
    assert fieldsets["How runs work"] == list(DEFAULTS)
    form = response.context["adminform"].form
    for name in (
        "test_command_template",
        "test_path_template",
        "agent_command_template",
        "worktree_setup_command",
    ):
        assert "width: 60em" in form.fields[name].widget.attrs["style"]


def test_the_admin_project_form_changes_every_setting(admin_client, project):
    response = admin_client.post(admin_url(project), admin_form(project, **EVERY_SETTING))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert stored(project) == EVERY_SETTING


def test_the_admin_project_form_refuses_a_merging_template_with_the_same_text(
    admin_client, project
):
    make_component(project, "utils", module_name="click.utils")
    make_component(project, "_utils", module_name="click._utils")

    response = admin_client.post(
        admin_url(project), admin_form(project, test_path_template=SNAKE_ONLY)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["test_path_template"] == [CLICK_TAKEN]
    assert stored(project)["test_path_template"] == DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_branch", "+main"),
        ("base_branch", "a..b"),
        ("max_step_attempts", "11"),
        ("worktree_setup_command", "make setup\r\nrm -rf ~"),
        ("worktree_setup_command", 'echo "open'),
    ],
)
def test_the_admin_project_form_refuses_what_the_api_refuses(admin_client, project, field, value):
    response = admin_client.post(admin_url(project), admin_form(project, **{field: value}))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert stored(project)[field] == DEFAULTS[field]
