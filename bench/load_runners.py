"""The runners mode of bench/load.py: many runners share the children of a few contexts.

The run sets up ``--contexts`` context sessions of ``--components`` children each and takes
every one to its spawn step. Then ``--runners`` K threads, each a runner with its own id, loop
over the contexts: ``POST /api/sessions/{id}/claim-child/`` with ``--lease-seconds`` (short),
and on a 200 drive the child to its end. For each step a runner "works" a little, renews its
lease (heartbeat), reports an ok result and asks for the next command with its runner id.
A share of claims (``--abandon``) is abandoned at a random step: the runner stops
heartbeating and never reports nor releases, as a process that died, and goes on under a new
runner id. Another runner claims that child once its lease has expired and finishes it from
the pending step. A runner told 409 (its lease lapsed under load and another runner took the
child) drops the child. The main thread waits for each context's children to be complete,
then reports the spawn step's result and Finalize.

Every runner records, for every child it holds, the interval its lease covered by the
server's own clock: from the grant (the claim's ``leased_until`` minus the lease) to the last
``leased_until`` the server gave it. Afterwards the run checks that no two intervals of one
child overlap, and, through the API, that every context and child ended complete without a
lease, with one ok interaction per step and one child per component in spawn order.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loadkit import (
    COMPONENT_STEPS,
    CONTEXT_STEPS,
    MAX_STEPS,
    REQUEST_TIMEOUT_S,
    Api,
    Failure,
    Outcome,
    Stats,
    check_history,
    create_context_session,
    spawn_order,
)

POLL_S = 0.1
WORK_S = (0.0, 0.05)
SESSION = "/api/sessions/{id}/"
CLAIM = "POST /api/sessions/{id}/claim-child/"
HEARTBEAT = "POST /api/sessions/{id}/heartbeat/"
NEXT = "POST /api/sessions/{id}/next-command/"
RESULT = "POST /api/sessions/{id}/interactions/{iid}/result/"
OK = {"status": "ok", "code": 0, "duration_ms": 1, "stdout": "ok", "stderr": ""}


def server_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Holding:
    """One runner's hold on one child, by the server's clock."""

    child_id: str
    runner: str
    granted: datetime
    until: datetime
    ending: str = "running"  # complete, abandoned, lost


@dataclass
class Ledger:
    holdings: list[Holding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, holding: Holding) -> None:
        with self.lock:
            self.holdings.append(holding)

    def overlaps(self) -> list[str]:
        """Every pair of holdings of one child whose lease intervals overlap."""
        by_child: dict[str, list[Holding]] = defaultdict(list)
        for holding in self.holdings:
            by_child[holding.child_id].append(holding)
        found = []
        for child_id, holdings in by_child.items():
            holdings.sort(key=lambda h: h.granted)
            for earlier, later in itertools.pairwise(holdings):
                if later.granted < earlier.until:
                    found.append(
                        f"child {child_id}: {later.runner} granted {later.granted.isoformat()} "
                        f"while {earlier.runner} held it until {earlier.until.isoformat()}"
                    )
        return found


@dataclass
class Context:
    session_id: str
    components: list[dict]
    child_ids: list[str]
    spawn_interaction: str
    done: bool = False


def set_up_context(api: Api, label: str, components: int) -> Context:
    """A context session taken to its spawn step, whose command lists the children."""
    session, children = create_context_session(api, label, components)
    base = f"/api/sessions/{session['id']}"
    for _ in range(MAX_STEPS):
        interaction = api.expect("POST", f"{base}/next-command/", NEXT, 201)
        if interaction["command"]["command"] == "spawn_sessions":
            child_ids = interaction["command"]["metadata"]["child_session_ids"]
            return Context(session["id"], children, child_ids, interaction["id"])
        report(api, base, interaction["id"])
    raise Failure(f"context {session['id']}: no spawn step in {MAX_STEPS} steps")


def report(api: Api, base: str, interaction_id: str) -> dict:
    path = f"{base}/interactions/{interaction_id}/result/"
    data = api.expect("POST", path, RESULT, 200, OK)
    if data["interaction"]["result"]["status"] != "ok":
        raise Failure(f"{path}: the step did not take the ok result: {data}")
    return data["session"]


class Runner:
    """One runner thread: claim a child of any context, drive it, sometimes die half-way."""

    def __init__(
        self,
        api: Api,
        number: int,
        contexts: list[Context],
        ledger: Ledger,
        options: argparse.Namespace,
        stop: threading.Event,
    ) -> None:
        self.api = api
        self.number = number
        self.generation = 0
        self.contexts = contexts
        self.ledger = ledger
        self.lease = options.lease_seconds
        self.abandon_share = options.abandon
        self.random = random.Random(None if options.seed is None else options.seed + number)
        self.stop = stop
        self.counts: dict[str, int] = defaultdict(int)

    @property
    def name(self) -> str:
        return f"load-runner-{self.number}.{self.generation}"

    def run(self, deadline: float) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                claimed = self.claim_any()
                if claimed is None:
                    self.stop.wait(POLL_S)
                    continue
                self.drive(*claimed)
            except Failure as failure:
                self.api.stats.add(self.api.stats.failures, f"{self.name}: {failure}")
            except Exception as error:
                # A bug in the runner itself: reported, and the whole run stops rather than
                # waiting for children this thread will never finish.
                self.api.stats.add(self.api.stats.failures, f"{self.name} crashed: {error!r}")
                self.stop.set()
                raise

    def claim_any(self) -> tuple[Holding, dict] | None:
        open_contexts = [context for context in self.contexts if not context.done]
        start = self.random.randrange(len(open_contexts)) if open_contexts else 0
        for context in open_contexts[start:] + open_contexts[:start]:
            status, data = self.api.call(
                "POST",
                f"/api/sessions/{context.session_id}/claim-child/",
                CLAIM,
                {"runner": self.name, "lease_seconds": self.lease},
            )
            self.counts[f"claim {status}"] += 1
            if status == 204:
                continue
            if status != 200:
                raise Failure(f"claim-child on {context.session_id}: {status} {data}")
            child = data["session"]
            if child["runner"] != self.name:
                raise Failure(f"claimed {child['id']} but it is leased to {child['runner']}")
            until = server_time(child["leased_until"])
            holding = Holding(child["id"], self.name, until - timedelta(seconds=self.lease), until)
            self.ledger.add(holding)
            return holding, data["interaction"]
        return None

    def drive(self, holding: Holding, interaction: dict) -> None:
        base = f"/api/sessions/{holding.child_id}"
        dies_at = (
            self.random.randrange(len(COMPONENT_STEPS))
            if self.random.random() < self.abandon_share
            else None
        )
        for step in range(MAX_STEPS):
            if step == dies_at:
                # Dies: no heartbeat, no result, no release; a new process takes a new id.
                holding.ending = "abandoned"
                self.generation += 1
                return
            time.sleep(self.random.uniform(*WORK_S))
            if not self.renew(base, holding):
                return
            session = report(self.api, base, interaction["id"])
            if session["status"] == "complete":
                holding.ending = "complete"
                return
            status, data = self.api.call(
                "POST",
                f"{base}/next-command/",
                NEXT,
                {"runner": self.name, "lease_seconds": self.lease},
            )
            if status == 409:
                holding.ending = "lost"
                return
            if status != 201:
                raise Failure(f"{base}/next-command/: {status} {data}")
            interaction = data
            # next-command renewed the lease to a time it does not show; a heartbeat right
            # after gives the server's exact end, which covers the one before it.
            if not self.renew(base, holding):
                return
        raise Failure(f"child {holding.child_id} did not complete in {MAX_STEPS} steps")

    def renew(self, base: str, holding: Holding) -> bool:
        status, data = self.api.call(
            "POST",
            f"{base}/heartbeat/",
            HEARTBEAT,
            {"runner": self.name, "lease_seconds": self.lease},
        )
        self.counts[f"heartbeat {status}"] += 1
        if status == 409:
            # The lease lapsed (a slow moment) and another runner holds the child now.
            holding.ending = "lost"
            return False
        if status != 200:
            raise Failure(f"{base}/heartbeat/: {status} {data}")
        holding.until = max(holding.until, server_time(data["leased_until"]))
        return True


def finish_contexts(
    api: Api, contexts: list[Context], deadline: float, stop: threading.Event
) -> None:
    """Report each context's spawn step once all its children are complete, then Finalize."""
    while time.monotonic() < deadline and not all(context.done for context in contexts):
        if stop.is_set():
            return
        for context in contexts:
            if context.done:
                continue
            base = f"/api/sessions/{context.session_id}"
            children = api.expect(
                "GET", f"{base}/children/", "GET /api/sessions/{id}/children/", 200
            )
            if children["summary"]["complete"] != len(context.child_ids):
                continue
            report(api, base, context.spawn_interaction)
            finalize = api.expect("POST", f"{base}/next-command/", NEXT, 201)
            if report(api, base, finalize["id"])["status"] != "complete":
                raise Failure(f"context {context.session_id} did not complete after Finalize")
            context.done = True
        time.sleep(POLL_S)


