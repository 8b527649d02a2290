"""The service's REST API as Python calls: one ``httpx.Client``, one method per route.

Answers become values. A 409 "leased by" is a ``LeasedBy`` the loops act on (wait, then take
over), a 204 from claim-child is ``None``; anything a loop cannot act on is an ``ApiError``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

# A request that could not reach the server at all is sent again this many times, a second
# apart, before the server counts as unreachable (a restart of the server is survived).
CONNECT_RETRIES = 5
# How long a request answered "too many requests" or "unavailable" is sent again, waiting as
# long as each answer's Retry-After asks (at most MAX_RETRY_AFTER at a time).
BUSY_WAIT_SECONDS = 120.0
MAX_RETRY_AFTER = 30.0
_LEASED_BY = re.compile(r"^Session is leased by (?P<runner>.+) until (?P<until>\S+)$", re.S)

CONTEXT_TESTING_SESSIONS = "ContextTestingSessions"
COMPONENT_TEST_SESSIONS = "ComponentTestSessions"
FINISHED = ("complete", "failed", "cancelled")


class ApiError(Exception):
    """An answer the caller cannot act on: ``status`` is the HTTP status (None when the server
    could not be reached), ``detail`` the server's message."""

    def __init__(self, status: int | None, detail: str, body: Any = None) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.body = body


class Unreachable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(None, detail)


