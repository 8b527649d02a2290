"""Charts drawn on the server as inline SVG: no script and no asset from elsewhere.

Every shape carries a ``<title>`` (the browser's tooltip) and a class the pages' CSS colours
and the tests count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from sessions_app.operator.formatting import clock, duration_text
from sessions_app.operator.run import DURATION_BUCKETS, Step, StepDistribution

WIDTH = 960
LABEL_WIDTH = 170
ROW_HEIGHT = 24
BAR_HEIGHT = 14
AXIS_HEIGHT = 28
MIN_BAR_WIDTH = 2.0
TICKS = 6


@dataclass(frozen=True)
class TimelineRow:
    label: str
    steps: Sequence[Step]
    #: Its runner stopped renewing its lease: a step still pending is drawn amber, not blue.
    stalled: bool = False
    #: The context's own row, drawn first and set apart.
    is_context: bool = False


# What a bar says when it is wide enough: the step's name, short.
SHORT_STEP_NAMES = {
    "Initialize": "Init",
    "SpawnComponentTestingSessions": "Spawn",
    "GenerateTestsAndFixtures": "Generate",
    "RunTests": "Run",
    "FixCompilationErrors": "Fix",
    "VerifyTests": "Verify",
    "ImproveTests": "Improve",
    "Finalize": "Finalize",
}
# About how wide one character of a bar's label is, in the chart's units.
LABEL_CHAR_WIDTH = 6.2
LEGEND = (
    ("ok", "ok"),
    ("error", "error"),
    ("warning", "warning"),
    ("pending", "running"),
    ("stalled", "stalled"),
)


def legend() -> SafeString:
    """The timeline's colours, named."""
    return format_html(
        '<ul class="timeline-legend">{}</ul>',
        format_html_join(
            "",
            '<li><span class="swatch step-{}"></span>{}</li>',
            LEGEND,
        ),
    )


def total_time(rows: Sequence[TimelineRow], *, now: datetime) -> float | None:
    """The run's time so far: its first step handed out to its last result (or now)."""
    starts = [step.started for row in rows for step in row.steps]
    if not starts:
        return None
    ends = [step.finished or now for row in rows for step in row.steps]
    return (max(ends) - min(starts)).total_seconds()


