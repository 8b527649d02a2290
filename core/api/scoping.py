"""How a request becomes a ``Scope``: the caller, and the project of the object acted on."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.request import Request

from core.errors import NotFound
from core.scope import Scope

if TYPE_CHECKING:
    from components_app.models import Project

M = TypeVar("M", bound=Model)


def scope_for(request: Request, project: Project) -> Scope:
    """The caller acting in ``project``, which must come from a queryset already limited to
    the caller's projects."""
    return Scope(user=request.user, project=project)


def parse_uuid_or_404(value: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(message) from None


def object_or_404(queryset: QuerySet[M], pk: str, message: str) -> M:
    """The object with ``pk`` in ``queryset`` (the caller's visible objects), else a 404
    carrying ``message``; a malformed id is the same 404, never a 400 or a 500."""
    found = queryset.filter(pk=parse_uuid_or_404(pk, message)).first()
    if found is None:
        raise NotFound(message)
    return found
