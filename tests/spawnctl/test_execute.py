"""execute(): one shell command, its output's tails, its environment, its end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from spawnctl.execute import TIMED_OUT_CODE, execute


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
