"""Times as the API shows them, so a message quoting a time matches the JSON beside it."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def api_time(value: datetime) -> str:
    """ISO 8601 in the current time zone, ``Z`` for UTC: what DRF's DateTimeField renders."""
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
