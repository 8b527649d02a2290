"""execute(): one shell command, its output's tails, its environment, its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spawnctl.execute import GUARDED, STOP_GRACE_SECONDS, TIMED_OUT_CODE, execute

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_exit_code_output_and_duration(tmp_path):
    ran = execute("echo out; echo err >&2; sleep 0.2; exit 3", cwd=tmp_path)

    assert ran.code == 3
    assert (ran.stdout, ran.stderr) == ("out\n", "err\n")
    assert 200 <= ran.duration_ms < 5000
    assert not ran.ok and not ran.stopped and not ran.timed_out


def test_runs_in_the_directory_with_the_environment_given(tmp_path):
    ran = execute(
        'pwd; echo "$GREETING"; echo "${HOME-unset}"', cwd=tmp_path, env={"GREETING": "hi"}
    )

    assert ran.ok
    assert ran.stdout.splitlines() == [str(tmp_path), "hi", "unset"]


def test_only_the_tail_of_a_long_output_is_kept(tmp_path):
    ran = execute(
        "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done",
        cwd=tmp_path,
        tail_chars=100,
    )

    assert ran.ok
    marker, kept = ran.stdout.split("\n", 1)
    assert marker.startswith("… [output cut: first ")
    assert len(kept) == 100
    assert kept.endswith("line-2999\n")
    assert "line-0\n" not in kept


def test_a_short_output_is_kept_whole(tmp_path):
    ran = execute("printf 'é%.0s' 1 2 3", cwd=tmp_path, tail_chars=100)
    assert ran.stdout == "ééé"


def test_a_timeout_stops_the_command_and_its_children(tmp_path):
    started = time.monotonic()
    ran = execute("sleep 60 & echo $! > child.pid; wait", cwd=tmp_path, timeout=0.5)

    assert time.monotonic() - started < 10
    assert ran.timed_out and ran.code == TIMED_OUT_CODE and not ran.ok
    assert _gone(int((tmp_path / "child.pid").read_text()))


def test_stop_kills_the_whole_process_group(tmp_path):
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()

    ran = execute(
        "sh -c 'sleep 60' & echo $! > child.pid; sleep 60; echo never", cwd=tmp_path, stop=stop
    )

    assert ran.stopped and not ran.ok
    assert "never" not in ran.stdout
    assert _gone(int((tmp_path / "child.pid").read_text()))


def test_a_command_deaf_to_sigterm_is_killed_after_the_grace(tmp_path):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    ran = execute("trap '' TERM; sleep 60", cwd=tmp_path, stop=stop, grace_seconds=0.5)

    assert ran.stopped
    assert time.monotonic() - started < 10


def test_what_a_finished_command_left_running_is_killed_and_does_not_hold_its_output(tmp_path):
    started = time.monotonic()

    ran = execute("sleep 60 & echo $! > child.pid; echo done", cwd=tmp_path)

    assert ran.ok and ran.stdout == "done\n"
    assert time.monotonic() - started < 10
    assert _gone(int((tmp_path / "child.pid").read_text()))


def test_the_command_gets_no_stdin(tmp_path):
    ran = execute("cat; echo end", cwd=tmp_path, timeout=10)
    assert ran.ok and ran.stdout == "end\n"


def test_a_missing_directory_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        execute("true", cwd=tmp_path / "nowhere")


def test_the_runner_keeps_its_own_process_group(tmp_path):
    ran = execute("ps -o pgid= -p $$", cwd=tmp_path, env=dict(os.environ))
    assert int(ran.stdout.strip()) != os.getpgrp()


def test_the_grace_waits_for_the_whole_group_not_only_the_shell(tmp_path):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    ran = execute(
        "sh -c \"trap '' TERM; sleep 60\" & echo $! > deaf.pid; wait",
        cwd=tmp_path,
        stop=stop,
        grace_seconds=1.0,
    )

    took = time.monotonic() - started
    assert ran.stopped
    assert 1.2 <= took < 10  # the shell died at once; its deaf child had the grace, then KILL
    assert _gone(int((tmp_path / "deaf.pid").read_text()))


# A runner in miniature: one command run from a worker thread, as a job runs it.
_RUNNER = """
import sys, threading
from spawnctl.execute import execute
job = threading.Thread(target=execute, args=(sys.argv[1],), kwargs={"cwd": sys.argv[2]})
job.start()
job.join()
"""


@pytest.mark.skipif(not GUARDED, reason="needs Linux's parent-death signal")
@pytest.mark.parametrize(
    "shell",
    [
        "sleep 300 & echo $! > grandchild.pid; wait",
        # Deaf to SIGTERM: SIGKILLed once the grace is over.
        "sh -c \"trap '' TERM; sleep 300\" & echo $! > grandchild.pid; wait",
    ],
)
def test_a_runner_killed_outright_leaves_no_command_running(tmp_path, shell):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runner = subprocess.Popen([sys.executable, "-c", _RUNNER, shell, str(tmp_path)], env=env)
    pid_file = tmp_path / "grandchild.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    assert not _gone(grandchild, within=0.3)

    runner.send_signal(signal.SIGKILL)
    runner.wait()

    assert _gone(grandchild, within=STOP_GRACE_SECONDS + 5)


def test_the_commands_own_exit_status_comes_back_through_the_guard(tmp_path):
    assert execute("exit 7", cwd=tmp_path).code == 7
    assert execute("kill -KILL $$", cwd=tmp_path).code == -signal.SIGKILL
    assert execute("kill -TERM $$", cwd=tmp_path).code == -signal.SIGTERM
    assert execute("echo out; echo err >&2", cwd=tmp_path).stdout == "out\n"
