"""The dashboard's counts of finished sessions (``FinishedCount``): kept by the session table's
triggers through every kind of write, made again by ``recount_finished`` and by the migration
that added them, and read by the dashboard in quarter hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from components_app.models import Project
from sessions_app import services
from sessions_app.models import FinishedCount, Session, SessionStatus
from sessions_app.operator.dashboard import dashboards_for
from tests.factories import make_child, make_component

TRIGGERS = {
    "sessions_finished_on_insert",
    "sessions_finished_on_update",
    "sessions_finished_on_delete",
}


def kept(project) -> dict[tuple, int]:
    """The non-zero counts the triggers kept, by (quarter, status, is_run, is_component)."""
    rows = FinishedCount.objects.filter(project=project, count__gt=0)
    return {(r.quarter, r.status, r.is_run, r.is_component): r.count for r in rows}


def assert_kept_as_recounted(project) -> dict[tuple, int]:
    before = kept(project)
    services.recount_finished([project.pk])
    assert kept(project) == before
    return before


def at(session: Session, moment: datetime) -> None:
    Session.objects.filter(pk=session.pk).update(updated_at=moment)


def test_the_session_table_has_its_three_triggers(db):
    # A later migration that rebuilds the session table on SQLite (as many ALTERs do) drops its
    # triggers with it; this is the test that says so.
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'sessions_app_session'::regclass"
            )
        names = {row[0] for row in cursor.fetchall()}
    assert names >= TRIGGERS


def test_every_kind_of_write_keeps_the_counts(project, context_session):
    quarter = services.quarter_of(timezone.now())
    first, second, third = (make_child(context_session, make_component(project)) for _ in "abc")
    assert kept(project) == {}

    # A save through the ORM, a bulk update, a session created finished.
    first.status = SessionStatus.COMPLETE
    first.save()
    Session.objects.filter(pk=second.pk).update(status=SessionStatus.FAILED)
    make_child(context_session, make_component(project), status=SessionStatus.COMPLETE)
    assert assert_kept_as_recounted(project) == {
        (quarter, "complete", False, True): 2,
        (quarter, "failed", False, True): 1,
    }

    # Updated again a day later: it moves to the day it was last updated, as the dashboard
    # has always read a finished session's time.
    yesterday = timezone.now() - timedelta(days=1)
    at(first, yesterday)
    # Retried: failed -> active takes it off; cancelled never counts.
    Session.objects.filter(pk=second.pk).update(status=SessionStatus.ACTIVE)
    Session.objects.filter(pk=third.pk).update(status=SessionStatus.CANCELLED)
    # The run itself finishing is a run, not a component session.
    Session.objects.filter(pk=context_session.pk).update(status=SessionStatus.COMPLETE)
    assert assert_kept_as_recounted(project) == {
        (services.quarter_of(yesterday), "complete", False, True): 1,
        (quarter, "complete", False, True): 1,
        (quarter, "complete", True, False): 1,
    }

    # Deleted (the run and its children with it, by cascade).
    Session.objects.filter(pk=context_session.pk).delete()
    assert assert_kept_as_recounted(project) == {}


def test_a_count_never_goes_below_zero_when_its_row_was_lost(project, context_session):
    child = make_child(context_session, make_component(project), status=SessionStatus.FAILED)
    FinishedCount.objects.all().delete()  # e.g. a table restored without its rows

    Session.objects.filter(pk=child.pk).update(status=SessionStatus.ACTIVE)

    assert list(FinishedCount.objects.values_list("count", flat=True)) == []
    Session.objects.filter(pk=child.pk).update(status=SessionStatus.COMPLETE)
    assert list(FinishedCount.objects.values_list("count", flat=True)) == [1]


def test_a_projects_counts_go_with_it(project, context_session):
    make_child(context_session, make_component(project), status=SessionStatus.COMPLETE)
    assert FinishedCount.objects.filter(project=project).exists()

    Project.objects.filter(pk=project.pk).delete()

    assert not FinishedCount.objects.filter(project_id=project.pk).exists()


def test_the_quarter_is_the_one_the_triggers_count_in(project, context_session):
    child = make_child(context_session, make_component(project), status=SessionStatus.COMPLETE)
    for moment, start in (
        (datetime(2026, 12, 7, 18, 44, 59, 999999), datetime(2026, 12, 7, 18, 30)),
        (datetime(2026, 12, 7, 18, 45, 0), datetime(2026, 12, 7, 18, 45)),
        (datetime(2026, 12, 7, 0, 0, 1), datetime(2026, 12, 7, 0, 0)),
    ):
        moment, start = (value.replace(tzinfo=UTC) for value in (moment, start))
        at(child, moment)
        assert services.quarter_of(moment) == start
        assert set(kept(project)) == {(start, "complete", False, True)}


def test_the_dashboard_counts_the_last_24_hours_from_the_quarter_they_start_in(
    scope, project, context_session
):
    now = datetime(2026, 12, 7, 12, 7, tzinfo=UTC)
    ages = {"before": timedelta(hours=24, minutes=8), "edge": timedelta(hours=24, minutes=4)}
    ages["inside"] = timedelta(hours=23)
    for age in ages.values():
        child = make_child(context_session, make_component(project), status="complete")
        at(child, now - age)

    (board,) = dashboards_for(scope.user, now=now)

    # Yesterday 12:07 is in the quarter from 12:00: 12:03 counts with it, 11:59 does not.
    assert board.components_day.complete == 2
    assert board.components_week.complete == 3


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_sessions_finished_before_it(project, context_session):
    old = timezone.now() - timedelta(days=2)
    done = make_child(context_session, make_component(project), status=SessionStatus.COMPLETE)
    make_child(context_session, make_component(project), status=SessionStatus.FAILED)
    at(done, old)
    expected = kept(project)

    executor = MigrationExecutor(connection)
    executor.migrate([("sessions_app", "0009_step_times_and_daily_cost")])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert kept(project) == expected
    assert sum(expected.values()) == 2
    # And the triggers are back to keep counting.
    Session.objects.filter(pk=done.pk).update(status=SessionStatus.FAILED)
    assert {key[1] for key in kept(project)} == {"failed"}
    assert sum(kept(project).values()) == 2
