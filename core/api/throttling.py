"""API rates: per user once authenticated, per address before, and per address for failed
authentication (a wrong token is refused before DRF's own throttles run, so they never
count it). Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, read when a
request is throttled, not when this module is imported: a rate of None turns one off."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from core.cache import CACHE_ERRORS
from core.clients import client_address

logger = logging.getLogger(__name__)


def _not_counted(scope: str, error: BaseException) -> None:
    # Failing open: while the shared cache is down the API keeps serving, its rates uncounted
    # (and /health/ says so), rather than answering every authenticated request with an error.
    logger.warning(
        "throttle %s not counted: the cache is unreachable (%s: %s)",
        scope,
        type(error).__name__,
        error,
    )


class _RatesFromSettings:
    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except CACHE_ERRORS as error:
            _not_counted(self.scope, error)
            return True

    def get_ident(self, request: Request) -> str:
        return client_address(request)


class UserThrottle(_RatesFromSettings, UserRateThrottle):
    """Scope ``user``: each authenticated user's requests."""


class AnonThrottle(_RatesFromSettings, AnonRateThrottle):
    """Scope ``anon``: requests without credentials, per address (the views open to them)."""


class FailedAuthenticationThrottle(_RatesFromSettings, SimpleRateThrottle):
    """Scope ``auth_failure``: refused credentials, per address. Unlike the other throttles
    it counts only failures, so a client that authenticates is never slowed by it."""

    scope = "auth_failure"

    def get_cache_key(self, request: Request, view: Any = None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def wait_before_trying(self, request: Request) -> float | None:
        """Seconds this address must wait before its credentials are looked at again, or None
        while it has failed fewer times than the rate allows."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        try:
            self.history = self.cache.get(self.key, [])
        except CACHE_ERRORS as error:
            _not_counted(self.scope, error)
            self.history = []
            return None
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return self.wait() if len(self.history) >= self.num_requests else None

    def record_failure(self, request: Request) -> None:
        if self.wait_before_trying(request) is None and self.rate is not None:
            self.history.insert(0, self.now)
            try:
                self.cache.set(self.key, self.history, self.duration)
            except CACHE_ERRORS as error:
                _not_counted(self.scope, error)


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token check, behind the failed-authentication throttle: an address that sent too
    many wrong tokens lately gets a 429 with ``Retry-After`` without its token being looked
    up, however right the next one is."""

    def authenticate(self, request: Request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].lower() != self.keyword.lower().encode():
            return None
        throttle = FailedAuthenticationThrottle()
        wait = throttle.wait_before_trying(request)
        if wait is not None:
            raise Throttled(wait)
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise
