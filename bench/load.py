"""Load and soak check: a real server, many clients, whole sessions driven through the REST API.

    DATABASE_URL=postgres://spawnctl:<password>@127.0.0.1:5432/spawnctl_load \\
        .venv/bin/python bench/load.py --clients 8 --sessions 5 --workers 5

It migrates the database in ``DATABASE_URL`` (PostgreSQL is the case that matters; a SQLite
URL works too), creates a user and an API token with ``manage.py createsuperuser`` and
``drf_create_token``, and starts gunicorn with ``--workers`` processes on a free loopback port,
with production settings (DEBUG off; the clients send ``X-Forwarded-Proto: https`` as the
TLS proxy would). Use a database of its own: the run adds a user, projects and sessions and
deletes nothing.

Each of ``--clients`` threads then, ``--sessions`` times (or until ``--duration`` seconds have
passed): creates a project, a context and ``--components`` child components, creates a
ContextTestingSessions session and drives it to the end with ok results. When the command is
``spawn_sessions`` it drives every child (Initialize, GenerateTestsAndFixtures, RunTests,
Finalize) to completion before reporting the spawn step's result.

With twins on (the default), every next-command, spawn and report request is sent twice at
the same moment on two connections, as a client that retries or two tabs would: both
next-commands must hand out the same interaction (exactly one 201), both spawns the same
children, and of the two reports exactly one applies and the other is a 409.

Afterwards it checks through the API that every session ended complete, with exactly one
child per component (the ids the spawn command handed out, in spawn order) and one ok
interaction per step. It prints throughput, p50/p99 latency per endpoint and every failure,
and exits non-zero on any 5xx, transport error, broken expectation or failed check.
With ``--runners K`` it runs the runners mode instead (bench/load_runners.py): K runners
claim and drive the children of ``--contexts`` shared contexts through claim-child with short
leases, some abandoning a child half-way, and the run checks that every context completed and
that no child was ever held by two live leases at once. ``--servers N`` runs them against N
gunicorn instances on the one database (PostgreSQL when N > 1) and a Redis of the run's own,
behind an HAProxy the run starts (``--kill-one-after S`` SIGKILLs one instance mid-run), and
then checks that a user's throttle counts once across the instances.

Everything it sends goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadkit import (
    ALREADY_REPORTED,
    COMPONENT_STEPS,
    CONTEXT_STEPS,
    MAX_STEPS,
    REQUEST_TIMEOUT_S,
    Api,
    Cluster,
    Failure,
    Outcome,
    Redis,
    Run,
    Stats,
    check_history,
    create_context_session,
    free_port,
    migrate_and_create_token,
    prepare_run,
    print_endpoints,
    print_problems,
    server_log_tracebacks,
    spawn_order,
    start_server,
    stop_server,
)


class Twins:
    """Sends a request on two connections at the same moment (a second thread and this one)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.pool = ThreadPoolExecutor(max_workers=1) if enabled else None

    def run(self, call: Any) -> list[Any]:
        if not self.enabled:
            return [call()]
        barrier = threading.Barrier(2)

        def together() -> Any:
            barrier.wait(timeout=REQUEST_TIMEOUT_S)
            return call()

        other = self.pool.submit(together)
        mine = together()
        return [mine, other.result(timeout=2 * REQUEST_TIMEOUT_S)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


# --- One client -------------------------------------------------------------------------


@dataclass
class Driven:
    """A context session this run drove, and what the spawn command handed out."""

    session_id: str
    components: list[dict]
    child_ids: list[str] = field(default_factory=list)

    def spawn_order(self) -> list[str]:
        return spawn_order(self.components)


class Client:
    def __init__(self, api: Api, number: int, options: argparse.Namespace) -> None:
        self.api = api
        self.number = number
        self.options = options
        self.twins = Twins(options.twins)
        self.driven: list[Driven] = []

    def run(self, deadline: float) -> None:
        try:
            for index in range(self.options.sessions):
                if time.monotonic() > deadline:
                    break
                try:
                    self.driven.append(self.one_context_session(index))
                except Failure as failure:
                    self.api.stats.add(self.api.stats.failures, f"client {self.number}: {failure}")
        finally:
            self.twins.close()

    def one_context_session(self, index: int) -> Driven:
        session, components = create_context_session(
            self.api, f"{self.number}.{index}", self.options.components
        )
        driven = Driven(session_id=session["id"], components=components)
        self.drive(session["id"], driven)
        return driven

    def drive(self, session_id: str, driven: Driven | None) -> None:
        base = f"/api/sessions/{session_id}"
        for _ in range(MAX_STEPS):
            interaction = self.next_command(base)
            command = interaction["command"]
            if command["command"] == "spawn_sessions":
                child_ids = command["metadata"]["child_session_ids"]
                self.spawn_again(base, child_ids)
                if driven is not None:
                    driven.child_ids = child_ids
                for child_id in child_ids:
                    self.drive(child_id, None)
            session = self.report(base, interaction)
            if session["status"] == "complete":
                return
            if session["status"] != "active":
                raise Failure(f"session {session_id} ended {session['status']}")
        raise Failure(f"session {session_id} did not complete in {MAX_STEPS} steps")

    def next_command(self, base: str) -> dict:
        answers = self.twins.run(
            lambda: self.api.call(
                "POST", f"{base}/next-command/", "POST /api/sessions/{id}/next-command/"
            )
        )
        statuses = sorted(status for status, _ in answers)
        expected = [200, 201] if len(answers) == 2 else [201]
        ids = {data.get("id") for _, data in answers if isinstance(data, dict)}
        if statuses != expected or len(ids) != 1:
            raise Failure(
                f"{base}/next-command/: expected {expected} with one interaction, got {answers}"
            )
        return answers[0][1]

    def spawn_again(self, base: str, child_ids: list[str]) -> None:
        """The spawn endpoint, called while the spawn step is pending, hands out the same ids."""
        answers = self.twins.run(
            lambda: self.api.call("POST", f"{base}/spawn/", "POST /api/sessions/{id}/spawn/")
        )
        for status, data in answers:
            if status != 200 or data["metadata"]["child_session_ids"] != child_ids:
                raise Failure(f"{base}/spawn/: expected 200 with {child_ids}, got {status} {data}")

    def report(self, base: str, interaction: dict) -> dict:
        path = f"{base}/interactions/{interaction['id']}/result/"
        body = {"status": "ok", "code": 0, "duration_ms": 1, "stdout": "ok", "stderr": ""}
        answers = self.twins.run(
            lambda: self.api.call(
                "POST", path, "POST /api/sessions/{id}/interactions/{iid}/result/", body
            )
        )
        applied = [data for status, data in answers if status == 200]
        refused = [data for status, data in answers if status == 409]
        if len(applied) != 1 or len(refused) != len(answers) - 1:
            raise Failure(f"{path}: expected one 200 and the rest 409, got {answers}")
        if any(data != {"detail": ALREADY_REPORTED} for data in refused):
            raise Failure(f"{path}: 409 without the exact text: {refused}")
        if applied[0]["interaction"]["result"]["status"] != "ok":
            raise Failure(f"{path}: the step did not take the ok result: {applied[0]}")
        return applied[0]["session"]


# --- Checks afterwards ------------------------------------------------------------------


def check(api: Api, driven: Driven) -> list[str]:
    problems: list[str] = []
    base = f"/api/sessions/{driven.session_id}"
    session = api.expect("GET", f"{base}/", "GET /api/sessions/{id}/", 200)
    if session["status"] != "complete":
        problems.append(f"{driven.session_id}: status {session['status']}")
    children = api.expect("GET", f"{base}/children/", "GET /api/sessions/{id}/children/", 200)
    listed = [child["id"] for child in children["results"]]
    if listed != driven.child_ids or session["child_session_ids"] != driven.child_ids:
        problems.append(f"{driven.session_id}: children {listed} != spawned {driven.child_ids}")
    components = [child["component"]["id"] for child in children["results"]]
    if components != driven.spawn_order():
        problems.append(f"{driven.session_id}: not one child per component in spawn order")
    total = len(driven.components)
    counts = {
        "total": total,
        "active": 0,
        "stalled": 0,
        "complete": total,
        "failed": 0,
        "cancelled": 0,
    }
    # The summary carries the children's coverage and cost beside these counts.
    if {name: children["summary"].get(name) for name in counts} != counts:
        problems.append(f"{driven.session_id}: children summary {children['summary']}")
    problems += check_history(api, driven.session_id, CONTEXT_STEPS)
    for child in children["results"]:
        if child["status"] != "complete":
            problems.append(f"child {child['id']}: status {child['status']}")
        problems += check_history(api, child["id"], COMPONENT_STEPS)
    return problems


# --- Main -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the database to load (default: $DATABASE_URL)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--sessions",
        type=int,
        default=3,
        help="context sessions per client (at most, with --duration)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="soak: clients start new sessions until this many seconds passed",
    )
    parser.add_argument("--components", type=int, default=4, help="children per context")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument(
        "--no-twins",
        dest="twins",
        action="store_false",
        help="send each request once instead of twice at the same moment",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="hard limit for the whole load phase"
    )
    parser.add_argument(
        "--serve-production",
        action="store_true",
        help="start the server with scripts/serve-production (INSTALL=0) instead of gunicorn "
        "directly",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    runners = parser.add_argument_group("runners mode (bench/load_runners.py)")
    runners.add_argument(
        "--runners", type=int, default=None, help="K runner threads claiming shared children"
    )
    runners.add_argument("--contexts", type=int, default=4, help="contexts the runners share")
    runners.add_argument(
        "--lease-seconds", type=int, default=3, help="the runners' lease (default: %(default)s)"
    )
    runners.add_argument(
        "--abandon",
        type=float,
        default=0.25,
        help="share of claims a runner abandons half-way (default: %(default)s)",
    )
    runners.add_argument("--seed", type=int, default=None, help="seed of the runners' choices")
    cluster = parser.add_argument_group("several servers (runners mode)")
    cluster.add_argument(
        "--servers",
        type=int,
        default=None,
        help="N gunicorn instances (--workers each) on one database and one Redis, behind an "
        "HAProxy the run starts; default: 1 instance, no proxy, no Redis",
    )
    cluster.add_argument(
        "--kill-one-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="SIGKILL one instance (its whole process group) this long after the runners start",
    )
    cluster.add_argument(
        "--throttle-rate",
        type=int,
        default=10,
        metavar="R",
        help="after the runners: a user throttled at R/min sends R + 5 requests over every "
        "instance, exactly R must succeed (0: no such phase; default: %(default)s)",
    )
    cluster.add_argument(
        "--unshared-throttle-cache",
        action="store_true",
        help="give the throttle phase's instances local-memory caches instead of the Redis, "
        "to see its check fail",
    )
    options = parser.parse_args(argv)
    if not options.database_url:
        parser.error("give --database-url or set DATABASE_URL (a database of the run's own)")
    if options.servers is not None:
        if not options.runners:
            parser.error("--servers needs the runners mode (--runners K)")
        if options.servers < 1:
            parser.error("--servers takes 1 or more")
        if options.servers > 1 and not options.database_url.startswith(("postgres", "pgsql")):
            parser.error("--servers above 1 needs PostgreSQL: one SQLite file is one machine's")
        if options.throttle_rate < 0:
            parser.error("--throttle-rate takes 0 or more")
    if options.kill_one_after is not None and (options.servers or 0) < 2:
        parser.error("--kill-one-after needs --servers 2 or more (one must be left)")
    if options.duration is not None and options.sessions == 3:
        options.sessions = 100_000  # bounded by --duration and --max-seconds
    return options


def run_clients(api: Api, stats: Stats, options: argparse.Namespace) -> Outcome:
    """The default mode: each client drives whole context sessions, twins racing."""
    clients = [Client(api, number, options) for number in range(options.clients)]
    started = time.monotonic()
    soak_end = started + (options.duration or options.max_seconds)
    deadline = min(soak_end, started + options.max_seconds)
    threads = [threading.Thread(target=c.run, args=(deadline,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=options.max_seconds + 2 * REQUEST_TIMEOUT_S)
    elapsed = time.monotonic() - started
    if any(thread.is_alive() for thread in threads):
        stats.failures.append("a client was still running past --max-seconds")
    load = stats.snapshot()
    driven = [d for client in clients for d in client.driven]
    problems = []
    for item in driven:
        try:
            problems += check(api, item)
        except Failure as failure:
            problems.append(str(failure))
    children = sum(len(d.child_ids) for d in driven)
    figures = {
        "clients": options.clients,
        "twins": options.twins,
        "components_per_context": options.components,
        **load.figures(elapsed),
        "context_sessions_completed": len(driven),
        "child_sessions_completed": children,
        "sessions_per_second": round((len(driven) + children) / elapsed, 2),
    }
    return Outcome(elapsed, figures, [("failed checks", problems)], completed_anything=bool(driven))


def run_load(run: Run, token: str, options: argparse.Namespace) -> tuple[Outcome, Stats]:
    """Start the server (or the servers), run the chosen mode against it, stop the server."""
    if options.servers is not None:
        return run_cluster(run, token, options)
    port = free_port()
    server = start_server(
        run.environment,
        port,
        options.workers,
        run.log_path,
        run.scratch,
        production_script=options.serve_production,
    )
    stats = Stats()
    # The runners retry as spawnctl does (Idempotency-Key on every POST); the clients' twins
    # are the retries in the clients mode.
    api = Api(port, token, stats, retries=bool(options.runners))
    try:
        if options.runners:
            from load_runners import run_runners

            outcome = run_runners(api, stats, options)
        else:
            outcome = run_clients(api, stats, options)
    finally:
        stop_server(server)
    return outcome, stats


def run_cluster(run: Run, token: str, options: argparse.Namespace) -> tuple[Outcome, Stats]:
    """The runners against ``--servers`` instances behind HAProxy, sharing a Redis; then the
    throttle phase on a fresh set of instances. Every process is stopped, whatever happens."""
    from load_runners import run_runners, throttle_phase

    redis = Redis(run.scratch)
    try:
        redis.start()
        cluster = Cluster(
            run,
            "runners",
            options.servers,
            options.workers,
            {**run.environment, "CACHE_URL": redis.url},
            production_script=options.serve_production,
        )
        cluster.start()
        stats = Stats()
        api = Api(cluster.proxy_port, token, stats, retries=True)
        try:
            outcome = run_runners(api, stats, options, cluster)
        finally:
            cluster.stop()
        outcome.figures["cluster"] = {
            "servers": options.servers,
            "workers_per_server": options.workers,
            "proxy": f"HAProxy on {cluster.proxy_port} ({cluster.config})",
            "cache": redis.url,
        }
        if options.throttle_rate:
            figures, problems = throttle_phase(run, redis, f"{run.run_id}-throttled", options)
            outcome.figures["throttle"] = figures
            outcome.problems.append(("throttle", problems))
    finally:
        redis.stop()
    return outcome, stats


def summarize(run: Run, options: argparse.Namespace, outcome: Outcome, stats: Stats) -> dict:
    return {
        "run": run.run_id,
        "database": run.engine,
        "mode": "runners" if options.runners else "clients",
        "server": "scripts/serve-production" if options.serve_production else "gunicorn",
        "servers": options.servers or 1,
        "proxy": "haproxy" if options.servers else None,
        "workers": options.workers,
        **outcome.figures,
        "seconds": round(outcome.seconds, 1),
        "server_errors": len(stats.server_errors),
        "killed_instance_in_flight": len(stats.kill_in_flight),
        "transport_errors": len(stats.transport_errors),
        "broken_expectations": len(stats.failures),
        "failed_checks": sum(len(lines) for _, lines in outcome.problems),
        "server_log_tracebacks": server_log_tracebacks(run),
    }


def _terminated(signum: int, frame: Any) -> None:
    # A SIGTERM (a test's timeout, a supervisor) unwinds like an error: every finally stops
    # the processes it started.
    sys.exit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    options = parse_args(argv)
    run = prepare_run(options.database_url)
    mode = f"{options.runners} runners" if options.runners else f"{options.clients} clients"
    servers = (
        f"{options.servers} gunicorn instances of {options.workers} workers behind HAProxy, "
        "one Redis"
        if options.servers
        else f"{options.workers} gunicorn workers"
    )
    print(f"{run.run_id}: {run.engine}, {servers}, {mode}", flush=True)
    token = migrate_and_create_token(run)
    outcome, stats = run_load(run, token, options)
    figures = summarize(run, options, outcome, stats)
    print_report(figures, stats, outcome, run.log_path)
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    failed = (
        stats.server_errors
        or stats.transport_errors
        or stats.failures
        or outcome.failed
        or figures["server_log_tracebacks"]
    )
    if not outcome.completed_anything:
        print("FAIL: no session was driven to the end")
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


def print_report(figures: dict, stats: Stats, outcome: Outcome, log_path: Path) -> None:
    print(
        f"{figures['requests']} requests in {figures['seconds']} s: "
        f"{figures['requests_per_second']} requests/s; "
        f"{figures['context_sessions_completed']} context sessions and "
        f"{figures['child_sessions_completed']} child sessions completed"
        + (
            f" ({figures['sessions_per_second']} sessions/s)"
            if "sessions_per_second" in figures
            else ""
        )
    )
    for name, value in figures.get("runners_figures", {}).items():
        print(f"  {name}: {value}")
    if "answers_by_instance" in figures:
        print(f"answers by instance (the proxy's X-Served-By): {figures['answers_by_instance']}")
    if "proxy_counters" in figures:
        print(f"the proxy's counters: {figures['proxy_counters']}")
    if "kill" in figures:
        print("the kill:")
        for name, value in figures["kill"].items():
            print(f"  {name}: {value}")
    print_endpoints(figures["endpoints"])
    if "throttle" in figures:
        print("throttle counted once across instances:")
        for name, value in figures["throttle"].items():
            print(f"  {name}: {value}")
    if "kill" in figures:
        print(
            "the killed instance's in-flight requests (tries the proxy sent it that got no "
            "answer or its 502/503/504 just after the kill, each sent again): "
            f"{figures['killed_instance_in_flight']}"
        )
    print(
        f"server errors (5xx): {figures['server_errors']}, transport errors: "
        f"{figures['transport_errors']}, broken expectations: {figures['broken_expectations']}, "
        f"failed checks: {figures['failed_checks']}, tracebacks in the server log: "
        f"{figures['server_log_tracebacks']} ({log_path.parent}/server*.log)"
    )
    print_problems(
        [
            ("server errors", stats.server_errors),
            ("transport errors", stats.transport_errors),
            ("broken expectations", stats.failures),
            *outcome.problems,
        ]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
