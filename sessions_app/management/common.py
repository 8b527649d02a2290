"""What the session commands share: naming a session, failing with an exact text, and the
scope an operator acts in."""

from __future__ import annotations

import sys
from typing import NoReturn

from django.core.management.base import BaseCommand

from core.errors import ServiceError
from core.scope import Scope
from core.text import printable
from sessions_app import selectors, services
from sessions_app.models import Session


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
        fail(command, services.SESSION_NOT_FOUND)
    return session


def operator_scope(session: Session) -> Scope:
    """An operator's command runs with full access: as the session's owner, in its project."""
    return Scope(user=session.user, project=session.project)
