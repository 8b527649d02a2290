"""One job: a session driven through its commands, each run as a child process with a
heartbeat beside it that keeps the session's lease, and its result reported."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spawnctl import events, mutation, usage, verify, worktrees
from spawnctl.api import (
    COMPONENT_TEST_SESSIONS,
    Api,
    ApiError,
    Conflict,
    Interaction,
    LeasedBy,
    Session,
    Submitted,
    Unreachable,
)
from spawnctl.execute import Execution, execute
from spawnctl.worktrees import Worktree, WorktreeError, Worktrees, lock_path

SPAWN_COMMAND = "spawn_sessions"
STOPPED = "stopped"
# Variables a command never inherits from the runner: the runner's credentials are not the
# agent's, and the per-command ones are set fresh for each command.
PRIVATE_ENV = ("SPAWNCTL_TOKEN", "SPAWNCTL_TOKEN_FILE")
COMMAND_ENV = (
    "SPAWNCTL_SESSION_ID",
    "SPAWNCTL_INTERACTION_ID",
    "SPAWNCTL_STEP",
    "SPAWNCTL_COMPONENT",
    "SPAWNCTL_TEST_FILE",
)
# A component's test file exists from this step on; Initialize runs before it is named.
STEPS_BEFORE_TEST_FILE = ("Initialize",)
# The longest pause before a step that keeps failing runs again.
MAX_RETRY_PAUSE_SECONDS = 60.0


@dataclass
class RunnerConfig:
    """What every job of one spawnctl process shares."""

    api: Api
    runner: str
    repo: Path
    emit: events.Emit
    lease_seconds: int = 120
    stop: threading.Event = field(default_factory=threading.Event)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    command_timeout: float | None = None
    poll_seconds: float = 2.0
    # The pause before a step that just failed runs again (doubled per failure in a row).
    retry_pause: float = 1.0
    # Where component sessions get a working copy each; None: they share ``repo``.
    worktrees: Worktrees | None = None
    # A failed child's worktree is left in place (and said where) instead of removed.
    keep_worktrees: bool = False

    @property
    def heartbeat_seconds(self) -> float:
        # Three beats per lease: two can be lost (a slow server, a hiccup) before it lapses.
        return max(0.2, self.lease_seconds / 3)


@dataclass(frozen=True)
class Halt:
    """The job cannot go on: ``status`` is what the run ends with, ``message`` why."""

    status: str
    message: str


class AnyOf:
    """Set when any of the events is: the process-wide stop or a job's own."""

    def __init__(self, *flags: threading.Event) -> None:
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


def wait_until(config: RunnerConfig, until: datetime | None, *, also: AnyOf | None = None) -> None:
    """Sleep until ``until`` (a lease's end, plus a little) or one poll, whichever is first."""
    seconds = config.poll_seconds
    if until is not None:
        seconds = min(seconds, max(0.05, (until - datetime.now(UTC)).total_seconds() + 0.1))
    step = 0.05
    waited = 0.0
    while waited < seconds:
        if config.stop.wait(step) or (also is not None and also.is_set()):
            return
        waited += step


def pause_for(seconds: float, halt: AnyOf) -> None:
    """Sleep ``seconds``, or until ``halt`` is set."""
    deadline = time.monotonic() + seconds
    while not halt.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.05, left))


class Backoff:
    """The pause before a step runs again after it failed: ``first`` after one error, doubled
    per further error of that step in a row, at most ``MAX_RETRY_PAUSE_SECONDS``; none once
    the step passed or another step ran. A failing agent is not called again at once: what
    failed it (a rate limit, a service down) gets time to pass."""

    def __init__(self, first: float) -> None:
        self.first = first
        self.step: str | None = None
        self.errors = 0

    def record(self, step: str, status: str) -> None:
        if status == "error":
            self.errors = self.errors + 1 if step == self.step else 1
            self.step = step
        else:
            self.step, self.errors = None, 0

    def before(self, step: str) -> float:
        if step != self.step or not self.errors:
            return 0.0
        return min(MAX_RETRY_PAUSE_SECONDS, self.first * 2 ** (self.errors - 1))


