"""One job's pieces: the shell line, the environment, the result, the heartbeat, the
working copy's lock, and a step stopped when its lease is lost."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from spawnctl import events
from spawnctl.api import Api, Interaction, Session, Unreachable
from spawnctl.children import ChildrenDriver, parallelism
from spawnctl.execute import Execution, execute
from spawnctl.jobs import (
    STOPPED,
    Backoff,
    Heartbeat,
    RunnerConfig,
    SessionJob,
    command_env,
    lock_path,
    repository_lock,
    result_of,
    shell_line,
)

HOSTILE = ["a b", "$(touch pwned)", "`touch pwned`", "'; touch pwned; '", '"', "--", "-rf", "\n"]


def component_session(**state) -> Session:
    return Session(
        {
            "id": "s1",
            "type": "ComponentTestSessions",
            "component": {"name": "User", "module_name": "Shop.Accounts.User"},
            "state": state,
        }
    )


def interaction(step: str, **metadata) -> Interaction:
    return Interaction({"id": "i1", "step_name": step, "command": {"metadata": metadata}})


def test_an_agent_command_runs_its_argv_with_every_argument_intact(tmp_path):
    command = {"command": "printf", "metadata": {"argv": ["printf", "[%s]", *HOSTILE]}}

    ran = execute(shell_line(command), cwd=tmp_path)

    assert ran.ok, ran.stderr
    assert ran.stdout == "".join(f"[{arg}]" for arg in HOSTILE)
    assert not (tmp_path / "pwned").exists()


def test_a_shell_command_runs_as_it_stands():
    command = {"command": "git add -- x && git commit -m y", "metadata": {"argv": ["git"]}}
    assert shell_line(command) == "git add -- x && git commit -m y"
    assert shell_line({"command": "pytest tests/t.py"}) == "pytest tests/t.py"


def test_each_command_gets_its_session_step_component_and_test_file():
    base = {
        "PATH": "/bin",
        "SPAWNCTL_TOKEN": "secret",
        "SPAWNCTL_TOKEN_FILE": "/home/me/.spawnctl-token",
        "SPAWNCTL_TEST_FILE": "stale",
    }

    env = command_env(base, component_session(), interaction("RunTests", test_file="tests/t.py"))

    assert env == {
        "PATH": "/bin",
        "SPAWNCTL_SESSION_ID": "s1",
        "SPAWNCTL_INTERACTION_ID": "i1",
        "SPAWNCTL_STEP": "RunTests",
        "SPAWNCTL_COMPONENT": "Shop.Accounts.User",
        "SPAWNCTL_TEST_FILE": "tests/t.py",
    }


def test_the_test_file_comes_from_the_state_when_the_command_does_not_name_it():
    session = component_session(test_file="tests/from_state.py")
    assert command_env({}, session, interaction("Finalize"))["SPAWNCTL_TEST_FILE"] == (
        "tests/from_state.py"
    )
    # Initialize runs before the test file is named, whatever an earlier attempt left.
    assert "SPAWNCTL_TEST_FILE" not in command_env({}, session, interaction("Initialize"))


def test_a_context_sessions_commands_get_no_component():
    context = Session({"id": "c", "type": "ContextTestingSessions", "component": {"name": "A"}})
    env = command_env({}, context, interaction("Initialize"))
    assert set(env) == {"SPAWNCTL_SESSION_ID", "SPAWNCTL_INTERACTION_ID", "SPAWNCTL_STEP"}


@pytest.mark.parametrize(
    ("execution", "expected"),
    [
        (Execution(0, "o", "e", 12), {"status": "ok", "code": 0}),
        (Execution(2, "o", "e", 12), {"status": "error", "code": 2}),
        (Execution(-9, "", "", 1), {"status": "error", "error_message": "Killed by signal 9"}),
        (
            Execution(124, "", "", 1, timed_out=True),
            {"status": "error", "error_message": "Timed out after 1.5 s"},
        ),
    ],
)
def test_the_result_reported_for_a_command(execution, expected):
    result = result_of(execution, timeout=1.5)
    assert result.items() >= expected.items()
    assert (result["stdout"], result["stderr"], result["duration_ms"]) == (
        execution.stdout,
        execution.stderr,
        execution.duration_ms,
    )


def test_the_lock_lives_in_the_working_copys_git_directory(tmp_path):
    (tmp_path / "clone" / ".git").mkdir(parents=True)
    assert lock_path(tmp_path / "clone") == tmp_path / "clone" / ".git" / "spawnctl.lock"
    assert lock_path(tmp_path) != lock_path(tmp_path / "clone")


def test_the_repository_lock_excludes_another_process(tmp_path):
    (tmp_path / ".git").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True); time.sleep(1.0)",
            str(lock_path(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    started = time.monotonic()
    with repository_lock(tmp_path) as held:
        waited = time.monotonic() - started
        assert held
    holder.wait()
    assert waited >= 0.5


# --- jobs against a stand-in server --------------------------------------------------------


class FakeServer:
    """Answers the routes a job uses; records what it was sent."""

    def __init__(
        self,
        heartbeat: httpx.Response | None = None,
        down: tuple[str, ...] = (),
        **queued: list[httpx.Response | Exception],
    ) -> None:
        """``queued``: answers per route, given in turn (an exception is raised); ``down``:
        routes that cannot be reached once their queue is empty."""
        self.heartbeat = heartbeat
        self.down = down
        self.queued = {route.replace("_", "-"): list(answers) for route, answers in queued.items()}
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.rstrip("/").split("/")[-1]
        body = json.loads(request.content) if request.content else {}
        with self.lock:
            self.calls.append((route, body))
            if self.queued.get(route):
                answer = self.queued[route].pop(0)
                if isinstance(answer, Exception):
                    answer.request = request
                    raise answer
                return answer
            if route in self.down:
                raise httpx.ConnectError("connection refused", request=request)
        if route == "heartbeat" and self.heartbeat is not None:
            return self.heartbeat
        if route == "result":
            return httpx.Response(
                200,
                json={
                    "interaction": {"id": "i1", "result": {"status": body["status"]}},
                    "session": {"id": "s1", "status": "active"},
                },
            )
        return httpx.Response(200, json={"id": "s1", "status": "active"})

    def routes(self) -> list[str]:
        return [route for route, _ in self.calls]


def config_for(server: FakeServer, repo: Path, **options) -> tuple[RunnerConfig, list]:
    seen: list = []
    api = Api("http://server", "t", transport=httpx.MockTransport(server), server_timeout=0.2)
    options.setdefault("lease_seconds", 1)
    return RunnerConfig(api=api, runner="me", repo=repo, emit=seen.append, **options), seen


def command(shell: str, **metadata) -> Interaction:
    return Interaction(
        {"id": "i1", "step_name": "Finalize", "command": {"command": shell, "metadata": metadata}}
    )


def test_a_command_longer_than_the_lease_keeps_it_by_heartbeats(tmp_path):
    server = FakeServer()
    config, _ = config_for(server, tmp_path, lease_seconds=1)
    job = SessionJob(config, component_session(), is_child=True)

    job._run_step(command("sleep 1.5"))

    beats = [body for route, body in server.calls if route == "heartbeat"]
    assert len(beats) >= 3
    assert beats[0] == {"runner": "me", "lease_seconds": 1}
    assert server.routes()[-1] == "result"


def test_a_lost_lease_stops_the_command_and_reports_nothing(tmp_path):
    cancelled = httpx.Response(409, json={"detail": "Session is cancelled"})
    server = FakeServer(heartbeat=cancelled)
    config, seen = config_for(server, tmp_path, lease_seconds=1)
    job = SessionJob(config, component_session(), is_child=True)
    started = time.monotonic()

    assert job._run_step(command("sleep 30; touch finished")) is None

    assert time.monotonic() - started < 10
    assert not (tmp_path / "finished").exists()
    assert "result" not in server.routes()
    assert server.routes()[-1] == "release"
    assert events.Released("s1", "User", "Session is cancelled", True) in seen


def test_a_heartbeat_that_fails_is_said_and_tried_again(tmp_path):
    server = FakeServer(heartbeat=httpx.Response(503, json={"detail": "busy"}))
    config, seen = config_for(server, tmp_path, lease_seconds=1)

    with Heartbeat(config, "s1", "User") as beat:
        time.sleep(0.9)

    assert not beat.lost.is_set()
    assert server.routes().count("heartbeat") >= 2
    assert any(isinstance(e, events.Notice) and "busy" in e.message for e in seen)


def _overlaps(tmp_path: Path, flagged: bool) -> bool:
    """Run two commands at once in one working copy; True when they overlapped."""
    (tmp_path / ".git").mkdir(exist_ok=True)
    log = tmp_path / "log"
    log.write_text("")
    shell = f"echo start >> {log}; sleep 0.4; echo end >> {log}"
    server = FakeServer()
    config, _ = config_for(server, tmp_path, lease_seconds=60)
    jobs = [SessionJob(config, component_session(), is_child=True) for _ in range(2)]
    threads = [
        threading.Thread(
            target=job._run_step, args=(command(shell, repository_lock=True if flagged else None),)
        )
        for job in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return log.read_text().split() != ["start", "end", "start", "end"]


def test_commands_flagged_repository_lock_never_run_at_once_in_one_working_copy(tmp_path):
    assert not _overlaps(tmp_path, flagged=True)
    # Without the flag the same commands do run at once: the lock is what kept them apart.
    assert _overlaps(tmp_path, flagged=False)


@pytest.mark.parametrize(
    ("jobs", "max_parallel", "expected"),
    [(4, None, 4), (4, 2, 2), (1, 8, 1), (4, 4, 4), (3, True, 3), (3, "2", 3), (3, 0, 3)],
)
def test_jobs_never_exceed_the_contexts_cap(jobs, max_parallel, expected):
    assert parallelism(jobs, max_parallel) == expected


def _leased(seconds: float) -> httpx.Response:
    until = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return httpx.Response(409, json={"detail": f"Session is leased by other until {until}"})


def test_a_session_another_runner_holds_is_waited_for_and_taken_over(tmp_path):
    pending = httpx.Response(201, json={"id": "i9", "step_name": "RunTests"})
    server = FakeServer(next_command=[_leased(0.5), _leased(0.3), pending])
    config, seen = config_for(server, tmp_path, poll_seconds=5)
    started = time.monotonic()

    answer = SessionJob(config, component_session(), is_child=True)._next_command()

    assert isinstance(answer, Interaction) and answer.id == "i9"
    assert time.monotonic() - started >= 0.5  # slept to the lease's end, not a whole poll
    assert time.monotonic() - started < 4
    held = [event for event in seen if isinstance(event, events.LeaseHeld)]
    assert [event.runner for event in held] == ["other"]  # said once per holder


def test_a_claimed_child_another_runner_took_is_left_to_it(tmp_path):
    server = FakeServer(next_command=[_leased(60)])
    config, seen = config_for(server, tmp_path)
    job = SessionJob(config, component_session(), is_child=True, wait_for_lease=False)

    assert job._next_command() == STOPPED
    assert events.Released("s1", "User", "taken over by other", True) in seen
    assert server.routes() == ["next-command"]  # no release of a lease it does not hold


def test_a_result_whose_answer_was_lost_and_was_stored_is_first_wins(tmp_path):
    already = httpx.Response(
        409, json={"detail": "A result was already reported for this interaction"}
    )
    server = FakeServer(result=[httpx.ReadTimeout("slow"), already])
    config, seen = config_for(server, tmp_path, lease_seconds=60)
    job = SessionJob(config, component_session(), is_child=True)

    session = job._run_step(command("true"))

    assert session is not None and session.id == "s1"
    results = [body for route, body in server.calls if route == "result"]
    assert len(results) == 2 and results[0] == results[1]  # the same result, sent again
    assert events.Notice("User Finalize: A result was already reported for this interaction") in (
        seen
    )


def _step(step: str, shell: str = "true") -> httpx.Response:
    return httpx.Response(
        201, json={"id": f"i-{step}", "step_name": step, "command": {"command": shell}}
    )


def _verdict(status: str, session_status: str = "active") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "interaction": {"id": "i", "result": {"status": status}},
            "session": {**component_session().data, "status": session_status},
        },
    )


def test_a_step_that_failed_runs_again_after_a_pause_doubling_per_failure(tmp_path, monkeypatch):
    paused: list[float] = []
    monkeypatch.setattr("spawnctl.jobs.pause_for", lambda seconds, halt: paused.append(seconds))
    generate = "GenerateTestsAndFixtures"
    server = FakeServer(
        next_command=[_step(generate)] * 4 + [_step("RunTests"), _step(generate)],
        result=[
            _verdict("error"),
            _verdict("error"),  # paused 1 s before it
            _verdict("ok"),  # paused 2 s before it
            _verdict("error"),  # the ok started the count again: no pause
            _verdict("error"),  # another step: no pause
            _verdict("ok", "complete"),  # after another step's error: no pause
        ],
    )
    config, seen = config_for(server, tmp_path, lease_seconds=60)

    assert SessionJob(config, component_session(), is_child=True).run() == "complete"

    assert paused == [1.0, 2.0]
    assert [e for e in seen if isinstance(e, events.Retrying)] == [
        events.Retrying("s1", "User", generate, 1.0, True),
        events.Retrying("s1", "User", generate, 2.0, True),
    ]
    assert server.routes().count("result") == 6


def test_the_pause_doubles_to_a_minute_at_most():
    backoff = Backoff(1.0)
    pauses = []
    for _ in range(8):
        backoff.record("FixCompilationErrors", "error")
        pauses.append(backoff.before("FixCompilationErrors"))
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.before("RunTests") == 0
    backoff.record("RunTests", "error")
    assert backoff.before("FixCompilationErrors") == 0


def test_a_stop_during_the_pause_gives_the_session_up_before_the_step_runs_again(tmp_path):
    marker = tmp_path / "ran"
    shell = f"echo x >> {marker}"
    server = FakeServer(
        next_command=[_step("Finalize", shell), _step("Finalize", shell)],
        result=[_verdict("error")],
    )
    config, seen = config_for(server, tmp_path, lease_seconds=60, retry_pause=30)
    threading.Timer(0.5, config.stop.set).start()
    started = time.monotonic()

    assert SessionJob(config, component_session(), is_child=True).run() == STOPPED

    assert time.monotonic() - started < 10
    assert marker.read_text() == "x\n"  # ran once; the second try was never started
    assert server.routes()[-1] == "release"
    assert events.Released("s1", "User", "stopped", True) in seen


def _claimed(child: str, shell: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "session": {
                "id": child,
                "type": "ComponentTestSessions",
                "status": "active",
                "component": {"name": child, "module_name": f"Shop.{child}"},
            },
            "interaction": {
                "id": f"i-{child}",
                "step_name": "Finalize",
                "command": {"command": shell},
            },
        },
    )


def test_a_server_gone_past_the_wait_stops_every_child_and_ends_the_drive(tmp_path):
    server = FakeServer(
        claim_child=[_claimed("Quick", "true"), _claimed("Slow", "sleep 30"), httpx.Response(204)],
        down=("result",),
    )
    config, seen = config_for(server, tmp_path, lease_seconds=60, poll_seconds=0.1)
    started = time.monotonic()

    with pytest.raises(Unreachable):
        ChildrenDriver(config, "ctx", jobs=2).drive()

    # The slow child's command was stopped, not waited for: its result could not be sent.
    assert time.monotonic() - started < 10
    released = {e.name: e.why for e in seen if isinstance(e, events.Released)}
    assert released == {"Quick": "the server was unreachable", "Slow": "stopped"}
    assert server.routes().count("release") == 2


def test_the_bar_is_counted_again_from_the_server_each_time_a_child_ends(tmp_path):
    summary = {"total": 7, "active": 2, "complete": 4, "failed": 0, "cancelled": 1}
    server = FakeServer(
        claim_child=[_claimed("Quick", "true"), httpx.Response(204)],
        result=[_verdict("ok", "complete")],
        children=[httpx.Response(200, json={"summary": summary, "results": []})],
    )
    config, seen = config_for(server, tmp_path, lease_seconds=60, poll_seconds=0.1)

    ChildrenDriver(config, "ctx", jobs=1).drive()

    assert events.ChildrenCounted("ctx", 7, 4, 0, 1, active=2) in seen
    asked = [body for route, body in server.calls if route == "children"]
    assert len(asked) == 1


# --- VerifyTests: the test file run again and again, then measured -------------------------

SAMPLE = Path(__file__).resolve().parent / "fixtures" / "coverage" / "sample"


def verify_step(shell: str, **metadata) -> Interaction:
    metadata = {
        "test_file": "tests/test_pricing.py",
        "source_path": "src/shop/pricing.py",
        "runs": 2,
        "report_file": ".spawnctl/coverage-t.json",
        "report_format": "coverage.py-json",
        "assertion_check": "python",
        **metadata,
    }
    return Interaction(
        {
            "id": "i1",
            "step_name": "VerifyTests",
            "command": {"command": shell, "metadata": metadata},
        }
    )


def sent_result(server: FakeServer) -> dict:
    [sent] = [body for route, body in server.calls if route == "result"]
    return sent


def _sample_repo(tmp_path: Path) -> Path:
    """The coverage fixtures' sample as a git work tree: its module, its checks as the test
    file."""
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "tests").mkdir()
    shutil.copy(SAMPLE / "checks" / "check_pricing.py", repo / "tests" / "test_pricing.py")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


# What each format's report is made with, by coverage.py itself.
REPORTS = {"coverage.py-json": "json", "lcov": "lcov", "cobertura": "xml"}


@pytest.mark.parametrize("report_format", list(REPORTS))
def test_verify_tests_runs_the_test_file_each_time_and_reports_what_coverage_measured(
    tmp_path, report_format
):
    pytest.importorskip("coverage", reason="measuring needs coverage.py (the dev extras)")
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = _sample_repo(tmp_path)
    python = shlex.quote(sys.executable)
    data, report = ".spawnctl/coverage-t.data", ".spawnctl/coverage-t.report"
    shell = (
        f"{python} -m coverage run --branch --data-file={data} -m pytest -p no:cacheprovider "
        f"tests/test_pricing.py; code=$?; {python} -m coverage {REPORTS[report_format]} "
        f"--data-file={data} --include=src/shop/pricing.py -q -o {report}; exit $code"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # The sample's pytest needs none of this suite's plugins.
    env.update(PYTHONPATH="src", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    server = FakeServer()
    config, _ = config_for(server, repo, lease_seconds=60, env=env)
    step = verify_step(shell, report_file=report, report_format=report_format)

    assert SessionJob(config, component_session(), is_child=True)._run_step(step) is not None

    sent = sent_result(server)
    assert "2 passed" in sent.pop("stdout")
    assert sent.pop("duration_ms") > 0
    assert sent == {
        "status": "ok",
        "code": 0,
        "stderr": "",
        "data": {
            "verification": {
                "runs": [0, 0],
                "coverage": {
                    "source_path": "src/shop/pricing.py",
                    "lines_total": 8,
                    "lines_covered": 4,
                    "missing_lines": [9, 13, 14, 15],
                    "branches_total": 4,
                    "branches_covered": 1,
                },
                "tests_without_assertions": ["test_smoke"],
                "changed_files": [],
            }
        },
    }
    assert ".spawnctl/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()


def test_verify_tests_runs_every_time_and_reports_the_first_failing_run(tmp_path):
    # The first of three runs writes a report, the second fails, the third writes none.
    report = shlex.quote(str(SAMPLE.parent / "coverage.lcov"))
    shell = (
        "n=$(($(cat count 2>/dev/null || echo 0) + 1)); echo $n > count; "
        f'echo "out $n"; echo "err $n" >&2; [ $n -eq 1 ] && cp {report} .spawnctl/r.info; '
        "[ $n -ne 2 ]"
    )
    server = FakeServer()
    config, _ = config_for(server, tmp_path, lease_seconds=60)
    step = verify_step(shell, runs=3, report_file=".spawnctl/r.info", report_format="lcov")

    SessionJob(config, component_session(), is_child=True)._run_step(step)

    sent = sent_result(server)
    assert (tmp_path / "count").read_text() == "3\n"  # every run ran, the failing one too
    assert sent["data"] == {
        "verification": {
            "runs": [0, 1, 0],
            # Only the first run wrote a report: what is read is the last run's, none.
            "coverage": None,
            # The test file is missing: nothing can be said of its functions.
            "tests_without_assertions": [],
            "changed_files": [],
        }
    }
    assert (sent["status"], sent["code"], sent["stdout"], sent["stderr"]) == (
        "ok",
        1,
        "out 2\n",
        "err 2\n",
    )
    assert not (tmp_path / ".spawnctl" / "r.info").exists()


def test_a_stop_during_verify_tests_ends_its_runs_and_reports_nothing(tmp_path):
    marker = tmp_path / "ran"
    server = FakeServer()
    config, seen = config_for(server, tmp_path, lease_seconds=60)
    threading.Timer(0.5, config.stop.set).start()
    started = time.monotonic()

    step = verify_step(f"echo x >> {marker}; sleep 2", runs=5)
    assert SessionJob(config, component_session(), is_child=True)._run_step(step) is None

    assert time.monotonic() - started < 10
    assert marker.read_text() == "x\n"  # the first run was stopped; no other started
    assert "result" not in server.routes()
    assert server.routes()[-1] == "release"
    assert events.Released("s1", "User", "stopped", True) in seen


def test_verify_tests_whose_report_would_leave_its_directory_runs_nothing(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("kept")
    server = FakeServer()
    config, _ = config_for(server, tmp_path, lease_seconds=60)
    step = verify_step(f"touch {tmp_path / 'ran'}", report_file="../victim")

    SessionJob(config, component_session(), is_child=True)._run_step(step)

    assert sent_result(server) == {
        "status": "error",
        "error_message": (
            "VerifyTests: report_file must be a relative path under .spawnctl/, not '../victim'"
        ),
    }
    assert victim.read_text() == "kept"
    assert not (tmp_path / "ran").exists()


def test_verify_tests_in_a_working_copy_whose_spawnctl_leads_elsewhere_runs_nothing(tmp_path):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (repo / ".spawnctl").symlink_to(elsewhere)
    server = FakeServer()
    config, _ = config_for(server, repo, lease_seconds=60)

    SessionJob(config, component_session(), is_child=True)._run_step(
        verify_step(f"touch {tmp_path / 'ran'}")
    )

    assert sent_result(server) == {
        "status": "error",
        "error_message": (
            "VerifyTests: .spawnctl/coverage-t.json is not inside the repository's .spawnctl/"
        ),
    }
    assert not (tmp_path / "ran").exists()


def test_verify_tests_whose_command_cannot_start_says_so(tmp_path, monkeypatch):
    def cannot_start(*args, **kwargs):
        raise OSError("no sh here")

    monkeypatch.setattr("spawnctl.jobs.execute", cannot_start)
    server = FakeServer()
    config, _ = config_for(server, tmp_path, lease_seconds=60)

    SessionJob(config, component_session(), is_child=True)._run_step(verify_step("true"))

    assert sent_result(server) == {
        "status": "error",
        "error_message": "Could not start the command: no sh here",
    }
