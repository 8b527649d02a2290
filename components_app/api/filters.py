"""The component list's query parameters."""

from __future__ import annotations

from components_app.models import Component
from core.api.filters import ScopedFilterSet, uuid_filter


class ComponentFilter(ScopedFilterSet):
    project = uuid_filter("project_id", "Only this project's components.")
    parent_component = uuid_filter("parent_component_id", "Only the children of this component.")

    class Meta(ScopedFilterSet.Meta):
        model = Component