def _tick_seconds(span: float) -> float:
    """A round step between ticks, so that about ``TICKS`` of them cover ``span``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200):
        if span / step <= TICKS:
            return step
    return 86400 * max(1, round(span / 86400 / TICKS))


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} m"
    return f"{seconds / 3600:g} h"


def timeline(rows: Sequence[TimelineRow], *, now: datetime) -> SafeString:
    """One row per child, one bar per step from its command handed out to its result
    reported (a pending step runs to ``now``), coloured by the result's status."""
    starts = [step.started for row in rows for step in row.steps]
    if not starts:
        return format_html('<p class="timeline-empty">{}</p>', "No step has started yet.")
    ends = [step.finished or now for row in rows for step in row.steps]
    origin, end = min(starts), max(max(ends), min(starts))
    span = max((end - origin).total_seconds(), 1.0)
    plot = WIDTH - LABEL_WIDTH - 10
    height = len(rows) * ROW_HEIGHT + AXIS_HEIGHT

    def x(moment: datetime) -> float:
        return LABEL_WIDTH + plot * (moment - origin).total_seconds() / span

    shapes: list[SafeString] = []
    for index, row in enumerate(rows):
        top = index * ROW_HEIGHT
        shapes.append(
            format_html(
                '<text class="timeline-label{}" x="{}" y="{}" text-anchor="end">{}</text>',
                " timeline-context" if row.is_context else "",
                LABEL_WIDTH - 8,
                _n(top + ROW_HEIGHT / 2 + 4),
                row.label if len(row.label) <= 22 else row.label[:21] + "…",
            )
        )
        for step in row.steps:
            left = x(step.started)
            width = max(x(step.finished or now) - left, MIN_BAR_WIDTH)
            state = step.status or ("stalled" if row.stalled else "pending")
            took = duration_text(step.seconds) if step.finished else "running"
            ran = (
                f", command {duration_text(step.duration_ms / 1000)}"
                if step.duration_ms is not None
                else ""
            )
            shapes.append(
                format_html(
                    '<rect class="step step-{} {}" x="{}" y="{}" width="{}" height="{}"'
                    ' rx="2" data-step="{}"><title>{}: {} (attempt {}), {}, {}{}</title></rect>',
                    state,
                    "finished" if step.finished else "pending",
                    _n(left),
                    _n(top + (ROW_HEIGHT - BAR_HEIGHT) / 2),
                    _n(width),
                    BAR_HEIGHT,
                    step.name,
                    row.label,
                    step.name,
                    step.attempt,
                    state,
                    took,
                    ran,
                )
            )
            name = SHORT_STEP_NAMES.get(step.name, step.name)
            if width >= len(name) * LABEL_CHAR_WIDTH + 8:
                shapes.append(
                    format_html(
                        '<text class="step-label" x="{}" y="{}" aria-hidden="true">{}</text>',
                        _n(left + 4),
                        _n(top + ROW_HEIGHT / 2 + 4),
                        name,
                    )
                )
    axis_top = len(rows) * ROW_HEIGHT
    every = _tick_seconds(span)
    ticks = []
    tick = 0.0
    while tick <= span:
        left = LABEL_WIDTH + plot * tick / span
        ticks.append(
            format_html(
                '<line class="timeline-tick" x1="{}" x2="{}" y1="0" y2="{}"></line>'
                '<text class="timeline-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                _n(left),
                _n(left),
                axis_top + 4,
                _n(left),
                axis_top + 18,
                _elapsed(tick),
            )
        )
        tick += every
    return format_html(
        '<svg class="timeline" viewBox="0 0 {} {}" width="100%" role="img" '
        'preserveAspectRatio="xMinYMin meet" aria-label="{}">{}{}</svg>',
        WIDTH,
        height,
        f"Steps of each child from {clock(origin)}",
        _joined(ticks),
        _joined(shapes),
    )


def _n(number: float) -> str:
    """A coordinate, formatted before ``format_html`` (which would escape it to text)."""
    return f"{number:.1f}"


