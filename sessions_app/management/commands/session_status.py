"""Show a session and its children, in spawn order, with why any of them failed.

``--json`` prints the same as one JSON object. Names, runners and reasons come from clients,
so the text output shows them through ``core.text.printable``: an escape sequence in a
component's name cannot recolour or rewrite the operator's terminal.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from core.text import printable
from core.timefmt import api_time
from sessions_app import selectors
from sessions_app.management.common import find_session
from sessions_app.models import Session

COLUMNS = ("COMPONENT", "STATUS", "ATTEMPT", "RUNNER", "LEASED UNTIL", "FAILURE REASON", "SESSION")


class Command(BaseCommand):
    help = "Show a session, its children in spawn order and a summary of their statuses."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session_id", help="The session's id or short id.")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the session, its children and their summary as JSON.",
        )

    def handle(self, *args, session_id: str, as_json: bool = False, **options) -> None:
        session = find_session(self, session_id)
        children = list(selectors.child_sessions(session=session))
        now = timezone.now()
        try:
            if as_json:
                self.stdout.write(json.dumps(_as_json(session, children, now), indent=2))
            else:
                self._write_text(session, children, now)
            self.stdout.flush()
        except BrokenPipeError:
            _reader_went_away(self)

    def _write_text(self, session: Session, children: list[Session], now: datetime) -> None:
        self.stdout.write(f"Session {session.pk}")
        self.stdout.write(f"  type:      {printable(session.type)}")
        self.stdout.write(f"  status:    {session.status}")
        self.stdout.write(f"  component: {_component(session)}")
        self.stdout.write(f"  attempt:   {session.attempt}")
        self.stdout.write(f"  branch:    {printable(session.branch) if session.branch else '-'}")
        self.stdout.write(f"  lease:     {_lease(session, now)}")
        if (reason := selectors.shown_failure_reason(session)) is not None:
            self.stdout.write(f"  reason:    {_cell(reason)}")
        self.stdout.write("")

        rows = [
            (
                _cell(selectors.display_name(child)),
                _status(child, now),
                str(child.attempt),
                _cell(child.runner or ""),
                api_time(child.leased_until) if child.leased_until else "",
                _cell(selectors.shown_failure_reason(child) or ""),
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


def _reader_went_away(command: BaseCommand) -> None:
    """The reader closed the pipe (``| head``): stop quietly, as ``cat`` would. Output still
    buffered for the real stdout goes to /dev/null, so that flushing it at exit raises no
    second BrokenPipeError for Python to print."""
    if getattr(command.stdout, "_out", None) is sys.stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def _as_json(session: Session, children: list[Session], now: datetime) -> dict[str, Any]:
    return {
        "session": {
            **_session_json(session, now),
            "parent_session": str(session.parent_session_id) if session.parent_session_id else None,
        },
        "summary": selectors.summarize(children, now=now).as_dict(),
        "children": [_session_json(child, now) for child in children],
    }


def _session_json(session: Session, now: datetime) -> dict[str, Any]:
    component = session.component if session.component_id else None
    return {
        "id": str(session.pk),
        "short_id": selectors.short_id(session.pk),
        "type": session.type,
        "status": session.status,
        "stalled": session.is_stalled(now),
        "attempt": session.attempt,
        "branch": session.branch,
        "runner": session.runner,
        "leased_until": api_time(session.leased_until) if session.leased_until else None,
        "component": None
        if component is None
        else {
            "id": str(component.pk),
            "name": component.name,
            "module_name": component.module_name,
            "type": component.type,
            "priority": component.priority,
        },
        "failure_reason": selectors.shown_failure_reason(session),
        "created_at": api_time(session.created_at),
        "updated_at": api_time(session.updated_at),
    }


def _cell(text: str) -> str:
    """One line of safe text: a multi-line reason would break the table's rows."""
    return " ".join(printable(text).split())


def _status(session: Session, now: datetime) -> str:
    return "stalled" if session.is_stalled(now) else session.status


def _lease(session: Session, now: datetime) -> str:
    if session.runner is None:
        return "none"
    until = api_time(session.leased_until)
    if session.is_stalled(now):
        return f"{_cell(session.runner)}, expired {until} (stalled)"
    return f"{_cell(session.runner)} until {until}"


def _component(session: Session) -> str:
    if session.component is None:
        return "none"
    return f"{_cell(session.component.name)} ({_cell(session.component.module_name)})"
