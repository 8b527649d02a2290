"""The session list's query parameters."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters import rest_framework as filters

from core.api.filters import (
    ScopedFilterSet,
    char_filter,
    choice_filter,
    documented_as,
    uuid_filter,
)
from sessions_app import selectors
from sessions_app.models import Session, SessionStatus

INVALID_ID_PREFIX = (
    "Must be the start of a session id: 4 to 31 of its hexadecimal digits, hyphens allowed."
)


def _valid_id_prefix(value: str) -> None:
    if selectors.id_prefix(value) is None:
        raise ValidationError(INVALID_ID_PREFIX)


class SessionFilter(ScopedFilterSet):
    project = uuid_filter("project_id", "Only this project's sessions.")
    status = choice_filter(SessionStatus.choices)
    type = char_filter(100)
    parent_session = uuid_filter("parent_session_id", "Only the children of this session.")
    id_prefix = documented_as(
        {
            "type": "string",
            "minLength": selectors.MIN_ID_PREFIX,
            "description": "Only the sessions whose id starts so (a short id, as the admin "
            "shows it).",
        },
        filters.CharFilter(method="filter_id_prefix", validators=[_valid_id_prefix]),
    )

    class Meta(ScopedFilterSet.Meta):
        model = Session

    def filter_id_prefix(
        self, queryset: QuerySet[Session], name: str, value: str
    ) -> QuerySet[Session]:
        # The same reading of a prefix as the admin's search and the management commands.
        return queryset.filter(pk__startswith=selectors.id_prefix(value))
