"""The operator's pages, served inside the admin (its login, its look, its permissions).

``SessionAdmin.get_urls`` mounts the run page and its live fragment; ``config/urls.py`` puts
the dashboard at ``/``. Each view only reads: selectors in, a template out.
"""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_safe

from core.public import public_url
from sessions_app import report, selectors
from sessions_app.models import Session
from sessions_app.operator import dashboard as dashboard_reads
from sessions_app.operator import svg
from sessions_app.operator.formatting import (
    badge,
    clock,
    cost_text,
    duration_text,
    progress_widths,
)
from sessions_app.operator.run import (
    RUN_PAGE_SIZE,
    TIMELINE_ROW_LIMIT,
    Run,
    page_ids,
    run_etag,
    run_for,
    step_distributions,
    visible_sessions,
)

#: How often an open run page asks whether anything changed.
POLL_MILLISECONDS = 2000


def _may_view_sessions(request: HttpRequest) -> None:
    if not (
        request.user.has_perm("sessions_app.view_session")
        or request.user.has_perm("sessions_app.change_session")
    ):
        raise PermissionDenied


def _session_or_404(request: HttpRequest, session_id: str) -> Session:
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        raise Http404("Session not found") from None
    session = (
        visible_sessions(request.user)
        .select_related("project", "component", "parent_session__component")
        .filter(pk=pk)
        .first()
    )
    if session is None:
        raise Http404("Session not found")
    return session


def _run_status(run: Session, summary: selectors.ChildrenSummary) -> str:
    """A run's badge on the dashboard: "attention" while it is active with failed or stalled
    children (it will not end by itself), else its status."""
    if not run.is_finished and (summary.failed or summary.stalled):
        return "attention"
    return run.status


def _http_url(value: object) -> str | None:
    """A link a page may carry: an http(s) URL (the workflow stores only those), else none."""
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value
    return None


def _live_context(run: Run, etag: str) -> dict:
    session = run.session
    rows = []
    for row in run.children:
        child = row.session
        step = row.current_step
        rows.append(
            {
                "row": row,
                "badge": badge("stalled" if row.stalled else child.status),
                "step": step,
                "step_badge": badge(step.status or "pending") if step else "",
                "lease_until": clock(child.leased_until),
                "started": clock(row.started),
                "duration": duration_text(row.seconds),
                "command_time": duration_text(
                    row.command_ms / 1000 if row.command_ms is not None else None
                ),
                "url": reverse("admin:sessions_app_session_change", args=[child.pk]),
                "interactions_url": reverse("admin:sessions_app_session_log", args=[child.pk]),
                "short_id": selectors.short_id(child.pk),
                "cost": cost_text(getattr(child, "usage_cost", None)),
            }
        )
    summary = run.summary
    context_row = svg.TimelineRow(
        label=f"{selectors.display_name(session)} (context)",
        steps=run.steps,
        stalled=session.is_stalled(run.now),
        is_context=True,
    )
    timeline_rows = [context_row] * bool(run.steps) + [
        svg.TimelineRow(label=row.name, steps=row.steps, stalled=row.stalled)
        for row in run.timeline_children
    ]
    live_url = reverse("admin:sessions_app_session_run_live", args=[session.pk])
    page = run.page
    return {
        "run": run,
        "session": session,
        "session_badge": badge(
            "stalled"
            if session.is_stalled(run.now)
            else "attention"
            if run.needs_attention
            else session.status
        ),
        "rows": rows,
        "summary": summary,
        "run_cost": cost_text(summary.cost_usd),
        "pull_request_url": _http_url(session.state.get("pull_request_url")),
        "report_url": reverse("admin:sessions_app_session_run_report", args=[session.pk])
        if session.is_context
        else None,
        "budget": cost_text(session.max_cost_usd),
        "widths": progress_widths(summary),
        "aggregated": run.aggregated,
        "timeline_row_limit": TIMELINE_ROW_LIMIT,
        "timeline": svg.distribution(run.distributions)
        if run.aggregated
        else svg.timeline(timeline_rows, now=run.now),
        "context_timeline": svg.timeline([context_row], now=run.now)
        if run.aggregated and run.steps
        else "",
        "legend": svg.distribution_legend() if run.aggregated else svg.legend(),
        "total_time": duration_text(run.total_seconds),
        "page": page,
        "first_position": page.offset + 1,
        "page_size": RUN_PAGE_SIZE,
        "needs_attention": run.needs_attention,
        "progress_text": run.progress_text,
        "missing": run.missing,
        "check_message": run.check_message,
        "leased": bool(summary.stalled)
        or any(row.session.runner for row in run.children)
        or bool(session.runner),
        "action_urls": {
            name.replace("-", "_"): reverse(
                "admin:sessions_app_session_run_action", args=[session.pk, name]
            )
            for name in ("retry-children", "spawn-missing", "cancel", "release-leases")
        },
        "etag": etag,
        "is_live": run.is_live,
        "rendered_at": clock(run.now),
        "live_url": f"{live_url}?page={page.number}" if page.number > 1 else live_url,
        "poll_ms": POLL_MILLISECONDS,
    }


