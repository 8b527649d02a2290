"""What bench/load.py's modes share: the HTTP client, the figures, the server they start.

Everything goes to 127.0.0.1; every request has a timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 60
START_TIMEOUT_S = 180
ALREADY_REPORTED = "A result was already reported for this interaction"
CONTEXT_STEPS = ["Initialize", "SpawnComponentTestingSessions", "Finalize"]
COMPONENT_STEPS = ["Initialize", "GenerateTestsAndFixtures", "RunTests", "Finalize"]
MAX_STEPS = 20  # a session takes 3 or 4; more means the workflow loops


class Failure(Exception):
    """A broken expectation: the run goes on, the failure is reported, the exit is non-zero."""


# --- Measurements -----------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            self.statuses[endpoint][status] += 1

    def add(self, bucket: list[str], message: str) -> None:
        with self.lock:
            bucket.append(message)

    def snapshot(self) -> Snapshot:
        """The requests so far, so that the checks that follow are not counted in them."""
        with self.lock:
            return Snapshot(
                {k: list(v) for k, v in self.latencies.items()},
                {k: Counter(v) for k, v in self.statuses.items()},
            )


@dataclass
class Snapshot:
    latencies: dict[str, list[float]]
    statuses: dict[str, Counter]

    def figures(self, seconds: float) -> dict[str, Any]:
        requests = sum(len(values) for values in self.latencies.values())
        return {
            "requests": requests,
            "requests_per_second": round(requests / seconds, 1),
            "endpoints": endpoint_figures(self.latencies, self.statuses),
        }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- HTTP -------------------------------------------------------------------------------


class Api:
    """JSON over one keep-alive-capable connection per thread, every call timed."""

    def __init__(self, port: int, token: str, stats: Stats) -> None:
        self.port = port
        self.stats = stats
        self.headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
        }
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            self.local.connection = http.client.HTTPConnection(
                HOST, self.port, timeout=REQUEST_TIMEOUT_S
            )
        return self.local.connection

    def call(self, method: str, path: str, endpoint: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        started = time.perf_counter()
        try:
            connection = self._connection()
            connection.request(method, path, body=payload, headers=self.headers)
            response = connection.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            self.local.connection = None
            self.stats.add(self.stats.transport_errors, f"{method} {path}: {error!r}")
            raise Failure(f"{method} {path}: transport error {error!r}") from None
        self.stats.record(endpoint, status, time.perf_counter() - started)
        if response.will_close:
            self.local.connection.close()
            self.local.connection = None
        if status >= 500:
            self.stats.add(self.stats.server_errors, f"{method} {path}: {status} {raw[:300]!r}")
            raise Failure(f"{method} {path}: server error {status}")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            raise Failure(f"{method} {path}: {status} with a body that is not JSON") from None
        return status, data

    def expect(self, method: str, path: str, endpoint: str, status: int, body: Any = None) -> Any:
        got, data = self.call(method, path, endpoint, body)
        if got != status:
            raise Failure(f"{method} {path}: expected {status}, got {got}: {data}")
        return data

    def pages(self, path: str, endpoint: str) -> list[Any]:
        """A list endpoint's items, following DRF's pagination if it paginates."""
        items: list[Any] = []
        for _ in range(1000):
            data = self.expect("GET", path, endpoint, 200)
            if isinstance(data, list):
                return items + data
            items += data["results"]
            if not data.get("next"):
                return items
            path = re.sub(r"^https?://[^/]+", "", data["next"])
        raise Failure(f"{path}: more than 1000 pages")


# --- Sessions -----------------------------------------------------------------------------


def create_context_session(api: Api, label: str, components: int) -> tuple[dict, list[dict]]:
    """A new project with a context of ``components`` child components, and a
    ContextTestingSessions session on it: the session and the child components."""
    project = api.expect(
        "POST", "/api/projects/", "POST /api/projects/", 201, {"name": f"Load {label}"}
    )
    context = create_component(api, project["id"], label, "Accounts", "context", 0, None)
    children = [
        create_component(api, project["id"], label, f"Part{k:02d}", "module", k % 3, context["id"])
        for k in range(components)
    ]
    session = api.expect(
        "POST",
        "/api/sessions/",
        "POST /api/sessions/",
        201,
        {
            "project": project["id"],
            "type": "ContextTestingSessions",
            "component": context["id"],
            "agent": "claude_code",
            "environment": "cli",
            "execution_mode": "agentic",
        },
    )
    return session, children


def create_component(
    api: Api, project: str, label: str, name: str, type_: str, priority: int, parent: str | None
) -> dict:
    body = {
        "project": project,
        "name": name,
        "module_name": f"Load.{label}.{secrets.token_hex(4)}.{name}",
        "type": type_,
        "priority": priority,
        "description": "",
        "parent_component": parent,
    }
    return api.expect("POST", "/api/components/", "POST /api/components/", 201, body)


def spawn_order(components: list[dict]) -> list[str]:
    """Component ids by priority descending, then name: the order children must have."""
    ordered = sorted(components, key=lambda c: (-c["priority"], c["name"]))
    return [component["id"] for component in ordered]


# --- Checks afterwards ------------------------------------------------------------------


def check_history(api: Api, session_id: str, steps: list[str]) -> list[str]:
    history = api.pages(
        f"/api/sessions/{session_id}/interactions/", "GET /api/sessions/{id}/interactions/"
    )
    oldest_first = list(reversed(history))
    names = [interaction["step_name"] for interaction in oldest_first]
    problems = []
    if names != steps:
        problems.append(f"{session_id}: history {names} != {steps}")
    for interaction in oldest_first:
        result = interaction.get("result") or {}
        if result.get("status") != "ok" or not interaction.get("completed_at"):
            problems.append(f"{session_id}: {interaction['step_name']} result {result}")
    return problems


# --- The server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def manage(environment: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def start_server(
    environment: dict[str, str],
    port: int,
    workers: int,
    log_path: Path,
    scratch: Path,
    *,
    production_script: bool = False,
) -> subprocess.Popen:
    """gunicorn on ``port``: started here with production settings, or, with
    ``production_script``, by scripts/serve-production itself (its deploy check, migrate,
    collectstatic and gunicorn options; no install)."""
    # gunicorn 25+ opens a control socket in ~/.gunicorn by default; keep this run's apart.
    control = ["--control-socket", str(scratch / "gunicorn.ctl")] if _has_control_socket() else []
    if production_script:
        command = [str(REPO / "scripts" / "serve-production")]
        environment = {
            **environment,
            "INSTALL": "0",
            "BIND": f"{HOST}:{port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_TIMEOUT": "60",
            "GUNICORN_CMD_ARGS": " ".join(control),
        }
    else:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--workers",
            str(workers),
            "--bind",
            f"{HOST}:{port}",
            "--timeout",
            "60",
            *control,
        ]
    log = log_path.open("w")
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_server(server, port, log_path)
    return server


def _has_control_socket() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "--control-socket " in help_text


def wait_for_server(server: subprocess.Popen, port: int, log_path: Path) -> None:
    # serve-production checks, migrates and collects static files first: minutes on a busy box.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see {log_path}")
        try:
            probe = http.client.HTTPConnection(HOST, port, timeout=5)
            probe.request("GET", "/api/projects/", headers={"X-Forwarded-Proto": "https"})
            if probe.getresponse().status == 401:
                return
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"the server did not answer within {START_TIMEOUT_S} s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)


@dataclass
class Run:
    """One load run's identity, scratch directory and the environment its server gets."""

    run_id: str
    scratch: Path
    environment: dict[str, str]
    engine: str

    @property
    def log_path(self) -> Path:
        return self.scratch / "server.log"


