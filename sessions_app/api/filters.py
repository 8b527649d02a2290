"""The session list's query parameters."""

from __future__ import annotations

from core.api.filters import ScopedFilterSet, char_filter, choice_filter, uuid_filter
from sessions_app.models import Session, SessionStatus


class SessionFilter(ScopedFilterSet):
    project = uuid_filter("project_id", "Only this project's sessions.")
    status = choice_filter(SessionStatus.choices)
    type = char_filter(100)
    parent_session = uuid_filter("parent_session_id", "Only the children of this session.")

    class Meta(ScopedFilterSet.Meta):
        model = Session
