"""Spawn a context testing session's child sessions from the command line.

Prints the children's ids, one a line in spawn order (``--json``: the whole command). A step
error prints its exact text on stderr and exits 1; children that could not be created are
named on stderr while the ones that were created are still printed.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from core.errors import ServiceError
from core.text import printable
from sessions_app import services
from sessions_app.management.common import fail, find_session, operator_scope


class Command(BaseCommand):
    help = "Spawn one child session per component of a context testing session's context."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session_id", help="The context testing session's id or short id.")
        parser.add_argument(
            "--missing",
            action="store_true",
            help=(
                "Only create children for the context's components that have none; print "
                "every child, new and old."
            ),
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the spawn_sessions command as JSON.",
        )

    def handle(
        self, *args, session_id: str, as_json: bool = False, missing: bool = False, **options
    ) -> None:
        session = find_session(self, session_id)
        spawn = services.spawn_missing_child_sessions if missing else services.spawn_child_sessions
        try:
            command = spawn(scope=operator_scope(session), session_id=session.pk)
        except ServiceError as error:
            fail(self, error.message)

        if as_json:
            self.stdout.write(json.dumps(command.to_dict(), indent=2))
        else:
            for child_id in command.metadata["child_session_ids"]:
                self.stdout.write(child_id)
        if (failed := services.failed_components_text(command)) is not None:
            self.stderr.write(printable(f"Warning: {failed}"), self.style.WARNING)
