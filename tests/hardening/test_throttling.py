"""API throttles and the admin's login lockout, turned on here (the rest of the suite runs
with both off, see tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core.lockout import LOCKED_OUT
from tests.api.conftest import client_for
from tests.factories import make_user

LOGIN = "/admin/login/"


@pytest.fixture
def rates(settings):
    """``rates(user=..., anon=..., auth_failure=...)`` turns those throttles on."""

    def turn_on(**scopes: str) -> None:
        cache.clear()
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None, "auth_failure": None, **scopes},
        }

    yield turn_on
    cache.clear()


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Request was throttled.")
    assert int(response["Retry-After"]) > 0


def wrong_token(address: str = "10.0.0.1", **extra: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=address, **extra)
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    return client


def test_each_user_gets_the_user_rate(rates, user, other_scope):
    rates(user="5/min")
    api, other = client_for(user), client_for(other_scope.user)

    answers = [api.get("/api/projects/").status_code for _ in range(5)]
    sixth = api.get("/api/projects/")

    assert answers == [200] * 5
    assert_throttled(sixth)
    assert other.get("/api/projects/").status_code == 200


def test_wrong_tokens_are_throttled_by_address_before_any_lookup(
    rates, user, django_assert_num_queries
):
    rates(auth_failure="3/min")
    attacker = wrong_token("10.0.0.1")

    answers = [attacker.get("/api/sessions/").status_code for _ in range(3)]
    with django_assert_num_queries(0):
        fourth = attacker.get("/api/sessions/")

    assert answers == [401] * 3
    assert_throttled(fourth)
    # Even the right token, from that address, waits out the period.
    right = client_for(user)
    right.defaults["REMOTE_ADDR"] = "10.0.0.1"
    assert_throttled(right.get("/api/sessions/"))
    # Another address is not held responsible.
    assert wrong_token("10.0.0.2").get("/api/sessions/").status_code == 401
    elsewhere = client_for(user)
    elsewhere.defaults["REMOTE_ADDR"] = "10.0.0.2"
    assert elsewhere.get("/api/sessions/").status_code == 200


def test_good_tokens_do_not_count_as_failures(rates, user):
    rates(auth_failure="2/min")
    api = client_for(user)

    assert [api.get("/api/projects/").status_code for _ in range(5)] == [200] * 5


def test_a_forwarded_for_header_is_ignored_without_a_trusted_proxy(rates, settings, db):
    rates(auth_failure="2/min")
    settings.TRUSTED_PROXY_COUNT = 0

    answers = [
        wrong_token("10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{hop}")
        .get("/api/projects/")
        .status_code
        for hop in range(4)
    ]

    assert answers == [401, 401, 429, 429]


def test_behind_a_trusted_proxy_the_address_it_saw_counts(rates, settings, db):
    rates(auth_failure="2/min")
    settings.TRUSTED_PROXY_COUNT = 1

    def from_client(address: str) -> int:
        # What the client wrote comes first; the proxy appends the address it saw.
        forwarded = f"203.0.113.9, {address}"
        return wrong_token("127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded).get("/api/").status_code

    assert [from_client("192.0.2.1") for _ in range(3)] == [401, 401, 429]
    assert from_client("192.0.2.2") == 401


def test_requests_without_credentials_get_the_anonymous_rate(rates, db):
    rates(anon="2/min")
    anonymous = APIClient(REMOTE_ADDR="10.0.0.3")

    answers = [anonymous.get("/api/").status_code for _ in range(2)]

    assert answers == [200, 200]
    assert_throttled(anonymous.get("/api/"))


@pytest.fixture
def lockout(settings, db):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    return settings


def login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_repeated_admin_login_failures_lock_the_username_out_from_that_address(client, lockout):
    make_user("operator", is_staff=True)

    # The failure that reaches the limit is already answered with the lockout.
    failures = [login(client, "operator", "wrong").status_code for _ in range(3)]
    locked = login(client, "operator", "pw")

    assert failures == [200, 200, 429]
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert locked.content.decode() == LOCKED_OUT.format(minutes=15, s="s")
    # Neither another username from that address nor the username from elsewhere is held.
    make_user("colleague", is_staff=True)
    assert login(client, "colleague", "pw").status_code == 302
    assert login(client, "operator", "pw", address="10.0.0.2").status_code == 302


def test_a_successful_login_starts_the_count_again(client, lockout):
    make_user("operator", is_staff=True)
    for _ in range(2):
        login(client, "operator", "wrong")
    assert login(client, "operator", "pw").status_code == 302
    client.logout()

    failures = [login(client, "operator", "wrong").status_code for _ in range(2)]

    assert failures == [200, 200]
    assert login(client, "operator", "pw").status_code == 302


def test_the_suite_runs_with_throttling_off(user):
    api = client_for(user)
    wrong = wrong_token()

    assert {api.get("/api/projects/").status_code for _ in range(30)} == {200}
    assert {wrong.get("/api/projects/").status_code for _ in range(30)} == {401}
