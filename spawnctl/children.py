"""A context's children driven on a bounded pool of threads: claim a child, run it to its end
as a job, claim the next, and watch the ones other runners hold."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from spawnctl import events
from spawnctl.api import ApiError, Children, Claimed, Session, Unreachable, parse_time
from spawnctl.jobs import AnyOf, RunnerConfig, SessionJob, wait_until


def parallelism(jobs: int, max_parallel: object) -> int:
    """``--jobs``, never above the context's cap."""
    if isinstance(max_parallel, int) and not isinstance(max_parallel, bool) and max_parallel > 0:
        return max(1, min(jobs, max_parallel))
    return max(1, jobs)


def fetch_children(config: RunnerConfig, context_id: str) -> Children:
    """The context's active children (all the loops that wait need: a large run's finished
    ones are never fetched again) and the summary of all of them, told to the reporter."""
    children = config.api.children(context_id, status="active")
    config.emit(events.ChildrenCounted.of(context_id, children.summary))
    return children


class ChildrenDriver:
    """Drives a context's claimable children, up to ``jobs`` at once.

    The pool's futures are owned by the thread that calls ``drive``; the jobs share only the
    API client (thread-safe) and the reporter (which holds its own lock)."""

    def __init__(self, config: RunnerConfig, context_id: str, jobs: int) -> None:
        self.config = config
        self.context_id = context_id
        self.jobs = jobs
        self._held_by: dict[str, str] = {}

    def drive(self, halt: AnyOf | None = None) -> None:
        """Claim and run children until none can be claimed and none of ours is running
        (or the run is stopped; running children are then stopped and released)."""
        config = self.config
        stop = halt or AnyOf(config.stop)
        running: dict[Future[str], str] = {}
        gone: Unreachable | None = None
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="child") as pool:
            try:
                while True:
                    while len(running) < self.jobs and not stop.is_set():
                        claimed = config.api.claim_child(
                            self.context_id,
                            runner=config.runner,
                            lease_seconds=config.lease_seconds,
                        )
                        if claimed is None:
                            break
                        running[pool.submit(self._drive_child, claimed)] = claimed.session.name
                    if not running:
                        break
                    done, _ = wait(
                        running, timeout=config.poll_seconds, return_when=FIRST_COMPLETED
                    )
                    for future in done:
                        name = running.pop(future)
                        error = future.exception()
                        if isinstance(error, Unreachable):
                            gone = gone or error
                            self._abandon()
                        elif error is not None:
                            config.emit(events.Notice(f"{name}: {error}"))
                    if done and gone is None:
                        # The bar counts every child, ours and other runners'.
                        summary = config.api.children_summary(self.context_id)
                        config.emit(events.ChildrenCounted.of(self.context_id, summary))
                    if stop.is_set() and not running:
                        break
            except Unreachable:
                self._abandon()
                raise
        if gone is not None:
            raise gone

    def _abandon(self) -> None:
        """The server is gone past the wait: every job stops and gives its child up (as far
        as the server can be told), and the run ends saying so."""
        self.config.stop.set()

    def _drive_child(self, claimed: Claimed) -> str:
        # A claimed child another runner took meanwhile is its to finish; this slot moves on.
        job = SessionJob(self.config, claimed.session, is_child=True, wait_for_lease=False)
        try:
            return job.run(claimed.interaction)
        except Unreachable:
            job.give_up("the server was unreachable")
            raise
        except ApiError:
            job.give_up("the server refused a request")
            raise

    def others(self, children: Children) -> list[Session]:
        """Active children held by other runners (live leases), reported once per holder."""
        held = [c for c in children.results if c.status == "active" and c.runner and not c.stalled]
        for child in held:
            if self._held_by.get(child.id) != child.runner:
                self._held_by[child.id] = child.runner or ""
                self.config.emit(
                    events.LeaseHeld(
                        child.id, child.name, child.runner or "", child.leased_until or ""
                    )
                )
        return held

    def wait_for(self, held: list[Session], halt: AnyOf | None = None) -> None:
        """Sleep a poll, or until the first of ``held``'s leases can expire."""
        ends = [parse_time(c.leased_until) for c in held]
        known: list[datetime] = [end for end in ends if end is not None]
        wait_until(self.config, min(known) if known else None, also=halt)


def active(children: Children) -> list[Session]:
    return [child for child in children.results if child.status == "active"]
