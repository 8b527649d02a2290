"""Retried writes never apply twice: an ``Idempotency-Key`` on a POST makes its retry answer
with the first answer instead of running again, per user, for 24 hours; a key reused for
another request is a 422; a request whose first try still runs is a 409. The database lost
between a write's commit and its answer (a 503 the client is told to retry) is injected for
real, by a commit that goes through and then raises."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from core.idempotency import IN_PROGRESS, INVALID_KEY, OTHER_REQUEST, fingerprint
from core.models import IdempotencyKey
from sessions_app import services
from sessions_app.models import Interaction, Session
from tests.api.conftest import client_for
from tests.factories import make_user

SESSIONS = "/api/sessions/"


def new_session(project, context) -> dict:
    return {
        "project": str(project.pk),
        "type": "ContextTestingSessions",
        "component": str(context.pk),
    }


def post(api, path, body, key):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeated_create_is_answered_with_the_first_answer_and_creates_nothing(
    api, project, context
):
    first = post(api, SESSIONS, new_session(project, context), "create-1")
    again = post(api, SESSIONS, new_session(project, context), "create-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Session.objects.filter(type="ContextTestingSessions").count() == 1


def test_without_a_key_a_repeated_create_creates_twice(api, project, context):
    api.post(SESSIONS, new_session(project, context), format="json")
    api.post(SESSIONS, new_session(project, context), format="json")

    assert Session.objects.filter(type="ContextTestingSessions").count() == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (SESSIONS, {"type": "ComponentTestSessions"}),  # another body
        ("/api/projects/", {"name": "Elsewhere"}),  # another path
    ],
)
def test_a_key_used_for_another_request_is_a_422(api, project, context, path, body):
    post(api, SESSIONS, new_session(project, context), "k")

    response = post(api, path, {**new_session(project, context), **body}, "k")

    assert response.status_code == 422
    assert response.json() == {"detail": OTHER_REQUEST}
    assert Session.objects.count() == 1


def test_keys_are_per_user(api, project, context):
    colleague = make_user("bob")
    project.members.add(colleague)

    mine = post(api, SESSIONS, new_session(project, context), "shared")
    theirs = post(client_for(colleague), SESSIONS, new_session(project, context), "shared")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "a\tb", "a\x7fb"])
def test_a_malformed_key_is_a_400_and_nothing_runs(api, project, context, key):
    response = post(api, SESSIONS, new_session(project, context), key)

    assert response.status_code == 400
    assert response.json() == {"detail": INVALID_KEY}
    assert not Session.objects.exists()


def test_a_key_of_255_printable_characters_is_taken(api, project, context):
    key = "~ !" + "k" * 252
    assert post(api, SESSIONS, new_session(project, context), key).status_code == 201


def test_a_request_that_failed_is_not_stored_and_runs_again(api, project, context):
    refused = post(api, SESSIONS, {**new_session(project, context), "type": "Nope"}, "k2")
    assert refused.status_code == 400

    fixed = post(api, SESSIONS, new_session(project, context), "k2")

    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed


def test_a_key_older_than_24_hours_is_a_new_request(api, project, context):
    post(api, SESSIONS, new_session(project, context), "old")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    again = post(api, SESSIONS, new_session(project, context), "old")

    assert again.status_code == 201
    assert Session.objects.count() == 2


def test_a_key_left_by_a_request_that_died_is_taken_over(api, user, project, context):
    """No answer and nothing running it (SQLite: the write lock is free; PostgreSQL: nobody
    holds its advisory lock): the first try died, and its writes rolled back with it."""
    body = json.dumps(new_session(project, context))
    IdempotencyKey.objects.create(
        user=user,
        key="died",
        fingerprint=fingerprint("POST", SESSIONS, body.encode()),
        started_at=timezone.now(),
    )

    response = api.post(
        SESSIONS, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="died"
    )

    assert response.status_code == 201
    assert Session.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a second connection")
def test_a_retry_while_the_first_try_runs_is_a_409(user, project, context):
    from core import idempotency

    body = json.dumps(new_session(project, context))
    record = IdempotencyKey.objects.create(
        user=user,
        key="running",
        fingerprint=fingerprint("POST", SESSIONS, body.encode()),
        started_at=timezone.now(),
    )
    holding, done = threading.Event(), threading.Event()

    def first_try() -> None:
        from django.db import transaction

        with transaction.atomic():
            idempotency.hold(record)
            holding.set()
            done.wait(30)
        connection.close()

    thread = threading.Thread(target=first_try)
    thread.start()
    try:
        assert holding.wait(30)
        response = client_for(user).post(
            SESSIONS, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="running"
        )
    finally:
        done.set()
        thread.join(30)

    assert response.status_code == 409
    assert response.json() == {"detail": IN_PROGRESS}
    assert not Session.objects.exists()


# --- the database lost between the commit and the answer -------------------------------------


@pytest.fixture
def answer_lost_after_commit(monkeypatch):
    """The next commit of a request's write goes through, then the connection "drops": the
    client gets a 503, and the write is stored. Once only."""
    commit = connection.commit
    lost = []

    def commit_then_drop() -> None:
        # Asked inside the transaction, before it commits: its answer is being stored.
        answered = not lost and IdempotencyKey.objects.filter(completed_at__isnull=False).exists()
        commit()
        if answered:
            lost.append(True)
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(connection, "commit", commit_then_drop)
    return lost


@pytest.mark.django_db(transaction=True)
def test_a_create_answered_503_after_its_commit_is_replayed_not_repeated(
    user, project, context, answer_lost_after_commit
):
    api = client_for(user)

    lost = post(api, SESSIONS, new_session(project, context), "c-1")
    assert lost.status_code == 503
    assert answer_lost_after_commit == [True]
    retried = post(api, SESSIONS, new_session(project, context), "c-1")

    assert retried.status_code == 201
    assert Session.objects.count() == 1
    assert retried.json()["id"] == str(Session.objects.get().pk)


@pytest.mark.django_db(transaction=True)
def test_a_result_answered_503_after_its_commit_is_replayed_not_a_409(
    scope, user, context_session, answer_lost_after_commit
):
    api = client_for(user)
    interaction, _ = services.next_command(scope=scope, session_id=context_session.pk)
    path = f"{SESSIONS}{context_session.pk}/interactions/{interaction.pk}/result/"

    assert post(api, path, {"status": "ok", "code": 0}, "r-1").status_code == 503
    retried = post(api, path, {"status": "ok", "code": 0}, "r-1")

    assert retried.status_code == 200, retried.content
    assert retried.json()["interaction"]["result"]["status"] == "ok"
    assert Interaction.objects.filter(session=context_session).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_answered_503_after_its_commit_gets_the_same_child(
    scope, user, context_session, answer_lost_after_commit
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    api = client_for(user)
    path = f"{SESSIONS}{context_session.pk}/claim-child/"

    assert post(api, path, {"runner": "r1"}, "claim-1").status_code == 503
    retried = post(api, path, {"runner": "r1"}, "claim-1")

    assert retried.status_code == 200
    claimed = Session.objects.filter(parent_session=context_session, runner="r1")
    assert list(claimed.values_list("pk", flat=True)) == [
        uuid.UUID(retried.json()["session"]["id"])
    ]


# --- deadlocks and serialization failures are run again ----------------------------------------


class _Sqlstate(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def losing_race(monkeypatch, times: int, sqlstate: str = "40P01"):
    """``services.cancel_session`` loses a race ``times`` times (the database reports a
    deadlock, as psycopg raises it under Django), then runs."""
    real = services.cancel_session
    calls = []

    def cancel(**kwargs):
        calls.append(kwargs)
        if len(calls) <= times:
            error = OperationalError("deadlock detected")
            error.__cause__ = _Sqlstate(sqlstate)
            raise error
        return real(**kwargs)

    monkeypatch.setattr(services, "cancel_session", cancel)
    return calls


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlocked_write_is_run_again_and_answers_as_if_nothing_happened(
    api, context_session, monkeypatch, sqlstate
):
    calls = losing_race(monkeypatch, 2, sqlstate)

    response = api.post(f"{SESSIONS}{context_session.pk}/cancel/")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert len(calls) == 3


def test_a_write_that_keeps_deadlocking_is_a_409_never_database_unavailable(
    api, context_session, monkeypatch
):
    calls = losing_race(monkeypatch, 100)

    response = api.post(f"{SESSIONS}{context_session.pk}/cancel/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The request kept conflicting with concurrent writes; try again"
    }
    assert len(calls) == 4
    assert Session.objects.get(pk=context_session.pk).status == "active"


def test_another_database_error_is_still_the_503(api, context_session, monkeypatch):
    calls = losing_race(monkeypatch, 1, sqlstate="08006")

    response = api.post(f"{SESSIONS}{context_session.pk}/cancel/")

    assert response.status_code == 503
    assert len(calls) == 1
