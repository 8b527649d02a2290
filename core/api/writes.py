"""How the API runs a write: with an ``Idempotency-Key``, at most once per key (see
``core.idempotency``); and through a deadlock or a serialization failure, by running it again
(a bounded number of times) instead of answering that the database is unavailable."""

from __future__ import annotations

import contextlib
import io
import random
import time
from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import APIException

from core import idempotency
from core.api.exceptions import status_of
from core.errors import ServiceError

# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race, and
# the same request run again will most likely pass.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 4
KEPT_CONFLICTING = "The request kept conflicting with concurrent writes; try again"
# The largest body any route reads (the bulk import's); a route's parser applies its own.
MAX_BUFFERED_BODY = 10 * 1024 * 1024 + 1
UNSAFE_METHODS = ("POST", "PATCH", "DELETE")

Dispatch = Callable[[], HttpResponse]


def is_retryable(error: BaseException) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def buffer_body(request: HttpRequest) -> bytes:
    """Read the body once, so that the request can be run (and its body parsed) again."""
    body = request.read(MAX_BUFFERED_BODY)
    rewind(request, body)
    return body


def rewind(request: HttpRequest, body: bytes) -> None:
    request._stream = io.BytesIO(body)
    request._read_started = False
    if hasattr(request, "_body"):
        del request._body


def run_write(request: HttpRequest, body: bytes, dispatch: Dispatch) -> HttpResponse:
    """``dispatch`` run again after a deadlock or a serialization failure (with a short random
    pause), at most ``WRITE_ATTEMPTS`` times; then a 409 that says so."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        rewind(request, body)
        try:
            return dispatch()
        except DatabaseError as error:
            if not is_retryable(error):
                raise
            if attempt == WRITE_ATTEMPTS:
                return JsonResponse({"detail": KEPT_CONFLICTING}, status=409)
        time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def run_idempotent(
    request: HttpRequest, body: bytes, key: str, user: AbstractBaseUser, dispatch: Dispatch
) -> HttpResponse:
    """The stored answer to this user's earlier request with ``key``; else the request run
    once, its success stored in the transaction of its write."""
    try:
        started = idempotency.begin(
            user=user,
            key=key,
            fingerprint=idempotency.fingerprint(request.method, request.get_full_path(), body),
        )
    except ServiceError as error:
        return JsonResponse({"detail": error.message}, status=status_of(error))
    if isinstance(started, idempotency.Answer):
        replayed = HttpResponse(
            started.body, status=started.status, content_type=started.content_type or None
        )
        replayed["Idempotent-Replayed"] = "true"
        return replayed

    def once() -> HttpResponse:
        with transaction.atomic():
            idempotency.hold(started)
            response = dispatch()
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            if 200 <= response.status_code < 300:
                idempotency.complete(
                    record=started,
                    status=response.status_code,
                    body=response.content,
                    content_type=response.get("Content-Type", ""),
                )
            else:
                # Nothing to replay: whatever it did is undone, and a retry runs it again.
                transaction.set_rollback(True)
        return response

    try:
        response = run_write(request, body, once)
    except DatabaseError:
        _release_quietly(started)
        raise
    if not 200 <= response.status_code < 300:
        _release_quietly(started)
    return response


def _release_quietly(record) -> None:
    # With the database away the key stays unanswered, and a retry takes it over once nothing
    # holds it (core.idempotency).
    with contextlib.suppress(DatabaseError):
        idempotency.release(record=record)


def authenticated_user(authenticate: Callable[[], object]) -> AbstractBaseUser | None:
    """The request's user, or None when it has none (DRF then answers 401 its own way)."""
    try:
        user = authenticate()
    except APIException:
        return None
    return user if getattr(user, "is_authenticated", False) else None
