"""The shared cache (``CACHE_URL``) and what it raises when it cannot be reached.

The throttles count in it; several app servers share one (Redis in production). A cache
that is down must cost neither a request nor a process: the throttles fail open and
``/health/`` reports it.
"""

from __future__ import annotations

from django.core.cache import cache

#: What a cache backend raises when its server is unreachable, refuses or times out: the
#: file cache's ``OSError``; redis-py's ``RedisError`` (its connection and timeout errors).
CACHE_ERRORS: tuple[type[BaseException], ...] = (OSError,)
try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a dependency; a trimmed install may lack it
    pass
else:
    CACHE_ERRORS = (*CACHE_ERRORS, RedisError)

HEALTH_KEY = "spawnctl:health"


def cache_state() -> str:
    """``ok`` when the cache answers a read, else ``unreachable: <error>``."""
    try:
        cache.get(HEALTH_KEY)
    except CACHE_ERRORS as error:
        return f"unreachable: {type(error).__name__}"
    return "ok"
