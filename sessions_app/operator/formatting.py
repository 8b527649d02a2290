"""Times, durations and statuses as the operator's pages show them."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

#: The badge a status wears: its label and its CSS class (``badge-<class>``).
STATUS_BADGES = {
    "active": "Active",
    "stalled": "Stalled",
    "complete": "Complete",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "attention": "Needs attention",
    "pending": "Pending",
    "ok": "ok",
    "error": "error",
    "warning": "warning",
}


def clock(value: datetime | None) -> str:
    """A time to the second in the current time zone: ``2026-11-25 10:00:03``."""
    if value is None:
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 m 05 s``, ``2 h 03 m``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def cost_text(value: Decimal | float | int | None) -> str:
    """Dollars as a person reads them: ``$0.00``, ``<$0.01``, ``$1.24``, ``$1,204.50``."""
    if value is None:
        return ""
    amount = Decimal(str(value))
    if 0 < amount < Decimal("0.01"):
        return "<$0.01"
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def badge(status: str) -> SafeString:
    """A coloured status badge; unknown statuses show as they are, uncoloured."""
    label = STATUS_BADGES.get(status, status)
    css = status if status in STATUS_BADGES else "unknown"
    return format_html('<span class="badge badge-{}">{}</span>', css, label)


def progress_widths(summary) -> dict[str, float]:
    """The stacked progress bar's segments, in percent of a ``ChildrenSummary``'s total."""
    if not summary.total:
        return {"complete": 0.0, "failed": 0.0, "cancelled": 0.0}
    return {
        status: round(100 * getattr(summary, status) / summary.total, 1)
        for status in ("complete", "failed", "cancelled")
    }
