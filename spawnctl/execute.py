"""Run one shell command: ``sh -c`` in a directory, with an environment, keeping the tails of
its output, timing it, and stopping it (its whole process group) on request or on a timeout.
Nothing here knows about sessions."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path

# What is kept of each stream: the end, where a failing run says why.
TAIL_CHARS = 64_000
# After SIGTERM a stopped command gets this long to exit before its group is SIGKILLed.
STOP_GRACE_SECONDS = 3.0
TIMED_OUT_CODE = 124  # what coreutils' timeout(1) exits with
# Where the kernel has a parent-death signal, a guard leads each command's group (see guard.py)
# so that a runner killed outright leaves nothing running. Elsewhere the shell leads it, and a
# runner that dies without its own stop leaves its commands to finish by themselves.
GUARDED = sys.platform.startswith("linux") and bool(sys.executable)
GUARD = Path(__file__).with_name("guard.py")


@dataclass(frozen=True)
class Execution:
    code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    stopped: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.stopped and not self.timed_out


class _Tail:
    """The last ``limit`` bytes a stream produced, read to its end on a thread of its own."""

    def __init__(self, stream: BufferedReader, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: BufferedReader) -> None:
        with stream:
            while chunk := stream.read1(65536):
                self.data += chunk
                excess = len(self.data) - self.limit * 4
                if excess > 0:
                    # Trim in big steps; the exact cut is made once, in text().
                    del self.data[:excess]
                    self.dropped += excess

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        cut = max(0, len(text) - self.limit)
        if cut == 0 and not self.dropped:
            return text
        return f"… [output cut: first {self.dropped + cut} bytes or more left out]\n{text[cut:]}"


def execute(
    shell: str,
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    timeout: float | None = None,
    tail_chars: int = TAIL_CHARS,
    grace_seconds: float = STOP_GRACE_SECONDS,
) -> Execution:
    """Run ``shell`` with ``sh -c`` in ``cwd`` and wait for it.

    The command runs in a process group of its own, so stopping it (``stop`` set, or
    ``timeout`` seconds passed) reaches whatever it started: SIGTERM to the group, SIGKILL
    after ``grace_seconds``. Processes it left behind in the group are killed when it exits,
    so none outlives the step or holds its output open. A runner that dies takes the group
    with it (``GUARDED``)."""
    started = time.monotonic()
    argv = ["sh", "-c", shell]
    if GUARDED:
        # The parent-death signal fires when the thread that started the guard ends, not the
        # process: this thread waits here until the command is done, so it lives as long.
        argv = [
            sys.executable,
            "-I",
            str(GUARD),
            str(os.getpid()),
            f"{grace_seconds:g}",
            "--",
            *argv,
        ]
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = _Tail(process.stdout, tail_chars), _Tail(process.stderr, tail_chars)
    stopped = timed_out = False
    while True:
        try:
            process.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if stop is not None and stop.is_set():
            stopped = True
        elif timeout is not None and time.monotonic() - started >= timeout:
            timed_out = True
        if stopped or timed_out:
            _stop_group(process, grace_seconds)
            break
    # The command is done; anything it left running in its group goes with it.
    _signal_group(process.pid, signal.SIGKILL)
    for tail in (out, err):
        tail.thread.join(timeout=5)
    duration_ms = int((time.monotonic() - started) * 1000)
    code = process.returncode
    if timed_out:
        code = TIMED_OUT_CODE
    return Execution(
        code=code,
        stdout=out.text(),
        stderr=err.text(),
        duration_ms=duration_ms,
        stopped=stopped,
        timed_out=timed_out,
    )


def _stop_group(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM to the group, then wait for all of it (not only the shell) to exit; SIGKILL
    to whatever is left once ``grace_seconds`` passed."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        process.poll()  # reaps the shell, which otherwise keeps the group alive as a zombie
        if not _group_alive(process.pid):
            break
        time.sleep(0.05)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
