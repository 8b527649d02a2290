"""Maps the service layer's errors to HTTP answers; everything else is DRF's usual."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from sessions_app.workflows.types import Conflict, InvalidInput, NotFound, StepError

_STATUS = {
    StepError: status.HTTP_422_UNPROCESSABLE_ENTITY,
    Conflict: status.HTTP_409_CONFLICT,
    NotFound: status.HTTP_404_NOT_FOUND,
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        body = exc.errors or {"detail": exc.message}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    for error_type, code in _STATUS.items():
        if isinstance(exc, error_type):
            return Response({"detail": exc.message}, status=code)
    return drf_exception_handler(exc, context)
