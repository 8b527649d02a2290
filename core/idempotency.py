"""Retried writes never apply twice: the rules of the ``Idempotency-Key`` header, as Stripe's
API keeps them.

A user's POST with a key is recorded before it runs (``begin``, a transaction of its own, so
that a second try that arrives while the first runs sees it). The request then runs in one
transaction with ``complete``, which stores its answer: the write and the record of its answer
commit together or not at all, so a client that lost the answer to a committed write (the
database gone between the commit and the answer) gets that answer on its retry, and a write
that did not commit leaves no answer to replay. Only a success is stored: any other answer
changed nothing, and the key is released (``release``) so a retry runs again.

Keys are per user and live 24 hours. A record without an answer whose request is no longer
running belongs to a request that died (its transaction rolled back with it): a retry takes it
over. Whether it still runs is known for sure: on PostgreSQL the running request holds an
advisory lock for its transaction (``hold``); on SQLite it holds the database's write lock
for its whole transaction, so a retry can only look once it has ended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput, StepError
from core.models import IDEMPOTENCY_KEY_MAX_LENGTH, IdempotencyKey

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
INVALID_KEY = f"{HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"
OTHER_REQUEST = f"{HEADER} was used for a different request"
IN_PROGRESS = f"A request with this {HEADER} is in progress"


def key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all(
        " " <= char <= "~" for char in key
    ):
        return INVALID_KEY
    return None


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Answer:
    """A stored answer, to send again."""

    status: int
    body: bytes
    content_type: str


def hold(record: IdempotencyKey) -> None:
    """Inside the transaction that runs the request: say, for as long as it runs, that it
    runs (PostgreSQL's advisory lock on the record; SQLite's write lock already says it)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [record.pk])


def _still_running(record: IdempotencyKey, now) -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [record.pk])
            return not cursor.fetchone()[0]
    if connection.vendor == "sqlite":
        return False
    return record.started_at > now - timedelta(seconds=settings.IDEMPOTENCY_ABANDONED_SECONDS)


def begin(*, user: AbstractBaseUser, key: str, fingerprint: str) -> IdempotencyKey | Answer:
    """Record that ``user``'s request with ``key`` starts now: the record to ``complete``, or
    the answer the first try got. Raises ``InvalidInput`` for a malformed key, ``StepError``
    (422) for a key used for another request, ``Conflict`` (409) while the first try runs."""
    if problem := key_problem(key):
        raise InvalidInput(problem)
    now = timezone.now()
    with transaction.atomic():
        IdempotencyKey.objects.filter(user=user, created_at__lt=now - LIFETIME).delete()
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    user=user, key=key, fingerprint=fingerprint, started_at=now
                )
        except IntegrityError:
            pass
        record = IdempotencyKey.objects.select_for_update().get(user=user, key=key)
        if record.fingerprint != fingerprint:
            raise StepError(OTHER_REQUEST)
        if record.completed_at is not None:
            return Answer(
                status=record.response_status,
                body=bytes(record.response_body or b""),
                content_type=record.response_content_type,
            )
        if _still_running(record, now):
            raise Conflict(IN_PROGRESS)
        # The try that held it died without an answer, and its writes with it.
        record.started_at = now
        record.save(update_fields=["started_at"])
        return record


def complete(*, record: IdempotencyKey, status: int, body: bytes, content_type: str) -> None:
    """Store the answer; called inside the transaction of the write it answers."""
    record.response_status = status
    record.response_body = body
    record.response_content_type = content_type
    record.completed_at = timezone.now()
    record.save(
        update_fields=["response_status", "response_body", "response_content_type", "completed_at"]
    )


def release(*, record: IdempotencyKey) -> None:
    """Forget a key whose request changed nothing (it failed), so that a retry runs again."""
    IdempotencyKey.objects.filter(pk=record.pk, completed_at__isnull=True).delete()
