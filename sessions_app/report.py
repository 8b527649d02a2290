"""What a run produced, as a report: its status, duration, branch, cost and coverage, and per
child its component, status, attempts, coverage, runs, cost, test file and failure reason;
the children that needed ImproveTests with what was wrong first. As JSON (``build``) and as
the Markdown a reviewer reads in a pull request (``markdown``): a summary, then one table,
the failures first.

Every text in it comes from people or agents (component names, reasons, problems): the
Markdown escapes what would change a table or the page (``|``, HTML, newlines, backticks in
code spans), so a name cannot add a row, a link or a script to the review."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max, Min, Q
from django.utils import timezone

from core.text import printable
from sessions_app import selectors, usage
from sessions_app.models import Interaction, Session, SessionStatus, Verification
from sessions_app.operator.formatting import cost_text, duration_text

FORMATS = ("json", "md")
# Failed first, then what is still unfinished, then the rest, each in spawn order.
STATUS_ORDER = {
    SessionStatus.FAILED: 0,
    SessionStatus.CANCELLED: 1,
    SessionStatus.ACTIVE: 2,
    SessionStatus.COMPLETE: 3,
}


@dataclass(frozen=True)
class Links:
    run_page: str


def title_of(session: Session) -> str:
    """The pull request's title: the context it tests."""
    component = session.component
    subject = f"{component.name} ({component.module_name})" if component else "a run"
    return printable(f"Agentic tests for {subject}")


def build(*, session: Session, links: Links, now: datetime | None = None) -> dict[str, Any]:
    """The report of a context session: five queries whatever the number of children."""
    now = now or timezone.now()
    children = list(selectors.child_sessions_with_cost(session=session))
    summary = selectors.summarize(children, now=now)
    run = selectors.run_usage(session)
    times = Interaction.objects.filter(
        Q(session=session) | Q(session__parent_session=session)
    ).aggregate(started=Min("created_at"), ended=Max("completed_at"))
    started = times["started"]
    ended = times["ended"] if session.is_finished else now
    first_problems: dict[object, list[str]] = {}
    for child_id, problems in (
        Verification.objects.filter(session__parent_session=session, passed=False)
        .order_by("verified_at")
        .values_list("session_id", "problems")
    ):
        first_problems.setdefault(child_id, problems)
    rows = [_child(child, first_problems.get(child.pk, [])) for child in children]
    rows.sort(key=lambda row: STATUS_ORDER.get(row["status"], 9))
    component = session.component
    status = session.status
    if not session.is_finished and _finalizing(session):
        # Written for the pull request its Finalize opens: the run has passed its result
        # check, and the pull request exists only once Finalize has succeeded.
        status = SessionStatus.COMPLETE
    return {
        "session": str(session.pk),
        "title": title_of(session),
        "context": {"name": component.name, "module_name": component.module_name}
        if component
        else None,
        "status": status,
        "branch": session.branch,
        "base_branch": session.project.base_branch,
        "started_at": started.isoformat() if started else None,
        "finished_at": ended.isoformat() if session.is_finished and ended else None,
        "duration_seconds": round((ended - started).total_seconds(), 1)
        if started and ended
        else None,
        "cost_usd": usage.as_number(run.cost_usd),
        "max_cost_usd": usage.as_number(session.max_cost_usd),
        "coverage": summary.as_dict()["coverage"],
        "mutation": summary.as_dict()["mutation"],
        "counts": {
            **{
                key: value
                for key, value in summary.as_dict().items()
                if key not in ("coverage", "mutation", "cost_usd")
            },
            "excluded": sum(1 for row in rows if row["excluded"]),
        },
        "pull_request_url": session.state.get("pull_request_url"),
        "run_page_url": links.run_page,
        "children": rows,
    }


def _finalizing(session: Session) -> bool:
    """Whether the context's pending step is its Finalize."""
    latest = Interaction.objects.filter(session=session).order_by("-created_at").first()
    return latest is not None and latest.is_pending and latest.step_name == "Finalize"


def _child(child: Session, first_problems: list[str]) -> dict[str, Any]:
    verification = child.latest_verification if child.latest_verification_id else None
    component = child.component
    improve = child.state.get("improve_attempts", 0) if isinstance(child.state, dict) else 0
    return {
        "session": str(child.pk),
        "component": component.name if component else None,
        "module_name": component.module_name if component else None,
        "excluded": bool(component and component.excluded),
        "status": child.status,
        "attempts": child.attempt,
        "line_coverage": _number(verification.line_coverage) if verification else None,
        "branch_coverage": _number(verification.branch_coverage) if verification else None,
        "mutation_score": _number(verification.mutation_score) if verification else None,
        "runs": list(verification.runs) if verification else [],
        "cost_usd": usage.as_number(getattr(child, "usage_cost", 0) or 0),
        "test_file": child.state.get("test_file") if isinstance(child.state, dict) else None,
        "failure_reason": selectors.shown_failure_reason(child),
        "improvements": improve if isinstance(improve, int) else 0,
        # What its first verification below the bar said, whether ImproveTests then helped.
        "first_problems": list(first_problems),
    }


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


