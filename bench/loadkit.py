"""What bench/load.py's modes share: the HTTP client, the figures, the servers they start.

The client (``Api``) either fails on the first 5xx or transport error (the clients mode), or,
with ``retries``, does what the runner (``spawnctl``) does: a fresh ``Idempotency-Key`` on
every POST, the same key on each try, and the request sent again while the answer is a
502/503/504, no answer, or a 409 saying the first try still runs. Every try is counted.

Several servers (``Cluster``): N gunicorn instances on one database and one Redis
(``Redis``, a redis-server of the run's own), behind an HAProxy that balances them round-robin,
checks ``/health/`` and marks each answer with the instance that served it (``X-Served-By``).

Everything goes to 127.0.0.1; every request has a timeout, every wait a deadline, and every
process started here is stopped by its starter, or killed with the bench if the bench dies
(a gunicorn master with it; its workers see their master gone within 30 s and exit).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import http.client
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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
COMPONENT_STEPS = ["Initialize", "GenerateTestsAndFixtures", "RunTests", "VerifyTests", "Finalize"]
MAX_STEPS = 20  # a session takes 3 or 5; more means the workflow loops
# As spawnctl: every POST names itself by a key of its own, the same on each of its tries.
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The server's 409s that mean "not now" (spawnctl.api's BUSY_CONFLICTS): asked again.
BUSY_CONFLICTS = (
    "A request with this Idempotency-Key is in progress",
    "The request kept conflicting with concurrent writes; try again",
)
# What a proxy answers for an instance that is gone, or the server while its database is.
OUTAGE_STATUSES = (502, 503, 504)
SERVED_BY = "X-Served-By"
# A request is sent again for at most this long, pausing FIRST_PAUSE_S, doubled up to MAX.
RETRY_FOR_S = 30.0
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0


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
    # With retries: the tries the proxy answered 502/503/504 itself (its error page, not the
    # application's JSON) or not at all, sorted out afterwards by ``attribute_outages`` into
    # the killed instance's in-flight requests and server or transport errors.
    outages: list[Outage] = field(default_factory=list)
    kill_in_flight: list[Outage] = field(default_factory=list)
    # Every answer: when it came (time.monotonic()) and the instance the proxy names.
    answers: list[tuple[float, str | None]] = field(default_factory=list)
    # Every request that took more than one try, and why each try was not the last.
    retried: list[Retried] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, endpoint: str, status: int, seconds: float, served_by: str | None = None
    ) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            self.statuses[endpoint][status] += 1
            self.answers.append((time.monotonic(), served_by))

    def add(self, bucket: list, item: Any) -> None:
        with self.lock:
            bucket.append(item)

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


@dataclass
class Outage:
    """A try the instance did not answer: the proxy's own 502/503/504 (naming the instance it
    chose), or no answer at all. HAProxy answers 502 when an instance dies under the first
    request of a client's connection, and closes the connection without a word (and without
    a log line) under a later one, as the instance would have, so the client retries."""

    at: float  # time.monotonic() when the client saw it
    endpoint: str
    request: str
    status: int | None  # None: no answer (``error`` says what the client saw)
    served_by: str | None  # the instance the proxy's answer names; None without one
    error: str | None = None

    @property
    def what(self) -> str:
        return str(self.status) if self.status is not None else "no answer"

    def __str__(self) -> str:
        how = f"{self.status} from the proxy" if self.status is not None else self.error
        return f"{self.request}: {how} (instance {self.served_by or 'not named'})"


@dataclass
class Retried:
    """A request that needed more than one try: the causes of the tries sent again."""

    endpoint: str
    causes: list[str]
    seconds: float
    final_status: int | None
    replayed: bool  # the last answer was the first try's, stored under its key


def attribute_outages(
    stats: Stats,
    victim: str | None,
    killed_at: float | None,
    window: float,
    *,
    silent_closes_are_the_victims: bool = False,
) -> None:
    """The outages within ``window`` seconds after ``killed_at`` that are ``victim``'s: the
    proxy's 502/503/504 naming it, and, when ``silent_closes_are_the_victims`` (the proxy
    counted no failure on any other instance), the tries it closed without an answer. They
    are that instance's requests in flight when it was killed. Every other outage is a
    server error (a 5xx) or a transport error (no answer)."""
    for outage in stats.outages:
        in_window = killed_at is not None and killed_at <= outage.at <= killed_at + window
        the_victims = victim is not None and (
            outage.served_by == victim
            if outage.status is not None
            else silent_closes_are_the_victims
        )
        if in_window and the_victims:
            stats.kill_in_flight.append(outage)
        elif outage.status is None:
            stats.transport_errors.append(str(outage))
        else:
            stats.server_errors.append(str(outage))
    stats.outages = []


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- HTTP -------------------------------------------------------------------------------


@dataclass
class Answer:
    """One try's answer; ``status`` None when there was none (``error`` says why)."""

    status: int | None
    raw: bytes = b""
    content_type: str = ""
    served_by: str | None = None
    replayed: bool = False
    retry_after: str | None = None
    error: str | None = None

    @property
    def from_proxy(self) -> bool:
        """The proxy's own error page (HTML), not an answer of the application (JSON)."""
        return self.status in OUTAGE_STATUSES and self.content_type.startswith("text/html")

    def detail(self) -> Any:
        try:
            return json.loads(self.raw).get("detail")
        except (ValueError, AttributeError):
            return None