class NotFound(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Conflict(ApiError):
    """A 409 other than a lease held by another runner (a finished session, a result that was
    already reported)."""


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class LeasedBy:
    """The session is leased to another runner until ``until`` (as the API shows it)."""

    runner: str
    until: str

    @property
    def until_time(self) -> datetime | None:
        return parse_time(self.until)


@dataclass(frozen=True)
class Session:
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def type(self) -> str:
        return self.data.get("type") or ""

    @property
    def status(self) -> str:
        return self.data.get("status") or ""

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_context(self) -> bool:
        return self.type == CONTEXT_TESTING_SESSIONS

    @property
    def state(self) -> dict[str, Any]:
        state = self.data.get("state")
        return state if isinstance(state, dict) else {}

    @property
    def component(self) -> dict[str, Any] | None:
        return self.data.get("component")

    @property
    def name(self) -> str:
        """The component's name, as the service names children in its messages."""
        component = self.component
        return component["name"] if component else self.id[:8]

    @property
    def module_name(self) -> str | None:
        component = self.component
        return component.get("module_name") if component else None

    @property
    def runner(self) -> str | None:
        return self.data.get("runner")

    @property
    def leased_until(self) -> str | None:
        return self.data.get("leased_until")

    @property
    def stalled(self) -> bool:
        return bool(self.data.get("stalled"))

    @property
    def attempt(self) -> int:
        return int(self.data.get("attempt") or 1)

    @property
    def child_session_ids(self) -> list[str]:
        return [str(i) for i in self.data.get("child_session_ids") or []]

    @property
    def max_parallel_children(self) -> int | None:
        return self.data.get("max_parallel_children")

    @property
    def failure_reason(self) -> str | None:
        return self.data.get("failure_reason")


@dataclass(frozen=True)
class Interaction:
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def step_name(self) -> str:
        return self.data.get("step_name") or ""

    @property
    def command(self) -> dict[str, Any]:
        return self.data.get("command") or {}

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self.command.get("metadata")
        return metadata if isinstance(metadata, dict) else {}

    @property
    def result(self) -> dict[str, Any] | None:
        return self.data.get("result")


@dataclass(frozen=True)
class Claimed:
    session: Session
    interaction: Interaction


@dataclass(frozen=True)
class Submitted:
    interaction: Interaction
    session: Session


@dataclass(frozen=True)
class Children:
    summary: dict[str, int]
    results: list[Session] = field(default_factory=list)


class Api:
    """The REST API under ``<url>/api/``, authenticated by token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        connect_retries: int | None = None,
        retry_delay: float = 1.0,
        busy_wait: float = BUSY_WAIT_SECONDS,
    ) -> None:
        self.url = base_url(url)
        self.connect_retries = CONNECT_RETRIES if connect_retries is None else connect_retries
        self.retry_delay = retry_delay
        self.busy_wait = busy_wait
        self.client = httpx.Client(
            base_url=f"{self.url}/api/",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Routes -----------------------------------------------------------------------------

    def get_session(self, session_id: str) -> Session:
        return Session(self._json("GET", f"sessions/{session_id}/"))

    def children(self, session_id: str) -> Children:
        body = self._json("GET", f"sessions/{session_id}/children/")
        return Children(
            summary=dict(body.get("summary") or {}),
            results=[Session(child) for child in body.get("results") or []],
        )

    def next_command(
        self, session_id: str, *, runner: str, lease_seconds: int | None = None
    ) -> Interaction | LeasedBy:
        answer = self._lease_call("next-command", session_id, runner, lease_seconds)
        return answer if isinstance(answer, LeasedBy) else Interaction(answer)

    def heartbeat(
        self, session_id: str, *, runner: str, lease_seconds: int | None = None
    ) -> Session | LeasedBy:
        answer = self._lease_call("heartbeat", session_id, runner, lease_seconds)
        return answer if isinstance(answer, LeasedBy) else Session(answer)

    def release(self, session_id: str, *, runner: str) -> Session | LeasedBy:
        answer = self._lease_call("release", session_id, runner, None)
        return answer if isinstance(answer, LeasedBy) else Session(answer)

    def claim_child(
        self, session_id: str, *, runner: str, lease_seconds: int | None = None
    ) -> Claimed | None:
        response = self._request(
            "POST",
            f"sessions/{session_id}/claim-child/",
            json=_lease_body(runner, lease_seconds),
        )
        if response.status_code == 204:
            return None
        body = self._body(response)
        return Claimed(
            session=Session(body["session"]), interaction=Interaction(body["interaction"])
        )

    def submit_result(
        self, session_id: str, interaction_id: str, result: dict[str, Any]
    ) -> Submitted:
        body = self._json(
            "POST", f"sessions/{session_id}/interactions/{interaction_id}/result/", json=result
        )
        return Submitted(
            interaction=Interaction(body["interaction"]), session=Session(body["session"])
        )

    def spawn(self, session_id: str) -> dict[str, Any]:
        return self._json("POST", f"sessions/{session_id}/spawn/")

    def spawn_missing(self, session_id: str) -> dict[str, Any]:
        return self._json("POST", f"sessions/{session_id}/spawn-missing/")

    def retry(self, session_id: str) -> Session:
        return Session(self._json("POST", f"sessions/{session_id}/retry/"))

    def retry_children(self, session_id: str) -> list[str]:
        body = self._json("POST", f"sessions/{session_id}/retry-children/")
        return [str(i) for i in body.get("retried_session_ids") or []]

    def projects(self) -> list[dict[str, Any]]:
        """Every project the token's user is a member of, all pages."""
        return self._all_pages("projects/", {})

    def sessions(self, *, page: int = 1, **filters: str) -> dict[str, Any]:
        """One page of ``GET /api/sessions/`` (``count``, ``next``, ``previous``,
        ``results``), filtered by ``project``, ``status``, ``type``, ``parent_session``."""
        return self._json("GET", "sessions/", params={**filters, "page": page})

    def interactions(self, session_id: str) -> list[dict[str, Any]]:
        """The session's whole history, newest first, all pages."""
        return self._all_pages(f"sessions/{session_id}/interactions/", {})

    def components(self, project_id: str) -> list[dict[str, Any]]:
        """Every component of the project, all pages."""
        return self._all_pages("components/", {"project": project_id})

    def create_context_session(
        self, project_id: str, component_id: str, *, agent: str | None = None
    ) -> Session:
        """A new context testing session of ``component_id``, run from the command line."""
        body: dict[str, Any] = {
            "project": project_id,
            "type": CONTEXT_TESTING_SESSIONS,
            "component": component_id,
            "environment": "cli",
        }
        if agent is not None:
            body["agent"] = agent
        return Session(self._json("POST", "sessions/", json=body))

    def bulk_components(
        self,
        project_id: str,
        rows: list[dict[str, Any]],
        *,
        prune: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``POST /api/components/bulk/``; a 400 or 409 names the rows at fault in the
        error's ``body``. With ``dry_run`` the server answers the same and stores nothing."""
        return self._json(
            "POST",
            "components/bulk/",
            json={"project": project_id, "components": rows, "prune": prune, "dry_run": dry_run},
        )

    # Plumbing ---------------------------------------------------------------------------

    def _all_pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = self._json("GET", path, params=params)
        while True:
            found += page.get("results") or []
            if not page.get("next"):
                return found
            page = self._json("GET", page["next"])

    def _lease_call(
        self, route: str, session_id: str, runner: str, lease_seconds: int | None
    ) -> dict[str, Any] | LeasedBy:
        response = self._request(
            "POST", f"sessions/{session_id}/{route}/", json=_lease_body(runner, lease_seconds)
        )
        if response.status_code == 409:
            leased = leased_by(_detail(response))
            if leased is not None:
                return leased
        return self._body(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._body(self._request(method, path, **kwargs))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.busy_wait
        while True:
            response = self._send(method, path, **kwargs)
            # 429 (throttled) and 503 (database unavailable) are answered before anything
            # changed, so the request is sent again once the server says it may be.
            if response.status_code not in (429, 503):
                return response
            pause = _retry_after(response, self.retry_delay)
            if time.monotonic() + pause > deadline:
                return response
            time.sleep(pause)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.connect_retries + 1):
            try:
                return self.client.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                # Nothing reached the server, so sending the request again is safe.
                if attempt == self.connect_retries:
                    raise Unreachable(f"Cannot reach {self.url}: {error}") from None
                time.sleep(self.retry_delay)
            except httpx.HTTPError as error:
                raise Unreachable(f"No answer from {self.url}: {error}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                raise ApiError(
                    status, "The server answered with something that is not JSON"
                ) from None
            if not isinstance(body, dict):
                raise ApiError(status, "The server answered with something that is not an object")
            return body
        detail = _detail(response)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        kind = {401: Unauthorized, 403: Unauthorized, 404: NotFound, 409: Conflict}
        raise kind.get(status, ApiError)(status, detail, body)


def _retry_after(response: httpx.Response, default: float) -> float:
    """The pause a 429 or 503 asks for (``Retry-After`` in seconds), within bounds."""
    try:
        seconds = float(response.headers.get("Retry-After", default))
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def base_url(url: str) -> str:
    """The server's root: ``http://host:8000``, ``…/`` and ``…/api/`` all name the same."""
    url = url.strip().rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def leased_by(detail: str) -> LeasedBy | None:
    match = _LEASED_BY.match(detail)
    return LeasedBy(runner=match["runner"], until=match["until"]) if match else None


def _lease_body(runner: str, lease_seconds: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"runner": runner}
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    return body


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    # DRF's field errors: {"field": ["message", ...], ...}
    if isinstance(body, dict):
        return "; ".join(
            f"{name}: {' '.join(map(str, value)) if isinstance(value, list) else value}"
            for name, value in body.items()
        )
    return str(body)
