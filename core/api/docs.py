"""The error answers every endpoint documents in the OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="The exact error text.")


_DESCRIPTIONS = {
    400: (
        'Invalid input: DRF\'s field errors, `{"<field>": ["<message>", ...]}`, or '
        '`{"detail": "..."}` for a body that is not a storable JSON document.'
    ),
    401: "No credentials, or bad ones: send `Authorization: Token <key>` or a session cookie.",
    404: "Not found among the caller's projects (another project's objects are never a 403).",
    409: "The request contradicts the current state, e.g. a result already reported.",
    413: "The request body is larger than the server accepts.",
    415: "The request body is not `application/json`.",
    422: "The step cannot proceed; `detail` carries the step's exact error text.",
}

_EXAMPLES = {
    422: [OpenApiExample("No children", value={"detail": "No child components found for context"})],
    409: [
        OpenApiExample(
            "Reported twice",
            value={"detail": "A result was already reported for this interaction"},
        )
    ],
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Documented error answers for an operation, by status code."""
    responses = {}
    for code in codes:
        schema = OpenApiTypes.OBJECT if code == 400 else ErrorSerializer
        responses[code] = OpenApiResponse(
            response=schema, description=_DESCRIPTIONS[code], examples=_EXAMPLES.get(code, [])
        )
    return responses


# What any operation can answer, and what one that reads a body adds.
READ_ERRORS = (401, 404)
WRITE_ERRORS = (400, 401, 404, 413, 415)
