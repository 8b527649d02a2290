"""The service's REST API as Python calls: one ``httpx.Client``, one method per route.

Answers become values. A 409 "leased by" is a ``LeasedBy`` the loops act on (wait, then take
over), a 204 from claim-child is ``None``; anything a loop cannot act on is an ``ApiError``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

# How long a server that cannot be reached, or answers 502/503/504, is waited out before it
# counts as gone: long enough for a restart or a deploy, so no finished work is lost.
SERVER_TIMEOUT_SECONDS = 300.0
# The pauses between tries while it is away: the first, doubled each try, up to the last.
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0
# A 429 is sent again as long as each answer's Retry-After asks (at most this at a time).
MAX_RETRY_AFTER = 30.0
# Answers of a proxy or a server that is restarting, overloaded or has lost its database.
OUTAGE_STATUSES = (502, 503, 504)
# Every POST names itself by a key of its own, the same on each of its tries: the server runs
# it once and answers a repeat with the first answer (a result, a claim, a new session).
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The server's 409 while the first try of a key still runs: asked again, it gets its answer.
IN_PROGRESS = "A request with this Idempotency-Key is in progress"
# The server's 409 once its own retries of a deadlock ran out: nothing was written (only a
# success is kept under a key), so the same request asked again may well go through.
KEPT_CONFLICTING = "The request kept conflicting with concurrent writes; try again"
# The 409s that mean "not now" rather than "no": asked again within the wait for the server.
BUSY_CONFLICTS = (IN_PROGRESS, KEPT_CONFLICTING)
_LEASED_BY = re.compile(r"^Session is leased by (?P<runner>.+) until (?P<until>\S+)$", re.S)

CONTEXT_TESTING_SESSIONS = "ContextTestingSessions"
COMPONENT_TEST_SESSIONS = "ComponentTestSessions"
FINISHED = ("complete", "failed", "cancelled")


#: The server's largest page (``?page_size=`` 1 to 1,000).
MAX_PAGE_SIZE = 1000


class ApiError(Exception):
    """An answer the caller cannot act on: ``status`` is the HTTP status (None when the server
    could not be reached), ``detail`` the server's message."""

    def __init__(self, status: int | None, detail: str, body: Any = None) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.body = body


class Unreachable(ApiError):
    """The server did not answer (or answered 502/503/504) for ``seconds``; ``cause`` is the
    last try's error. A request that gave up may still have reached the server."""

    def __init__(self, url: str, cause: str, seconds: float = 0.0) -> None:
        super().__init__(None, f"Cannot reach {url}: {cause}")
        self.url = url
        self.cause = cause
        self.seconds = seconds

    @property
    def explanation(self) -> str:
        if self.seconds < 1:
            return f"the server at {self.url} could not be reached: {self.cause}"
        return f"the server at {self.url} was unreachable for {self.seconds:.0f} s: {self.cause}"


class NotFound(ApiError):
    pass


class Redirected(ApiError):
    """A 3xx: the client never follows one (the token would go along), so the person who
    gave the URL is told where it points."""


class Unauthorized(ApiError):
    pass


class Conflict(ApiError):
    """A 409 other than a lease held by another runner (a finished session, a result that was
    already reported, a run whose budget is spent)."""

    @property
    def budget_spent(self) -> bool:
        return self.detail.startswith(BUDGET_SPENT)


# The server's text for a run whose budget is spent: "Run budget spent: $1.02 of $1.00".
BUDGET_SPENT = "Run budget spent: "


def budget_text(spent: float, limit: float) -> str:
    """The server's budget text, for a runner that found the budget spent from the session's
    numbers (a claim answers 204, not the text)."""
    return f"{BUDGET_SPENT}${dollars(spent)} of ${dollars(limit)}"


