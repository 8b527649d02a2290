"""The error answers every endpoint documents in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="The exact error text.")


_DESCRIPTIONS = {
    400: (
        'Invalid input: DRF\'s field errors, `{"<field>": ["<message>", ...]}`, or '
        '`{"detail": "..."}` for a body that is not a storable JSON document, a '
        "`Content-Type` naming a charset other than UTF-8, or an empty filter parameter."
    ),
    401: "No credentials, or bad ones: send `Authorization: Token <key>` or a session cookie.",
    404: "Not found among the caller's projects (another project's objects are never a 403).",
    409: "The request contradicts the current state, e.g. a result already reported.",
    413: "The request body is larger than the server accepts.",
    414: (
        "The request line (path and query string) is longer than the server in front accepts "
        "(gunicorn: 4094 bytes); answered by it, before the application, not as JSON."
    ),
    415: "The request body is not `application/json`, or has a `Content-Encoding`.",
    422: "The step cannot proceed; `detail` carries the step's exact error text.",
    429: (
        "Throttled: the caller's rate, or too many refused credentials from its address. "
        "`Retry-After` gives the seconds to wait."
    ),
    503: "The database is unavailable; `Retry-After` gives the seconds to wait before retrying.",
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
    """Documented error answers for an operation, by status code, with those any request can
    get (``ANY_REQUEST_ERRORS``)."""
    responses = {}
    for code in sorted({*codes, *ANY_REQUEST_ERRORS}):
        schema = {400: OpenApiTypes.OBJECT, 414: None}.get(code, ErrorSerializer)
        responses[code] = OpenApiResponse(
            response=schema, description=_DESCRIPTIONS[code], examples=_EXAMPLES.get(code, [])
        )
    return responses


# What any request can be answered, whatever its operation: a refused charset or content
# coding (config.middleware), a request line too long, throttling, the database away.
ANY_REQUEST_ERRORS = (400, 414, 415, 429, 503)
# What any operation can answer, and what one that reads a body adds.
READ_ERRORS = (401, 404)
WRITE_ERRORS = (400, 401, 404, 413, 415)


class KnownFieldsOnlyExtension(OpenApiSerializerExtension):
    """A request body of a ``KnownFieldsOnly`` serializer takes no property it does not name."""

    target_class = "core.api.serializers.KnownFieldsOnly"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


def document_idempotency_key(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular post-processing hook: every POST under /api/ takes the
    ``Idempotency-Key`` header (``core.idempotency``)."""
    header = {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "1 to 255 printable ASCII characters. The same user's repeat of this "
        "request with the same key within 24 hours is answered with the first answer (its "
        "status and body, header Idempotent-Replayed) without running again; the key with "
        "another request is a 422; while the first try runs, a 409.",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    answers = {
        "409": "A request with this Idempotency-Key is in progress (or another conflict).",
        "422": "The Idempotency-Key was used for another request (or the step cannot go on).",
    }
    for item in result.get("paths", {}).values():
        operation = item.get("post")
        if operation is None:
            continue
        operation.setdefault("parameters", []).append(header)
        responses = operation.setdefault("responses", {})
        for code, description in answers.items():
            responses.setdefault(code, {"description": description, "content": error})
    return result
