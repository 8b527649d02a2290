"""Load and soak check: a real server, many clients, whole sessions driven through the REST API.

    DATABASE_URL=postgres://spawnctl:<password>@127.0.0.1:5432/spawnctl_load \\
        .venv/bin/python bench/load.py --clients 8 --sessions 5 --workers 5

It migrates the database in ``DATABASE_URL`` (PostgreSQL is the case that matters; a SQLite
URL works too), creates a user and an API token with ``manage.py createsuperuser`` and
``drf_create_token``, and starts gunicorn with ``--workers`` processes on a free loopback port,
with production settings (DEBUG off; the clients send ``X-Forwarded-Proto: https`` as the
TLS proxy would). Use a database of its own: the run adds a user, projects and sessions and
deletes nothing.

Each of ``--clients`` threads then, ``--sessions`` times (or until ``--duration`` seconds have
passed): creates a project, a context and ``--components`` child components, creates a
ContextTestingSessions session and drives it to the end with ok results. When the command is
``spawn_sessions`` it drives every child (Initialize, GenerateTestsAndFixtures, RunTests,
Finalize) to completion before reporting the spawn step's result.

With twins on (the default), every next-command, spawn and report request is sent twice at
the same moment on two connections, as a client that retries or two tabs would: both
next-commands must hand out the same interaction (exactly one 201), both spawns the same
children, and of the two reports exactly one applies and the other is a 409.

Afterwards it checks through the API that every session ended complete, with exactly one
child per component (the ids the spawn command handed out, in spawn order) and one ok
interaction per step. It prints throughput, p50/p99 latency per endpoint and every failure,
and exits non-zero on any 5xx, transport error, broken expectation or failed check.
Everything it sends goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 60
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


class Twins:
    """Sends a request on two connections at the same moment (a second thread and this one)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.pool = ThreadPoolExecutor(max_workers=1) if enabled else None

    def run(self, call: Any) -> list[Any]:
        if not self.enabled:
            return [call()]
        barrier = threading.Barrier(2)

        def together() -> Any:
            barrier.wait(timeout=REQUEST_TIMEOUT_S)
            return call()

        other = self.pool.submit(together)
        mine = together()
        return [mine, other.result(timeout=2 * REQUEST_TIMEOUT_S)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# --- One client -------------------------------------------------------------------------


@dataclass
class Driven:
    """A context session this run drove, and what the spawn command handed out."""

    session_id: str
    components: list[dict]
    child_ids: list[str] = field(default_factory=list)

    def spawn_order(self) -> list[str]:
        """Component ids by priority descending, then name: the order children must have."""
        ordered = sorted(self.components, key=lambda c: (-c["priority"], c["name"]))
        return [component["id"] for component in ordered]


class Client:
    def __init__(self, api: Api, number: int, options: argparse.Namespace) -> None:
        self.api = api
        self.number = number
        self.options = options
        self.twins = Twins(options.twins)
        self.driven: list[Driven] = []

    def run(self, deadline: float) -> None:
        try:
            for index in range(self.options.sessions):
                if time.monotonic() > deadline:
                    break
                try:
                    self.driven.append(self.one_context_session(index))
                except Failure as failure:
                    self.api.stats.add(self.api.stats.failures, f"client {self.number}: {failure}")
        finally:
            self.twins.close()

    def one_context_session(self, index: int) -> Driven:
        api = self.api
        project = api.expect(
            "POST",
            "/api/projects/",
            "POST /api/projects/",
            201,
            {"name": f"Load {self.number}.{index}"},
        )
        context = self.component(project["id"], "Accounts", "context", 0, None)
        components = [
            self.component(project["id"], f"Part{k:02d}", "module", k % 3, context["id"])
            for k in range(self.options.components)
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
        driven = Driven(session_id=session["id"], components=components)
        self.drive(session["id"], driven)
        return driven

    def component(
        self, project: str, name: str, type_: str, priority: int, parent: str | None
    ) -> dict:
        body = {
            "project": project,
            "name": name,
            "module_name": f"Load.{self.number}.{secrets.token_hex(4)}.{name}",
            "type": type_,
            "priority": priority,
            "description": "",
            "parent_component": parent,
        }
        return self.api.expect("POST", "/api/components/", "POST /api/components/", 201, body)

    def drive(self, session_id: str, driven: Driven | None) -> None:
        base = f"/api/sessions/{session_id}"
        for _ in range(MAX_STEPS):
            interaction = self.next_command(base)
            command = interaction["command"]
            if command["command"] == "spawn_sessions":
                child_ids = command["metadata"]["child_session_ids"]
                self.spawn_again(base, child_ids)
                if driven is not None:
                    driven.child_ids = child_ids
                for child_id in child_ids:
                    self.drive(child_id, None)
            session = self.report(base, interaction)
            if session["status"] == "complete":
                return
            if session["status"] != "active":
                raise Failure(f"session {session_id} ended {session['status']}")
        raise Failure(f"session {session_id} did not complete in {MAX_STEPS} steps")

    def next_command(self, base: str) -> dict:
        answers = self.twins.run(
            lambda: self.api.call(
                "POST", f"{base}/next-command/", "POST /api/sessions/{id}/next-command/"
            )
        )
        statuses = sorted(status for status, _ in answers)
        expected = [200, 201] if len(answers) == 2 else [201]
        ids = {data.get("id") for _, data in answers if isinstance(data, dict)}
        if statuses != expected or len(ids) != 1:
            raise Failure(
                f"{base}/next-command/: expected {expected} with one interaction, got {answers}"
            )
        return answers[0][1]

    def spawn_again(self, base: str, child_ids: list[str]) -> None:
        """The spawn endpoint, called while the spawn step is pending, hands out the same ids."""
        answers = self.twins.run(
            lambda: self.api.call("POST", f"{base}/spawn/", "POST /api/sessions/{id}/spawn/")
        )
        for status, data in answers:
            if status != 200 or data["metadata"]["child_session_ids"] != child_ids:
                raise Failure(f"{base}/spawn/: expected 200 with {child_ids}, got {status} {data}")

    def report(self, base: str, interaction: dict) -> dict:
        path = f"{base}/interactions/{interaction['id']}/result/"
        body = {"status": "ok", "code": 0, "duration_ms": 1, "stdout": "ok", "stderr": ""}
        answers = self.twins.run(
            lambda: self.api.call(
                "POST", path, "POST /api/sessions/{id}/interactions/{iid}/result/", body
            )
        )
        applied = [data for status, data in answers if status == 200]
        refused = [data for status, data in answers if status == 409]
        if len(applied) != 1 or len(refused) != len(answers) - 1:
            raise Failure(f"{path}: expected one 200 and the rest 409, got {answers}")
        if any(data != {"detail": ALREADY_REPORTED} for data in refused):
            raise Failure(f"{path}: 409 without the exact text: {refused}")
        if applied[0]["interaction"]["result"]["status"] != "ok":
            raise Failure(f"{path}: the step did not take the ok result: {applied[0]}")
        return applied[0]["session"]


# --- Checks afterwards ------------------------------------------------------------------


def check(api: Api, driven: Driven) -> list[str]:
    problems: list[str] = []
    base = f"/api/sessions/{driven.session_id}"
    session = api.expect("GET", f"{base}/", "GET /api/sessions/{id}/", 200)
    if session["status"] != "complete":
        problems.append(f"{driven.session_id}: status {session['status']}")
    children = api.expect("GET", f"{base}/children/", "GET /api/sessions/{id}/children/", 200)
    listed = [child["id"] for child in children["results"]]
    if listed != driven.child_ids or session["child_session_ids"] != driven.child_ids:
        problems.append(f"{driven.session_id}: children {listed} != spawned {driven.child_ids}")
    components = [child["component"]["id"] for child in children["results"]]
    if components != driven.spawn_order():
        problems.append(f"{driven.session_id}: not one child per component in spawn order")
    total = len(driven.components)
    if children["summary"] != {
        "total": total,
        "active": 0,
        "complete": total,
        "failed": 0,
        "cancelled": 0,
    }:
        problems.append(f"{driven.session_id}: children summary {children['summary']}")
    problems += check_history(api, driven.session_id, CONTEXT_STEPS)
    for child in children["results"]:
        if child["status"] != "complete":
            problems.append(f"child {child['id']}: status {child['status']}")
        problems += check_history(api, child["id"], COMPONENT_STEPS)
    return problems


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
    environment: dict[str, str], port: int, workers: int, log_path: Path, scratch: Path
) -> subprocess.Popen:
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
    ]
    help_text = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, check=True
    ).stdout
    if "--control-socket " in help_text:
        # gunicorn 25+ opens a control socket in ~/.gunicorn by default; keep this run's apart.
        command += ["--control-socket", str(scratch / "gunicorn.ctl")]
    log = log_path.open("w")
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}; see {log_path}")
        try:
            probe = http.client.HTTPConnection(HOST, port, timeout=5)
            probe.request("GET", "/api/projects/", headers={"X-Forwarded-Proto": "https"})
            if probe.getresponse().status == 401:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"gunicorn did not answer within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)


