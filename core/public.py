"""The site's address as people reach it, for links in what leaves the site (a report in a
pull request): ``PUBLIC_URL`` when set (behind a proxy the request's own host may be an
internal one), else the request's."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def public_url(request: HttpRequest, path: str) -> str:
    base = (getattr(settings, "PUBLIC_URL", "") or "").rstrip("/")
    return f"{base}{path}" if base else request.build_absolute_uri(path)
