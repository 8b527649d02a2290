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

The runners act as spawnctl does: every POST carries an ``Idempotency-Key`` and is sent again
with the same key while the answer is a 502/503/504, none, or "in progress" (loadkit.Api).

With ``--servers N`` the runners talk to an HAProxy in front of N gunicorn instances that
share the database and a Redis (loadkit.Cluster). ``--kill-one-after S`` SIGKILLs one instance
S seconds in, at a moment the proxy has requests in flight to it: the tries the proxy could
not answer just after (its 502 naming that instance, or its client connection closed without
an answer, when the proxy counted no failure from any other instance) are counted as the
kill's, and sent again; every other 5xx or unanswered request fails the run. Afterwards a
separate phase checks that the throttles count once across instances: a user of its own, on a
fresh set of N instances started with ``API_THROTTLE_USER=R/min`` (the runners' user must not
be throttled, and a rate is per scope, not per user), sends R + 5 requests through the proxy
one after another; exactly the first R must succeed and the rest be 429.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loadkit import (
    COMPONENT_STEPS,
    CONTEXT_STEPS,
    MAX_STEPS,
    REQUEST_TIMEOUT_S,
    Api,
    Cluster,
    Failure,
    Instance,
    Outcome,
    Redis,
    Run,
    Stats,
    attribute_outages,
    check_history,
    create_context_session,
    create_user_and_token,
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
# The kill: aimed for up to KILL_AIM_S at a moment the proxy has a request in flight to the
# instance; what it did not answer within KILL_WINDOW_S after are its in-flight requests.
KILL_AIM_S = 5.0
KILL_WINDOW_S = 2.0
DOWN_WAIT_S = 10.0
# Figures before and after the kill over this many seconds each.
KILL_FIGURES_S = 5.0
THROTTLE_EXTRA = 5
THROTTLED = "GET /api/projects/ (the throttled user)"


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


def run_runners(
    api: Api, stats: Stats, options: argparse.Namespace, cluster: Cluster | None = None
) -> Outcome:
    """Set the contexts up, run the runners until every context completed (killing one
    instance of ``cluster`` on the way if asked), check."""
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
    threads = [
        threading.Thread(target=runner.run, args=(deadline,), daemon=True) for runner in runners
    ]
    killer = None
    if cluster is not None and options.kill_one_after is not None:
        killer = Killer(cluster, options.kill_one_after, stop)
    for thread in threads:
        thread.start()
    if killer is not None:
        killer.thread.start()
    try:
        finish_contexts(api, contexts, deadline, stop)
    except Failure as failure:
        stats.add(stats.failures, f"contexts: {failure}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=2 * REQUEST_TIMEOUT_S)
        if killer is not None:
            killer.thread.join(timeout=KILL_AIM_S + DOWN_WAIT_S + 10)
    ended = time.monotonic()
    elapsed = ended - started
    load = stats.snapshot()
    problems = [f"context {c.session_id} did not complete" for c in contexts if not c.done]
    for context in contexts:
        try:
            problems += check_context(api, context)
        except Failure as failure:
            problems.append(str(failure))
    figures = {
        **load.figures(elapsed),
        "context_sessions_completed": sum(context.done for context in contexts),
        "child_sessions_completed": sum(len(c.child_ids) for c in contexts if c.done),
        "runners_figures": runner_figures(options, runners, ledger, stats),
    }
    groups = [("lease overlaps", ledger.overlaps()), ("failed checks", problems)]
    if cluster is not None:
        figures["answers_by_instance"] = dict(
            sorted(Counter(name for at, name in stats.answers if at <= ended).items())
        )
        figures["proxy_counters"] = counters = cluster.states()
    if killer is not None:
        # Only now, after the checks' requests too. A connection the proxy closed without an
        # answer names no instance: it is the victim's only if the proxy counted no failed
        # answer from any other one.
        failing = sorted(
            name
            for name, counted in counters.items()
            if name != killer.victim_name
            and (counted["response_errors"] or counted["aborted_by_server"])
        )
        attribute_outages(
            stats,
            killer.victim_name,
            killer.at,
            KILL_WINDOW_S,
            silent_closes_are_the_victims=not failing,
        )
        figures["kill"] = killer.figures(stats, started, ended)
        kill_problems = killer.problems()
        if failing:
            kill_problems.append(f"the proxy counted failed answers from {failing} too")
        groups.append(("kill", kill_problems))
    else:
        attribute_outages(stats, None, None, 0)
    return Outcome(
        elapsed, figures, groups, completed_anything=any(context.done for context in contexts)
    )


class Killer:
    """SIGKILLs one instance of the cluster ``after`` seconds into the run: the one the proxy
    has the most requests in flight to, at the first moment it has any (waiting at most
    ``KILL_AIM_S``), so that the kill hits work in progress; then waits for the proxy's
    health check to mark it down."""

    def __init__(self, cluster: Cluster, after: float, stop: threading.Event) -> None:
        self.cluster = cluster
        self.after = after
        self.stop = stop
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.victim: Instance | None = None
        self.at: float | None = None
        self.in_flight_seen = 0
        self.down_after: float | None = None
        self.error: str | None = None

    @property
    def victim_name(self) -> str | None:
        return None if self.victim is None else self.victim.name

    def run(self) -> None:
        try:
            if self.stop.wait(self.after):
                return  # the run ended first
            aim_until = time.monotonic() + KILL_AIM_S
            while True:
                states = self.cluster.states()
                name = max(states, key=lambda n: (states[n]["in_flight"], n))
                if states[name]["in_flight"] > 0 or time.monotonic() > aim_until:
                    break
                time.sleep(0.002)
            victim = next(i for i in self.cluster.instances if i.name == name)
            self.at = self.cluster.kill(victim)
            self.victim, self.in_flight_seen = victim, states[name]["in_flight"]
            down_until = self.at + DOWN_WAIT_S
            while time.monotonic() < down_until:
                if self.cluster.states()[name]["status"].startswith("DOWN"):
                    self.down_after = time.monotonic() - self.at
                    return
                time.sleep(0.02)
        except Exception as error:  # reported as a problem of the run
            self.error = repr(error)

    def problems(self) -> list[str]:
        if self.error is not None:
            return [f"the kill failed: {self.error}"]
        if self.at is None:
            return [f"no instance was killed: the run ended before {self.after} s"]
        if self.down_after is None:
            return [f"the proxy did not mark {self.victim_name} down within {DOWN_WAIT_S} s"]
        return []

    def figures(self, stats: Stats, started: float, ended: float) -> dict[str, Any]:
        """What the kill did: the requests it cut (and what became of them on their retry),
        the throughput and the instances answering just before and just after it."""
        if self.at is None:
            return {"killed": None}
        at = self.at
        cut = stats.kill_in_flight
        # Requests with a try the proxy answered 502/503/504 or not at all, sent again.
        resent = [
            r
            for r in stats.retried
            if any("from the proxy" in c or c == "no answer" for c in r.causes)
        ]
        before = (max(started, at - KILL_FIGURES_S), at)
        after = (at, min(ended, at + KILL_FIGURES_S))

        def rate(window: tuple[float, float]) -> float | None:
            count = sum(1 for when, _ in stats.answers if window[0] <= when < window[1])
            span = window[1] - window[0]
            return round(count / span, 1) if span > 0 else None

        def by_instance(window: tuple[float, float]) -> dict[str, int]:
            return dict(
                sorted(
                    Counter(
                        name for when, name in stats.answers if window[0] <= when < window[1]
                    ).items()
                )
            )

        return {
            "killed": self.victim_name,
            "at_seconds": round(at - started, 2),
            "in_flight_by_the_proxy": self.in_flight_seen,
            "proxy_marked_it_down_after_s": None
            if self.down_after is None
            else round(self.down_after, 2),
            "in_flight_cut": len(cut),
            "their_answers": dict(Counter(o.what for o in cut)),
            "their_endpoints": dict(Counter(o.endpoint for o in cut)),
            "answered_after_s": [round(o.at - at, 3) for o in cut],
            "sent_again": len(resent),
            "sent_again_then_answered": sum(
                1 for r in resent if r.final_status is not None and r.final_status < 500
            ),
            "of_which_replayed": sum(1 for r in resent if r.replayed),
            "sent_again_max_seconds": round(max((r.seconds for r in resent), default=0.0), 3),
            "requests_per_second_5s_before": rate(before),
            "requests_per_second_5s_after": rate(after),
            "answers_by_instance_5s_before": by_instance(before),
            "answers_by_instance_5s_after": by_instance(after),
        }


def throttle_phase(
    run: Run, redis: Redis, token_user: str, options: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    """Throttles count once across instances: a user of its own sends R + 5 requests, one
    after another, through the proxy in front of a fresh set of instances started with
    ``API_THROTTLE_USER=R/min`` (round-robin spreads them over every instance); exactly the
    first R succeed, the rest are 429 with Retry-After, and the count is in Redis."""
    rate = options.throttle_rate
    token = create_user_and_token(run, token_user)
    cache = "locmemcache://" if options.unshared_throttle_cache else redis.url
    environment = {**run.environment, "CACHE_URL": cache, "API_THROTTLE_USER": f"{rate}/min"}
    cluster = Cluster(
        run,
        "throttle",
        options.servers,
        options.workers,
        environment,
        production_script=options.serve_production,
    )
    stats = Stats()
    problems: list[str] = []
    answers = []
    cluster.start()
    try:
        api = Api(cluster.proxy_port, token, stats, retries=True)
        for _ in range(rate + THROTTLE_EXTRA):
            try:
                answers.append(api.send("GET", "/api/projects/", THROTTLED))
            except Failure as failure:
                problems.append(str(failure))
    finally:
        cluster.stop()
    attribute_outages(stats, None, None, 0)
    problems += stats.server_errors + stats.transport_errors
    statuses = [answer.status for answer in answers]
    expected = [200] * rate + [429] * THROTTLE_EXTRA
    if statuses != expected:
        problems.append(
            f"expected {rate} x 200 then {THROTTLE_EXTRA} x 429, got {statuses} "
            f"({dict(Counter(statuses))})"
        )
    without = sum(1 for a in answers if a.status == 429 and not a.retry_after)
    if without:
        problems.append(f"{without} answers 429 without Retry-After")
    by_instance: dict[str, Counter] = defaultdict(Counter)
    for answer in answers:
        by_instance[answer.served_by][str(answer.status)] += 1
    names = [instance.name for instance in cluster.instances]
    served_ok = {answer.served_by for answer in answers if answer.status == 200}
    if rate >= len(names) and served_ok != set(names):
        problems.append(f"the requests that succeeded came from {sorted(served_ok)}, not {names}")
    keys = redis.command("KEYS", "*throttle_user_*")
    if not keys:
        problems.append("no throttle_user_* key in Redis: the count is not in the shared cache")
    figures = {
        "rate": f"{rate}/min",
        "cache": "local memory, per worker" if options.unshared_throttle_cache else redis.url,
        "instances": len(names),
        "requests": len(answers),
        "statuses": dict(sorted(Counter(str(s) for s in statuses).items())),
        "by_instance": {name: dict(sorted(by_instance[name].items())) for name in names},
        "redis_throttle_keys": len(keys),
    }
    return figures, problems


def runner_figures(
    options: argparse.Namespace, runners: list[Runner], ledger: Ledger, stats: Stats
) -> dict:
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
    causes = Counter(cause for retried in stats.retried for cause in retried.causes)
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
        "tries_sent_again_by_cause": dict(sorted(causes.items())),
        "lease_overlaps": len(ledger.overlaps()),
    }
