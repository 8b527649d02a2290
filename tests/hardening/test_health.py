"""GET /health/: 200 when the database answers and every migration is applied, else 503."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from core import health
from core.unavailable import RETRY_AFTER_SECONDS
from tests.hardening.test_database_unavailable import failing_queries


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)


def test_healthy(client, db, django_assert_max_num_queries):
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migrations": "ok",
        "cache": "ok",
    }
    assert "no-cache" in response["Cache-Control"]
    assert not response.cookies
    # Once migrations were found applied, a poll is one query.
    with django_assert_max_num_queries(1):
        assert client.get("/health/").status_code == 200


def test_the_database_down_is_a_503(client, db):
    with failing_queries():
        response = client.get("/health/")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable: OperationalError",
        "migrations": "unknown",
        "cache": "ok",
    }
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert client.get("/health/").status_code == 200


def test_unapplied_migrations_are_a_503_naming_them(client, db, monkeypatch):
    monkeypatch.setattr(health, "unapplied_migrations", lambda: ["sessions_app.0099_next"])

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["migrations"] == "1 unapplied: sessions_app.0099_next"


def test_unapplied_migrations_are_found(db):
    assert health.unapplied_migrations() == []
    MigrationRecorder(connection).migration_qs.filter(app="sessions_app").delete()

    assert "sessions_app.0001_initial" in health.unapplied_migrations()


def test_only_reads(client, db):
    assert client.post("/health/").status_code == 405
