"""What clients see while the database cannot serve them: a 503 with ``Retry-After``, never
an HTML "Server Error (500)". Availability errors are Django's ``OperationalError`` (server
down or unreachable, too many connections, disk full, statement timeout, SQLite locked or
unable to open its file) and ``InterfaceError`` (a connection that broke). Once the database
is back, the next request reconnects: Django drops a connection that errored at the end of
its request (``CONN_HEALTH_CHECKS`` checks a reused one before the first query)."""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."
RETRY_AFTER_SECONDS = 5
SERVER_ERROR = "Server error."

logger = logging.getLogger("spawnctl.database")


def database_unavailable(request: HttpRequest, error: BaseException) -> HttpResponse:
    """The 503 for ``request``: JSON ``{"detail"}`` under /api/, plain text elsewhere."""
    logger.error("%s %s: database unavailable: %s", request.method, request.path, error)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)
    else:
        response = HttpResponse(
            DATABASE_UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: Django calls it for any exception nothing else answered, including one
    raised in a middleware (a session saved while the database is away), still inside the
    ``except`` that caught it. API clients get JSON either way."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_ERRORS):
        return database_unavailable(request, error)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": SERVER_ERROR}, status=500)
    return defaults.server_error(request)
