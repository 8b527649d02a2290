"""``spawnctl mcp``: the service's REST API as MCP tools and resources, over stdio, for a coding
agent that drives its sessions itself.

The server is one more client of the REST API (the same ``Api`` as ``spawnctl run``): every tool
is one or two calls of a route, answered with the route's JSON as text. It never runs a command
itself; the agent does the work a command describes and reports the outcome. What the token
cannot see does not exist here either: the API's 404s come back as tool errors.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, ValidatorFunctionWrapHandler, WithJsonSchema, WrapValidator

from spawnctl.api import Api, ApiError, Interaction, LeasedBy, NotFound, Session
from spawnctl.cli import MAX_LEASE_SECONDS

SESSION_URI = "spawnctl://sessions/{session_id}"
RUNNER_MAX_LENGTH = 200
INT32_MAX = 2**31 - 1

INSTRUCTIONS = """\
spawnctl orchestrates test generation across a codebase's components. A session walks a
workflow one step at a time; you drive it:

1. next_command(session_id) gives the step's command as a pending interaction. Nothing runs
   it but you: a `claude` command's metadata.prompt is the task to do yourself; any other
   command is a shell command to run in the repository.
2. report_result(session_id, interaction_id, status="ok" | "error", ...) says how it went;
   the answer holds the session's new status.
3. Repeat until the session's status is complete (or failed).

A ContextTestingSessions session's SpawnComponentTestingSessions step creates one
ComponentTestSessions child per component: claim_child hands you one child at a time, each
driven the same way. Your runner name holds a lease on the sessions you work on; call
heartbeat during a long step and release when you stop, so another runner can take over.
Errors come back as text: "HTTP 404" (not in your projects), "HTTP 409" (a state conflict,
e.g. a result already reported or a lease held by another runner), "HTTP 422" (the step
cannot proceed; the text says why), "HTTP 400" (an argument the server refused).
"""

SessionId = Annotated[
    uuid.UUID,
    Field(description="The session's id: a full UUID, as list_sessions shows it."),
]
ContextSessionId = Annotated[
    uuid.UUID,
    Field(description="A ContextTestingSessions session's id (full UUID)."),
]
Runner = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=RUNNER_MAX_LENGTH,
        description=(
            "The runner name the lease is held under (1 to 200 characters). Omit it to use "
            "this server's own name; use the same name for every call on one session."
        ),
    ),
]
LeaseSeconds = Annotated[
    int | None,
    Field(
        ge=1,
        le=MAX_LEASE_SECONDS,
        description=(
            "How long the lease lasts from now without a heartbeat, 1 to 86400 seconds. "
            "Omit it for the server's default (600)."
        ),
    ),
]


def _text_or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return None if value is None else handler(value)


# The SDK json.loads a string argument whose annotation is anything but plain ``str`` (for
# clients that send a list as '["a"]'), so under ``str | None`` a command's output that is JSON
# text, as ``claude -p --output-format json`` prints, arrived as an object and was refused, and
# "null" was dropped. Plain ``str`` is passed through as sent; null still means "not given", and
# the schema still says so.
OptionalText = Annotated[
    str,
    WrapValidator(_text_or_none),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]}),
]

SessionStatus = Literal["active", "complete", "failed", "cancelled"]
SessionType = Literal["ContextTestingSessions", "ComponentTestSessions"]
ResultStatus = Literal["ok", "error", "warning"]
ToolFunction = Callable[..., str]


def error_text(error: ApiError) -> str:
    """What the agent reads: the HTTP status and the server's own message, verbatim."""
    if error.status is None:
        return error.detail
    return f"HTTP {error.status}: {error.detail}"


def leased_text(leased: LeasedBy) -> str:
    return f"HTTP 409: Session is leased by {leased.runner} until {leased.until}"


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _tool_call(call: Callable[[], Any]) -> Any:
    try:
        answer = call()
    except ApiError as error:
        raise ToolError(error_text(error)) from None
    if isinstance(answer, LeasedBy):
        raise ToolError(leased_text(answer))
    return answer


def _child_line(child: Session) -> dict[str, Any]:
    """A child as an agent needs it to decide what to do next."""
    return {
        "id": child.id,
        "component": child.name,
        "module_name": child.module_name,
        "status": child.status,
        "stalled": child.stalled,
        "attempt": child.attempt,
        "runner": child.runner,
        "leased_until": child.leased_until,
        "failure_reason": child.failure_reason,
    }