class Api:
    """JSON over one keep-alive-capable connection per thread, every try timed.

    With ``retries`` it acts as spawnctl does (``spawnctl/api.py``): each POST carries an
    ``Idempotency-Key`` of its own, and a try answered 502/503/504, not answered at all, or
    answered 409 because the first try of its key still runs (or the server's own retries of
    a deadlock ran out) is sent again with the same key, for up to ``RETRY_FOR_S``. The
    server answers a repeat of a request that did commit with its first answer."""

    def __init__(self, port: int, token: str, stats: Stats, *, retries: bool = False) -> None:
        self.port = port
        self.stats = stats
        self.retries = retries
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

    def _drop(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
        self.local.connection = None

    def send(self, method: str, path: str, endpoint: str, body: Any = None) -> Answer:
        """The answer, after as many tries as ``retries`` allows; a Failure for a 5xx or no
        answer at the end."""
        payload = None if body is None else json.dumps(body)
        headers = self.headers
        if self.retries and method == "POST":
            headers = {**headers, IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        started = time.monotonic()
        pause = FIRST_PAUSE_S
        causes: list[str] = []
        while True:
            answer = self._try(method, path, endpoint, payload, headers)
            cause = self._retry_cause(answer) if self.retries else None
            if cause is None or time.monotonic() + pause - started > RETRY_FOR_S:
                break
            causes.append(cause)
            time.sleep(pause)
            pause = min(2 * pause, MAX_PAUSE_S)
        if causes:
            self.stats.add(
                self.stats.retried,
                Retried(
                    endpoint, causes, time.monotonic() - started, answer.status, answer.replayed
                ),
            )
        if answer.status is None:
            raise Failure(f"{method} {path}: transport error {answer.error}")
        if answer.status >= 500:
            raise Failure(f"{method} {path}: server error {answer.status}")
        return answer

    @staticmethod
    def _retry_cause(answer: Answer) -> str | None:
        if answer.status is None:
            return "no answer"
        if answer.status in OUTAGE_STATUSES:
            return f"{answer.status} from the {'proxy' if answer.from_proxy else 'server'}"
        if answer.status == 409 and answer.detail() in BUSY_CONFLICTS:
            return f"409 {answer.detail()}"
        return None

    def _try(
        self, method: str, path: str, endpoint: str, payload: str | None, headers: dict
    ) -> Answer:
        started = time.perf_counter()
        try:
            connection = self._connection()
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            self._drop()
            if self.retries:
                outage = Outage(
                    time.monotonic(), endpoint, f"{method} {path}", None, None, repr(error)
                )
                self.stats.add(self.stats.outages, outage)
            else:
                self.stats.add(self.stats.transport_errors, f"{method} {path}: {error!r}")
            return Answer(None, error=repr(error))
        answer = Answer(
            response.status,
            raw,
            response.getheader("Content-Type", ""),
            response.getheader(SERVED_BY),
            response.getheader("Idempotent-Replayed") == "true",
            response.getheader("Retry-After"),
        )
        self.stats.record(endpoint, answer.status, time.perf_counter() - started, answer.served_by)
        if response.will_close or answer.status >= 500:
            self._drop()
        if answer.status >= 500:
            if self.retries and answer.from_proxy:
                outage = Outage(
                    time.monotonic(), endpoint, f"{method} {path}", answer.status, answer.served_by
                )
                self.stats.add(self.stats.outages, outage)
            else:
                self.stats.add(
                    self.stats.server_errors, f"{method} {path}: {answer.status} {raw[:300]!r}"
                )
        return answer

    def call(self, method: str, path: str, endpoint: str, body: Any = None) -> tuple[int, Any]:
        answer = self.send(method, path, endpoint, body)
        try:
            data = json.loads(answer.raw) if answer.raw else None
        except ValueError:
            raise Failure(
                f"{method} {path}: {answer.status} with a body that is not JSON"
            ) from None
        return answer.status, data

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


# Linux: a process started here is killed when the bench dies, even by SIGKILL
# (PR_SET_PDEATHSIG, kept across exec, not passed to a fork: gunicorn's workers notice their
# master gone at their next wake-up, within half their timeout). Every process is started by
# the main thread (the signal follows the thread that started it).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1


def _die_with_the_bench() -> None:
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: list[str], log_path: Path, **kwargs: Any) -> subprocess.Popen:
    """A process in a session (and process group) of its own, its output in ``log_path``."""
    with log_path.open("w") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_the_bench,
            **kwargs,
        )


