"""Request guards that apply to every door (admin, API, docs)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.http import parse_header_parameters

from core.charsets import is_utf8, not_utf8
from core.unavailable import DATABASE_ERRORS, database_unavailable

NUL_IN_QUERY = "The query string cannot contain the NUL character (%00)."
EXTENDED_PARAMETER = "The Content-Type header cannot use RFC 2231 parameters (name*=...)."
UNREADABLE_CONTENT_TYPE = "The Content-Type header cannot be parsed."
CONTENT_ENCODING = "Request bodies are read as sent: Content-Encoding {value} is not supported."

# ``name*=charset'lang'value`` and its continuations ``name*0=``, ``name*0*=`` (RFC 2231).
_EXTENDED_PARAMETER = re.compile(r"\*\d*\*?\s*=")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def encoding_refusal(content_type: str, content_encoding: str) -> tuple[int, str] | None:
    """Why a request with these headers is refused, as (status, text), or None.

    Django decodes a request's form fields, multipart fields and query string with whatever
    codec its Content-Type's ``charset`` names, and an RFC 2231 parameter
    (``charset*=punycode''...``) with the codec it names, while it builds the request, before
    any middleware runs. Some codecs take quadratic time (``punycode``: a 300 KB body kept a
    worker busy for many seconds) and an unknown one raises. So only UTF-8 gets in."""
    parameters = content_type.partition(";")[2]
    if _EXTENDED_PARAMETER.search(parameters):
        return 400, EXTENDED_PARAMETER
    try:
        _, params = parse_header_parameters(content_type)
    except ValueError:
        return 400, UNREADABLE_CONTENT_TYPE
    charset = params.get("charset")
    if charset is not None and not is_utf8(charset):
        return 400, not_utf8(charset)
    # Nothing decompresses request bodies; a compressed one would only fail later, obscurely.
    coding = content_encoding.strip().lower()
    if coding not in ("", "identity"):
        return 415, CONTENT_ENCODING.format(value=json.dumps(content_encoding[:40]))
    return None


class RequestEncodingGuard:
    """WSGI wrapper: refuses what ``encoding_refusal`` refuses before Django sees the request
    (JSON ``{"detail"}`` under /api/, plain text elsewhere)."""

    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = encoding_refusal(
            environ.get("CONTENT_TYPE", ""), environ.get("HTTP_CONTENT_ENCODING", "")
        )
        if refusal is None:
            return self.application(environ, start_response)
        status, text = refusal
        if environ.get("PATH_INFO", "").startswith("/api/"):
            body, content_type = json.dumps({"detail": text}).encode(), "application/json"
        else:
            body, content_type = text.encode(), "text/plain; charset=utf-8"
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]


class RejectNulInQueryStringMiddleware:
    """A NUL byte in a query parameter reaches a database filter (an admin list filter, say)
    and PostgreSQL refuses it with an error that would be a 500; it is a 400 here instead.
    The API validates its own filters and answers with field errors, so it is left to them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return self.get_response(request)
        if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            return HttpResponseBadRequest(NUL_IN_QUERY, content_type="text/plain")
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A view that fails because the database is away (down, full, too slow) answers 503 with
    ``Retry-After`` (see ``core.unavailable``); errors raised outside views reach
    ``handler500``, which answers the same."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request, exception)
        return None
