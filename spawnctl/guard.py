"""A command's guard: the leader of the command's process group, which takes the whole group
down when the runner that started it dies, SIGKILL included, so no agent outlives its runner.

    python -I guard.py RUNNER_PID GRACE_SECONDS -- sh -c SHELL

A dead runner cannot stop its commands, so the kernel tells the guard instead: Linux's
parent-death signal (``prctl(PR_SET_PDEATHSIG)``) sends it SIGTERM when its parent goes. On
SIGTERM (that, or the runner's own stop) it sends SIGTERM to its group, gives it
GRACE_SECONDS, then SIGKILL. Otherwise it waits for the shell and exits as the shell did (its
code, or its signal), so the runner reads the command's own status.

Run by path with ``-I``: it imports only the standard library, and the command's environment
(its ``PYTHONPATH``, ``PYTHONHOME``, ...) cannot change which code runs here. It writes
nothing to the command's output.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
CANNOT_RUN = 127  # what a shell exits with for a command it cannot find


def set_parent_death_signal(sig: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def others_in_group(pgid: int) -> bool:
    """Whether a live process other than this one is in the group (zombies do not count)."""
    me = os.getpid()
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return True  # cannot tell: the grace runs its course
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            # The command name (field 2) is in parentheses and may hold spaces: split after it.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def exit_as(returncode: int) -> None:
    """End this process the way the shell ended: its exit code, or its signal."""
    if returncode < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be changed
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        returncode = 128 - returncode  # a signal that did not end it (cannot happen for TERM)
    sys.exit(returncode)


class Stopping(Exception):
    """SIGTERM arrived: the runner died, or it stops the command."""


def _on_term(signum: int, frame: object) -> None:
    # The group's SIGTERM sent below reaches this process too; one is enough.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Raised, so that it breaks into whatever waits (waitpid is otherwise resumed after a
    # handler), and the group is stopped outside the handler.
    raise Stopping


class Guard:
    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.child: int | None = None
        self.code: int | None = None

    def run(self, runner_pid: int, command: Sequence[str]) -> None:
        signal.signal(signal.SIGTERM, _on_term)
        try:
            set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != runner_pid:
                # The runner died before the signal was set: the kernel will not send it now.
                raise Stopping
            try:
                self.child = os.posix_spawnp(command[0], command, os.environ)
            except OSError as error:
                print(f"spawnctl: cannot run {command[0]}: {error}", file=sys.stderr)
                sys.exit(CANNOT_RUN)
            self._reap(block=True)
        except Stopping:
            self._stop_group()
        exit_as(self.code if self.code is not None else -signal.SIGTERM)

    def _reap(self, *, block: bool) -> None:
        if self.child is None or self.code is not None:
            return
        try:
            pid, status = os.waitpid(self.child, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Reaped by a wait that SIGTERM broke into before its status was kept: a
            # stopped command's status is not reported anyway.
            self.code = -signal.SIGTERM
            return
        if pid:
            self.code = os.waitstatus_to_exitcode(status)

    def _stop_group(self) -> None:
        """SIGTERM to the whole group, the grace for all of it to end, then SIGKILL (to this
        process too)."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pgid = os.getpgrp()
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline:
            self._reap(block=False)  # the shell would otherwise stay in the group as a zombie
            if not others_in_group(pgid):
                break
            time.sleep(0.05)
        else:
            os.killpg(pgid, signal.SIGKILL)
        self._reap(block=True)


def main(argv: Sequence[str]) -> None:
    runner_pid, grace_seconds, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: guard.py RUNNER_PID GRACE_SECONDS -- COMMAND...")
    Guard(float(grace_seconds)).run(int(runner_pid), command)


if __name__ == "__main__":
    main(sys.argv[1:])