def build_server(api: Api, *, runner: str) -> MCPServer:
    """The MCP server over ``api``; ``runner`` names this server on leases when a tool call
    names none."""
    server = MCPServer(
        "spawnctl",
        title="spawnctl",
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    default_runner = runner

    def tool(annotations: ToolAnnotations) -> Callable[[ToolFunction], ToolFunction]:
        def register(fn: ToolFunction) -> ToolFunction:
            server.add_tool(
                fn,
                description=inspect.cleandoc(fn.__doc__ or ""),
                annotations=annotations,
                # Every answer is the API's JSON as text; no second, structured copy of it.
                structured_output=False,
            )
            return fn

        return register

    def read_only(title: str) -> ToolAnnotations:
        return ToolAnnotations(title=title, read_only_hint=True, open_world_hint=False)

    def writes(
        title: str, *, idempotent: bool = False, destructive: bool = False
    ) -> ToolAnnotations:
        return ToolAnnotations(
            title=title,
            read_only_hint=False,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=False,
        )

    @tool(annotations=read_only("List projects"))
    def list_projects() -> str:
        """The projects this token's user is a member of: a JSON list of {id, name, ...}.
        Use a project's id to filter list_sessions. Errors: HTTP 401 when the server refuses
        the token (SPAWNCTL_TOKEN)."""
        return as_json(_tool_call(api.projects))

    @tool(annotations=read_only("List sessions"))
    def list_sessions(
        project_id: Annotated[
            uuid.UUID | None,
            Field(description="Only this project's sessions; omit for all of your projects."),
        ] = None,
        status: Annotated[
            SessionStatus | None, Field(description="Only sessions in this status.")
        ] = None,
        type: Annotated[
            SessionType | None, Field(description="Only sessions of this type.")
        ] = None,
        parent_session_id: Annotated[
            uuid.UUID | None, Field(description="Only the children of this context session.")
        ] = None,
        page: Annotated[int, Field(ge=1, description="The page, 50 sessions a page.")] = 1,
    ) -> str:
        """Sessions newest first, one page: JSON {"count", "next", "previous", "results":
        [session]}; "next" is non-null when there is a further page (call again with page+1).
        A session has id, type, status, component {name, module_name, ...}, parent_session,
        child_session_ids (spawn order), state, attempt, runner, leased_until, stalled.
        Errors: HTTP 404 for a page past the last; HTTP 400 for a filter the server refuses."""
        filters = {
            "project": project_id,
            "status": status,
            "type": type,
            "parent_session": parent_session_id,
        }
        given = {name: str(value) for name, value in filters.items() if value is not None}
        return as_json(_tool_call(lambda: api.sessions(page=page, **given)))

    @tool(annotations=read_only("Session status"))
    def session_status(
        session_id: SessionId,
        children_status: Annotated[
            SessionStatus | None,
            Field(
                description="Only the children with this status (e.g. failed, of a large "
                "run); the summary still counts every child."
            ),
        ] = None,
    ) -> str:
        """A session and, for a ContextTestingSessions session, its children: JSON
        {"session": session, "reason": its state's error or null, "children": {"summary":
        {total, active, stalled, complete, failed, cancelled}, "results": [{id, component,
        module_name, status, stalled, attempt, runner, leased_until, failure_reason}]} (in
        spawn order, every page of them, or those with children_status; null for a component
        session)}. Errors: HTTP 404 when the session is not in your projects. The full history
        is the resource spawnctl://sessions/{session_id}."""

        def call() -> dict[str, Any]:
            session = api.get_session(str(session_id))
            children = (
                api.children(session.id, status=children_status) if session.is_context else None
            )
            return {
                "session": session.data,
                "reason": session.state.get("error"),
                "children": None
                if children is None
                else {
                    "summary": children.summary,
                    "results": [_child_line(child) for child in children.results],
                },
            }

        return as_json(_tool_call(call))

    @tool(annotations=writes("Take the next command", idempotent=True))
    def next_command(
        session_id: SessionId, runner: Runner = None, lease_seconds: LeaseSeconds = None
    ) -> str:
        """Take the session's next step as a pending interaction, and take or renew the
        session's lease for the runner. Returns the interaction JSON {"id" (pass it to
        report_result as interaction_id), "step_name", "command": {"module", "command",
        "metadata", "execution_strategy", "timestamp"}, "result": null, ...}. While the last
        interaction has no result yet, the same one comes back again. This server never runs
        the command: a "claude" command's metadata.prompt is your task (metadata.test_file
        names the file to write), any other command is a shell command for the repository.
        Errors: HTTP 409 "Session is <status>; it has no next command" (finished) or
        "Session is leased by <runner> until <time>" (another runner holds it: work on
        something else or wait); HTTP 422 when the step cannot produce its command (the text
        says why); HTTP 404 not in your projects."""

        def call() -> Interaction | LeasedBy:
            return api.next_command(
                str(session_id), runner=runner or default_runner, lease_seconds=lease_seconds
            )

        return as_json(_tool_call(call).data)

    @tool(annotations=writes("Report a result"))
    def report_result(
        session_id: SessionId,
        interaction_id: Annotated[
            uuid.UUID, Field(description="The pending interaction's id, from next_command.")
        ],
        status: Annotated[
            ResultStatus,
            Field(
                description=(
                    '"ok" when the step did what its command asked (moves on), "error" when it '
                    'did not (the workflow repeats or routes the step), "warning" for ok with '
                    "remarks."
                )
            ),
        ],
        error_message: Annotated[
            OptionalText, Field(description="What went wrong, for an error.")
        ] = None,
        code: Annotated[
            int | None,
            Field(ge=-(2**31), le=INT32_MAX, description="The command's exit code, if any."),
        ] = None,
        stdout: Annotated[OptionalText, Field(description="The command's output (a tail).")] = None,
        stderr: Annotated[OptionalText, Field(description="The command's errors (a tail).")] = None,
        duration_ms: Annotated[
            int | None, Field(ge=0, le=INT32_MAX, description="How long the step took.")
        ] = None,
        data: Annotated[
            Any, Field(description="Any JSON value the step produced (optional).")
        ] = None,
    ) -> str:
        """Report how the pending interaction's step went; the step's result check runs and
        the workflow moves on. Returns JSON {"interaction": the interaction with its result,
        "session": the session with its new status (complete after the last step ok)}.
        Results are first-wins. Errors: HTTP 409 when the interaction already has a result
        (yours or another runner's, or it was superseded by a retry: call next_command); HTTP
        422 when the step refuses the result (e.g. the spawn step while children are still
        running, failed or missing: the text names them); HTTP 400 for a refused field; HTTP
        404 when the session or interaction is not in your projects."""
        body: dict[str, Any] = {"status": status}
        fields = {
            "error_message": error_message,
            "code": code,
            "stdout": stdout,
            "stderr": stderr,
            "duration_ms": duration_ms,
            "data": data,
        }
        body.update({name: value for name, value in fields.items() if value is not None})

        def call() -> dict[str, Any]:
            submitted = api.submit_result(str(session_id), str(interaction_id), body)
            return {"interaction": submitted.interaction.data, "session": submitted.session.data}

        return as_json(_tool_call(call))

    @tool(annotations=writes("Renew the lease", idempotent=True))
    def heartbeat(
        session_id: SessionId, runner: Runner = None, lease_seconds: LeaseSeconds = None
    ) -> str:
        """Renew the runner's lease on the session (take it when it is free or expired),
        so no other runner takes the session over while you work on a long step. Returns the
        session JSON (runner, leased_until). Errors: HTTP 409 "Session is leased by <runner>
        until <time>" or "Session is <status>" (finished); HTTP 404 not in your projects."""

        def call() -> Session | LeasedBy:
            return api.heartbeat(
                str(session_id), runner=runner or default_runner, lease_seconds=lease_seconds
            )

        return as_json(_tool_call(call).data)

    @tool(annotations=writes("Release the lease", idempotent=True))
    def release(session_id: SessionId, runner: Runner = None) -> str:
        """Give the runner's lease on the session up, so another runner can take the session
        over at once (the pending step is run again by whoever takes it). Returns the session
        JSON. Errors: HTTP 409 "Session is leased by <runner> until <time>" (not yours) or
        "Session is <status>" (finished); HTTP 404 not in your projects."""

        def call() -> Session | LeasedBy:
            return api.release(str(session_id), runner=runner or default_runner)

        return as_json(_tool_call(call).data)

    @tool(annotations=writes("Claim a child session"))
    def claim_child(
        session_id: ContextSessionId, runner: Runner = None, lease_seconds: LeaseSeconds = None
    ) -> str:
        """Lease the first claimable child of a context session (active and not leased, in
        spawn order) to the runner and take its next command. Returns JSON {"claimed": true,
        "session": the child, "interaction": its pending interaction (drive it with
        report_result and next_command on the child's id)}, or {"claimed": false} when no
        child can be claimed now (every child finished or leased, or the context's
        max_parallel_children cap reached: ask again later or check session_status).
        Errors: HTTP 404 not in your projects."""

        def call() -> dict[str, Any]:
            claimed = api.claim_child(
                str(session_id), runner=runner or default_runner, lease_seconds=lease_seconds
            )
            if claimed is None:
                return {"claimed": False}
            return {
                "claimed": True,
                "session": claimed.session.data,
                "interaction": claimed.interaction.data,
            }

        return as_json(_tool_call(call))

    @tool(annotations=writes("Spawn child sessions"))
    def spawn(session_id: ContextSessionId) -> str:
        """Create the context session's child sessions, one ComponentTestSessions session per
        child component, and return the spawn command JSON {"module", "command":
        "spawn_sessions", "metadata": {"child_session_ids" (spawn order), "max_parallel",
        ...}, ...}. Errors: HTTP 422 with the step's exact text ("No child components found
        for context", "Context component not found", "Failed to spawn any child sessions",
        or not a ContextTestingSessions session); HTTP 409 for a finished session; HTTP 404
        not in your projects."""
        return as_json(_tool_call(lambda: api.spawn(str(session_id))))

    @tool(annotations=writes("Spawn missing child sessions", idempotent=True))
    def spawn_missing(session_id: ContextSessionId) -> str:
        """Create children for the context's child components that have none (added after
        the spawn, or whose creation failed). Returns the spawn command JSON: metadata
        child_session_ids (every child, spawn order), created_session_ids (the new ones, may
        be empty), failed_components (those that could not be created). Errors: as spawn."""
        return as_json(_tool_call(lambda: api.spawn_missing(str(session_id))))

    @tool(annotations=writes("Retry a session", destructive=True))
    def retry(session_id: SessionId) -> str:
        """Make a failed or cancelled session active again: its attempt goes up by one, its
        error moves to state.previous_errors, its history is kept and its next command
        starts its workflow again at the first step. Returns the session JSON. Errors: HTTP
        409 "Session is <status>; only failed or cancelled sessions can be retried" or
        "Parent session is <status>"; HTTP 404 not in your projects."""
        return as_json(_tool_call(lambda: api.retry(str(session_id))).data)

    @tool(annotations=writes("Retry failed children", destructive=True))
    def retry_children(session_id: ContextSessionId) -> str:
        """Retry every failed or cancelled child of an active context session. Returns JSON
        {"retried_session_ids": [...]} in spawn order (may be empty). Errors: HTTP 422 when
        the session is not a ContextTestingSessions session; HTTP 409 "Session is <status>;
        its children cannot be retried"; HTTP 404 not in your projects."""
        retried = _tool_call(lambda: api.retry_children(str(session_id)))
        return as_json({"retried_session_ids": retried})

    @server.resource(
        SESSION_URI,
        name="session",
        title="A session and its history",
        description=(
            'A session as JSON: {"session": its state, status, component, lease and children '
            'ids, "interactions": every step it took, newest first, with command and result}.'
        ),
        mime_type="application/json",
    )
    def session_resource(session_id: str) -> str:
        try:
            # Normalised, so only a plain UUID ever reaches the route's path.
            session_id = str(uuid.UUID(session_id))
        except ValueError:
            raise ResourceNotFoundError(f"Session not found: {session_id} is not a UUID") from None
        try:
            session = api.get_session(session_id)
            interactions = api.interactions(session.id)
        except NotFound as error:
            raise ResourceNotFoundError(error_text(error)) from None
        except ApiError as error:
            raise ResourceError(error_text(error)) from None
        return as_json({"session": session.data, "interactions": interactions})

    return server


def serve(api: Api, *, runner: str) -> None:
    """Serve over stdin/stdout until the client closes the connection, answering every line
    (``spawnctl.mcp_stdio``)."""
    import anyio

    from spawnctl.mcp_stdio import serve_stdio

    anyio.run(serve_stdio, build_server(api, runner=runner))