@require_safe
def run_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """A context run: its children in spawn order, their steps, and a timeline."""
    _may_view_sessions(request)
    session = _session_or_404(request, session_id)
    page = request.GET.get("page", 1)
    run = run_for(session=session, page=page)
    etag = run_etag(
        session=session,
        page=page,
        now=run.now,
        summary=run.summary,
        ids=run.child_ids,
        distributions=run.distributions if run.aggregated else None,
    )
    context = {
        **admin.site.each_context(request),
        **_live_context(run, etag),
        "title": f"Run of {selectors.display_name(session)}",
        "subtitle": selectors.short_id(session.pk),
        "short_id": selectors.short_id(session.pk),
        "created": clock(session.created_at),
        "change_url": reverse("admin:sessions_app_session_change", args=[session.pk]),
        "children_list_url": reverse("admin:sessions_app_session_changelist")
        + f"?parent={session.pk}",
        "api_url": f"/api/sessions/{session.pk}/children/",
        "history_url": reverse("admin:components_app_project_change", args=[session.project_id])
        + "#history",
        "parent_run_url": reverse(
            "admin:sessions_app_session_run", args=[session.parent_session_id]
        )
        if session.parent_session_id
        else None,
    }
    return TemplateResponse(request, "operator/run.html", context)


# What a log entry shows of a long command on its summary line.
COMMAND_SUMMARY_CHARS = 100


def _line_count(text: str) -> int:
    return len(text.splitlines())


@require_safe
def session_log(request: HttpRequest, session_id: str) -> HttpResponse:
    """Every step of a session, oldest first: its command, its outcome, and the tails of its
    output, each collapsed until opened."""
    _may_view_sessions(request)
    session = _session_or_404(request, session_id)
    steps = []
    for interaction in session.interactions.order_by("created_at", "id"):
        result = interaction.result if isinstance(interaction.result, dict) else {}
        command = interaction.command if isinstance(interaction.command, dict) else {}
        line = str(command.get("command") or "")
        first = line.strip().splitlines()[0] if line.strip() else ""
        stdout, stderr = str(result.get("stdout") or ""), str(result.get("stderr") or "")
        took = (
            (interaction.completed_at - interaction.created_at).total_seconds()
            if interaction.completed_at
            else None
        )
        steps.append(
            {
                "interaction": interaction,
                "badge": badge(str(result.get("status") or "pending")),
                "started": clock(interaction.created_at),
                "took": duration_text(took),
                "code": result.get("code"),
                "cost": cost_text(interaction.cost_usd) if interaction.cost_usd is not None else "",
                "error": result.get("error_message") or "",
                "command": line,
                "command_line": first[:COMMAND_SUMMARY_CHARS]
                + ("…" if len(first) > COMMAND_SUMMARY_CHARS or "\n" in line.strip() else ""),
                "stdout": stdout,
                "stderr": stderr,
                "stdout_lines": _line_count(stdout),
                "stderr_lines": _line_count(stderr),
            }
        )
    parent = session.parent_session_id or (session.pk if session.is_context else None)
    context = {
        **admin.site.each_context(request),
        "title": f"Log of {selectors.display_name(session)}",
        "name": selectors.display_name(session),
        "session": session,
        "session_badge": badge(session.status),
        "steps": steps,
        "change_url": reverse("admin:sessions_app_session_change", args=[session.pk]),
        "run_url": reverse("admin:sessions_app_session_run", args=[parent]) if parent else None,
    }
    return TemplateResponse(request, "operator/log.html", context)


