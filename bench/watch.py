"""Benchmark: what watching a run costs, at a small and a large number of children.

A run's watchers are the operator's pages and the runner's polls. For each size it builds a
run the way a real one looks halfway (half the children complete with a verification, a tenth
failed with a reason, the rest running, some of them stalled; five steps each with their cost)
and measures, through Django's test client with DEBUG off, answers included:

- ``run_page``: the admin's run page, ``/admin/sessions_app/session/<id>/run/``;
- ``run_live``: its live fragment, what the page fetches every 2 s while something changed;
- ``children_page``: ``GET /api/sessions/{id}/children/``, its first page;
- ``session_list``: the admin's session list, ``/admin/sessions_app/session/``;
- ``dashboard``: the operator's dashboard, ``/``;
- ``result_check``: ``POST .../interactions/{id}/result/`` of the spawn step once every child
  is complete (the all-complete result check and the session JSON it answers);
- ``claim_child``: ``POST .../claim-child/`` when the free child is the last in spawn order.

The two writes run inside a transaction rolled back after each run, so every run sees the same
data. Each case runs once with its queries counted (which also warms it up), then
``--repeat`` times timed; the median is reported with the answer's size.

    .venv/bin/python bench/watch.py                      # a temporary SQLite file
    .venv/bin/python bench/watch.py --database-url postgres://bench:bench@localhost/watch

Targets: every case at the large size within 2x of its cost at the small one (the pages'
small size is 100 children, the runner's polls' 10), and the run page under 300 KiB at the
large size. Prints a table, writes JSON (default ``bench/results/watch-<database>.json``) and
exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spawn import ROOT, _redacted, configure_django

PAGE_CASES = ("run_page", "run_live", "children_page", "session_list", "dashboard")
POLL_CASES = ("result_check", "claim_child")
CASES = PAGE_CASES + POLL_CASES
LARGE = 5000
PAGE_SMALL = 100
POLL_SMALL = 10
MAX_GROWTH = 2.0
MAX_RUN_PAGE_BYTES = 300 * 1024
STEPS = ("Initialize", "GenerateTestsAndFixtures", "RunTests", "VerifyTests", "Finalize")


@dataclass
class Measurement:
    case: str
    n: int
    runs_s: list[float] = field(default_factory=list)
    queries: int = 0
    bytes: int = 0
    status: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "n": self.n,
            "median_s": round(self.median_s, 6),
            "min_s": round(min(self.runs_s), 6),
            "runs_s": [round(run, 6) for run in self.runs_s],
            "queries": self.queries,
            "bytes": self.bytes,
            "status": self.status,
        }


class Run:
    """One project with a context of ``n`` child components and a context session whose
    children exist, laid out as a run halfway through (``mixed``) or at its end
    (``complete``, with the spawn step's interaction pending for the result check; ``claim``:
    the same but the last child in spawn order active and free)."""

    def __init__(self, user: Any, n: int, layout: str) -> None:
        from django.contrib.auth.models import Permission
        from django.test import Client

        from components_app.models import Component, Project
        from core.scope import Scope
        from sessions_app import services
        from sessions_app.models import Agent, Environment

        self.n, self.layout = n, layout
        project = Project.objects.create(name=f"watch {layout} {n}")
        project.members.add(user)
        # The pages are read by a staff member of this project alone, so that a list sees
        # this run and nothing the bench built for another size.
        self.operator = type(user).objects.create_user(
            username=f"operator-{layout}-{n}", is_staff=True
        )
        self.operator.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="sessions_app", codename__startswith="view_"
            )
        )
        project.members.add(self.operator)
        self.page_client = Client()
        self.page_client.force_login(self.operator)
        self.scope = Scope(user=user, project=project)
        context = Component.objects.create(
            project=project, name="Context", module_name="watch.context", type="context"
        )
        Component.objects.bulk_create(
            Component(
                project=project,
                name=f"C{index:05d}",
                module_name=f"watch.context.c{index:05d}",
                type="module",
                priority=index % 7,
                parent_component=context,
            )
            for index in range(n)
        )
        self.session = services.create_session(
            scope=self.scope,
            type="ContextTestingSessions",
            component=context,
            agent=Agent.CLAUDE_CODE,
            environment=Environment.VSCODE,
        )
        self._to_spawn()
        if layout in ("complete", "claim"):
            self._all_complete()
        else:
            self._halfway()

    def _to_spawn(self) -> None:
        from sessions_app import services
        from sessions_app.workflows.types import Result

        sid = self.session.pk
        while True:
            interaction, _ = services.next_command(scope=self.scope, session_id=sid)
            if interaction.step_name == "SpawnComponentTestingSessions":
                self.spawn_interaction = interaction
                return
            services.submit_result(
                scope=self.scope,
                session_id=sid,
                interaction_id=interaction.pk,
                result=Result(status="ok", code=0),
            )

    def _children(self) -> list[Any]:
        from sessions_app import selectors

        return list(selectors.spawned_children(session=self.session))

    def _all_complete(self) -> None:
        from sessions_app.models import Session, SessionStatus

        Session.objects.filter(parent_session=self.session).update(status=SessionStatus.COMPLETE)
        if self.layout == "claim":
            # The last child in spawn order is free, every other one complete: the claim must
            # look past all of them.
            last = self._children()[-1]
            Session.objects.filter(pk=last.pk).update(status=SessionStatus.ACTIVE)

    def _halfway(self) -> None:
        from django.utils import timezone

        from sessions_app import services
        from sessions_app.models import Interaction, Session, SessionStatus, Verification

        now = timezone.now()
        children = self._children()
        interactions, verifications = [], []
        for index, child in enumerate(children):
            if index % 10 == 0:
                child.status = SessionStatus.FAILED
                child.state = {"error": f"RunTests failed 3 times: tests failed in c{index}"}
            elif index % 2:
                child.status = SessionStatus.COMPLETE
            elif index % 10 == 2:
                child.runner, child.leased_until = "dead-runner", now - timedelta(minutes=5)
            else:
                child.runner, child.leased_until = "runner-a", now + timedelta(minutes=5)
            started = now - timedelta(minutes=30) + timedelta(seconds=index % 600)
            # Steps of 40 to 80 seconds, to the millisecond, different from child to child as
            # real ones are.
            length = timedelta(seconds=40 + (index * 7) % 41, milliseconds=index % 997)
            done = STEPS if child.status != SessionStatus.ACTIVE else STEPS[:3]
            for position, step in enumerate(done):
                finished = child.status != SessionStatus.ACTIVE or position < len(done) - 1
                interactions.append(
                    Interaction(
                        session=child,
                        step_name=step,
                        command={"module": step, "command": f"run {step}"},
                        result={"status": "ok", "code": 0, "duration_ms": 4000}
                        if finished
                        else None,
                        completed_at=started + length * (position + 1) if finished else None,
                        cost_usd="0.070000" if step == "GenerateTestsAndFixtures" else None,
                    )
                )
        Session.objects.bulk_update(children, ["status", "state", "runner", "leased_until"])
        Interaction.objects.bulk_create(interactions, batch_size=2000)
        # Interaction.created_at is auto_now_add: spread the steps over the half hour.
        for interaction in interactions:
            if interaction.completed_at is not None:
                interaction.created_at = interaction.completed_at - timedelta(seconds=30)
        Interaction.objects.bulk_update(interactions, ["created_at"], batch_size=2000)
        # Bulk inserts go around submit_result: the sessions' usage totals and step times and
        # the project's cost per day are made from the steps, as results would have kept them.
        services.recount_from_steps(Session.objects.filter(pk__in=[c.pk for c in children]))
        services.recount_daily_costs([self.session.project_id])
        by_session = {}
        for interaction in interactions:
            if interaction.step_name == "VerifyTests" and interaction.completed_at:
                by_session[interaction.session_id] = interaction
        for child in children:
            if child.status == SessionStatus.COMPLETE and child.pk in by_session:
                verifications.append(
                    Verification(
                        session=child,
                        interaction=by_session[child.pk],
                        passed=True,
                        runs=[0, 0, 0],
                        lines_total=120,
                        lines_covered=110,
                        line_coverage="91.6",
                    )
                )
        Verification.objects.bulk_create(verifications, batch_size=2000)
        for verification in verifications:
            verification.session.latest_verification = verification
        Session.objects.bulk_update(
            [verification.session for verification in verifications],
            ["latest_verification"],
            batch_size=2000,
        )


class Bench:
    def __init__(self) -> None:
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        # Production serves hashed static files collected beforehand; their names are not what
        # is measured, so the pages link the plain names.
        settings.STORAGES = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        from rest_framework.authtoken.models import Token

        self.connection = connection
        self.user = get_user_model().objects.create_superuser(
            username=f"watch-bench-{time.time_ns()}", password=None
        )
        token, _ = Token.objects.get_or_create(user=self.user)
        self.api_headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
        self.api_client = Client()
        self.runs: dict[tuple[int, str], Run] = {}

    def run(self, n: int, layout: str) -> Run:
        if (n, layout) not in self.runs:
            self.runs[(n, layout)] = Run(self.user, n, layout)
            if self.connection.vendor == "postgresql":
                with self.connection.cursor() as cursor:
                    cursor.execute("ANALYZE")
        return self.runs[(n, layout)]

    def request(self, case: str, n: int, *, check: bool = False) -> tuple[int, int]:
        """Make one request of ``case`` at size ``n``; its status and the answer's bytes.
        ``check``: also read the result check's verdict from the answer (the runner's side,
        outside the timed runs)."""
        from django.db import transaction

        if case in POLL_CASES:
            run = self.run(n, "complete" if case == "result_check" else "claim")
            sid = run.session.pk
            with transaction.atomic():
                if case == "result_check":
                    path = f"/api/sessions/{sid}/interactions/{run.spawn_interaction.pk}/result/"
                    body = {"status": "ok"}
                else:
                    path = f"/api/sessions/{sid}/claim-child/"
                    body = {"runner": "bench", "lease_seconds": 300}
                response = self.api_client.post(
                    path, json.dumps(body), content_type="application/json", **self.api_headers
                )
                transaction.set_rollback(True)
            if check and case == "result_check" and response.status_code == 200:
                verdict = response.json()["interaction"]["result"]
                if verdict["status"] != "ok":
                    raise SystemExit(f"the result check at {n} did not pass: {verdict}")
            return response.status_code, len(response.content)
        run = self.run(n, "mixed")
        sid = run.session.pk
        path = {
            "run_page": f"/admin/sessions_app/session/{sid}/run/",
            "run_live": f"/admin/sessions_app/session/{sid}/run/live/",
            "children_page": f"/api/sessions/{sid}/children/",
            "session_list": "/admin/sessions_app/session/",
            "dashboard": "/",
        }[case]
        client = self.api_client if case == "children_page" else run.page_client
        headers = self.api_headers if case == "children_page" else {}
        response = client.get(path, **headers)
        return response.status_code, len(response.content)

    def measure(self, case: str, n: int, repeat: int) -> Measurement:
        from django.test.utils import CaptureQueriesContext

        measurement = Measurement(case, n)
        # The data is built before the queries are counted.
        self.run(n, {"result_check": "complete", "claim_child": "claim"}.get(case, "mixed"))
        with CaptureQueriesContext(self.connection) as captured:
            measurement.status, measurement.bytes = self.request(case, n, check=True)
        measurement.queries = len(captured.captured_queries)
        expected = {"claim_child": 200, "result_check": 200}.get(case, 200)
        if measurement.status != expected:
            raise SystemExit(f"{case} at {n}: HTTP {measurement.status}, expected {expected}")
        for _ in range(repeat):
            started = time.perf_counter()
            self.request(case, n)
            measurement.runs_s.append(time.perf_counter() - started)
        return measurement


@dataclass
class Target:
    what: str
    met: bool
    detail: str


def evaluate(results: dict[tuple[str, int], Measurement], large: int) -> list[Target]:
    targets = []
    for case in CASES:
        small = POLL_SMALL if case in POLL_CASES else PAGE_SMALL
        if (case, small) not in results or (case, large) not in results:
            continue
        ratio = results[(case, large)].median_s / results[(case, small)].median_s
        targets.append(
            Target(
                f"{case} at {large} within {MAX_GROWTH:g}x of {small}",
                ratio <= MAX_GROWTH,
                f"{ratio:.2f}x",
            )
        )
    if ("run_page", large) in results:
        size = results[("run_page", large)].bytes
        targets.append(
            Target(
                f"run page at {large} under {MAX_RUN_PAGE_BYTES // 1024} KiB",
                size < MAX_RUN_PAGE_BYTES,
                f"{size / 1024:.1f} KiB",
            )
        )
    return targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--output", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/watch.sqlite3"
        configure_django(database_url)
        from django.db import connection

        bench = Bench()
        results: dict[tuple[str, int], Measurement] = {}
        for case in args.cases:
            small = POLL_SMALL if case in POLL_CASES else PAGE_SMALL
            for n in (small, args.large):
                results[(case, n)] = bench.measure(case, n, args.repeat)
                m = results[(case, n)]
                print(
                    f"{case:14} {n:>6} {m.median_s * 1000:9.1f} ms {m.queries:4} queries "
                    f"{m.bytes / 1024:9.1f} KiB",
                    flush=True,
                )
        targets = evaluate(results, args.large)
        print()
        for target in targets:
            print(f"{'met   ' if target.met else 'MISSED'} {target.what}: {target.detail}")
        output = args.output or ROOT / "bench" / "results" / f"watch-{connection.vendor}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(
            json.dumps(
                {
                    "database": connection.vendor,
                    "database_url": _redacted(database_url),
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "repeat": args.repeat,
                    "results": [m.as_dict() for m in results.values()],
                    "targets": [vars(target) for target in targets],
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nwrote {output}")
        return 0 if all(target.met for target in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