def start_server(
    environment: dict[str, str],
    port: int,
    workers: int,
    log_path: Path,
    scratch: Path,
    *,
    production_script: bool = False,
    name: str = "",
) -> subprocess.Popen:
    """gunicorn on ``port``, answering: see ``launch_server``."""
    server = launch_server(
        environment,
        port,
        workers,
        log_path,
        scratch,
        production_script=production_script,
        name=name,
    )
    wait_for_server(server, port, log_path)
    return server


def launch_server(
    environment: dict[str, str],
    port: int,
    workers: int,
    log_path: Path,
    scratch: Path,
    *,
    production_script: bool = False,
    name: str = "",
) -> subprocess.Popen:
    """gunicorn on ``port``, started: here with production settings, or, with
    ``production_script``, by scripts/serve-production itself (its deploy check, migrate,
    collectstatic and gunicorn options; no install). ``name`` tells several apart: each has
    its own control socket (and, through the script, its own STATIC_ROOT)."""
    suffix = f"-{name}" if name else ""
    # gunicorn 25+ opens a control socket in ~/.gunicorn by default; keep this run's apart.
    control = (
        ["--control-socket", str(scratch / f"gunicorn{suffix}.ctl")]
        if _has_control_socket()
        else []
    )
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
        if name:
            # Several scripts' collectstatic at once must not write into one directory.
            static = scratch / f"static{suffix}"
            static.mkdir(exist_ok=True)
            environment["STATIC_ROOT"] = str(static)
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
    return spawn(command, log_path, cwd=REPO, env=environment)


_control_socket: bool | None = None


def _has_control_socket() -> bool:
    global _control_socket
    if _control_socket is None:
        help_text = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        _control_socket = "--control-socket " in help_text
    return _control_socket


