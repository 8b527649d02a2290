"""Run failed or cancelled sessions again from their first step (``--children``: every
failed or cancelled child of each context session given).

Prints the retried ids, one a line (children in spawn order). An error prints its exact text on
stderr and exits 1; sessions named before it that were retried stay retried and are printed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from core.errors import ServiceError
from sessions_app import services
from sessions_app.management.common import fail, find_session, operator_scope


class Command(BaseCommand):
    help = "Retry failed or cancelled sessions, or (--children) the children of context sessions."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "session_ids", nargs="+", metavar="session_id", help="Session ids or short ids."
        )
        parser.add_argument(
            "--children",
            action="store_true",
            help="Retry every failed or cancelled child of each (context) session instead.",
        )

    def handle(self, *args, session_ids: list[str], children: bool = False, **options) -> None:
        sessions = [find_session(self, session_id) for session_id in session_ids]
        for session in sessions:
            scope = operator_scope(session)
            try:
                if children:
                    retried = services.retry_child_sessions(scope=scope, session_id=session.pk)
                else:
                    retried = [services.retry_session(scope=scope, session_id=session.pk)]
            except ServiceError as error:
                fail(self, error.message)
            for each in retried:
                self.stdout.write(str(each.pk))
