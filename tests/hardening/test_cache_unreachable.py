"""The shared cache (Redis with ``CACHE_URL=redis://...``) down: the API keeps answering, its
throttles uncounted and logged, and ``/health/`` says so without failing the check."""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import pytest
from django.core.cache import cache

from tests.api.conftest import client_for
from tests.hardening.test_throttling import assert_throttled, rates, wrong_token  # noqa: F401


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_at(port: int) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.fixture
def unreachable_redis(settings, rates):  # noqa: F811
    rates(user="3/min", auth_failure="2/min")
    settings.CACHES = redis_at(closed_port())
    yield
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_the_api_answers_while_the_cache_is_down_and_says_why_it_counts_nothing(
    unreachable_redis, user, caplog
):
    api = client_for(user)
    with caplog.at_level(logging.WARNING, logger="core.api.throttling"):
        answers = [api.get("/api/projects/").status_code for _ in range(5)]

    assert answers == [200] * 5  # over the 3/min rate: nothing could count them
    warned = [r.getMessage() for r in caplog.records if r.name == "core.api.throttling"]
    # Each request: the refused-token count the token check reads first, then the user's.
    for scope in ("auth_failure", "user"):
        said = f"throttle {scope} not counted: the cache is unreachable (ConnectionError: "
        assert sum(message.startswith(said) for message in warned) == 5


def test_a_refused_token_is_still_refused_while_the_cache_is_down(unreachable_redis, db):
    for _ in range(4):
        assert wrong_token().get("/api/projects/").status_code == 401


def test_health_reports_the_cache_without_failing(unreachable_redis, client, db):
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migrations": "ok",
        "cache": "unreachable: ConnectionError",
    }


@pytest.fixture
def live_redis(settings, tmp_path, rates):  # noqa: F811
    server = subprocess.run(["which", "redis-server"], capture_output=True, text=True)
    if server.returncode != 0:
        pytest.skip("redis-server is not installed")
    port = closed_port()
    process = subprocess.Popen(
        [server.stdout.strip(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings.CACHES = redis_at(port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                cache.get("probe")
                break
            except Exception:
                time.sleep(0.05)
        rates(user="3/min")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_throttles_count_in_redis_and_come_back_when_it_does(live_redis, user):
    api = client_for(user)
    answers = [api.get("/api/projects/") for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200] * 3
    assert_throttled(answers[3])
    assert any(
        key.startswith(b":1:throttle_user_") for key in cache._cache.get_client().scan_iter()
    )