# --- Markdown ------------------------------------------------------------------------------

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKUP = re.compile(r"([\\`*_\[\]|#!~])")


def cell(text: object) -> str:
    """A value as Markdown text in a table cell: one line, no HTML, no markup, no ``|``."""
    flat = " ".join(printable(str(text)).split())
    flat = "".join(_HTML.get(char, char) for char in flat)
    return _MARKUP.sub(r"\\\1", flat)


def code(text: object) -> str:
    """A value as a code span that nothing in it can close, in a table cell (``|`` escaped
    as GitHub's tables want it)."""
    flat = " ".join(printable(str(text)).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") else flat
    return f"{fence}{padded}{fence}".replace("|", "\\|")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    """The report as a reviewer reads it in a pull request."""
    children = report["children"]
    counts = report["counts"]
    coverage = report["coverage"]
    lines = [f"## {cell(report['title'])}", ""]
    facts = [f"**Status:** {cell(report['status'])}"]
    if report["branch"]:
        facts.append(f"**Branch:** {code(report['branch'])} from {code(report['base_branch'])}")
    if report["duration_seconds"] is not None:
        facts.append(f"**Duration:** {duration_text(report['duration_seconds'])}")
    cost = f"**Cost:** {cost_text(report['cost_usd'])}"
    if report["max_cost_usd"] is not None:
        cost += f" of a {cost_text(report['max_cost_usd'])} budget"
    facts.append(cost)
    if coverage["line_coverage"] is not None:
        facts.append(
            f"**Line coverage:** {_percent(coverage['line_coverage'])} of "
            f"{coverage['lines_total']} lines"
        )
    mutation = report["mutation"]
    if mutation["mutation_score"] is not None:
        judged = mutation["caught"] + mutation["survived"]
        facts.append(
            f"**Mutation score:** {_percent(mutation['mutation_score'])} of {judged} "
            f"mutant{'s' if judged != 1 else ''} caught"
        )
    lines += [" · ".join(facts), ""]
    lines.append(
        f"{counts['total']} components: {counts['complete']} complete, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled, "
        f"{counts['active']} still active"
        + (f", {counts['excluded']} excluded" if counts["excluded"] else "")
        + "."
        + (
            f" [Pull request]({_url(report['pull_request_url'])})."
            if report["pull_request_url"]
            else ""
        )
        + f" [Run page]({_url(report['run_page_url'])})."
    )
    # The mutation score's column only in a run where the mutation gate measured something.
    mutated = any(child["mutation_score"] is not None for child in children)
    lines += [
        "",
        "| Component | Status | Attempts | Line coverage | Branch coverage "
        + ("| Mutation score " if mutated else "")
        + "| Runs | Cost | Test file | Failure reason |",
        "| --- | --- | ---: | ---: | ---: | " + ("---: | " if mutated else "") + "--- | ---: "
        "| --- | --- |",
    ]
    for child in children:
        name = cell(child["component"] or child["session"])
        if child["module_name"]:
            name += f" ({code(child['module_name'])})"
        status = cell(child["status"]) + (" (excluded)" if child["excluded"] else "")
        runs = (
            f"{sum(code == 0 for code in child['runs'])}/{len(child['runs'])} passed"
            if child["runs"]
            else "—"
        )
        lines.append(
            f"| {name} | {status} | {child['attempts']} | {_percent(child['line_coverage'])} "
            f"| {_percent(child['branch_coverage'])} "
            + (f"| {_percent(child['mutation_score'])} " if mutated else "")
            + f"| {cell(runs)} "
            f"| {cost_text(child['cost_usd'])} "
            f"| {code(child['test_file']) if child['test_file'] else '—'} "
            f"| {cell(child['failure_reason']) if child['failure_reason'] else ''} |"
        )
    improved = [child for child in children if child["first_problems"]]
    if improved:
        lines += ["", "### Below the bar at first", ""]
        for child in improved:
            first = "; ".join(child["first_problems"])
            rounds = child["improvements"]
            lines.append(
                f"- {cell(child['component'] or child['session'])}: "
                f"{rounds} ImproveTests round{'s' if rounds != 1 else ''}; first: {cell(first)}"
            )
    lines.append("")
    return "\n".join(lines)


def _url(url: str) -> str:
    """A link target with nothing that would end it."""
    return re.sub(r"[\s()<>]", lambda match: f"%{ord(match.group(0)):02X}", url)