# --- Main -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the database to load (default: $DATABASE_URL)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--sessions",
        type=int,
        default=3,
        help="context sessions per client (at most, with --duration)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="soak: clients start new sessions until this many seconds passed",
    )
    parser.add_argument("--components", type=int, default=4, help="children per context")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument(
        "--no-twins",
        dest="twins",
        action="store_false",
        help="send each request once instead of twice at the same moment",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="hard limit for the whole load phase"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(argv)
    if not options.database_url:
        parser.error("give --database-url or set DATABASE_URL (a database of the run's own)")
    if options.duration is not None and options.sessions == 3:
        options.sessions = 100_000  # bounded by --duration and --max-seconds
    return options


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    run_id = f"load-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    scratch = Path(tempfile.mkdtemp(prefix="spawnctl-load-"))
    environment = {
        **os.environ,
        "DATABASE_URL": options.database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": HOST,
        "STATIC_ROOT": str(scratch / "static"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
    }
    # WhiteNoise warns at start-up about a missing STATIC_ROOT; the API serves no static file.
    (scratch / "static").mkdir()
    engine = "PostgreSQL" if options.database_url.startswith("postgres") else "SQLite"
    print(f"{run_id}: {engine}, {options.workers} gunicorn workers, {options.clients} clients")

    manage(environment, "migrate", "--noinput", "--verbosity", "0")
    manage(
        environment,
        "createsuperuser",
        "--noinput",
        "--username",
        run_id,
        "--email",
        f"{run_id}@example.com",
    )
    token_output = manage(environment, "drf_create_token", run_id)
    token = re.search(r"Generated token (\w+)", token_output)
    if token is None:
        sys.exit(f"no token in drf_create_token's output: {token_output!r}")

    port = free_port()
    log_path = scratch / "server.log"
    server = start_server(environment, port, options.workers, log_path, scratch)
    stats = Stats()
    api = Api(port, token.group(1), stats)
    clients = [Client(api, number, options) for number in range(options.clients)]
    try:
        started = time.monotonic()
        soak_end = started + (options.duration or options.max_seconds)
        deadline = min(soak_end, started + options.max_seconds)
        threads = [threading.Thread(target=c.run, args=(deadline,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=options.max_seconds + 2 * REQUEST_TIMEOUT_S)
        elapsed = time.monotonic() - started
        if any(thread.is_alive() for thread in threads):
            stats.failures.append("a client was still running past --max-seconds")

        load_requests = sum(len(v) for v in stats.latencies.values())
        load_latencies = {k: list(v) for k, v in stats.latencies.items()}
        load_statuses = {k: dict(v) for k, v in stats.statuses.items()}
        driven = [d for client in clients for d in client.driven]
        problems = []
        for item in driven:
            try:
                problems += check(api, item)
            except Failure as failure:
                problems.append(str(failure))
    finally:
        stop_server(server)

    log_text = log_path.read_text(errors="replace")
    tracebacks = log_text.count("Traceback (most recent call last)")
    children = sum(len(d.child_ids) for d in driven)
    figures = {
        "run": run_id,
        "database": engine,
        "workers": options.workers,
        "clients": options.clients,
        "twins": options.twins,
        "components_per_context": options.components,
        "seconds": round(elapsed, 1),
        "requests": load_requests,
        "requests_per_second": round(load_requests / elapsed, 1),
        "context_sessions_completed": len(driven),
        "child_sessions_completed": children,
        "sessions_per_second": round((len(driven) + children) / elapsed, 2),
        "endpoints": {
            endpoint: {
                "count": len(values),
                "p50_ms": round(1000 * percentile(values, 0.50), 1),
                "p99_ms": round(1000 * percentile(values, 0.99), 1),
                "max_ms": round(1000 * max(values), 1),
                "statuses": load_statuses[endpoint],
            }
            for endpoint, values in sorted(load_latencies.items())
        },
        "server_errors": len(stats.server_errors),
        "transport_errors": len(stats.transport_errors),
        "broken_expectations": len(stats.failures),
        "failed_checks": len(problems),
        "server_log_tracebacks": tracebacks,
    }
    print_report(figures, stats, problems, log_path)
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    failed = (
        stats.server_errors or stats.transport_errors or stats.failures or problems or tracebacks
    )
    if not driven:
        failed = True
        print("FAIL: no session was driven to the end")
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


def print_report(figures: dict, stats: Stats, problems: list[str], log_path: Path) -> None:
    print(
        f"{figures['requests']} requests in {figures['seconds']} s: "
        f"{figures['requests_per_second']} requests/s; "
        f"{figures['context_sessions_completed']} context sessions and "
        f"{figures['child_sessions_completed']} child sessions completed "
        f"({figures['sessions_per_second']} sessions/s)"
    )
    print(f"{'endpoint':56} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for endpoint, row in figures["endpoints"].items():
        print(
            f"{endpoint:56} {row['count']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['max_ms']:>8}  {row['statuses']}"
        )
    print(
        f"server errors (5xx): {figures['server_errors']}, transport errors: "
        f"{figures['transport_errors']}, broken expectations: {figures['broken_expectations']}, "
        f"failed checks: {figures['failed_checks']}, tracebacks in the server log: "
        f"{figures['server_log_tracebacks']} ({log_path})"
    )
    for title, lines in (
        ("server errors", stats.server_errors),
        ("transport errors", stats.transport_errors),
        ("broken expectations", stats.failures),
        ("failed checks", problems),
    ):
        for line in lines[:20]:
            print(f"  {title}: {line}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
