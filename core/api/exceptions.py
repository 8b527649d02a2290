"""Maps the service layer's errors to HTTP answers; everything else is DRF's usual."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import Conflict, InvalidInput, NotFound, StepError

REQUEST_TOO_LARGE = "The request body is too large."

_STATUS = {
    StepError: status.HTTP_422_UNPROCESSABLE_ENTITY,
    Conflict: status.HTTP_409_CONFLICT,
    NotFound: status.HTTP_404_NOT_FOUND,
}


def status_of(error: Exception) -> int:
    """The HTTP status a service error is answered with."""
    if isinstance(error, InvalidInput):
        return status.HTTP_400_BAD_REQUEST
    for error_type, code in _STATUS.items():
        if isinstance(error, error_type):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        # Model validation files errors about no one field under Django's "__all__"; API
        # clients expect DRF's name for it.
        errors = {
            api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field: messages
            for field, messages in exc.errors.items()
        }
        return Response(errors or {"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
    for error_type, code in _STATUS.items():
        if isinstance(exc, error_type):
            return Response({"detail": exc.message}, status=code)
    if isinstance(exc, RequestDataTooBig):
        # Django would answer an HTML 400; the API answers JSON, with the status that says it.
        return Response(
            {"detail": REQUEST_TOO_LARGE}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    return drf_exception_handler(exc, context)


@csrf_exempt
def unknown_api_path(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Every path under /api/ that no route takes: a JSON 404, never Django's HTML page (or,
    in DEBUG, its 500 for a POST whose path lacks the trailing slash)."""
    detail = "Not found."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
        except Resolver404:
            pass
        else:
            detail = f"Not found. API paths end with a slash: {request.path}/"
    return JsonResponse({"detail": detail}, status=404)
