"""Benchmark: spawning and checking child sessions, against a per-child baseline and the floor.

For each number of children it measures, on fresh data each time:

- ``service``: ``services.spawn_child_sessions`` (validation, bulk insert, savepoints);
- ``api``: ``POST /api/sessions/{id}/spawn/`` through DRF's ``APIClient``;
- ``check_complete`` / ``check_mixed``: ``services.check_child_sessions`` with every child
  complete, and with children active, complete, failed (three kinds of reason) and cancelled;
- ``claim_first`` / ``claim_last``: ``services.claim_child`` when every child is active and
  free (it takes the first in spawn order), and when every child but the last is complete or
  held by another runner's live lease (it must take the last);
- ``per_child``: the seed's source-system way, one ``services.create_session`` per child (its
  full ``full_clean`` and one INSERT each) inside one transaction: the baseline;
- ``per_child_lean``: one INSERT per child with the step's in-memory validation only, to show
  what batching alone is worth (information, no target);
- ``floor``: one ``Session.objects.bulk_create`` of the same rows, no validation.

Each case runs once with its queries captured (that run also warms the code paths up), then
``--repeat`` times timed without capturing, so the debug cursor's bookkeeping never lands in a
timing. DEBUG is off, as in production. The median of the timed runs is reported.

    .venv/bin/python bench/spawn.py                     # a temporary SQLite file
    .venv/bin/python bench/spawn.py --database-url postgres://bench:bench@localhost/spawn_bench

The database is migrated first. The script prints a table and the targets, writes JSON
(default ``bench/results/spawn-<database>.json``) and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (10, 100, 1000, 5000)
LARGE = 5000
TARGET_SIZE = 1000
MAX_FLOOR_RATIO = 1.5
MIN_BASELINE_SPEEDUP = 5.0
# The session (service), the session again (the step), the children not complete, the
# components without a child.
MAX_CHECK_QUERIES = 4
# Claiming a child and the all-complete check at LARGE children cost at most this many times
# what they cost at SMALL: neither may load or sort rows it does not need.
SMALL = 10
MAX_GROWTH = 2.0
GROWTH_CASES = ("claim_first", "claim_last", "check_complete")

CASES = (
    "service",
    "api",
    "check_complete",
    "check_mixed",
    "claim_first",
    "claim_last",
    "per_child",
    "per_child_lean",
    "floor",
)
# Cases whose query count must not grow with the number of children, beyond the extra
# INSERT statements the driver imposes on one bulk insert.
FLAT_CASES = ("service", "api", "check_complete", "check_mixed", "claim_first", "claim_last")


def configure_django(database_url: str) -> None:
    """Point the settings at the database before Django starts, then migrate it."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Production-like: DEBUG off (no query log on every cursor); the secret only has to exist,
    # and the test client speaks plain HTTP.
    os.environ["DEBUG"] = "False"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ["SECURE_SSL_REDIRECT"] = "False"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    # With DEBUG off WhiteNoise warns that static files were never collected; no page is served.
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers")

    import django

    django.setup()

    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@dataclass
class Fixture:
    """One context with ``n`` child components and a context session, in its own project."""

    scope: Any
    parent: Any
    components: list[Any]

    def child_rows(self) -> list[Any]:
        """Unsaved child sessions, exactly as the spawn step builds them."""
        from sessions_app.models import ExecutionMode, Session
        from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS

        return [
            Session(
                type=COMPONENT_TEST_SESSIONS,
                component=component,
                parent_session=self.parent,
                execution_mode=ExecutionMode.AGENTIC,
                agent=self.parent.agent,
                environment=self.parent.environment,
                project=self.scope.project,
                user=self.scope.user,
            )
            for component in self.components
        ]


