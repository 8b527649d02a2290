"""Make the totals kept as results come (each session's own usage and step times, each
project's cost per day, and the dashboard's counts of finished sessions) again from the steps
and sessions stored: after data was written around the service
(an import, a restore of part of a table, a step deleted by hand).

Prints one line a project, by name: ``<project name>: <n> sessions, <m> days of cost``.
``--project`` (repeatable) takes project ids; an unknown or malformed one prints ``Project not
found: <id>`` on stderr and exits 1 before anything is written.
"""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand
from django.db import transaction

from components_app.models import Project
from core.text import printable
from sessions_app import services
from sessions_app.management.common import fail
from sessions_app.models import Session

PROJECT_NOT_FOUND = "Project not found: {id}"


class Command(BaseCommand):
    help = "Make the sessions' usage totals and the projects' costs per day again from the steps."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--project",
            action="append",
            default=[],
            metavar="PROJECT_ID",
            help="Only this project (repeatable); default: every project.",
        )

    def handle(self, *args, project: list[str], **options) -> None:
        projects = list(Project.objects.order_by("name", "id"))
        if project:
            wanted = []
            for given in project:
                try:
                    pk = uuid.UUID(given)
                except ValueError:
                    fail(self, PROJECT_NOT_FOUND.format(id=given))
                found = next((each for each in projects if each.pk == pk), None)
                if found is None:
                    fail(self, PROJECT_NOT_FOUND.format(id=given))
                wanted.append(found)
            projects = list(dict.fromkeys(wanted))
        for each in projects:
            with transaction.atomic():
                sessions = services.recount_from_steps(Session.objects.filter(project=each))
                days = services.recount_daily_costs([each.pk])
                services.recount_finished([each.pk])
            self.stdout.write(
                f"{printable(each.name)}: {_counted(sessions, 'session')}, "
                f"{_counted(days, 'day')} of cost"
            )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