def _joined(pieces: Sequence[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((piece,) for piece in pieces))


@dataclass(frozen=True)
class DayCounts:
    label: str
    complete: int
    failed: int


def daily_bars(days: Sequence[DayCounts]) -> SafeString:
    """Stacked bars, one per day: completed (below) and failed (above)."""
    width, height, gap, base = 280, 110, 6, 92
    tallest = max([day.complete + day.failed for day in days] + [1])
    column = (width - gap) / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        left = gap + index * column
        bar_width = column - gap
        complete_height = 80 * day.complete / tallest
        failed_height = 80 * day.failed / tallest
        bars.append(
            format_html(
                '<g class="day"><title>{}: {} completed, {} failed</title>'
                '<rect class="bar-complete" x="{}" y="{}" width="{}" height="{}">'
                "</rect>"
                '<rect class="bar-failed" x="{}" y="{}" width="{}" height="{}">'
                "</rect>"
                '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>'
                '<text class="chart-count" x="{}" y="{}" text-anchor="middle">{}</text></g>',
                day.label,
                day.complete,
                day.failed,
                _n(left),
                _n(base - complete_height),
                _n(bar_width),
                _n(complete_height),
                _n(left),
                _n(base - complete_height - failed_height),
                _n(bar_width),
                _n(failed_height),
                _n(left + bar_width / 2),
                base + 14,
                day.label,
                _n(left + bar_width / 2),
                _n(base - complete_height - failed_height - 3),
                day.complete + day.failed if day.complete + day.failed else "",
            )
        )
    return format_html(
        '<svg class="chart chart-daily" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="Component sessions finished per day">'
        '<line class="chart-base" x1="{}" x2="{}" y1="{}" y2="{}"></line>{}</svg>',
        width,
        height,
        width,
        height,
        gap,
        width - gap,
        base,
        base,
        _joined(bars),
    )


def duration_bars(items: Sequence[tuple[str, float]]) -> SafeString:
    """Horizontal bars, longest first: a label and a duration in seconds each."""
    if not items:
        return format_html('<p class="chart-empty">{}</p>', "Nothing finished this week.")
    width, row, label = 280, 20, 110
    longest = max(seconds for _, seconds in items) or 1.0
    bars = format_html_join(
        "",
        '<g class="slow"><title>{}: {}</title>'
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect class="bar-duration" x="{}" y="{}" width="{}" height="12"></rect></g>',
        (
            (
                name,
                duration_text(seconds),
                label - 6,
                index * row + 12,
                name if len(name) <= 16 else name[:15] + "…",
                label,
                index * row + 2,
                _n(max((width - label - 4) * seconds / longest, MIN_BAR_WIDTH)),
            )
            for index, (name, seconds) in enumerate(items)
        ),
    )
    return format_html(
        '<svg class="chart chart-slowest" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="Slowest components">{}</svg>',
        width,
        len(items) * row + 4,
        width,
        len(items) * row + 4,
        bars,
    )


#: What each bucket of a step's distribution is called, from ``DURATION_BUCKETS``.
def _bucket_names() -> list[str]:
    bounds = [0, *DURATION_BUCKETS]
    names = [f"under {_elapsed(bounds[1])}"]
    names += [f"{_elapsed(low)} to {_elapsed(high)}" for low, high in pairwise(bounds[1:])]
    names.append(f"{_elapsed(bounds[-1])} or more")
    return names


def distribution_legend() -> SafeString:
    return format_html(
        '<ul class="timeline-legend">{}</ul>',
        format_html_join(
            "",
            '<li><span class="swatch bucket-{}"></span>{}</li>',
            enumerate(_bucket_names()),
        ),
    )


def distribution(steps: Sequence[StepDistribution]) -> SafeString:
    """A large run's timeline: one row per step, a bar of its finished runs split by how
    long they took (widths to scale across rows), then its counts, mean and longest."""
    if not steps:
        return format_html('<p class="timeline-empty">{}</p>', "No child's step has started yet.")
    names = _bucket_names()
    most = max(max(each.finished for each in steps), 1)
    plot = WIDTH - LABEL_WIDTH - 330
    shapes: list[SafeString] = []
    for index, each in enumerate(steps):
        top = index * ROW_HEIGHT
        middle = _n(top + ROW_HEIGHT / 2 + 4)
        shapes.append(
            format_html(
                '<text class="timeline-label" x="{}" y="{}" text-anchor="end">{}</text>',
                LABEL_WIDTH - 8,
                middle,
                each.name,
            )
        )
        left = float(LABEL_WIDTH)
        for bucket, count in enumerate(each.buckets):
            if not count:
                continue
            width = max(plot * count / most, MIN_BAR_WIDTH)
            shapes.append(
                format_html(
                    '<rect class="bucket bucket-{}" x="{}" y="{}" width="{}" height="{}" '
                    'data-step="{}" data-count="{}"><title>{}: {} {}</title></rect>',
                    bucket,
                    _n(left),
                    _n(top + (ROW_HEIGHT - BAR_HEIGHT) / 2),
                    _n(width),
                    BAR_HEIGHT,
                    each.name,
                    count,
                    each.name,
                    f"{count:,}",
                    names[bucket],
                )
            )
            left += width
        facts = [f"{each.finished:,} done"]
        if each.errors:
            facts.append(f"{each.errors:,} errors")
        if each.running:
            facts.append(f"{each.running:,} running")
        if each.mean_seconds is not None:
            facts.append(f"mean {duration_text(each.mean_seconds)}")
        if each.max_seconds is not None:
            facts.append(f"longest {duration_text(each.max_seconds)}")
        shapes.append(
            format_html(
                '<text class="timeline-axis distribution-facts" x="{}" y="{}">{}</text>',
                _n(LABEL_WIDTH + plot + 10),
                middle,
                " · ".join(facts),
            )
        )
    return format_html(
        '<svg class="timeline distribution" viewBox="0 0 {} {}" width="100%" role="img" '
        'preserveAspectRatio="xMinYMin meet" aria-label="{}">{}</svg>',
        WIDTH,
        len(steps) * ROW_HEIGHT + 6,
        "Each step's durations over every child",
        _joined(shapes),
    )
