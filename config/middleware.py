"""Request guards that apply to every door (admin, API, docs)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

NUL_IN_QUERY = "The query string cannot contain the NUL character (%00)."


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