class Heartbeat:
    """Renews a session's lease every ``heartbeat_seconds`` while it is open. When the lease
    is lost (another runner holds it, or the session was finished elsewhere) ``lost`` is set
    with ``reason``, so whatever runs under it stops."""

    def __init__(self, config: RunnerConfig, session_id: str, name: str) -> None:
        self.config = config
        self.session_id = session_id
        self.name = name
        self.lost = threading.Event()
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"beat-{name}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        config = self.config
        while not self._done.wait(config.heartbeat_seconds):
            try:
                answer = config.api.heartbeat(
                    self.session_id, runner=config.runner, lease_seconds=config.lease_seconds
                )
            except Conflict as error:
                self._lose(error.detail)
                return
            except ApiError as error:
                # The next beat tries again; the lease outlives a missed one.
                config.emit(events.Notice(f"Heartbeat for {self.name} failed: {error}"))
                continue
            if isinstance(answer, LeasedBy):
                self._lose(f"Session is leased by {answer.runner} until {answer.until}")
                return

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()


@contextlib.contextmanager
def repository_lock(repo: Path, stop: AnyOf | None = None) -> Iterator[bool]:
    """Hold the working copy's exclusive lock (``flock``) for a command that changes its git
    state. Every holder opens the file anew, so the lock excludes threads of one process as
    well as other processes on the same clone. Yields False when ``stop`` was set while
    waiting (the lock is then not held)."""
    with open(lock_path(repo), "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop is not None and stop.is_set():
                    yield False
                    return
                threading.Event().wait(0.05)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shell_line(command: Mapping[str, Any]) -> str:
    """The shell line a command stands for. An agent command names only its program in
    ``command`` and carries its arguments in ``metadata.argv``; those are joined with
    ``shlex.join`` so the prompt stays one quoted argument."""
    line = str(command.get("command") or "")
    metadata = command.get("metadata")
    argv = metadata.get("argv") if isinstance(metadata, dict) else None
    if (
        isinstance(argv, list)
        and argv
        and all(isinstance(arg, str) for arg in argv)
        and line.strip() == argv[0]
    ):
        return shlex.join(argv)
    return line


def command_env(
    base: Mapping[str, str], session: Session, interaction: Interaction
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in PRIVATE_ENV and k not in COMMAND_ENV}
    env["SPAWNCTL_SESSION_ID"] = session.id
    env["SPAWNCTL_INTERACTION_ID"] = interaction.id
    env["SPAWNCTL_STEP"] = interaction.step_name
    if session.type == COMPONENT_TEST_SESSIONS:
        if session.module_name:
            env["SPAWNCTL_COMPONENT"] = session.module_name
        test_file = interaction.metadata.get("test_file")
        if not test_file and interaction.step_name not in STEPS_BEFORE_TEST_FILE:
            test_file = session.state.get("test_file")
        if isinstance(test_file, str) and test_file:
            env["SPAWNCTL_TEST_FILE"] = test_file
    return env


def result_of(execution: Execution, timeout: float | None = None) -> dict[str, Any]:
    """The result reported for a command that ran to its end (or its timeout)."""
    result: dict[str, Any] = {
        "status": "ok" if execution.ok else "error",
        "code": execution.code,
        "stdout": execution.stdout,
        "stderr": execution.stderr,
        "duration_ms": execution.duration_ms,
    }
    if execution.timed_out:
        result["error_message"] = f"Timed out after {timeout:g} s"
    elif execution.code is not None and execution.code < 0:
        result["error_message"] = f"Killed by signal {-execution.code}"
    return result


BUDGET = "budget"
MAX_STEP_SECONDS = 86_400


def step_timeout(metadata: Mapping[str, Any], cap: float | None) -> float | None:
    """The step's time limit: the server's ``metadata.timeout_seconds`` (the project's agent
    or test limit), never above ``--timeout``; None when neither says."""
    limit = metadata.get("timeout_seconds")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
        return cap
    limit = min(float(limit), MAX_STEP_SECONDS)
    return min(limit, cap) if cap is not None else limit


def is_agent_step(interaction: Interaction) -> bool:
    """An agent step's command carries its prompt."""
    return "prompt" in interaction.metadata


@contextlib.contextmanager
def usage_file(wanted: bool) -> Iterator[Path | None]:
    """A path an agent step may write its usage to (in a directory of its own, removed
    after), or None."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="spawnctl-usage-") as directory:
        yield Path(directory) / "usage.json"


WORKTREE_FAILED = "Could not make this child's worktree"
SETUP_FAILED = "Worktree setup command failed"


def setup_failed(execution: Execution, timeout: float | None) -> dict[str, Any]:
    """The step's result when the project's setup command failed in a new worktree: an error
    with the command's output, counted like the step's own."""
    result = result_of(execution, timeout)
    result["status"] = "error"
    if execution.timed_out:
        result["error_message"] = f"{SETUP_FAILED}: timed out after {timeout:g} s"
    else:
        last = next(
            (
                line.strip()
                for line in reversed((execution.stderr or execution.stdout).splitlines())
                if line.strip()
            ),
            "",
        )
        result["error_message"] = f"{SETUP_FAILED} (exit code {execution.code})" + (
            f": {last}" if last else ""
        )
    return result


def _not_started(error: OSError) -> dict[str, Any]:
    return {"status": "error", "error_message": f"Could not start the command: {error}"}


# A spawn step handler: given the job and the spawn interaction, it either reports the step's
# result itself (Submitted) or ends the job (Halt); None when the run was stopped.
SpawnHandler = Callable[["SessionJob", Interaction, Heartbeat], "Submitted | Halt | None"]


class SessionJob:
    """Drive one session: next command, run it, report it, until the session ends."""

    def __init__(
        self,
        config: RunnerConfig,
        session: Session,
        *,
        is_child: bool,
        spawn_step: SpawnHandler | None = None,
        wait_for_lease: bool = True,
    ) -> None:
        """``wait_for_lease``: when another runner holds the session, wait for its lease to
        expire and take over (False: leave the session to it)."""
        self.config = config
        self.session = session
        self.is_child = is_child
        self.spawn_step = spawn_step
        self.wait_for_lease = wait_for_lease
        self.halt: Halt | None = None
        self.backoff = Backoff(config.retry_pause)
        self.worktree: Worktree | None = None

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def isolated(self) -> bool:
        """Whether this session's commands run in a worktree of its own: a component session,
        when the runner gives each one."""
        return self.config.worktrees is not None and self.session.type == COMPONENT_TEST_SESSIONS

    @property
    def workdir(self) -> Path:
        return self.worktree.path if self.worktree is not None else self.config.repo

    def run(self, interaction: Interaction | None = None) -> str:
        """The status the session ended with, ``STOPPED`` when it was given up unfinished,
        or the ``Halt``'s status (``self.halt`` says why)."""
        try:
            return self._drive(interaction)
        finally:
            self._close_worktree()

    def _drive(self, interaction: Interaction | None) -> str:
        config = self.config
        while True:
            if config.stop.is_set():
                return self.give_up("stopped")
            if interaction is None:
                answer = self._next_command()
                if isinstance(answer, str):
                    return answer
                if isinstance(answer, Halt):
                    self.halt = answer
                    self.give_up(answer.message)
                    return answer.status
                interaction = answer
            if not self._pause_before(interaction):
                return STOPPED
            outcome = self._run_step(interaction)
            if outcome is None:
                return STOPPED
            if isinstance(outcome, Halt):
                self.halt = outcome
                self.give_up(outcome.message, quiet=True)
                return outcome.status
            self.session = outcome
            if self.session.is_finished:
                return self._ended()
            interaction = None

    def give_up(self, why: str, *, quiet: bool = False) -> str:
        """Release the lease unfinished, reporting nothing, so a taker-over runs the step."""
        # Finished meanwhile, or the server is gone: then the lease lapses by itself.
        with contextlib.suppress(ApiError):
            self.config.api.release(self.session.id, runner=self.config.runner)
        if not quiet:
            self.config.emit(events.Released(self.session.id, self.name, why, self.is_child))
        return STOPPED

    def _ended(self) -> str:
        session = self.session
        reason = session.state.get("error") if session.status == "failed" else None
        self.config.emit(
            events.SessionEnded(
                session.id, self.name, session.status, reason, session.attempt, self.is_child
            )
        )
        return session.status

    def _next_command(self) -> Interaction | Halt | str:
        """The session's pending command, waiting while another runner holds it; or the
        status it ended with."""
        config = self.config
        shown: tuple[str, str] | None = None
        while True:
            try:
                answer = config.api.next_command(
                    self.session.id, runner=config.runner, lease_seconds=config.lease_seconds
                )
            except Conflict as error:
                if error.budget_spent:
                    # No agent step past the run's budget: the session waits, unleased, for
                    # the budget to be raised.
                    return Halt(BUDGET, error.detail)
                # Finished meanwhile (another runner, a person, a cancel): say how it ended.
                self.session = config.api.get_session(self.session.id)
                if self.session.is_finished:
                    return self._ended()
                raise
            if isinstance(answer, Interaction):
                return answer
            if not self.wait_for_lease:
                why = f"taken over by {answer.runner}"
                config.emit(events.Released(self.session.id, self.name, why, self.is_child))
                return STOPPED
            if shown is None or shown[0] != answer.runner:
                config.emit(
                    events.LeaseHeld(self.session.id, self.name, answer.runner, answer.until)
                )
            shown = (answer.runner, answer.until)
            wait_until(config, answer.until_time)
            if config.stop.is_set():
                return STOPPED

    def _pause_before(self, interaction: Interaction) -> bool:
        """Wait out the backoff before a step that just failed runs again, keeping the lease;
        False when the run was stopped or the lease lost meanwhile (the session is then given
        up)."""
        config = self.config
        seconds = self.backoff.before(interaction.step_name)
        if not seconds:
            return True
        config.emit(
            events.Retrying(
                self.session.id, self.name, interaction.step_name, seconds, self.is_child
            )
        )
        with Heartbeat(config, self.session.id, self.name) as beat:
            pause_for(seconds, AnyOf(config.stop, beat.lost))
        if beat.lost.is_set() or config.stop.is_set():
            self.give_up(beat.reason or "stopped")
            return False
        return True

    def _run_step(self, interaction: Interaction) -> Session | Halt | None:
        """The session after the step's result was reported; a Halt; None when stopped."""
        config = self.config
        config.emit(
            events.StepStarted(self.session.id, self.name, interaction.step_name, self.is_child)
        )
        with Heartbeat(config, self.session.id, self.name) as beat:
            if interaction.command.get("command") == SPAWN_COMMAND:
                if self.spawn_step is None:
                    return Halt("failed", f"{self.name}: a child session cannot spawn sessions")
                spawned = self.spawn_step(self, interaction, beat)
                if spawned is None:
                    self.give_up(beat.reason or "stopped")
                    return None
                return spawned.session if isinstance(spawned, Submitted) else spawned
            result = self._execute(interaction, beat)
        if result is None:
            self.give_up(beat.reason or "stopped")
            return None
        return self._submit(interaction, result)

    def _execute(self, interaction: Interaction, beat: Heartbeat) -> dict[str, Any] | None:
        """The command's result; None when it was stopped (nothing is reported then)."""
        config = self.config
        halt = AnyOf(config.stop, beat.lost)
        env = command_env(config.env, self.session, interaction)
        shell = shell_line(interaction.command)
        plan = verify.plan_of(interaction.step_name, interaction.metadata)
        if isinstance(plan, str):
            return {"status": "error", "error_message": plan}
        if self.isolated:
            failed = self._ready_worktree(interaction, env, halt)
            if failed is not None or halt.is_set():
                return failed
        locked = interaction.metadata.get("repository_lock") is True
        timeout = step_timeout(interaction.metadata, config.command_timeout)
        # One lock per clone, its worktrees' too: the steps that move refs take turns.
        lock = repository_lock(config.repo, halt) if locked else contextlib.nullcontext(True)
        agent = is_agent_step(interaction)
        with lock as held, usage_file(agent) as reported_to:
            if not held:
                return None
            if plan is not None:
                return self._verify(plan, shell, env, halt, timeout)
            if (problem := self._write_report(interaction, env)) is not None:
                return {"status": "error", "error_message": problem}
            if reported_to is not None:
                env[usage.USAGE_FILE_ENV] = str(reported_to)
            try:
                execution = execute(shell, cwd=self.workdir, env=env, stop=halt, timeout=timeout)
            except OSError as error:
                return _not_started(error)
            if execution.stopped:
                return None
            result = result_of(execution, timeout)
            if reported_to is not None:
                self._attach_usage(result, execution, reported_to)
        return result

    def _write_report(self, interaction: Interaction, env: Mapping[str, str]) -> str | None:
        """A context's Finalize that opens a pull request gets the run's report (Markdown,
        fetched from the server) at ``metadata.pull_request_report_file``, a path under the
        working copy's ``.spawnctl/``; the text of the problem when it cannot be written."""
        wanted = interaction.metadata.get("pull_request_report_file")
        if wanted is None:
            return None
        path = verify.inside(wanted, verify.RUNNER_DIR)
        if path is None:
            return (
                f"pull_request_report_file must be a relative path under {verify.RUNNER_DIR}/, "
                f"not {wanted!r}"
            )
        try:
            text = self.config.api.report_markdown(self.session.id)
        except ApiError as error:
            if isinstance(error, Unreachable):
                raise
            return f"Could not fetch the run's report: {error}"
        target = self.workdir / path
        try:
            verify.exclude_runner_dir(self.workdir, env)
            runner_dir = (self.workdir / verify.RUNNER_DIR).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            inside_repo = runner_dir.is_relative_to(self.workdir.resolve())
            if not inside_repo or not target.resolve().is_relative_to(runner_dir):
                return f"{path} is not inside the working copy's {verify.RUNNER_DIR}/"
            target.write_text(text, encoding="utf-8")
        except OSError as error:
            return f"Could not write the run's report to {path}: {error}"
        return None

    def _attach_usage(self, result: dict[str, Any], execution: Execution, path: Path) -> None:
        """``data.usage`` from what the agent wrote at ``$SPAWNCTL_USAGE_FILE``, else from
        Claude Code's JSON result on its stdout; fields the server would refuse left out."""
        found = usage.from_file(path)
        if isinstance(found, str):
            self.config.emit(events.Notice(f"{self.name}: {usage.USAGE_FILE_ENV}: {found}"))
            found = None
        if found is None:
            found = usage.from_claude_output(execution.stdout)
        if not found:
            return
        kept, dropped = usage.clean(found)
        if dropped:
            self.config.emit(
                events.Notice(f"{self.name}: usage fields left out: {', '.join(dropped)}")
            )
        if kept:
            result["data"] = {"usage": kept}

    def _ready_worktree(
        self, interaction: Interaction, env: dict[str, str], halt: AnyOf
    ) -> dict[str, Any] | None:
        """Make the session's worktree and run the project's setup command in it, once, before
        the first step run here; the step's result when either failed (None: ready, or
        stopped, with ``halt`` set)."""
        config = self.config
        assert config.worktrees is not None
        if self.worktree is None:
            branch = self.session.branch
            starts = [f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"] if branch else []
            try:
                self.worktree = config.worktrees.open(self.session.id, self.session.attempt, starts)
            except (WorktreeError, OSError, subprocess.SubprocessError) as error:
                return {"status": "error", "error_message": f"{WORKTREE_FAILED}: {error}"}
        worktree = self.worktree
        if worktree.ready:
            return None
        setup = interaction.metadata.get("worktree_setup_command")
        if isinstance(setup, str) and setup.strip():
            try:
                execution = execute(
                    setup, cwd=worktree.path, env=env, stop=halt, timeout=config.command_timeout
                )
            except OSError as error:
                return _not_started(error)
            if execution.stopped:
                return None
            config.emit(
                events.WorktreeSetUp(
                    self.session.id, self.name, execution.ok, execution.duration_ms
                )
            )
            if not execution.ok:
                return setup_failed(execution, config.command_timeout)
        try:
            worktree.baseline = worktrees.snapshot(worktree.path, env)
        except (WorktreeError, OSError, subprocess.SubprocessError) as error:
            return {"status": "error", "error_message": f"{WORKTREE_FAILED}: {error}"}
        worktree.ready = True
        return None

    def _close_worktree(self) -> None:
        worktree, self.worktree = self.worktree, None
        config = self.config
        if worktree is None or config.worktrees is None:
            return
        keep = config.keep_worktrees and self.session.status == "failed"
        try:
            config.worktrees.close(worktree, keep=keep)
        except (WorktreeError, OSError, subprocess.SubprocessError) as error:
            config.emit(events.Notice(f"{self.name}: {error}"))
            return
        if keep:
            config.emit(events.WorktreeKept(self.session.id, self.name, str(worktree.path)))

    def _verify(
        self,
        plan: verify.Plan,
        shell: str,
        env: dict[str, str],
        halt: AnyOf,
        timeout: float | None,
    ) -> dict[str, Any] | None:
        """VerifyTests: the command run ``plan.runs`` times, every run to its end (a failing
        one too: the server counts the failures), then what they measured (with a worktree of
        its own, which files the child changed besides its test file)."""
        workdir = self.workdir
        problem = verify.prepare(workdir, plan, env)
        if problem is not None:
            return {"status": "error", "error_message": problem}
        executions: list[Execution] = []
        for _ in range(plan.runs):
            verify.clear_report(workdir, plan)
            try:
                execution = execute(shell, cwd=workdir, env=env, stop=halt, timeout=timeout)
            except OSError as error:
                return _not_started(error)
            if execution.stopped:
                return None
            if execution.timed_out:
                # A run that hangs would hang every run after it: the step ends here.
                return result_of(execution, timeout)
            executions.append(execution)
        changed: list[str] = []
        if self.worktree is not None:
            try:
                changed = worktrees.changed_files(self.worktree, plan.test_file, env)
            except (WorktreeError, OSError, subprocess.SubprocessError) as error:
                return {"status": "error", "error_message": f"VerifyTests: {error}"}
        mutated: dict[str, Any] | None = None
        mutation_ms = 0
        # Mutants are judged by tests that pass: failing ones are the verdict already.
        if plan.mutation is not None and all(run.code == 0 for run in executions):
            started = time.monotonic()
            found = self._mutate(plan.mutation, env, halt)
            mutation_ms = int((time.monotonic() - started) * 1000)
            if found is None:
                return None
            if isinstance(found, str):
                return {"status": "error", "error_message": found}
            mutated = found
        return verify.result(
            workdir,
            plan,
            executions,
            changed_files=changed,
            mutated=mutated,
            mutation_ms=mutation_ms,
        )

    def _mutate(
        self, plan: mutation.Plan, env: dict[str, str], halt: AnyOf
    ) -> dict[str, Any] | str | None:
        """The mutation gate's sample run with cosmic-ray in the child's worktree (never a
        shared working copy: the source file changes while it runs), the source file put
        back byte for byte whatever happens; the sample's outcome, the text of what went
        wrong, or None when stopped."""
        if self.worktree is None:
            return mutation.NEEDS_WORKTREE
        workdir = self.workdir
        prepared = mutation.prepare(workdir, plan)
        if isinstance(prepared, str):
            return prepared
        limit = prepared.time_limit(plan)
        if self.config.command_timeout is not None:
            limit = min(limit, self.config.command_timeout)  # --timeout caps every command
        try:
            # The test command once on the unchanged code, as cosmic-ray runs it per mutant.
            baseline = execute(
                plan.test_command,
                cwd=workdir,
                env=mutation.baseline_env(env),
                stop=halt,
                timeout=plan.timeout_seconds,
            )
            if baseline.stopped:
                return None
            problem = mutation.baseline_problem(
                baseline.code,
                f"{baseline.stdout}\n{baseline.stderr}",
                baseline.timed_out,
                plan.timeout_seconds,
            )
            if problem is not None:
                return problem
            execution = execute(prepared.command(), cwd=workdir, env=env, stop=halt, timeout=limit)
        except OSError as error:
            return f"VerifyTests: cosmic-ray could not start: {error}"
        finally:
            if mutation.restore(prepared):
                self.config.emit(
                    events.Notice(f"{self.name}: {plan.source_path} put back after mutation")
                )
        if execution.stopped:
            return None
        if execution.timed_out:
            return f"VerifyTests: the mutation run took longer than {limit:.0f} s"
        if execution.code != 0:
            output = (execution.stderr or execution.stdout or "").strip().splitlines()
            return f"VerifyTests: cosmic-ray exec exited {execution.code}" + (
                f": {output[-1]}" if output else ""
            )
        return mutation.results(prepared)

    def _submit(self, interaction: Interaction, result: dict[str, Any]) -> Session:
        config = self.config
        try:
            submitted = config.api.submit_result(self.session.id, interaction.id, result)
        except Conflict as error:
            # First result wins: another runner (or a retry) closed this step already, or
            # this result was stored by a try whose answer was lost.
            config.emit(events.Notice(f"{self.name} {interaction.step_name}: {error.detail}"))
            self.backoff.record(interaction.step_name, "unknown")
            return config.api.get_session(self.session.id)
        verdict = submitted.interaction.result or {}
        status = str(verdict.get("status") or result["status"])
        self.backoff.record(interaction.step_name, status)
        config.emit(
            events.StepEnded(
                self.session.id,
                self.name,
                interaction.step_name,
                status,
                result.get("code"),
                int(result.get("duration_ms") or 0),
                verdict.get("error_message"),
                self.is_child,
            )
        )
        return submitted.session
