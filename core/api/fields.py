"""Serializer fields shared by the API's serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

# Integers the API accepts are stored in 32-bit columns (PostgreSQL ``integer``) or compared
# with them; anything wider is a 400 here rather than a database error later.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def int32_field(**kwargs: Any) -> serializers.IntegerField:
    kwargs.setdefault("min_value", INT32_MIN)
    kwargs.setdefault("max_value", INT32_MAX)
    return serializers.IntegerField(**kwargs)


class VisibleObjectField(serializers.PrimaryKeyRelatedField):
    """A reference by UUID to an object the caller may see.

    ``visible_to`` is the selector that lists what a user may see; an id outside it reads
    exactly like an id that does not exist, so nothing leaks about other projects.
    """

    def __init__(self, *, visible_to: Callable[[Any], QuerySet], **kwargs: Any) -> None:
        self.visible_to = visible_to
        kwargs.setdefault("pk_field", serializers.UUIDField())
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet:
        return self.visible_to(self.context["request"].user)


def budget_field(**kwargs: Any) -> serializers.DecimalField:
    """A budget in US dollars: a JSON number (not a string) at least 0, or null."""
    return serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=0,
        allow_null=True,
        coerce_to_string=False,
        **kwargs,
    )
