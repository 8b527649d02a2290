"""What every API view set shares: JSON bodies, no PUT, lookups and filters limited to the
caller's projects."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import serializers, viewsets

from core.api.parsers import StorableJSONParser
from core.api.scoping import object_or_404

EMPTY_FILTER = "This filter cannot be empty: leave it out to list everything."


class ScopedViewSet(viewsets.GenericViewSet):
    parser_classes = [StorableJSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Any path segment reaches the view, so a malformed id is the API's JSON 404, not an HTML
    # page from the URL resolver.
    lookup_value_regex = "[^/]+"
    #: The 404 text for an id that is malformed, unknown or in another project.
    not_found_message = "Not found."
    #: Query parameter → queryset lookup, validated by ``filter_serializer_class``.
    filter_lookups: dict[str, str] = {}
    filter_serializer_class: type[serializers.Serializer] | None = None

    def get_object(self) -> Model:
        obj = object_or_404(self.get_queryset(), self.kwargs["pk"], self.not_found_message)
        self.check_object_permissions(self.request, obj)
        return obj

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action != "list" or self.filter_serializer_class is None:
            return queryset
        params = self.request.query_params
        filters = self.filter_serializer_class(data=params)
        # DRF reads ``?status=`` as no filter at all, so a client that meant one would get
        # every row; the schema says a filter has at least one character, and so does this.
        errors = {name: [EMPTY_FILTER] for name in filters.fields if "" in params.getlist(name)}
        if not filters.is_valid() or errors:
            raise serializers.ValidationError({**filters.errors, **errors})
        lookups: dict[str, Any] = {
            self.filter_lookups[name]: value for name, value in filters.validated_data.items()
        }
        return queryset.filter(**lookups)
