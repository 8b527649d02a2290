"""A live server in a process of its own, a scratch git repository with a bare origin, and
spawnctl run as a user runs it (a subprocess with the stand-in agent on PATH as `claude`).

The server uses the suite's database on PostgreSQL (the test database, committed to by
``transactional_db`` and flushed after each test) and a scratch SQLite file otherwise (the
suite's in-memory SQLite database cannot be shared with another process); migrated once per
run and copied for each test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
STAND_IN_BIN = Path(__file__).resolve().parent / "bin"

# Makes the server's user, project and token; prints them as JSON.
_SETUP = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from components_app.models import Project
user = get_user_model().objects.create_user("runner-e2e", password="unused")
project = Project.objects.create(name="Runner e2e")
project.members.add(user)
print(json.dumps({"token": Token.objects.create(user=user).key, "project": str(project.pk)}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(tmp_path: Path, sqlite_template: Path | None) -> str:
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        return (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    assert sqlite_template is not None
    copy = tmp_path / "server.sqlite3"
    shutil.copy(sqlite_template, copy)
    return f"sqlite:///{copy}"


def _server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    return env


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path | None:
    """A migrated SQLite file, made once (None on PostgreSQL)."""
    if connection.vendor == "postgresql":
        return None
    path = tmp_path_factory.mktemp("server-db") / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO,
        env=_server_env(f"sqlite:///{path}"),
        check=True,
        timeout=300,
    )
    return path


def _runserver(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class LiveServer:
    url: str
    token: str
    project: str
    http: httpx.Client = field(repr=False)
    process: subprocess.Popen = field(repr=False)
    env: dict[str, str] = field(repr=False)
    port: int = 0
    log_path: Path | None = None

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """The server goes away (killed, by default, as a crash would), its database kept."""
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def start(self) -> None:
        """The server again, on the same port and database."""
        assert self.process.poll() is not None, "the server is running"
        self.process = _runserver(self.env, self.port, self.log_path)
        self.wait_until_up()

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("sessions/").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def post(self, path: str, body: dict | None = None, expect: int | None = None) -> dict:
        response = self.http.post(path, json=body or {})
        assert response.status_code == (expect or response.status_code), response.text
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    def get(self, path: str) -> dict:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def context(self, name: str, children: list[tuple[str, int]], **session: object) -> dict:
        """A context component with children (name, priority) and a context testing session."""
        context = self.post(
            "components/",
            {
                "project": self.project,
                "name": name,
                "module_name": f"Shop.{name}",
                "type": "context",
            },
        )
        for child, priority in children:
            self.post(
                "components/",
                {
                    "project": self.project,
                    "name": child,
                    "module_name": f"Shop.{name}.{child}",
                    "type": "module",
                    "priority": priority,
                    "parent_component": context["id"],
                },
            )
        return self.post(
            "sessions/",
            {
                "project": self.project,
                "type": "ContextTestingSessions",
                "component": context["id"],
                "agent": "claude_code",
                "environment": "cli",
                **session,
            },
        )

    def session(self, session_id: str) -> dict:
        return self.get(f"sessions/{session_id}/")

    def children(self, session_id: str) -> dict:
        return self.get(f"sessions/{session_id}/children/")

    def steps(self, session_id: str) -> list[str]:
        """The session's step history, oldest first."""
        page = self.get(f"sessions/{session_id}/interactions/")
        return [interaction["step_name"] for interaction in reversed(page["results"])]


@pytest.fixture
def live_server_process(transactional_db, tmp_path, sqlite_template) -> Iterator[LiveServer]:
    env = _server_env(_database_url(tmp_path, sqlite_template))
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _SETUP],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    setup = json.loads(made.stdout.strip().splitlines()[-1])
    port = _free_port()
    log_path = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(
        base_url=f"{url}/api/", headers={"Authorization": f"Token {setup['token']}"}, timeout=30
    )
    server = LiveServer(
        url=url,
        token=setup["token"],
        project=setup["project"],
        http=http,
        process=_runserver(env, port, log_path),
        env=env,
        port=port,
        log_path=log_path,
    )
    try:
        server.wait_until_up()
        yield server
    finally:
        http.close()
        if server.process.poll() is None:
            server.stop(signal.SIGINT)


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class Workspace:
    root: Path
    origin: Path
    work: Path
    env: dict[str, str]
    server: LiveServer

    def clone(self, name: str) -> Path:
        path = self.root / name
        git("clone", "-q", str(self.origin), str(path), cwd=self.root, env=self.env)
        return path

    def origin_files(self, branch: str) -> list[str]:
        return sorted(git("ls-tree", "-r", "--name-only", branch, cwd=self.origin).split())

    def spawnctl_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def spawnctl(self, *args: str, **popen: object) -> subprocess.Popen:
        env = popen.pop("env", None) or self.spawnctl_env()
        return subprocess.Popen(
            [sys.executable, "-m", "spawnctl.cli", *args],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **popen,
        )

    def run(self, *args: str, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
        process = self.spawnctl(*args, env=self.spawnctl_env(**extra))
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"spawnctl {' '.join(args)} did not finish:\n{output}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, output, None)


@pytest.fixture
def workspace(tmp_path, live_server_process) -> Workspace:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PATH"] = os.pathsep.join(
        [str(STAND_IN_BIN), str(Path(sys.executable).parent), env["PATH"]]
    )
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "Agent"
        env[f"GIT_{role}_EMAIL"] = "agent@example.com"
    # The scratch repository's pytest needs none of this suite's plugins (and is 10x faster).
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"
    env["SPAWNCTL_URL"] = live_server_process.url
    env["SPAWNCTL_TOKEN"] = live_server_process.token
    env["PYTHONPATH"] = str(REPO)
    env["STAND_IN_LOG"] = str(tmp_path / "agent.log")
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "--bare", "-q", "-b", "main", str(origin), cwd=tmp_path, env=env)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path, env=env)
    git("remote", "add", "origin", str(origin), cwd=work, env=env)
    (work / "README").write_text("scratch\n")
    git("add", "README", cwd=work, env=env)
    git("commit", "-q", "-m", "initial", cwd=work, env=env)
    git("push", "-q", "-u", "origin", "main", cwd=work, env=env)
    return Workspace(root=tmp_path, origin=origin, work=work, env=env, server=live_server_process)


def agent_calls(workspace: Workspace) -> list[tuple[str, str, str]]:
    """(session id, step, module) per call of the stand-in agent, in order."""
    log = Path(workspace.env["STAND_IN_LOG"])
    if not log.exists():
        return []
    return [tuple(line.split(" ", 2)) for line in log.read_text().splitlines()]
