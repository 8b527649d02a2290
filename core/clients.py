"""Who a request comes from, as the throttles and the admin's login lockout count it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address.

    With no proxy in front (``TRUSTED_PROXY_COUNT`` 0) it is the peer's address: an
    ``X-Forwarded-For`` the client wrote itself is ignored, so it cannot pose as many
    clients. Behind N trusted proxies, each appending the address it saw, it is the N-th
    entry from the right, the one the outermost trusted proxy wrote."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")