def check_context(api: Api, context: Context) -> list[str]:
    problems: list[str] = []
    base = f"/api/sessions/{context.session_id}"
    session = api.expect("GET", f"{base}/", "GET " + SESSION, 200)
    if session["status"] != "complete" or session["runner"] is not None:
        problems.append(f"{context.session_id}: {session['status']}, runner {session['runner']}")
    children = api.expect("GET", f"{base}/children/", "GET /api/sessions/{id}/children/", 200)
    if [child["id"] for child in children["results"]] != context.child_ids:
        problems.append(f"{context.session_id}: children are not the spawned ones")
    if [child["component"]["id"] for child in children["results"]] != spawn_order(
        context.components
    ):
        problems.append(f"{context.session_id}: not one child per component in spawn order")
    for child in children["results"]:
        if (child["status"], child["runner"], child["leased_until"]) != ("complete", None, None):
            problems.append(
                f"child {child['id']}: {child['status']}, runner {child['runner']} "
                f"until {child['leased_until']}"
            )
        problems += check_history(api, child["id"], COMPONENT_STEPS)
    problems += check_history(api, context.session_id, CONTEXT_STEPS)
    return problems


def run_runners(api: Api, stats: Stats, options: argparse.Namespace) -> Outcome:
    """Set the contexts up, run the runners until every context completed, check."""
    contexts = [
        set_up_context(api, f"runners.{index}", options.components)
        for index in range(options.contexts)
    ]
    ledger, stop = Ledger(), threading.Event()
    runners = [
        Runner(api, number, contexts, ledger, options, stop) for number in range(options.runners)
    ]
    started = time.monotonic()
    deadline = started + options.max_seconds
    threads = [threading.Thread(target=runner.run, args=(deadline,)) for runner in runners]
    for thread in threads:
        thread.start()
    try:
        finish_contexts(api, contexts, deadline, stop)
    except Failure as failure:
        stats.add(stats.failures, f"contexts: {failure}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=2 * REQUEST_TIMEOUT_S)
    elapsed = time.monotonic() - started
    load = stats.snapshot()
    problems = [f"context {c.session_id} did not complete" for c in contexts if not c.done]
    for context in contexts:
        try:
            problems += check_context(api, context)
        except Failure as failure:
            problems.append(str(failure))
    return Outcome(
        elapsed,
        {
            **load.figures(elapsed),
            "context_sessions_completed": sum(context.done for context in contexts),
            "child_sessions_completed": sum(len(c.child_ids) for c in contexts if c.done),
            "runners_figures": runner_figures(options, runners, ledger),
        },
        [("lease overlaps", ledger.overlaps()), ("failed checks", problems)],
        completed_anything=any(context.done for context in contexts),
    )


def runner_figures(options: argparse.Namespace, runners: list[Runner], ledger: Ledger) -> dict:
    endings = defaultdict(int)
    for holding in ledger.holdings:
        endings[holding.ending] += 1
    per_child = defaultdict(int)
    for holding in ledger.holdings:
        per_child[holding.child_id] += 1
    counts = defaultdict(int)
    for runner in runners:
        for name, count in runner.counts.items():
            counts[name] += count
    return {
        "runners": options.runners,
        "contexts": options.contexts,
        "components_per_context": options.components,
        "lease_seconds": options.lease_seconds,
        "abandon_share": options.abandon,
        "holdings": len(ledger.holdings),
        "holdings_by_ending": dict(sorted(endings.items())),
        "children_taken_over": sum(1 for count in per_child.values() if count > 1),
        "runner_ids_used": sum(runner.generation + 1 for runner in runners),
        "requests_by_answer": dict(sorted(counts.items())),
        "lease_overlaps": len(ledger.overlaps()),
    }