def prepare_run(database_url: str) -> Run:
    run_id = f"load-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    scratch = Path(tempfile.mkdtemp(prefix="spawnctl-load-"))
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": HOST,
        "STATIC_ROOT": str(scratch / "static"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
        # Every client of a run is one user sending far more than one user's rate: the run
        # measures the service, not the throttle. Whatever the cache holds stays in the run's
        # own directory (serve-production would otherwise share one under ~/.cache).
        "API_THROTTLE_USER": "off",
        "CACHE_URL": f"filecache://{scratch / 'cache'}",
    }
    # WhiteNoise warns at start-up about a missing STATIC_ROOT; the API serves no static file.
    (scratch / "static").mkdir()
    engine = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    return Run(run_id, scratch, environment, engine)


def migrate_and_create_token(run: Run) -> str:
    """Migrate the database, create the run's superuser and an API token for it."""
    manage(run.environment, "migrate", "--noinput", "--verbosity", "0")
    manage(
        run.environment,
        "createsuperuser",
        "--noinput",
        "--username",
        run.run_id,
        "--email",
        f"{run.run_id}@example.com",
    )
    token_output = manage(run.environment, "drf_create_token", run.run_id)
    token = re.search(r"Generated token (\w+)", token_output)
    if token is None:
        sys.exit(f"no token in drf_create_token's output: {token_output!r}")
    return token.group(1)


def server_log_tracebacks(run: Run) -> int:
    return run.log_path.read_text(errors="replace").count("Traceback (most recent call last)")


# --- Figures ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a load phase did: the figures of its mode and every problem it found."""

    seconds: float
    figures: dict[str, Any]
    problems: list[tuple[str, list[str]]] = field(default_factory=list)
    completed_anything: bool = True

    @property
    def failed(self) -> bool:
        return any(lines for _, lines in self.problems) or not self.completed_anything


def endpoint_figures(latencies: dict[str, list[float]], statuses: dict[str, Counter]) -> dict:
    return {
        endpoint: {
            "count": len(values),
            "p50_ms": round(1000 * percentile(values, 0.50), 1),
            "p99_ms": round(1000 * percentile(values, 0.99), 1),
            "max_ms": round(1000 * max(values), 1),
            "statuses": dict(statuses[endpoint]),
        }
        for endpoint, values in sorted(latencies.items())
    }


def print_endpoints(endpoints: dict) -> None:
    print(f"{'endpoint':56} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for endpoint, row in endpoints.items():
        print(
            f"{endpoint:56} {row['count']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['max_ms']:>8}  {row['statuses']}"
        )


def print_problems(groups: list[tuple[str, list[str]]]) -> None:
    for title, lines in groups:
        for line in lines[:20]:
            print(f"  {title}: {line}")