@dataclass
class Measurement:
    case: str
    n: int
    runs_s: list[float] = field(default_factory=list)
    queries: int = 0
    inserts: int = 0
    expected_insert_batches: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def other_queries(self) -> int:
        return self.queries - self.inserts

    @property
    def driver_batches(self) -> int:
        """INSERTs beyond the first that the driver's parameter limit split off."""
        return max(self.inserts - 1, 0) if self.case in BULK_CASES else 0

    @property
    def flat_queries(self) -> int:
        return self.queries - self.driver_batches

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "n": self.n,
            "median_s": round(self.median_s, 6),
            "min_s": round(min(self.runs_s), 6),
            "runs_s": [round(run, 6) for run in self.runs_s],
            "queries": self.queries,
            "insert_statements": self.inserts,
            "other_statements": self.other_queries,
            "driver_insert_batches": self.driver_batches,
            "queries_without_driver_batches": self.flat_queries,
        }


BULK_CASES = ("service", "api", "floor")


BENCH_RUNNER = "bench-runner"


def _all_complete(children: list[Any], now: datetime) -> list[Any]:
    from sessions_app.models import SessionStatus

    for child in children:
        child.status = SessionStatus.COMPLETE
    return []


def _mixed(children: list[Any], now: datetime) -> list[Any]:
    """Active, complete, failed and cancelled in turn; of the failed, a third each with a
    reason in the state, one in the latest errored interaction (returned), none at all."""
    from sessions_app.models import SessionStatus

    with_reason = []
    for index, child in enumerate(children):
        child.status = (
            SessionStatus.ACTIVE,
            SessionStatus.COMPLETE,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        )[index % 4]
        if child.status == SessionStatus.FAILED:
            kind = (index // 4) % 3
            if kind == 0:
                child.state = {"error": f"state error {index}"}
            elif kind == 1:
                with_reason.append(child)
    return with_reason


def _unclaimed(children: list[Any], now: datetime) -> list[Any]:
    """Every child active and never leased: the first claim of a fresh spawn."""
    return []


def _last_claimable(children: list[Any], now: datetime) -> list[Any]:
    """Late in a run: every child but the last in spawn order is complete or held by a live
    lease of another runner (in turn); the last is active and free."""
    from datetime import timedelta

    from sessions_app.models import SessionStatus

    for index, child in enumerate(children[:-1]):
        if index % 2:
            child.runner, child.leased_until = "other-runner", now + timedelta(hours=1)
        else:
            child.status = SessionStatus.COMPLETE
    return []


LAYOUTS: dict[str, Callable[[list[Any], datetime], list[Any]]] = {
    "complete": _all_complete,
    "mixed": _mixed,
    "unclaimed": _unclaimed,
    "last_claimable": _last_claimable,
}


class Bench:
    def __init__(self, *, analyze: bool = True) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connection

        self.connection = connection
        # CaptureQueriesContext reads the connection's query log, which keeps the last 9,000
        # queries; the per-child baseline makes ~25 a child (125,000 at 5,000 children).
        connection.queries_log = deque(maxlen=10_000_000)
        self.user, _ = get_user_model().objects.get_or_create(username="spawn-bench")
        self.api_available = _api_available()
        self.analyze = analyze

    # -- data -------------------------------------------------------------------------------

    def fixture(self, n: int) -> Fixture:
        from components_app.models import Component, Project
        from core.scope import Scope
        from sessions_app.models import Agent, Environment, Session
        from sessions_app.workflows.session_types import CONTEXT_TESTING_SESSIONS

        project = Project.objects.create(name=f"bench {uuid.uuid4().hex[:8]}")
        project.members.add(self.user)
        context = Component.objects.create(
            project=project, name="Context", module_name="Bench.Context", type="context"
        )
        Component.objects.bulk_create(
            Component(
                project=project,
                name=f"C{index:05d}",
                module_name=f"Bench.C{index:05d}",
                type="module",
                priority=index % 7,
                parent_component=context,
            )
            for index in range(n)
        )
        components = list(
            Component.objects.filter(parent_component=context).order_by("-priority", "name")
        )
        parent = Session.objects.create(
            project=project,
            user=self.user,
            type=CONTEXT_TESTING_SESSIONS,
            component=context,
            agent=Agent.CLAUDE_CODE,
            environment=Environment.VSCODE,
        )
        return Fixture(Scope(user=self.user, project=project), parent, components)

    def spawned_fixture(self, n: int, *, layout: str) -> Fixture:
        """A fixture whose children exist already, in one of the ``LAYOUTS``."""
        from django.utils import timezone

        from sessions_app.models import Interaction, Session

        fixture = self.fixture(n)
        children = fixture.child_rows()
        now = timezone.now()
        with_reason = LAYOUTS[layout](children, now)
        Session.objects.bulk_create(children)
        Interaction.objects.bulk_create(
            Interaction(
                session=child,
                step_name="RunTests",
                command={"module": "RunTests", "command": "run"},
                result={"status": "error", "error_message": f"tests failed in {child.pk}"},
                completed_at=now,
            )
            for child in with_reason
        )
        self.refresh_statistics()
        return fixture

    def refresh_statistics(self) -> None:
        """On PostgreSQL, the planner's statistics for the rows just built (outside any
        timing), as autovacuum would give them within a minute: measured against the stale
        statistics of a table that held a few rows, a plan depends on the database's history,
        not on the code (see docs/performance.md, "Statistics")."""
        if self.connection.vendor != "postgresql" or not self.analyze:
            return
        with self.connection.cursor() as cursor:
            for table in ("components_app_component", "sessions_app_session"):
                cursor.execute(f"ANALYZE {table}")

    def discard(self, fixture: Fixture) -> None:
        from components_app.models import Project
        from sessions_app.models import Interaction, Session

        Interaction.objects.filter(session__project=fixture.scope.project).delete()
        Session.objects.filter(project=fixture.scope.project).delete()
        Project.objects.filter(pk=fixture.scope.project.pk).delete()

    # -- the cases --------------------------------------------------------------------------

    def prepare(self, case: str, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        """Fresh data for one run of ``case``, the measured call, and its sanity check."""
        return getattr(self, f"_case_{case}")(n)

    def _case_check_complete(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        return self._check(n, layout="complete", expected="ok")

    def _case_check_mixed(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        return self._check(n, layout="mixed", expected="error")

    def _check(
        self, n: int, *, layout: str, expected: str
    ) -> tuple[Fixture, Callable[[], Any], Callable]:
        from sessions_app import services

        fixture = self.spawned_fixture(n, layout=layout)

        def run() -> Any:
            return services.check_child_sessions(scope=fixture.scope, session_id=fixture.parent.pk)

        return fixture, run, lambda result: _expect(result.status == expected, f"check {layout}")

    def _case_claim_first(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        return self._claim(n, layout="unclaimed", position=0)

    def _case_claim_last(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        return self._claim(n, layout="last_claimable", position=n - 1)

    def _claim(
        self, n: int, *, layout: str, position: int
    ) -> tuple[Fixture, Callable[[], Any], Callable]:
        """``claim_child`` on a context whose claimable child is at ``position`` in spawn
        order; the sanity check asks that exactly that child was leased."""
        from sessions_app import services

        fixture = self.spawned_fixture(n, layout=layout)
        wanted = fixture.components[position].pk

        def run() -> Any:
            return services.claim_child(
                scope=fixture.scope,
                session_id=fixture.parent.pk,
                runner=BENCH_RUNNER,
                lease_seconds=60,
            )

        def check(claimed: Any) -> None:
            _expect(claimed is not None, f"{layout}: nothing claimed")
            child, interaction = claimed
            _expect(child.component_id == wanted, f"{layout}: claimed the wrong child")
            _expect(child.runner == BENCH_RUNNER and interaction.is_pending, f"{layout}: lease")

        return fixture, run, check

    def _spawn_fixture(self, n: int) -> tuple[Fixture, Callable]:
        from sessions_app.models import Session

        fixture = self.fixture(n)

        def created(_: Any) -> None:
            count = Session.objects.filter(parent_session=fixture.parent).count()
            _expect(count == n, "children created")

        return fixture, created

    def _case_service(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        from sessions_app import services

        fixture, created = self._spawn_fixture(n)

        def run() -> Any:
            return services.spawn_child_sessions(scope=fixture.scope, session_id=fixture.parent.pk)

        return fixture, run, created

    def _case_api(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        from rest_framework.test import APIClient

        fixture, created = self._spawn_fixture(n)
        client = APIClient()
        client.force_authenticate(user=self.user)
        path = f"/api/sessions/{fixture.parent.pk}/spawn/"

        def run() -> Any:
            response = client.post(path, format="json")
            _expect(response.status_code == 200, f"api answered {response.status_code}")
            return response

        return fixture, run, created

    def _case_per_child(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        from django.db import transaction

        from sessions_app import services
        from sessions_app.workflows.session_types import COMPONENT_TEST_SESSIONS

        fixture, created = self._spawn_fixture(n)

        def run() -> Any:
            with transaction.atomic():
                return [
                    services.create_session(
                        scope=fixture.scope,
                        type=COMPONENT_TEST_SESSIONS,
                        component=component,
                        parent_session=fixture.parent,
                        execution_mode="agentic",
                        agent=fixture.parent.agent,
                        environment=fixture.parent.environment,
                    )
                    for component in fixture.components
                ]

        return fixture, run, created

    def _case_per_child_lean(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        from django.db import transaction

        from sessions_app.workflows.steps.spawn_component_testing_sessions import (
            _LOADED_RELATIONS,
        )

        fixture, created = self._spawn_fixture(n)

        def run() -> Any:
            with transaction.atomic():
                for child in fixture.child_rows():
                    child.full_clean(
                        exclude=_LOADED_RELATIONS,
                        validate_unique=False,
                        validate_constraints=False,
                    )
                    child.save(force_insert=True)

        return fixture, run, created

    def _case_floor(self, n: int) -> tuple[Fixture, Callable[[], Any], Callable]:
        from django.db import transaction

        from sessions_app.models import Session

        fixture, created = self._spawn_fixture(n)

        def run() -> Any:
            with transaction.atomic():
                return Session.objects.bulk_create(fixture.child_rows())

        return fixture, run, created

    def count(self, case: str, n: int) -> Measurement:
        """One run of ``case`` with its queries captured; it also warms up its code paths."""
        from django.test.utils import CaptureQueriesContext

        from sessions_app.models import Session

        measurement = Measurement(case, n)
        insert = f'INSERT INTO "{Session._meta.db_table}"'.upper()
        fixture, run, check = self.prepare(case, n)
        self.connection.queries_log.clear()
        try:
            with CaptureQueriesContext(self.connection) as captured:
                outcome = run()
            check(outcome)
        finally:
            self.discard(fixture)
        measurement.queries = len(captured.captured_queries)
        measurement.inserts = sum(
            1 for query in captured.captured_queries if query["sql"].upper().startswith(insert)
        )
        return measurement

    def time_once(self, case: str, n: int) -> float:
        """One timed run of ``case`` on fresh data, queries not captured."""
        fixture, run, check = self.prepare(case, n)
        # Every run starts with no garbage left by the setup or by the run before it.
        gc.collect()
        try:
            started = time.perf_counter()
            outcome = run()
            elapsed = time.perf_counter() - started
            check(outcome)
        finally:
            self.discard(fixture)
        return elapsed

    def insert_batch_rows(self, n: int = 10**6) -> int:
        """The most child sessions the driver takes in one INSERT (``n`` when unlimited)."""
        from sessions_app.models import Session

        return self.connection.ops.bulk_batch_size(Session._meta.concrete_fields, [None] * n) or n

    def expected_insert_batches(self, n: int) -> int:
        """How many INSERT statements the driver splits one bulk insert of ``n`` children into."""
        return math.ceil(n / max(self.insert_batch_rows(n), 1))


def _api_available() -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve(f"/api/sessions/{uuid.uuid4()}/spawn/")
    except Resolver404:
        return False
    return True


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {what}")


# -- targets --------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    detail: str
    passed: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]


def evaluate(
    results: dict[tuple[str, int], Measurement], growth: dict[str, Growth], sizes: list[int]
) -> list[Target]:
    targets: list[Target] = []
    for case in FLAT_CASES:
        counts = {n: results[(case, n)].flat_queries for n in sizes if (case, n) in results}
        if len(counts) < 2:
            targets.append(Target(f"{case} queries flat in N", "fewer than two sizes", None))
            continue
        described = ", ".join(f"{n}: {count}" for n, count in counts.items())
        targets.append(
            Target(
                f"{case} queries flat in N (beyond driver insert batches)",
                described,
                len(set(counts.values())) == 1,
            )
        )

    service, floor, baseline = (
        results.get((case, TARGET_SIZE)) for case in ("service", "floor", "per_child")
    )
    if service and floor:
        ratio = service.median_s / floor.median_s
        # The same ratio run by run (the two take turns), for judging the noise; not the target.
        paired = statistics.median(s / f for s, f in zip(service.runs_s, floor.runs_s, strict=True))
        targets.append(
            Target(
                f"service spawn <= {MAX_FLOOR_RATIO}x bulk-insert floor at {TARGET_SIZE}",
                f"{ratio:.2f}x ({_ms(service.median_s)} vs {_ms(floor.median_s)}; "
                f"run by run: median {paired:.2f}x)",
                ratio <= MAX_FLOOR_RATIO,
            )
        )
    else:
        targets.append(Target(f"service vs floor at {TARGET_SIZE}", "not measured", None))
    if service and baseline:
        speedup = baseline.median_s / service.median_s
        targets.append(
            Target(
                f"service spawn >= {MIN_BASELINE_SPEEDUP:g}x faster than per-child at "
                f"{TARGET_SIZE}",
                f"{speedup:.1f}x ({_ms(baseline.median_s)} vs {_ms(service.median_s)})",
                speedup >= MIN_BASELINE_SPEEDUP,
            )
        )
    else:
        targets.append(Target(f"service vs per-child at {TARGET_SIZE}", "not measured", None))

    for case in ("check_complete", "check_mixed"):
        measured = results.get((case, LARGE))
        targets.append(
            Target(
                f"{case} over {LARGE} children in <= {MAX_CHECK_QUERIES} queries",
                f"{measured.queries} queries" if measured else "not measured",
                measured.queries <= MAX_CHECK_QUERIES if measured else None,
            )
        )
    targets += [growth_target(results, growth, case) for case in GROWTH_CASES]
    return targets


@dataclass
class Growth:
    """Interleaved timed runs of one case at SMALL and at LARGE children, so that a burst of
    load elsewhere on the machine lands on both sizes instead of on one size's series."""

    case: str
    small_s: list[float] = field(default_factory=list)
    large_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.large_s) / statistics.median(self.small_s)

    @property
    def paired_ratio(self) -> float:
        return statistics.median(
            large / small for small, large in zip(self.small_s, self.large_s, strict=True)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "small_n": SMALL,
            "large_n": LARGE,
            "small_median_s": round(statistics.median(self.small_s), 6),
            "large_median_s": round(statistics.median(self.large_s), 6),
            "ratio_of_medians": round(self.ratio, 3),
            "median_paired_ratio": round(self.paired_ratio, 3),
            "small_runs_s": [round(run, 6) for run in self.small_s],
            "large_runs_s": [round(run, 6) for run in self.large_s],
        }


def measure_growth(bench: Bench, cases: list[str], rounds: int) -> dict[str, Growth]:
    growth = {case: Growth(case) for case in cases}
    for _ in range(rounds):
        for case in cases:
            growth[case].small_s.append(bench.time_once(case, SMALL))
            growth[case].large_s.append(bench.time_once(case, LARGE))
    for item in growth.values():
        print(f"  {item.case:<15} {LARGE} vs {SMALL}: {item.ratio:.2f}x", flush=True)
    return growth


def growth_target(
    results: dict[tuple[str, int], Measurement], growth: dict[str, Growth], case: str
) -> Target:
    name = f"{case} at {LARGE} children <= {MAX_GROWTH:g}x its time at {SMALL}"
    small, large, rounds = results.get((case, SMALL)), results.get((case, LARGE)), growth.get(case)
    if not (small and large and rounds):
        return Target(name, "not measured", None)
    return Target(
        name,
        f"{rounds.ratio:.2f}x ({_ms(statistics.median(rounds.large_s))} vs "
        f"{_ms(statistics.median(rounds.small_s))} over {len(rounds.small_s)} interleaved "
        f"rounds; run by run: median {rounds.paired_ratio:.2f}x; "
        f"{large.queries} vs {small.queries} queries)",
        rounds.ratio <= MAX_GROWTH,
    )


# -- output ---------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def render_table(measurements: list[Measurement]) -> str:
    header = (
        f"{'case':<15} {'N':>6} {'median':>11} {'runs':>4} {'queries':>7} "
        f"{'INSERTs':>7} {'other':>5} {'driver':>6} {'flat':>5}"
    )
    lines = [header, "-" * len(header)]
    for m in measurements:
        lines.append(
            f"{m.case:<15} {m.n:>6} {_ms(m.median_s):>11} {len(m.runs_s):>4} {m.queries:>7} "
            f"{m.inserts:>7} {m.other_queries:>5} {m.driver_batches:>6} {m.flat_queries:>5}"
        )
    return "\n".join(lines)


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="DATABASE_URL to measure on (default: a new temporary SQLite file)",
    )
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="numbers of children, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=7, help="timed runs per case and size (default: %(default)s)"
    )
    parser.add_argument(
        "--large-repeat",
        type=int,
        default=3,
        help=f"timed runs for N >= {LARGE} (default: %(default)s)",
    )
    parser.add_argument("--cases", default=",".join(CASES), help="cases to run, comma-separated")
    parser.add_argument(
        "--growth-rounds",
        type=int,
        default=9,
        help=f"interleaved timed runs at {SMALL} and {LARGE} children for the growth targets "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="PostgreSQL: keep the planner statistics as they are instead of refreshing "
        "them after each fixture",
    )
    parser.add_argument("--output", type=Path, help="JSON path (default: bench/results/...)")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.cases = [case.strip() for case in args.cases.split(",")]
    return args


def connect(database_url: str | None) -> str:
    """Configure Django on the given database, or on a new temporary SQLite file."""
    if database_url is None:
        scratch = Path(tempfile.mkdtemp(prefix="spawn-bench-"))
        database_url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    configure_django(database_url)
    return database_url


def runnable_cases(bench: Bench, cases: list[str]) -> list[str]:
    if "api" in cases and not bench.api_available:
        print("POST /api/sessions/{id}/spawn/ is not routed yet: skipping the api case")
        return [case for case in cases if case != "api"]
    return cases


def measure_size(
    bench: Bench, n: int, cases: list[str], repeat: int
) -> dict[tuple[str, int], Measurement]:
    """Every case at ``n`` children: one counted run each, then ``repeat`` timed rounds."""
    results: dict[tuple[str, int], Measurement] = {}
    for case in cases:
        measurement = bench.count(case, n)
        if case in BULK_CASES:
            measurement.expected_insert_batches = bench.expected_insert_batches(n)
            if measurement.inserts != measurement.expected_insert_batches:
                print(
                    f"note: {case} at {n} made {measurement.inserts} INSERTs; the driver's "
                    f"batch size predicts {measurement.expected_insert_batches}"
                )
        results[(case, n)] = measurement
    # Cases take turns in every repetition, so a burst of load elsewhere on the machine
    # lands on all of them rather than on one case's whole series.
    for _ in range(repeat):
        for case in cases:
            results[(case, n)].runs_s.append(bench.time_once(case, n))
    for case in cases:
        measurement = results[(case, n)]
        print(
            f"  {case:<15} N={n:<5} {_ms(measurement.median_s):>11}  {measurement.queries} queries",
            flush=True,
        )
    return results


def print_driver_note(vendor: str, batch: int) -> None:
    print()
    if batch < 10**6:
        print(
            f"{vendor} splits one bulk insert of sessions into INSERTs of at most {batch} rows "
            "(the driver's parameter limit): 'driver' counts those extra INSERT statements, "
            "'flat' is queries minus them."
        )
    else:
        print(f"{vendor} takes one bulk insert as one INSERT statement: 'driver' is 0.")


def print_targets(targets: list[Target]) -> None:
    print()
    for target in targets:
        print(f"[{target.verdict}] {target.name}: {target.detail}")


def write_report(
    path: Path,
    *,
    args: argparse.Namespace,
    database_url: str,
    batch: int,
    load_before: tuple[float, float, float],
    measurements: list[Measurement],
    growth: list[Growth],
    targets: list[Target],
) -> None:
    from django.db import connection

    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {
            "vendor": connection.vendor,
            "version": ".".join(map(str, connection.get_database_version())),
            "url": _redacted(database_url),
            "insert_batch_rows": batch if batch < 10**6 else None,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "django": __import__("django").get_version(),
        },
        "load_average_1_5_15_min": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "repetitions": {"default": args.repeat, f"n>={LARGE}": args.large_repeat},
        "method": (
            "per size: one counted run per case (queries captured; also a warm-up), then "
            "timed runs without capture, the cases taking turns, each on fresh data; the "
            "median is reported; DEBUG off"
        ),
        "statistics_refreshed_after_each_fixture": args.analyze
        and connection.vendor == "postgresql",
        "measurements": [m.as_dict() for m in measurements],
        "growth": [g.as_dict() for g in growth],
        "targets": [{"name": t.name, "detail": t.detail, "verdict": t.verdict} for t in targets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    database_url = connect(args.database_url)

    from django.db import connection

    bench = Bench(analyze=args.analyze)
    cases = runnable_cases(bench, args.cases)
    vendor = connection.vendor
    print(f"database: {vendor} ({_redacted(database_url)})")
    print(f"sizes: {args.sizes}; timed runs: {args.repeat} ({args.large_repeat} for N >= {LARGE})")

    load_before = os.getloadavg()
    results: dict[tuple[str, int], Measurement] = {}
    for n in args.sizes:
        repeat = args.large_repeat if n >= LARGE else args.repeat
        results.update(measure_size(bench, n, cases, repeat))
    growth_cases = [case for case in GROWTH_CASES if case in cases]
    growth = (
        measure_growth(bench, growth_cases, args.growth_rounds)
        if {SMALL, LARGE} <= set(args.sizes)
        else {}
    )
    measurements = [results[(case, n)] for case in cases for n in args.sizes]
    print()
    print(render_table(measurements))
    batch = bench.insert_batch_rows()
    print_driver_note(vendor, batch)

    targets = evaluate(results, growth, args.sizes)
    print_targets(targets)
    write_report(
        args.output or ROOT / "bench" / "results" / f"spawn-{vendor}.json",
        args=args,
        database_url=database_url,
        batch=batch,
        load_before=load_before,
        measurements=measurements,
        growth=list(growth.values()),
        targets=targets,
    )
    return 1 if any(target.passed is False for target in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
