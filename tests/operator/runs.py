"""A context run with known numbers, for the run page and the dashboard to be checked against.

Four children in spawn order (User, Session, Token, Audit; see tests.conftest):

- User: complete, four steps ok: 10 s, 60 s, 30 s, 20 s (a 2 s gap between steps), so
  it took 126 s from its first step to its last result; its commands report 100 s in all.
- Session: failed in RunTests after Initialize (5 s) and GenerateTestsAndFixtures (40 s);
  RunTests errored after 15 s; it took 62 s. Reason "RunTests: 3 tests failed", with output.
- Token: active, on RunTests (pending), held by runner "w-1" whose lease expired: stalled.
- Audit: active, never started.

Eight finished steps in all (4 + 3 + 1) and one pending. Times are relative to ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus

TEST_OUTPUT = "FAILED tests/test_session.py::test_expiry - assert 3 == 4\n3 failed, 9 passed"
REASON = "RunTests: 3 tests failed"


@dataclass
class KnownRun:
    parent: Session
    children: dict[str, Session]
    start: datetime


def _step(
    session: Session,
    name: str,
    start: datetime,
    seconds: float | None,
    status: str = "ok",
    *,
    duration_ms: int | None = None,
    error: str | None = None,
) -> Interaction:
    interaction = Interaction.objects.create(
        session=session,
        step_name=name,
        command={"module": name, "command": name.lower()},
        result=None
        if seconds is None
        else {
            "status": status,
            "error_message": error,
            "duration_ms": duration_ms,
            "stdout": TEST_OUTPUT if status == "error" else "",
            "stderr": None,
        },
        completed_at=None if seconds is None else start + timedelta(seconds=seconds),
    )
    # created_at is set on insert; the run's history needs it in the past.
    Interaction.objects.filter(pk=interaction.pk).update(created_at=start)
    return interaction


def build_known_run(scope, context_session: Session, *, start: datetime | None = None) -> KnownRun:
    start = start or timezone.now() - timedelta(minutes=10)
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    children = {
        child.component.name: child
        for child in Session.objects.filter(parent_session=context_session).select_related(
            "component"
        )
    }
    at = start
    for name, seconds, measured in (
        ("Initialize", 10, 9_000),
        ("GenerateTestsAndFixtures", 60, 55_000),
        ("RunTests", 30, 27_000),
        ("Finalize", 20, 9_000),
    ):
        _step(children["User"], name, at, seconds, duration_ms=measured)
        at += timedelta(seconds=seconds + 2)
    at = start
    for name, seconds, status in (
        ("Initialize", 5, "ok"),
        ("GenerateTestsAndFixtures", 40, "ok"),
        ("RunTests", 15, "error"),
    ):
        _step(
            children["Session"],
            name,
            at,
            seconds,
            status,
            error=REASON if status == "error" else None,
        )
        at += timedelta(seconds=seconds + 1)
    _step(children["Token"], "Initialize", start, 4)
    _step(children["Token"], "RunTests", start + timedelta(seconds=5), None)

    finished = start + timedelta(seconds=126)
    Session.objects.filter(pk=children["User"].pk).update(
        status=SessionStatus.COMPLETE, updated_at=finished
    )
    Session.objects.filter(pk=children["Session"].pk).update(
        status=SessionStatus.FAILED,
        state={"error": REASON, "last_test_output": TEST_OUTPUT},
        updated_at=start + timedelta(seconds=62),
    )
    Session.objects.filter(pk=children["Token"].pk).update(
        runner="w-1", leased_until=timezone.now() - timedelta(minutes=2)
    )
    # The steps were written around the service: its totals are made from them.
    services.recount_from_steps(Session.objects.filter(project_id=context_session.project_id))
    return KnownRun(
        parent=context_session,
        children={name: Session.objects.get(pk=child.pk) for name, child in children.items()},
        start=start,
    )
