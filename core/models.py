"""The one table the shared pieces keep: the API's idempotency keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class IdempotencyKey(models.Model):
    """A POST a user sent with an ``Idempotency-Key``: what it was (its fingerprint) and, once
    it succeeded, the answer it got, stored in the same transaction as the write it made, so
    a retry of the same request is answered with that answer and never runs again."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    # SHA-256 of the method, the path with its query and the body.
    fingerprint = models.CharField(max_length=64)
    # When the request that holds the key started (again, after one that was abandoned).
    started_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The stored answer: null while the first request still runs.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
            models.CheckConstraint(
                condition=Q(response_status__isnull=True, completed_at__isnull=True)
                | Q(response_status__isnull=False, completed_at__isnull=False),
                name="idempotency_key_answer_whole",
            ),
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.key} ({'answered' if self.completed_at else 'in progress'})"