def wait_for_server(server: subprocess.Popen, port: int, log_path: Path) -> None:
    # serve-production checks, migrates and collects static files first: minutes on a busy box.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see {log_path}")
        probe = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            probe.request("GET", "/api/projects/", headers={"X-Forwarded-Proto": "https"})
            if probe.getresponse().status == 401:
                return
        except OSError:
            pass
        finally:
            probe.close()
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"the server did not answer within {START_TIMEOUT_S} s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, SIGKILL if it is still there after 30 s."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def program(name: str, *fallbacks: str) -> str:
    """The path of an installed program (root's sbin need not be on PATH)."""
    found = shutil.which(name) or next((path for path in fallbacks if Path(path).exists()), None)
    if found is None:
        sys.exit(f"{name} is not installed (apt-get install {name})")
    return found


# --- Several servers: one Redis, N gunicorn instances, HAProxy in front --------------------


class Redis:
    """A redis-server of the run's own, on a free loopback port, keeping nothing on disk."""

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        self.log_path = scratch / "redis.log"
        self.scratch = scratch
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        command = [
            program("redis-server", "/usr/bin/redis-server"),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.scratch),
        ]
        self.process = spawn(command, self.log_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"redis-server exited with {self.process.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError):
                if self.command("PING") is True:  # redis-py reads +PONG as True
                    return
            time.sleep(0.1)
        sys.exit(f"redis-server did not answer within 30 s; see {self.log_path}")

    def command(self, *words: str) -> Any:
        """One command through the redis client (a dependency of the project)."""
        import redis

        client = redis.Redis(HOST, self.port, socket_timeout=5, decode_responses=True)
        try:
            return client.execute_command(*words)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)


@dataclass
class Instance:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    killed_at: float | None = None


