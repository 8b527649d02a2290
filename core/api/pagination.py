"""How every list of the API pages: ``?page=`` and ``?page_size=`` (1 to 1,000, default 100),
with ``count``, ``next`` and ``previous`` beside the ``results``.

DRF's own paginator quietly serves its default for a ``page_size`` it cannot read and clamps
one above the maximum; a client that asked for 5,000 rows and got 1,000 without a word would
take them for all. Here a value out of range is a 400 that says what is allowed.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
PAGE_SIZE_PARAMETER = "page_size"
INVALID_PAGE_SIZE = f"Must be a whole number from 1 to {MAX_PAGE_SIZE}."


def page_size_of(request: Request) -> int:
    """The page size a request asks for, or the default; a ``ValidationError`` when it is not
    a whole number from 1 to ``MAX_PAGE_SIZE``."""
    raw = request.query_params.get(PAGE_SIZE_PARAMETER)
    if raw is None:
        return DEFAULT_PAGE_SIZE
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise ValidationError({PAGE_SIZE_PARAMETER: [INVALID_PAGE_SIZE]})
    return int(text)


class Pagination(pagination.PageNumberPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = PAGE_SIZE_PARAMETER
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return page_size_of(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == PAGE_SIZE_PARAMETER:
                parameter["description"] = (
                    f"Rows per page, 1 to {MAX_PAGE_SIZE}; default {DEFAULT_PAGE_SIZE}."
                )
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE,
                }
        return parameters


def page_parameters() -> list[OpenApiParameter]:
    """The paging parameters, for a schema of an action that pages (drf-spectacular adds
    them by itself to list views only)."""
    return [
        OpenApiParameter("page", OpenApiTypes.INT, description="A page number, from 1."),
        OpenApiParameter(
            PAGE_SIZE_PARAMETER,
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            description=f"Rows per page, 1 to {MAX_PAGE_SIZE}; default {DEFAULT_PAGE_SIZE}.",
        ),
    ]
