"""The session list's query parameters."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from django_filters.utils import translate_validation
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

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


class ChildrenFilter(ScopedFilterSet):
    """The children listing's ``?status=``."""

    status = choice_filter(SessionStatus.choices)

    class Meta(ScopedFilterSet.Meta):
        model = Session

    @classmethod
    def status_parameter(cls) -> OpenApiParameter:
        return OpenApiParameter(
            "status",
            str,
            enum=SessionStatus.values,
            description="Only the children with this status.",
        )

    @classmethod
    def ids(cls, request: Request, session: Session) -> QuerySet[Session]:
        """The ids of ``session``'s children that the request's filter keeps, in spawn
        order; a 400 for a bad value."""
        filterset = cls(
            request.query_params, queryset=selectors.child_ids(session=session), request=request
        )
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        return filterset.qs
