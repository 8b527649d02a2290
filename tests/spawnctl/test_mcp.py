"""``spawnctl mcp`` as a coding agent meets it: the SDK's own stdio client talks to the server
started as a subprocess, which talks HTTP to pytest-django's live server.

Every scenario runs inside ``anyio.fail_after``, so a server that stops answering fails the
test instead of hanging it. The ORM is used only before and after a scenario, never inside
the event loop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent
from rest_framework.authtoken.models import Token

from core.scope import Scope
from sessions_app.models import Session, SessionStatus
from sessions_app.services import RESULT_ALREADY_REPORTED, RETRY_ONLY_FINISHED
from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS
from sessions_app.workflows.steps.spawn_component_testing_sessions import NO_CHILD_COMPONENTS
from tests.factories import make_component, make_context, make_project, make_session, make_user

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
RUNNER = "agent-under-test"
SCENARIO_SECONDS = 90
T = TypeVar("T")

TOOLS = {
    "list_projects",
    "list_sessions",
    "session_status",
    "next_command",
    "report_result",
    "heartbeat",
    "release",
    "claim_child",
    "spawn",
    "spawn_missing",
    "retry",
    "retry_children",
}
COMPONENT_STEPS = [
    "Initialize",
    "GenerateTestsAndFixtures",
    "RunTests",
    "VerifyTests",
    "Finalize",
]


class Agent:
    """The client side of one MCP connection, with the calls the tests make."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> CallToolResult:
        return await self.session.call_tool(tool, arguments, read_timeout_seconds=60)

    async def ok(self, tool: str, **arguments: Any) -> Any:
        """The tool's JSON answer; fails the test on a tool error."""
        result = await self.call(tool, **arguments)
        assert not result.is_error, text_of(result)
        return json.loads(text_of(result))

    async def error(self, tool: str, **arguments: Any) -> str:
        """The tool error's text; fails the test when the call succeeds."""
        result = await self.call(tool, **arguments)
        assert result.is_error, text_of(result)
        return text_of(result)


