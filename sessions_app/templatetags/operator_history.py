"""``{% component_history project %}``: the grid of a project's components by its last runs,
for the project's admin page (whose app does not import this one: the dependency is the
template's)."""

from __future__ import annotations

from django import template
from django.urls import reverse

from sessions_app import selectors
from sessions_app.operator.formatting import badge, clock
from sessions_app.operator.history import component_history

register = template.Library()


@register.inclusion_tag("operator/history.html")
def history_grid(project) -> dict:
    history = component_history(project.pk)
    runs = [
        {
            "session": run,
            "short_id": selectors.short_id(run.pk),
            "created": clock(run.created_at)[:16],
            "context": selectors.display_name(run),
            "url": reverse("admin:sessions_app_session_run", args=[run.pk]),
        }
        for run in history.runs
    ]
    rows = []
    for row in history.rows:
        cells = []
        for child in row.cells:
            if child is None:
                cells.append(None)
                continue
            verification = child.latest_verification if child.latest_verification_id else None
            coverage = verification.line_coverage if verification else None
            cells.append(
                {
                    "status": child.status,
                    "badge": badge(child.status),
                    "coverage": f"{coverage:.1f}%" if coverage is not None else "",
                    "url": reverse("admin:sessions_app_session_log", args=[child.pk]),
                }
            )
        rows.append({"name": row.name, "module_name": row.module_name, "cells": cells})
    return {"runs": runs, "rows": rows}