HAPROXY_CONFIG = """\
# Written by bench/loadkit.py for one run; docs/deployment.md has the production version.
global
    log stdout format iso local0 notice
    stats socket {socket} mode 600 level admin
    maxconn 1000

defaults
    mode http
    log global
    # A connection refused by a dead instance is tried again, on another instance. A request
    # that reached an instance is never sent twice by the proxy: the client retries it, with
    # its Idempotency-Key.
    retries 3
    option redispatch 1
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s

frontend api
    bind {host}:{port}
    default_backend app

backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health/ ver HTTP/1.1 hdr Host {host}
    http-check expect status 200
    # Which instance answered (the proxy's own 502s too): the bench counts per instance.
    http-after-response set-header {served_by} %[srv_name]
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


# What the proxy counted per instance (HAProxy's "show stat" fields).
PROXY_COUNTERS = {
    "requests": "stot",
    "response_errors": "eresp",
    "aborted_by_server": "srv_abrt",
    "answered_5xx": "hrsp_5xx",
    "connections_retried": "wretr",
    "redispatched": "wredis",
}


class Cluster:
    """``servers`` gunicorn instances (``app1``...) of ``workers`` each on one database and one
    cache, and an HAProxy in front of them on ``proxy_port``; ``label`` names this set's
    files in the scratch directory. ``start`` returns once the proxy sees every one up."""

    def __init__(
        self,
        run: Run,
        label: str,
        servers: int,
        workers: int,
        environment: dict[str, str],
        *,
        production_script: bool = False,
    ) -> None:
        self.run = run
        self.label = label
        self.workers = workers
        self.environment = environment
        self.production_script = production_script
        self.instances = [
            Instance(f"app{k}", free_port(), run.scratch / f"server-{label}-app{k}.log")
            for k in range(1, servers + 1)
        ]
        self.proxy_port = free_port()
        self.socket = run.scratch / f"haproxy-{label}.sock"
        self.config = run.scratch / f"haproxy-{label}.cfg"
        self.proxy_log = run.scratch / f"haproxy-{label}.log"
        self.proxy: subprocess.Popen | None = None

    def start(self) -> None:
        try:
            for instance in self.instances:
                instance.process = launch_server(
                    self.environment,
                    instance.port,
                    self.workers,
                    instance.log_path,
                    self.run.scratch,
                    production_script=self.production_script,
                    name=f"{self.label}-{instance.name}",
                )
            for instance in self.instances:
                wait_for_server(instance.process, instance.port, instance.log_path)
            self._start_proxy()
        except BaseException:
            self.stop()
            raise

    def _start_proxy(self) -> None:
        haproxy = program("haproxy", "/usr/sbin/haproxy")
        servers = "\n".join(f"    server {i.name} {HOST}:{i.port}" for i in self.instances)
        self.config.write_text(
            HAPROXY_CONFIG.format(
                socket=self.socket,
                host=HOST,
                port=self.proxy_port,
                served_by=SERVED_BY,
                servers=servers,
            )
        )
        checked = subprocess.run(
            [haproxy, "-c", "-q", "-f", str(self.config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if checked.returncode != 0:
            sys.exit(f"haproxy refused {self.config}:\n{checked.stdout}{checked.stderr}")
        self.proxy = spawn([haproxy, "-db", "-f", str(self.config)], self.proxy_log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proxy.poll() is not None:
                sys.exit(f"haproxy exited with {self.proxy.returncode}; see {self.proxy_log}")
            with contextlib.suppress(OSError):
                states = self.states()
                if len(states) == len(self.instances) and all(
                    state["status"] == "UP" for state in states.values()
                ):
                    return
            time.sleep(0.1)
        sys.exit(f"haproxy did not see every instance up within 30 s; see {self.proxy_log}")

    def states(self) -> dict[str, dict[str, Any]]:
        """The proxy's view of each instance: ``status`` (UP, DOWN, ...) and ``in_flight``,
        the requests it has sent the instance and not yet had answered."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(5)
            connection.connect(str(self.socket))
            connection.sendall(b"show stat\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode().lstrip("# ")
        return {
            row["svname"]: {
                "status": row["status"],
                "in_flight": int(row["scur"] or 0),
                **{name: int(row[field] or 0) for name, field in PROXY_COUNTERS.items()},
            }
            for row in csv.DictReader(io.StringIO(text))
            if row.get("pxname") == "app" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def kill(self, instance: Instance) -> float:
        """SIGKILL the instance's whole process group (master and workers) at once; when."""
        killed_at = time.monotonic()
        os.killpg(instance.process.pid, signal.SIGKILL)
        instance.process.wait(timeout=10)
        instance.killed_at = killed_at
        return killed_at

    def stop(self) -> None:
        """Stop the proxy and every instance still running, whatever fails on the way."""
        processes = [self.proxy] + [instance.process for instance in self.instances]
        for process in processes:
            if process is not None:
                try:
                    stop_server(process)
                except Exception as error:  # the next ones are stopped all the same
                    print(f"could not stop process {process.pid}: {error!r}", file=sys.stderr)


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
    return create_user_and_token(run, run.run_id)


def create_user_and_token(run: Run, username: str) -> str:
    """A new user (``createsuperuser --noinput``) and its API token (``drf_create_token``)."""
    manage(
        run.environment,
        "createsuperuser",
        "--noinput",
        "--username",
        username,
        "--email",
        f"{username}@example.com",
    )
    token_output = manage(run.environment, "drf_create_token", username)
    token = re.search(r"Generated token (\w+)", token_output)
    if token is None:
        sys.exit(f"no token in drf_create_token's output: {token_output!r}")
    return token.group(1)


def server_log_tracebacks(run: Run) -> int:
    """Tracebacks in the logs of every server the run started (server.log, server-*.log)."""
    return sum(
        path.read_text(errors="replace").count("Traceback (most recent call last)")
        for path in run.scratch.glob("server*.log")
    )


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