@require_safe
def run_report(request: HttpRequest, session_id: str) -> HttpResponse:
    """The run's report, the Markdown a pull request carries, as text to read here."""
    _may_view_sessions(request)
    session = _session_or_404(request, session_id)
    if not session.is_context:
        raise Http404("Only a context session's run has a report")
    page = reverse("admin:sessions_app_session_run", args=[session.pk])
    body = report.build(session=session, links=report.Links(run_page=public_url(request, page)))
    return HttpResponse(report.markdown(body), content_type="text/plain; charset=utf-8")


@require_safe
def run_live(request: HttpRequest, session_id: str) -> HttpResponse:
    """The run page's changing part, for its own polling: 304 while nothing changed."""
    _may_view_sessions(request)
    session = _session_or_404(request, session_id)
    page = request.GET.get("page", 1)
    now = timezone.now()
    summary = selectors.children_summary(session, now=now)
    # What the tag is made of is what the fragment shows: read once for both.
    ids = page_ids(session=session, summary=summary, page=page, now=now)
    distributions = (
        step_distributions(session=session) if summary.total > TIMELINE_ROW_LIMIT else None
    )
    known = {"page": page, "now": now, "summary": summary, "ids": ids}
    etag = run_etag(session=session, distributions=distributions, **known)
    response = get_conditional_response(request, etag=etag)
    if response is None:
        run = run_for(session=session, distributions=distributions, **known)
        response = TemplateResponse(request, "operator/run_live.html", _live_context(run, etag))
    response["ETag"] = etag
    # Always revalidate: the tag, not an expiry, says whether the copy is current.
    patch_cache_control(response, private=True, no_cache=True)
    return response


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """Each visible project at a glance: what runs, what finished, what is stuck."""
    _may_view_sessions(request)
    boards = dashboard_reads.dashboards_for(request.user)
    panels = [
        {
            "board": board,
            "pass_rate": None if board.pass_rate is None else round(100 * board.pass_rate),
            "median": duration_text(board.median_seconds),
            "daily_chart": svg.daily_bars(
                [svg.DayCounts(label, done, failed) for label, done, failed in board.daily]
            ),
            "cost_week": cost_text(board.cost_week),
            "daily_cost": [(label, cost_text(cost)) for label, cost in board.daily_cost],
            "slowest_chart": svg.duration_bars(board.slowest),
            "slowest": [(name, duration_text(seconds)) for name, seconds in board.slowest],
            "stalled": [
                {
                    "session": session,
                    "name": selectors.display_name(session),
                    "since": clock(session.leased_until),
                    "run_url": reverse(
                        "admin:sessions_app_session_run",
                        args=[session.parent_session_id or session.pk],
                    ),
                }
                for session in board.stalled
            ],
            "runs": [
                {
                    "session": run,
                    "name": selectors.display_name(run),
                    "badge": badge(_run_status(run, selectors.children_progress(run))),
                    "summary": selectors.children_progress(run),
                    "cost": cost_text(run.children_summary.cost_usd),
                    "short_id": selectors.short_id(run.pk),
                    "branch": run.branch,
                    "pull_request_url": _http_url(run.state.get("pull_request_url")),
                    "report_url": reverse("admin:sessions_app_session_run_report", args=[run.pk])
                    if run.is_context
                    else None,
                    "created": clock(run.created_at),
                    "url": reverse("admin:sessions_app_session_run", args=[run.pk]),
                }
                for run in board.recent_runs
            ],
        }
        for board in boards
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "panels": panels,
    }
    return TemplateResponse(request, "operator/dashboard.html", context)