def dollars(value: float) -> str:
    """Two decimals, rounded half up as the server rounds them."""
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


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
    def branch(self) -> str | None:
        """The run's branch (a child's is its context's), once its Initialize has run."""
        branch = self.data.get("branch")
        return branch if isinstance(branch, str) and branch else None

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

    @property
    def cost_usd(self) -> float | None:
        """What the session's own steps cost (session JSON ``usage``), when the server says."""
        return _cost_of(self.data.get("usage"))

    @property
    def run_cost_usd(self) -> float | None:
        """What a context session's run cost: it and all its children (``run_usage``)."""
        return _cost_of(self.data.get("run_usage"))

    @property
    def max_cost_usd(self) -> float | None:
        value = self.data.get("max_cost_usd")
        return _number(value)

    @property
    def budget_spent(self) -> bool:
        """A context whose run has cost its budget or more: no agent step is handed out."""
        spent, limit = self.run_cost_usd, self.max_cost_usd
        return spent is not None and limit is not None and spent >= limit


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cost_of(usage: object) -> float | None:
    return _number(usage.get("cost_usd")) if isinstance(usage, dict) else None


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
    """The REST API under ``<url>/api/``, authenticated by token.

    A server that is away (no connection, a connection dropped, no answer in time, or a
    502/503/504) is waited out for ``server_timeout`` seconds, counted from the first failure
    since its last answer, whichever request saw it: once that passed, every request that
    fails fails at once. ``stop`` set (the runner is stopping) ends a wait at once too.
    ``on_outage`` is told when the server goes away and when it answers again."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        server_timeout: float = SERVER_TIMEOUT_SECONDS,
        first_pause: float = FIRST_PAUSE_SECONDS,
        max_pause: float = MAX_PAUSE_SECONDS,
        stop: threading.Event | None = None,
        on_outage: Callable[[str], None] | None = None,
    ) -> None:
        self.url = base_url(url)
        self.server_timeout = server_timeout
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.stop = stop if stop is not None else threading.Event()
        self.on_outage = on_outage
        self._lock = threading.Lock()
        self._away_since: float | None = None
        self.client = httpx.Client(
            base_url=f"{self.url}/api/",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            # A redirect followed would carry the token where the answer points (httpx keeps
            # it on the same origin and on an http to https move of the host) and turn a POST
            # into a GET: each is an error instead, naming where it points (``_redirected``).
            follow_redirects=False,
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

    def report(self, session_id: str) -> dict[str, Any]:
        """What a context session's run produced, as JSON."""
        return self._json("GET", f"sessions/{session_id}/report/")

    def report_markdown(self, session_id: str) -> str:
        """The run's report as the Markdown a pull request carries."""
        response = self._request("GET", f"sessions/{session_id}/report/", params={"format": "md"})
        if 200 <= response.status_code < 300:
            return response.text
        self._body(response)  # raises the error the answer names
        raise ApiError(response.status_code, "The server answered no report")

    def children(self, session_id: str, *, status: str | None = None) -> Children:
        """The children in spawn order (``status``: those with it), every page (of the
        largest size the server serves), and the summary that counts them all."""
        params: dict[str, Any] = {"page_size": MAX_PAGE_SIZE}
        if status is not None:
            params["status"] = status
        body = self._json("GET", f"sessions/{session_id}/children/", params=params)
        results = list(body.get("results") or [])
        page = body
        while page.get("next"):
            page = self._next_page(page["next"])
            results += page.get("results") or []
        return Children(
            summary=dict(body.get("summary") or {}),
            results=[Session(child) for child in results],
        )

    def children_summary(self, session_id: str) -> dict[str, int]:
        """The children's counts alone (the summary counts every child, whatever the page)."""
        body = self._json("GET", f"sessions/{session_id}/children/", params={"page_size": 1})
        return dict(body.get("summary") or {})

    def next_command(
        self, session_id: str, *, runner: str, lease_seconds: int | None = None
    ) -> Interaction | LeasedBy:
        answer = self._lease_call("next-command", session_id, runner, lease_seconds)
        return answer if isinstance(answer, LeasedBy) else Interaction(answer)

    def heartbeat(
        self, session_id: str, *, runner: str, lease_seconds: int | None = None
    ) -> Session | LeasedBy:
        # One try: a missed beat is sent again by the heartbeat's loop, and a beat waiting
        # the server out would hold up the end of the step it beats for.
        answer = self._lease_call("heartbeat", session_id, runner, lease_seconds, wait=False)
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

    def update_project(self, project_id: str, settings: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/projects/{id}/``: the project's settings changed; a 400 names each
        setting refused in the error's ``body``."""
        return self._json("PATCH", f"projects/{project_id}/", json=settings)

    def sessions(self, *, page: int = 1, **filters: str | int) -> dict[str, Any]:
        """One page of ``GET /api/sessions/`` (``count``, ``next``, ``previous``,
        ``results``), filtered by ``project``, ``status``, ``type``, ``parent_session``,
        ``id_prefix``."""
        return self._json("GET", "sessions/", params={**filters, "page": page})

    def interactions(self, session_id: str) -> list[dict[str, Any]]:
        """The session's whole history, newest first, all pages."""
        return self._all_pages(f"sessions/{session_id}/interactions/", {})

    def components(
        self, project_id: str, *, parent_component: str | None = None
    ) -> list[dict[str, Any]]:
        """Every component of the project (or only ``parent_component``'s children), all
        pages."""
        params = {"project": project_id}
        if parent_component is not None:
            params["parent_component"] = parent_component
        return self._all_pages("components/", params)

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
            page = self._next_page(page["next"])

    def _next_page(self, link: object) -> dict[str, Any]:
        """The page a ``next`` link names, asked only of the origin this client was given:
        the token goes with every request, so a link elsewhere (another scheme, host or port,
        a proxy's or an attacker's) is refused, never requested."""
        ours = self.client.base_url
        try:
            url = ours.join(str(link))
        except httpx.InvalidURL:
            raise ApiError(None, f"The server sent a next link that is not a URL: {link}") from None
        if _origin(url) != _origin(ours):
            raise ApiError(
                None,
                f"The server sent a link to another origin ({url}); the token is sent only "
                f"to {_origin_text(ours)}",
            )
        return self._json("GET", str(url))

    def _lease_call(
        self,
        route: str,
        session_id: str,
        runner: str,
        lease_seconds: int | None,
        *,
        wait: bool = True,
    ) -> dict[str, Any] | LeasedBy:
        response = self._request(
            "POST",
            f"sessions/{session_id}/{route}/",
            wait=wait,
            json=_lease_body(runner, lease_seconds),
        )
        if response.status_code == 409:
            leased = leased_by(_detail(response))
            if leased is not None:
                return leased
        return self._body(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._body(self._request(method, path, **kwargs))

    def _request(
        self, method: str, path: str, *, wait: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """The server's answer, sent again while the server is away (see the class), or
        busy (429, as long as its Retry-After asks; the first try of this POST still running;
        the server's own retries of a deadlock run out) within ``server_timeout``.

        Every request is sent again, writes included, though one whose answer was lost may
        have been applied: a POST carries its own ``Idempotency-Key`` on every try, so the
        server answers a repeat with the first answer. (A server that keeps no keys answers a
        repeated result with the 409 the job reads as first-wins, and leases another child to
        a repeated claim-child, the first staying leased to this runner until its lease
        expires.) ``wait`` False: one try, for a request its caller sends again anyway (a
        heartbeat)."""
        if method == "POST":
            kwargs["headers"] = {**kwargs.get("headers", {}), IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        pause = self.first_pause
        busy_until = time.monotonic() + self.server_timeout
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as error:
                # A bad URL or request: no wait makes it any better.
                raise Unreachable(self.url, _cause(error)) from None
            except httpx.TransportError as error:
                cause = _cause(error)
            else:
                busy = response.status_code == 429 or (
                    response.status_code == 409 and _detail(response) in BUSY_CONFLICTS
                )
                if not busy and response.status_code not in OUTAGE_STATUSES:
                    self._answered()
                    return response
                retry_after = _retry_after(response, pause)
                if busy:
                    self._answered()
                    if not wait or time.monotonic() + retry_after > busy_until:
                        return response
                    if self._wait(retry_after):
                        return response
                    if response.status_code == 409:
                        pause = min(pause * 2, self.max_pause)
                    continue
                cause = f"{response.status_code}: {_detail(response)}"
                pause = max(pause, retry_after)
            away = self._away(cause)
            left = away + self.server_timeout - time.monotonic()
            if not wait or left <= 0 or self._wait(min(pause, left)):
                raise Unreachable(self.url, cause, time.monotonic() - away)
            pause = min(pause * 2, self.max_pause)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when the runner was stopped meanwhile."""
        return self.stop.wait(seconds)

    def _away(self, cause: str) -> float:
        """When the server went away (now, if it answered last time)."""
        with self._lock:
            first = self._away_since is None
            if first:
                self._away_since = time.monotonic()
            since = self._away_since
        if first and self.on_outage is not None:
            self.on_outage(
                f"the server at {self.url} is unreachable ({cause}); "
                f"waiting up to {self.server_timeout:g} s for it"
            )
        return since

    def _answered(self) -> None:
        with self._lock:
            was_away, self._away_since = self._away_since is not None, None
        if was_away and self.on_outage is not None:
            self.on_outage(f"the server at {self.url} answers again")

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if 300 <= status < 400:
            raise self._redirected(response)
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

    def _redirected(self, response: httpx.Response) -> Redirected:
        """Where a 3xx points and, when it points at another root (http to https, another
        host or prefix), the ``--url`` that names it: a redirect's reason phrase alone
        ("Moved Permanently") says nothing a person can act on."""
        status = response.status_code
        location = response.headers.get("Location")
        if not location:
            return Redirected(
                status, f"the server answered {status} {response.reason_phrase} with no Location"
            )
        try:
            target = response.request.url.join(location)
        except httpx.InvalidURL:
            return Redirected(status, f"the server redirects to {location}, which is not a URL")
        detail = f"the server redirects to {target}"
        # The same route under the root the redirect names: the route is the request's path
        # below ours.
        root_path = self.client.base_url.path[: -len("api/")]
        route = response.request.url.path[len(root_path) :]
        if route and target.path.endswith(route):
            root = target.copy_with(path=target.path[: -len(route)], query=None, fragment=None)
            if root != self.client.base_url.copy_with(path=root_path):
                detail += f"; use --url {str(root).rstrip('/')}"
        return Redirected(status, detail)


def _retry_after(response: httpx.Response, default: float) -> float:
    """The pause an answer asks for (``Retry-After`` in seconds), within bounds."""
    try:
        seconds = float(response.headers.get("Retry-After", default))
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _cause(error: httpx.HTTPError) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _origin_text(url: httpx.URL) -> str:
    return str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")


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
