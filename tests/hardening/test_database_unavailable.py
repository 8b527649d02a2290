"""While the database cannot serve (down, full, too slow), clients get a 503 with Retry-After
(JSON under /api/), and the next request after it is back is served, with no restart."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client

from core.unavailable import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from tests.admin.conftest import CHANGELIST
from tests.factories import make_user


@contextmanager
def failing_queries(when: Callable[[str], bool] = lambda sql: True) -> Iterator[None]:
    """Every query for which ``when(sql)`` holds fails as the driver reports an outage."""

    def fail(execute, sql, params, many, context):
        if when(sql):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield


def assert_unavailable_json(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_the_api_answers_503_json_while_the_database_is_down_and_recovers(api, context_session):
    with failing_queries():
        down = api.get("/api/sessions/")
    back = api.get("/api/sessions/")

    assert_unavailable_json(down)
    assert back.status_code == 200
    assert [row["id"] for row in back.json()["results"]] == [str(context_session.pk)]


def test_a_write_that_finds_the_disk_full_is_a_503(api):
    with failing_queries(lambda sql: sql.lstrip().upper().startswith("INSERT")):
        response = api.post("/api/projects/", {"name": "Shop"}, format="json")
        still_readable = api.get("/api/projects/")

    assert_unavailable_json(response)
    assert still_readable.status_code == 200


def test_the_admin_answers_a_plain_503(superuser_client):
    superuser_client.raise_request_exception = False
    with failing_queries():
        response = superuser_client.get(CHANGELIST)

    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == DATABASE_UNAVAILABLE
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert superuser_client.get(CHANGELIST).status_code == 200


def test_a_failure_outside_the_view_is_a_503_too(db):
    # Logging in works until the session is saved, which SessionMiddleware does after the
    # view has answered: only handler500 sees that error.
    make_user("operator", is_staff=True)
    client = Client(raise_request_exception=False)

    with failing_queries(lambda sql: "django_session" in sql and "SELECT" not in sql.upper()):
        response = client.post("/admin/login/", {"username": "operator", "password": "pw"})

    assert response.status_code == 503
    assert response.content.decode() == DATABASE_UNAVAILABLE


def test_other_server_errors_under_the_api_are_json(api, monkeypatch):
    api.raise_request_exception = False

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("components_app.services.create_project", broken)
    response = api.post("/api/projects/", {"name": "Shop"}, format="json")

    assert response.status_code == 500
    assert response.json() == {"detail": "Server error."}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a server to lose")
def test_a_server_that_stops_answering_is_a_503_and_its_return_is_served(api):
    settings_dict = connection.settings_dict
    real = settings_dict["HOST"], settings_dict["PORT"]
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(closed_port())
    try:
        down = api.get("/api/projects/")
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = real
    back = api.get("/api/projects/")

    assert_unavailable_json(down)
    assert back.status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="statement_timeout is PostgreSQL's")
def test_a_statement_timeout_is_a_503(api):
    def slow(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and "authtoken" not in sql:
            execute("SELECT pg_sleep(1)", None, False, context)
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 50")
    try:
        with connection.execute_wrapper(slow):
            response = api.get("/api/projects/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")

    assert_unavailable_json(response)
