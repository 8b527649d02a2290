"""``spawnctl run``: drive a session to its end. A context's spawn step is where its children
are claimed and driven; its result is reported once no child is running anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from spawnctl import events
from spawnctl.api import ApiError, Interaction, Submitted, Unreachable
from spawnctl.children import ChildrenDriver, active, fetch_children, parallelism
from spawnctl.jobs import STOPPED, AnyOf, Halt, Heartbeat, RunnerConfig, SessionJob

CANNOT_CONTINUE = "cannot continue"


@dataclass(frozen=True)
class Outcome:
    """How a run ended: a session status, ``stopped``, or ``cannot continue`` (``message``)."""

    status: str
    message: str | None = None


class SpawnStep:
    """The context's spawn step, run here: children claimed and driven up to ``jobs`` at
    once (never above the command's ``max_parallel``), then the step's result reported."""

    def __init__(self, config: RunnerConfig, jobs: int) -> None:
        self.config = config
        self.jobs = jobs
        self._said: str | None = None

    def _say(self, text: str) -> None:
        if text != self._said:
            self._said = text
            self.config.emit(events.Waiting(text))

    def __call__(
        self, job: SessionJob, interaction: Interaction, beat: Heartbeat
    ) -> Submitted | Halt | None:
        config = self.config
        context_id = job.session.id
        halt = AnyOf(config.stop, beat.lost)
        driver = ChildrenDriver(
            config, context_id, parallelism(self.jobs, interaction.metadata.get("max_parallel"))
        )
        children = config.api.children(context_id)
        config.emit(events.Spawned(context_id, tuple(child.name for child in children.results)))
        config.emit(events.ChildrenCounted.of(context_id, children.summary))
        while True:
            driver.drive(halt)
            if halt.is_set():
                return None
            children = fetch_children(config, context_id)
            running = active(children)
            if running:
                held = driver.others(children)
                # Children nobody may run, as the budget is spent: the result check says so.
                if held or not config.api.get_session(context_id).budget_spent:
                    self._say(waiting_text(len(running), len(held)))
                    driver.wait_for(held, halt)
                    continue
            submitted = config.api.submit_result(context_id, interaction.id, {"status": "ok"})
            verdict = submitted.interaction.result or {}
            config.emit(
                events.StepEnded(
                    context_id,
                    job.name,
                    interaction.step_name,
                    str(verdict.get("status")),
                    None,
                    0,
                    verdict.get("error_message"),
                    False,
                )
            )
            if verdict.get("status") != "error":
                return submitted
            message = verdict.get("error_message") or "The spawn step's result check failed"
            # A child retried (or spawned) meanwhile makes the context able to end after all;
            # one the spent budget holds back does not.
            if (
                active(fetch_children(config, context_id))
                and not halt.is_set()
                and not config.api.get_session(context_id).budget_spent
            ):
                answer = config.api.next_command(
                    context_id, runner=config.runner, lease_seconds=config.lease_seconds
                )
                if isinstance(answer, Interaction):
                    interaction = answer
                    continue
            config.emit(events.CannotContinue(message))
            return Halt(CANNOT_CONTINUE, message)


def waiting_text(running: int, held: int) -> str:
    if held:
        return f"Waiting for {held} child session(s) running under other runners"
    return f"Waiting for {running} child session(s) to be claimable"


def run_session(config: RunnerConfig, session_id: str, *, jobs: int) -> Outcome:
    """Drive the session (a context with its children, or one component session) to its end."""
    session = config.api.get_session(session_id)
    job = SessionJob(
        config, session, is_child=not session.is_context, spawn_step=SpawnStep(config, jobs)
    )
    if session.is_finished:
        return Outcome(session.status, session.state.get("error"))
    try:
        status = job.run()
    except Unreachable:
        # Gone past the wait: whatever the server can still be told, it is told.
        job.give_up("the server was unreachable", quiet=True)
        raise
    except ApiError:
        # The server refused a step (a 422 names why): hand the session back before saying so.
        job.give_up("the server refused a request", quiet=True)
        raise
    if job.halt is not None:
        return Outcome(job.halt.status, job.halt.message)
    if status == STOPPED:
        return Outcome(STOPPED)
    return Outcome(status, job.session.state.get("error"))
