"""``spawnctl work``: only claim and drive a context's children (no context steps), beside
the ``spawnctl run`` that drives the context, on this machine or another."""

from __future__ import annotations

from spawnctl import events
from spawnctl.api import Session, budget_text
from spawnctl.children import ChildrenDriver, active, fetch_children, parallelism
from spawnctl.jobs import AnyOf, RunnerConfig, wait_until
from spawnctl.run import Outcome, waiting_text

NOT_A_CONTEXT = "Session {id} is a {type} session; spawnctl work takes a context testing session"
WAITING_FOR_SPAWN = "Waiting for {name} to spawn its child sessions"
ALL_FINISHED = "finished"
# The children left cannot run: the run's budget is spent.
BUDGET = "budget"


class NotAContext(ValueError):
    pass


def work_context(config: RunnerConfig, context_id: str, *, jobs: int) -> Outcome:
    """Claim and drive children until the context has ended, or has spawned and every child
    is finished: ``Outcome`` the context's status once it ended, else ``finished``."""
    stop = AnyOf(config.stop)
    said: str | None = None
    driver: ChildrenDriver | None = None

    def say(text: str) -> None:
        nonlocal said
        if text != said:
            said = text
            config.emit(events.Waiting(text))

    while not stop.is_set():
        context = config.api.get_session(context_id)
        if not context.is_context:
            raise NotAContext(NOT_A_CONTEXT.format(id=context.id, type=context.type))
        if context.is_finished:
            return Outcome(context.status)
        if not context.child_session_ids:
            say(WAITING_FOR_SPAWN.format(name=context.name))
            wait_until(config, None)
            continue
        if driver is None:
            driver = ChildrenDriver(
                config, context_id, parallelism(jobs, context.max_parallel_children)
            )
            _announce(config, context)
        driver.drive(stop)
        if stop.is_set():
            break
        children = fetch_children(config, context_id)
        running = active(children)
        if not running:
            return Outcome(ALL_FINISHED)
        held = driver.others(children)
        if not held:
            context = config.api.get_session(context_id)
            if context.budget_spent:
                spent, limit = context.run_cost_usd or 0.0, context.max_cost_usd or 0.0
                return Outcome(BUDGET, budget_text(spent, limit))
        say(waiting_text(len(running), len(held)))
        driver.wait_for(held)
    return Outcome("stopped")


def _announce(config: RunnerConfig, context: Session) -> None:
    children = config.api.children(context.id)
    config.emit(events.Spawned(context.id, tuple(child.name for child in children.results)))
    config.emit(events.ChildrenCounted.of(context.id, children.summary))
