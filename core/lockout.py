"""The answer to a login while django-axes holds the username locked for this address."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

LOCKED_OUT = (
    "Too many failed logins for this username from this address; try again in {minutes} minute{s}."
)


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``, the cool-off period."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = math.ceil(seconds / 60)
    text = LOCKED_OUT.format(minutes=minutes, s="" if minutes == 1 else "s")
    response = HttpResponse(text, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response
