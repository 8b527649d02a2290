"""GET/POST /api/projects/."""

from components_app.models import Project
from tests.factories import make_project, make_user


def test_lists_the_callers_projects_by_name(api, user, project):
    make_project(user, name="Archive")
    make_project(make_user(), name="Not mine")

    response = api.get("/api/projects/")

    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["Archive", "Shop"]


def test_create_makes_the_caller_a_member(api, user):
    response = api.post("/api/projects/", {"name": "Billing"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Billing"
    assert set(body) == {
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
    assert list(Project.objects.get(pk=body["id"]).members.all()) == [user]


def test_create_needs_a_name(api, user, unchanged_db):
    with unchanged_db():
        response = api.post("/api/projects/", {"name": ""}, format="json")

    assert response.status_code == 400
    assert response.json() == {"name": ["This field may not be blank."]}
