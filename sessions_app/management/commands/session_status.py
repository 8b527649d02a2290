"""Show a session and its children, in spawn order, with why any of them failed."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from core.timefmt import api_time
from sessions_app import selectors
from sessions_app.management.commands.spawn_sessions import find_session
from sessions_app.models import SessionStatus

COLUMNS = ("COMPONENT", "STATUS", "ATTEMPT", "RUNNER", "FAILURE REASON", "SESSION")


class Command(BaseCommand):
    help = "Show a session, its children in spawn order and a summary of their statuses."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session_id", help="The session's id.")

    def handle(self, *args, session_id: str, **options) -> None:
        session = find_session(self, session_id)
        children = list(selectors.child_sessions(session=session))
        now = timezone.now()

        self.stdout.write(f"Session {session.pk}")
        self.stdout.write(f"  type:      {session.type}")
        self.stdout.write(f"  status:    {session.status}")
        self.stdout.write(f"  component: {_component(session)}")
        self.stdout.write(f"  attempt:   {session.attempt}")
        self.stdout.write(f"  lease:     {_lease(session, now)}")
        self.stdout.write("")

        rows = [
            (
                selectors.display_name(child),
                "stalled" if child.is_stalled(now) else child.status,
                str(child.attempt),
                child.runner or "",
                selectors.failure_reason(child) if child.status == SessionStatus.FAILED else "",
                str(child.pk),
            )
            for child in children
        ]
        if rows:
            widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
            for row in [COLUMNS, *rows]:
                self.stdout.write(
                    "  ".join(
                        cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                    ).rstrip()
                )
            self.stdout.write("")

        summary = selectors.summarize(children, now=now)
        self.stdout.write(
            f"{summary.total} {'child' if summary.total == 1 else 'children'}: "
            f"{summary.complete} complete, {summary.active} active "
            f"({summary.stalled} stalled), {summary.failed} failed, "
            f"{summary.cancelled} cancelled"
        )


def _lease(session, now) -> str:
    if session.runner is None:
        return "none"
    until = api_time(session.leased_until)
    if session.is_stalled(now):
        return f"{session.runner}, expired {until} (stalled)"
    return f"{session.runner} until {until}"


def _component(session) -> str:
    if session.component is None:
        return "none"
    return f"{session.component.name} ({session.component.module_name})"
