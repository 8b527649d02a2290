"""What every API view set shares: JSON bodies, no PUT, lookups limited to the caller's
projects, and list filters as django-filter ``FilterSet``s (``filterset_class``)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets

from core import idempotency
from core.api import writes
from core.api.filters import EMPTY_FILTER
from core.api.parsers import StorableJSONParser
from core.api.scoping import object_or_404

__all__ = ["EMPTY_FILTER", "ScopedViewSet"]


class ScopedViewSet(viewsets.GenericViewSet):
    parser_classes = [StorableJSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Any path segment reaches the view, so a malformed id is the API's JSON 404, not an HTML
    # page from the URL resolver.
    lookup_value_regex = "[^/]+"
    #: The 404 text for an id that is malformed, unknown or in another project.
    not_found_message = "Not found."
    filter_backends = [DjangoFilterBackend]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Writes run through ``core.api.writes``: a POST with an ``Idempotency-Key`` at most
        once per key and user, and any write again after a deadlock."""
        if request.method not in writes.UNSAFE_METHODS:
            return super().dispatch(request, *args, **kwargs)
        body = writes.buffer_body(request)

        def dispatch() -> HttpResponse:
            return super(ScopedViewSet, self).dispatch(request, *args, **kwargs)

        key = request.headers.get(idempotency.HEADER)
        if request.method == "POST" and key is not None:
            probe = self.initialize_request(request, *args, **kwargs)
            user = writes.authenticated_user(lambda: probe.user)
            writes.rewind(request, body)
            if user is not None:
                return writes.run_idempotent(request, body, key, user, dispatch)
        return writes.run_write(request, body, dispatch)

    def get_object(self) -> Model:
        obj = object_or_404(self.get_queryset(), self.kwargs["pk"], self.not_found_message)
        self.check_object_permissions(self.request, obj)
        return obj

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # The query parameters filter the list; an action on one object ignores them.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)
