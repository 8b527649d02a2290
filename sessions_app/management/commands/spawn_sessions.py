"""Spawn a context testing session's child sessions from the command line.

Prints the children's ids, one a line in spawn order (``--json``: the whole command). A step
error prints its exact text on stderr and exits 1; children that could not be created are
named on stderr while the ones that were created are still printed.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn

from django.core.management.base import BaseCommand

from core.errors import ServiceError
from core.scope import Scope
from core.text import printable
from sessions_app import selectors, services
from sessions_app.models import Session

SESSION_NOT_FOUND = services.SESSION_NOT_FOUND


def fail(command: BaseCommand, message: str) -> NoReturn:
    """Exit 1 with exactly ``message`` on stderr (control characters a client put in a name
    or type shown as escapes, so they cannot drive the terminal).

    ``CommandError`` would print "CommandError: <message>"; the contract asks for the step's
    text as it is, so this follows ``makemigrations --check`` and exits on its own.
    """
    command.stderr.write(printable(message))
    sys.exit(1)


def find_session(command: BaseCommand, session_id: str) -> Session:
    """The session an operator named by its id or short id, or exit 1 with "Session not
    found" (or, for a prefix several sessions share, the error naming them)."""
    try:
        session = selectors.find_session_by_id(id_or_prefix=session_id)
    except ServiceError as error:
        fail(command, error.message)
    if session is None:
        fail(command, SESSION_NOT_FOUND)
    return session


def operator_scope(session: Session) -> Scope:
    """An operator's command runs with full access: as the session's owner, in its project.
    (The children a spawn creates belong to the scope's user, on every door.)"""
    return Scope(user=session.user, project=session.project)


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
        failed = command.metadata["failed_components"]
        if failed:
            self.stderr.write(
                printable(f"Warning: {selectors.failed_components_text(failed)}"),
                self.style.WARNING,
            )