def text_of(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


def with_mcp(url: str, token: str, scenario: Callable[[Agent], Awaitable[T]], log: Path) -> T:
    """Start ``spawnctl mcp`` as Claude Code would, run ``scenario`` against it, stop it."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(SPAWNCTL_URL=url, SPAWNCTL_TOKEN=token, PYTHONPATH=str(REPO))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "spawnctl.cli", "mcp", "--runner", RUNNER],
        env=env,
        cwd=str(REPO),
    )

    async def main() -> T:
        with anyio.fail_after(SCENARIO_SECONDS), log.open("a") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, read_timeout_seconds=60) as session,
            ):
                await session.initialize()
                return await scenario(Agent(session))

    try:
        return anyio.run(main)
    except BaseException:
        print(log.read_text() if log.exists() else "(no server log)", file=sys.stderr)
        raise


@pytest.fixture
def alice(db):
    user = make_user("alice")
    project = make_project(user, name="Shop")
    return Scope(user=user, project=project)


@pytest.fixture
def token(alice) -> str:
    return Token.objects.create(user=alice.user).key


@pytest.fixture
def mcp(live_server, token, tmp_path):
    """``mcp(scenario)`` runs a scenario against a server holding alice's token."""
    return lambda scenario, token=token: with_mcp(
        live_server.url, token, scenario, tmp_path / "mcp.log"
    )


@pytest.fixture
def component_session(alice) -> Session:
    component = make_component(alice.project, "Cart", module_name="Shop.Cart")
    return make_session(alice, type=COMPONENT_TEST_SESSIONS, component=component)


@pytest.fixture
def strangers_session(db) -> Session:
    mallory = make_user("mallory")
    scope = Scope(user=mallory, project=make_project(mallory, name="Elsewhere"))
    return make_session(scope, component=make_context(scope.project, [("Vault", 1)]))


def test_lists_its_tools_with_schemas_an_agent_can_follow(mcp):
    async def scenario(agent: Agent) -> tuple[list, list]:
        tools = (await agent.session.list_tools()).tools
        templates = (await agent.session.list_resource_templates()).resource_templates
        return tools, templates

    tools, templates = mcp(scenario)

    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == TOOLS
    for tool in tools:
        assert tool.description and "Errors" in tool.description, tool.name
    report = by_name["report_result"].input_schema
    assert report["required"] == ["session_id", "interaction_id", "status"]
    assert report["properties"]["status"]["enum"] == ["ok", "error", "warning"]
    assert report["properties"]["session_id"]["format"] == "uuid"
    status_filter = by_name["list_sessions"].input_schema["properties"]["status"]
    assert {"enum": ["active", "complete", "failed", "cancelled"], "type": "string"} in (
        status_filter["anyOf"]
    )
    lease = by_name["next_command"].input_schema["properties"]["lease_seconds"]["anyOf"][0]
    assert (lease["minimum"], lease["maximum"]) == (1, 86_400)
    assert by_name["session_status"].annotations.read_only_hint is True
    assert by_name["report_result"].annotations.read_only_hint is False
    [template] = templates
    assert template.uri_template == "spawnctl://sessions/{session_id}"
    assert template.mime_type == "application/json"


def test_drives_a_component_session_from_initialize_to_finalize(mcp, component_session):
    session_id = str(component_session.pk)

    async def scenario(agent: Agent) -> dict:
        steps, leases = [], []
        answer: dict = {}
        for _ in range(len(COMPONENT_STEPS) + 1):
            interaction = await agent.ok("next_command", session_id=session_id)
            steps.append(interaction["step_name"])
            status = await agent.ok("session_status", session_id=session_id)
            leases.append(status["session"]["runner"])
            answer = await agent.ok(
                "report_result",
                session_id=session_id,
                interaction_id=interaction["id"],
                status="ok",
                code=0,
                stdout=f"did {interaction['step_name']}",
                duration_ms=12,
            )
            assert answer["interaction"]["result"]["status"] == "ok"
            if answer["session"]["status"] != "active":
                break
        finished = await agent.error("next_command", session_id=session_id)
        return {"steps": steps, "leases": leases, "last": answer, "finished": finished}

    outcome = mcp(scenario)

    assert outcome["steps"] == COMPONENT_STEPS
    # The server's own runner name holds the lease while the agent works on a step.
    assert outcome["leases"] == [RUNNER] * len(COMPONENT_STEPS)
    assert outcome["last"]["session"]["status"] == "complete"
    assert outcome["last"]["session"]["runner"] is None
    assert outcome["finished"] == (
        "Error executing tool next_command: HTTP 409: Session is complete; it has no next command"
    )
    component_session.refresh_from_db()
    assert component_session.status == SessionStatus.COMPLETE
    results = component_session.interactions.order_by("created_at")
    assert [i.step_name for i in results] == COMPONENT_STEPS
    assert [i.result["stdout"] for i in results] == [f"did {s}" for s in COMPONENT_STEPS]


def test_api_errors_come_back_as_tool_errors_and_the_server_goes_on(
    mcp, alice, component_session, strangers_session
):
    empty_context = make_session(alice, component=make_component(alice.project, type="context"))
    mine, theirs = str(component_session.pk), str(strangers_session.pk)

    async def scenario(agent: Agent) -> dict:
        errors = {
            "404": await agent.error("session_status", session_id=theirs),
            "404 next": await agent.error("next_command", session_id=theirs),
            "422": await agent.error("spawn", session_id=str(empty_context.pk)),
        }
        interaction = await agent.ok("next_command", session_id=mine)
        report = {"session_id": mine, "interaction_id": interaction["id"], "status": "ok"}
        await agent.ok("report_result", **report)
        errors["409"] = await agent.error("report_result", **{**report, "status": "error"})
        errors["leased"] = await agent.error("next_command", session_id=mine, runner="another")
        errors["leased_until"] = (await agent.ok("session_status", session_id=mine))["session"][
            "leased_until"
        ]
        errors["400"] = await agent.error(
            "report_result", **{**report, "status": "done", "interaction_id": "not-a-uuid"}
        )
        # Still serving after every error.
        errors["after"] = await agent.ok("session_status", session_id=mine)
        return errors

    errors = mcp(scenario)

    assert errors["404"] == "Error executing tool session_status: HTTP 404: Session not found"
    assert errors["404 next"] == "Error executing tool next_command: HTTP 404: Session not found"
    assert errors["422"] == f"Error executing tool spawn: HTTP 422: {NO_CHILD_COMPONENTS}"
    assert (
        errors["409"] == f"Error executing tool report_result: HTTP 409: {RESULT_ALREADY_REPORTED}"
    )
    # Another runner's call is refused while this server's runner holds the lease.
    assert errors["leased"] == (
        "Error executing tool next_command: HTTP 409: "
        f"Session is leased by {RUNNER} until {errors['leased_until']}"
    )
    # Bad arguments are refused by the input schema, naming each field, before any request.
    assert errors["400"].startswith("Error executing tool report_result: ")
    assert "interaction_id" in errors["400"] and "status" in errors["400"]
    assert errors["after"]["session"]["id"] == mine
    # The first-wins result stands; the stranger's session was not touched.
    first = component_session.interactions.get()
    assert first.result["status"] == "ok"
    assert not strangers_session.interactions.exists()


def test_an_id_that_is_not_a_uuid_never_reaches_another_route(mcp, alice):
    context = make_session(alice, component=make_context(alice.project, [("Token", 1)]))

    async def scenario(agent: Agent) -> str:
        # Sent as a path, this would be POST sessions/<id>/cancel/ (the rest a fragment).
        return await agent.error("spawn", session_id=f"{context.pk}/cancel/#")

    error = mcp(scenario)

    assert error.startswith("Error executing tool spawn: ")
    assert "session_id" in error and "UUID" in error
    context.refresh_from_db()
    assert context.status == SessionStatus.ACTIVE
    assert not context.child_sessions.exists()


def test_a_token_with_no_access_sees_nothing(mcp, component_session, live_server, tmp_path):
    nobody = Token.objects.create(user=make_user("nobody")).key
    session_id = str(component_session.pk)

    async def scenario(agent: Agent) -> dict:
        return {
            "projects": await agent.ok("list_projects"),
            "sessions": await agent.ok("list_sessions"),
            "status": await agent.error("session_status", session_id=session_id),
            "next": await agent.error("next_command", session_id=session_id),
        }

    seen = with_mcp(live_server.url, nobody, scenario, tmp_path / "nobody.log")

    assert seen["projects"] == []
    assert seen["sessions"]["count"] == 0 and seen["sessions"]["results"] == []
    assert seen["status"].endswith("HTTP 404: Session not found")
    assert seen["next"].endswith("HTTP 404: Session not found")
    assert not component_session.interactions.exists()


def test_a_refused_token_and_an_unreachable_server_are_tool_errors(live_server, tmp_path):
    async def scenario(agent: Agent) -> str:
        return await agent.error("list_projects")

    refused = with_mcp(live_server.url, "not-a-token", scenario, tmp_path / "refused.log")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = with_mcp(closed, "any", scenario, tmp_path / "unreachable.log")

    assert refused == "Error executing tool list_projects: HTTP 401: Invalid token."
    assert unreachable.startswith(f"Error executing tool list_projects: Cannot reach {closed}: ")


def test_without_a_token_the_server_does_not_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPAWNCTL_", "DJANGO_"))}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "spawnctl.cli", "mcp"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert done.stdout == ""  # stdout is the protocol's channel; nothing else is written there
    assert done.stderr.strip() == "spawnctl: No API token: give --token or set SPAWNCTL_TOKEN"


def test_lists_sessions_with_filters(mcp, alice, component_session):
    context = make_session(alice, component=make_context(alice.project, [("Token", 1)]))
    Session.objects.filter(pk=context.pk).update(status=SessionStatus.CANCELLED)

    async def scenario(agent: Agent) -> dict:
        project = str(alice.project.pk)
        return {
            "all": await agent.ok("list_sessions", project_id=project),
            "active": await agent.ok("list_sessions", project_id=project, status="active"),
            "contexts": await agent.ok(
                "list_sessions", project_id=project, type="ContextTestingSessions"
            ),
            "bad status": await agent.error("list_sessions", status="running"),
        }

    seen = mcp(scenario)

    ids = lambda page: [session["id"] for session in page["results"]]  # noqa: E731
    assert sorted(ids(seen["all"])) == sorted([str(component_session.pk), str(context.pk)])
    assert ids(seen["active"]) == [str(component_session.pk)]
    assert ids(seen["contexts"]) == [str(context.pk)]
    assert "status" in seen["bad status"]


def test_a_context_spawned_claimed_leased_released_and_retried(mcp, alice):
    context = make_session(alice, component=make_context(alice.project, [("Low", 1), ("High", 9)]))
    context_id = str(context.pk)

    async def spawn_and_claim(agent: Agent) -> dict:
        seen = {"spawned": await agent.ok("spawn", session_id=context_id)}
        seen["claimed"] = await agent.ok("claim_child", session_id=context_id, lease_seconds=300)
        child_id = seen["claimed"]["session"]["id"]
        seen["beat"] = await agent.ok("heartbeat", session_id=child_id, lease_seconds=60)
        seen["released"] = await agent.ok("release", session_id=child_id)
        for runner in ("second", "third", "fourth"):
            seen[runner] = await agent.ok("claim_child", session_id=context_id, runner=runner)
        return seen

    first = mcp(spawn_and_claim)

    high, low = first["spawned"]["metadata"]["child_session_ids"]
    assert first["claimed"]["claimed"] is True
    assert first["claimed"]["session"]["id"] == high
    assert first["claimed"]["session"]["runner"] == RUNNER
    assert first["claimed"]["interaction"]["step_name"] == "Initialize"
    assert first["beat"]["runner"] == RUNNER and first["beat"]["leased_until"]
    assert first["released"]["runner"] is None
    assert first["second"]["session"]["id"] == high  # released, so claimable again
    assert first["third"]["session"]["id"] == low
    assert first["fourth"] == {"claimed": False}

    Session.objects.filter(pk=low).update(
        status=SessionStatus.FAILED, state={"error": "tests would not compile"}
    )

    async def recover(agent: Agent) -> dict:
        return {
            "status": await agent.ok("session_status", session_id=context_id),
            "failed": await agent.ok(
                "session_status", session_id=context_id, children_status="failed"
            ),
            "active_retry": await agent.error("retry", session_id=high),
            "retried": await agent.ok("retry_children", session_id=context_id),
            "missing": await agent.ok("spawn_missing", session_id=context_id),
            "not_a_context": await agent.error("retry_children", session_id=high),
        }

    second = mcp(recover)

    assert second["status"]["children"]["summary"]["failed"] == 1
    assert [c["component"] for c in second["status"]["children"]["results"]] == ["High", "Low"]
    assert second["status"]["children"]["results"][1]["failure_reason"] == (
        "tests would not compile"
    )
    failed = second["failed"]["children"]
    assert [c["component"] for c in failed["results"]] == ["Low"]
    assert (failed["summary"]["total"], failed["summary"]["failed"]) == (2, 1)
    assert second["active_retry"].endswith(
        "HTTP 409: " + RETRY_ONLY_FINISHED.format(status="active")
    )
    assert second["retried"] == {"retried_session_ids": [low]}
    assert second["missing"]["metadata"]["created_session_ids"] == []
    assert second["missing"]["metadata"]["child_session_ids"] == [high, low]
    assert second["not_a_context"].endswith(
        "HTTP 422: Only ContextTestingSessions sessions have child sessions, "
        "this one is ComponentTestSessions"
    )
    retried = Session.objects.get(pk=low)
    assert (retried.status, retried.attempt) == (SessionStatus.ACTIVE, 2)
    assert retried.state["previous_errors"] == ["tests would not compile"]


def test_a_session_reads_as_a_resource_with_its_history(mcp, component_session, strangers_session):
    session_id = str(component_session.pk)
    uri = f"spawnctl://sessions/{session_id}"

    async def scenario(agent: Agent) -> dict:
        first = await agent.ok("next_command", session_id=session_id)
        await agent.ok(
            "report_result",
            session_id=session_id,
            interaction_id=first["id"],
            status="ok",
            data={"branch": "tests/cart"},
        )
        second = await agent.ok("next_command", session_id=session_id)
        read = await agent.session.read_resource(uri)
        failures = {}
        for name, other in [
            ("stranger", f"spawnctl://sessions/{strangers_session.pk}"),
            ("not a uuid", "spawnctl://sessions/latest"),
        ]:
            with pytest.raises(MCPError) as caught:
                await agent.session.read_resource(other)
            failures[name] = caught.value.error.message
        return {"read": read, "ids": [second["id"], first["id"]], "failures": failures}

    seen = mcp(scenario)

    [content] = seen["read"].contents
    assert content.mime_type == "application/json"
    assert str(content.uri) == uri
    body = json.loads(content.text)
    assert body["session"]["id"] == session_id
    assert body["session"]["status"] == "active"
    assert body["session"]["state"]["branch_name"]
    assert [i["id"] for i in body["interactions"]] == seen["ids"]  # newest first
    assert [i["step_name"] for i in body["interactions"]] == COMPONENT_STEPS[1::-1]
    assert body["interactions"][0]["result"] is None
    assert body["interactions"][1]["result"]["data"] == {"branch": "tests/cart"}
    assert seen["failures"]["stranger"] == "HTTP 404: Session not found"
    assert "not a UUID" in seen["failures"]["not a uuid"]


CLAUDE_JSON = (
    '{"type":"result","subtype":"success","result":"done","session_id":"abc","total_cost_usd":0.01}'
)


def test_output_that_is_json_text_is_stored_as_the_text_it_is(mcp, component_session):
    """``claude -p ... --output-format json`` prints a JSON object: as output it is still text."""
    session_id = str(component_session.pk)
    texts = {
        "stdout": CLAUDE_JSON,
        "stderr": '["warning: one", "warning: two"]',
        "error_message": "null",
    }

    async def scenario(agent: Agent) -> dict:
        interaction = await agent.ok("next_command", session_id=session_id)
        return await agent.ok(
            "report_result",
            session_id=session_id,
            interaction_id=interaction["id"],
            status="warning",
            **texts,
        )

    answer = mcp(scenario)

    assert {name: answer["interaction"]["result"][name] for name in texts} == texts
    stored = component_session.interactions.get().result
    assert {name: stored[name] for name in texts} == texts


def test_every_line_is_answered_even_malformed_or_nested_deep(tmp_path):
    """Raw lines on the server's stdin, as a broken or hostile client writes them: each gets a
    JSON-RPC answer (no agent waits forever), and the server goes on serving."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(SPAWNCTL_URL="http://127.0.0.1:9", SPAWNCTL_TOKEN="t", PYTHONPATH=str(REPO))
    deep = '{"jsonrpc": "2.0", "id": 7, "method": "ping", "params": ' + "[" * 200 + "]" * 200 + "}"
    lines = [
        "this is not json",
        deep,
        '{"id": "x", "hello": "world"}',
        "[" * 5000 + "]" * 5000,
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        ),
    ]
    server = subprocess.Popen(
        [sys.executable, "-m", "spawnctl.cli", "mcp"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        output, _ = server.communicate("\n".join(lines) + "\n", timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    answers = [json.loads(line) for line in output.splitlines()]

    assert [(a.get("id"), a.get("error", {}).get("code")) for a in answers] == [
        (None, -32700),
        (None, -32600),
        ("x", -32600),
        (None, -32600),
        (1, None),
    ]
    assert answers[1]["error"]["message"] == "Invalid Request: nested more than 64 levels"
    assert answers[-1]["result"]["serverInfo"]["name"]
