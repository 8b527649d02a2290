"""Never a 500: every kind of bad input is a clear 4xx and leaves the database as it was."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from core.scope import Scope
from sessions_app.models import Interaction, SessionStatus
from tests.factories import make_component, make_project, make_session

SESSIONS = "/api/sessions/"
SESSION = "/api/sessions/{session}/"
RESULT = "/api/sessions/{session}/interactions/{interaction}/result/"
COMPONENTS = "/api/components/"
COMPONENT = "/api/components/{component}/"
PROJECTS = "/api/projects/"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Any = None  # a dict (placeholders filled in, sent as JSON) or raw bytes
    status: int = 400
    content_type: str = "application/json"

    def __str__(self) -> str:
        return self.name


def new_session(**fields: Any) -> dict[str, Any]:
    return {"project": "{project}", "type": "ContextTestingSessions", **fields}


def new_component(**fields: Any) -> dict[str, Any]:
    return {"project": "{project}", "name": "Cart", "module_name": "Shop.Cart", "type": "x"} | (
        fields
    )


def result(**fields: Any) -> dict[str, Any]:
    return {"status": "ok", **fields}


CASES = [
    # malformed JSON and JSON the databases cannot store
    Case("truncated object", "post", PROJECTS, b'{"name": '),
    Case("truncated array", "post", SESSIONS, b"[1, 2"),
    Case("not JSON at all", "patch", SESSION, b"status=complete"),
    Case("trailing comma", "post", RESULT, b'{"status": "ok",}'),
    Case("a list, not an object", "post", SESSIONS, b"[]"),
    Case("a string, not an object", "post", RESULT, b'"ok"'),
    Case("null body", "patch", SESSION, b"null"),
    Case("NaN", "post", RESULT, b'{"status": "ok", "data": NaN}'),
    Case("Infinity", "post", RESULT, b'{"status": "ok", "duration_ms": Infinity}'),
    Case("a number overflowing to infinity", "patch", SESSION, b'{"state": {"x": 1e400}}'),
    Case("an integer of 5000 digits", "post", COMPONENTS, b'{"priority": ' + b"9" * 5000 + b"}"),
    Case("nesting deeper than the stack", "patch", SESSION, b'{"state": ' + b"[" * 100_000),
    Case("NUL in a JSON value", "patch", SESSION, {"state": {"log": "a\u0000b"}}),
    Case("NUL in a JSON key", "post", RESULT, {"status": "ok", "data": {"a\u0000": 1}}),
    Case("NUL in a string field", "post", PROJECTS, {"name": "a\u0000b"}),
    Case("an unpaired surrogate", "post", PROJECTS, b'{"name": "\\ud800"}'),
    Case("invalid UTF-8", "post", PROJECTS, b'{"name": "\xff\xfe"}'),
    Case(
        "form data, not JSON", "post", PROJECTS, b"name=x", 415, "application/x-www-form-urlencoded"
    ),
    Case("no content type", "post", PROJECTS, b'{"name": "x"}', 415, "text/plain"),
    Case(
        "an unknown charset",
        "post",
        PROJECTS,
        b'{"name": "x"}',
        400,
        "application/json; charset=bz2_codec",
    ),
    # wrong types
    Case("name as a list", "post", PROJECTS, {"name": ["Shop"]}),
    Case("name as an object", "post", PROJECTS, {"name": {"x": 1}}),
    Case("name as a boolean", "post", PROJECTS, {"name": True}),
    Case("name missing", "post", PROJECTS, {}),
    Case("priority as a word", "post", COMPONENTS, new_component(priority="high")),
    Case("priority as a fraction", "post", COMPONENTS, new_component(priority=1.5)),
    Case("priority as a boolean", "post", COMPONENTS, new_component(priority=True)),
    Case("type null", "post", SESSIONS, new_session(type=None)),
    Case("type as a list", "post", SESSIONS, new_session(type=["ContextTestingSessions"])),
    Case("state as a string", "post", SESSIONS, new_session(state="a string")),
    Case("state as a list", "patch", SESSION, {"state": [1]}),
    Case("code as a word", "post", RESULT, result(code="zero")),
    Case("stdout as a list", "post", RESULT, result(stdout=["line"])),
    Case("status missing", "post", RESULT, {"stdout": "x"}),
    # unknown enum values
    Case("an unregistered session type", "post", SESSIONS, new_session(type="Nope")),
    Case("an unknown execution mode", "post", SESSIONS, new_session(execution_mode="turbo")),
    Case("an unknown agent", "post", SESSIONS, new_session(agent="gpt")),
    Case("an unknown environment", "post", SESSIONS, new_session(environment="cloud")),
    Case("an unknown status", "patch", SESSION, {"status": "paused"}),
    Case("an unknown result status", "post", RESULT, result(status="done")),
    Case("a status in capitals", "post", RESULT, result(status="OK")),
    Case("an unknown status filter", "get", SESSIONS + "?status=paused"),
    # oversize strings and integers
    Case("priority 2**40", "post", COMPONENTS, new_component(priority=2**40)),
    Case("priority -2**40", "post", COMPONENTS, new_component(priority=-(2**40))),
    Case("priority 2**31", "patch", COMPONENT, {"priority": 2**31}),
    Case("priority 10**30 as a string", "post", COMPONENTS, new_component(priority="1" + "0" * 30)),
    Case("code 2**63", "post", RESULT, result(code=2**63)),
    Case("a negative duration", "post", RESULT, result(duration_ms=-1)),
    Case("project name of 201 characters", "post", PROJECTS, {"name": "x" * 201}),
    Case("component name of 256", "post", COMPONENTS, new_component(name="x" * 256)),
    Case("module name of 256", "patch", COMPONENT, {"module_name": "x" * 256}),
    Case("component type of 51", "post", COMPONENTS, new_component(type="x" * 51)),
    Case("session type of 101", "post", SESSIONS, new_session(type="x" * 101)),
    Case("conversation id of 256", "patch", SESSION, {"external_conversation_id": "x" * 256}),
    Case("stdout past a million", "post", RESULT, result(stdout="x" * 1_000_001)),
    Case("a type filter of 101", "get", SESSIONS + "?type=" + "x" * 101),
    Case(
        "a body past the upload limit",
        "post",
        PROJECTS,
        json.dumps({"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}).encode(),
        413,
    ),
    # invalid UUIDs, in paths and in bodies
    Case("a session id that is no UUID", "get", "/api/sessions/xyz/", status=404),
    Case("a session id that is a number", "patch", "/api/sessions/1/", {}, 404),
    Case("spawn on no UUID", "post", "/api/sessions/xyz/spawn/", status=404),
    Case("children of no UUID", "get", "/api/sessions/%20/children/", status=404),
    Case(
        "an interaction id that is no UUID",
        "post",
        SESSION + "interactions/x/result/",
        result(),
        404,
    ),
    Case("a component id that is no UUID", "delete", "/api/components/abc/", status=404),
    Case("an unknown session", "post", "/api/sessions/{unknown}/cancel/", status=404),
    Case(
        "an unknown interaction", "post", SESSION + "interactions/{unknown}/result/", result(), 404
    ),
    Case("project no UUID", "post", SESSIONS, new_session(project="abc")),
    Case("project a number", "post", COMPONENTS, new_component(project=12)),
    Case("project an object", "post", SESSIONS, new_session(project={"id": "{project}"})),
    Case("project empty", "post", SESSIONS, new_session(project="")),
    Case("component no UUID", "post", SESSIONS, new_session(component="abc")),
    Case("parent session a boolean", "post", SESSIONS, new_session(parent_session=True)),
    Case("parent component no UUID", "patch", COMPONENT, {"parent_component": "x"}),
    Case("an unknown component", "post", SESSIONS, new_session(component="{unknown}")),
    Case("a project filter no UUID", "get", SESSIONS + "?project=1"),
    Case("a parent filter no UUID", "get", COMPONENTS + "?parent_component=%E2%98%83"),
    Case("a page past the end", "get", SESSIONS + "?page=99", status=404),
    Case("a page that is a word", "get", COMPONENTS + "?page=first", status=404),
    # references outside the caller's projects, or across them
    Case("another's project", "post", SESSIONS, new_session(project="{foreign_project}")),
    Case("another's component", "post", SESSIONS, new_session(component="{foreign_component}")),
    Case(
        "another's parent session",
        "post",
        SESSIONS,
        new_session(parent_session="{foreign_session}"),
    ),
    Case(
        "another's project for a component",
        "post",
        COMPONENTS,
        new_component(project="{foreign_project}"),
    ),
    Case(
        "another's parent component",
        "patch",
        COMPONENT,
        {"parent_component": "{foreign_component}"},
    ),
    Case("my component of project B", "post", SESSIONS, new_session(component="{b_component}")),
    Case(
        "my session of project B as parent",
        "post",
        SESSIONS,
        new_session(parent_session="{b_session}"),
    ),
    Case("my component of B as parent", "patch", COMPONENT, {"parent_component": "{b_component}"}),
    Case("a component as its own parent", "patch", COMPONENT, {"parent_component": "{component}"}),
    Case("another's session", "get", "/api/sessions/{foreign_session}/", status=404),
    Case("another's session's spawn", "post", "/api/sessions/{foreign_session}/spawn/", status=404),
    Case(
        "another's component", "patch", "/api/components/{foreign_component}/", {"name": "x"}, 404
    ),
    # fields that cannot change
    Case("changing a session's type", "patch", SESSION, {"type": "ComponentTestSessions"}),
    Case("changing a session's component", "patch", SESSION, {"component": None}),
    Case("changing a component's project", "patch", COMPONENT, {"project": "{b_project}"}),
    # state conflicts and steps that cannot proceed
    Case(
        "a result reported twice",
        "post",
        "/api/sessions/{session}/interactions/{done}/result/",
        result(),
        409,
    ),
    Case(
        "next command for a finished session",
        "post",
        "/api/sessions/{finished}/next-command/",
        status=409,
    ),
    Case(
        "a result for a finished session",
        "post",
        "/api/sessions/{finished}/interactions/{finished_pending}/result/",
        result(),
        409,
    ),
    Case("cancelling a finished session", "post", "/api/sessions/{finished}/cancel/", status=409),
    Case("spawning without a context", "post", "/api/sessions/{no_context}/spawn/", status=422),
    Case("a context without children", "post", "/api/sessions/{childless}/spawn/", status=422),
    # methods that are not offered
    Case("PUT a session", "put", SESSION, {}, 405),
    Case("DELETE a session", "delete", SESSION, status=405),
    Case("DELETE the project list", "delete", PROJECTS, status=405),
]


@pytest.fixture
def world(scope, context_session, context, other_scope) -> dict[str, str]:
    """Objects for the placeholders; ``b_*`` are in the caller's second project."""
    project_b = make_project(scope.user, name="B")
    b_scope = Scope(user=scope.user, project=project_b)
    done = Interaction.objects.create(
        session=context_session,
        step_name="Initialize",
        command={},
        result={"status": "ok"},
        completed_at=context_session.created_at,
    )
    pending = Interaction.objects.create(
        session=context_session, step_name="SpawnComponentTestingSessions", command={}
    )
    finished = make_session(scope, component=context, status=SessionStatus.COMPLETE)
    finished_pending = Interaction.objects.create(
        session=finished, step_name="Finalize", command={}
    )
    ids = {
        "project": scope.project.pk,
        "session": context_session.pk,
        "interaction": pending.pk,
        "done": done.pk,
        "component": context.pk,
        "finished": finished.pk,
        "finished_pending": finished_pending.pk,
        "no_context": make_session(scope).pk,
        "childless": make_session(scope, component=make_component(scope.project)).pk,
        "b_project": project_b.pk,
        "b_component": make_component(project_b).pk,
        "b_session": make_session(b_scope).pk,
        "foreign_project": other_scope.project.pk,
        "foreign_component": make_component(other_scope.project).pk,
        "foreign_session": make_session(other_scope).pk,
        "unknown": "4b0c2f5e-0000-4000-8000-000000000000",
    }
    return {name: str(value) for name, value in ids.items()}


def fill(value: Any, world: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**world) if "{" in value and "}" in value else value
    if isinstance(value, dict):
        return {key: fill(item, world) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, world) for item in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(api, world, unchanged_db, case):
    path = case.path.format(**world)
    raw = isinstance(case.body, bytes | None)
    data = case.body if raw else json.dumps(fill(case.body, world))
    kwargs = {"content_type": case.content_type} if data is not None else {}

    with unchanged_db():
        response = getattr(api, case.method)(path, data, **kwargs)

    assert response.status_code == case.status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict) and body, body
    messages = json.dumps(body)
    assert "Traceback" not in messages
