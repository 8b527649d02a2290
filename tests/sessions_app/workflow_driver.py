"""Drives sessions through the service layer the way a client would."""

from __future__ import annotations

from collections.abc import Callable

from core.scope import Scope
from sessions_app import services
from sessions_app.models import Interaction, Session
from sessions_app.workflows.types import Result

Responder = Callable[[Interaction], Result]


def ok(_: Interaction) -> Result:
    return Result(status="ok", code=0)


def step_once(scope: Scope, session: Session, respond: Responder = ok) -> Interaction:
    """Ask for the next command, answer it, and return the answered interaction."""
    interaction, _ = services.next_command(scope=scope, session_id=session.pk)
    answered, _ = services.submit_result(
        scope=scope,
        session_id=session.pk,
        interaction_id=interaction.pk,
        result=respond(interaction),
    )
    return answered


def drive_to_end(
    scope: Scope, session: Session, respond: Responder = ok, limit: int = 20
) -> list[Interaction]:
    """Answer commands until the session is finished; returns the interactions in order."""
    history = []
    for _ in range(limit):
        history.append(step_once(scope, session, respond))
        session.refresh_from_db()
        if session.is_finished:
            return history
    raise AssertionError(f"{session} did not finish in {limit} steps")


def reporting(*verifications: dict) -> Responder:
    """Every step ok; each VerifyTests reports the next of ``verifications`` as its
    ``data.verification``."""
    queue = list(verifications)

    def respond(interaction: Interaction) -> Result:
        if interaction.step_name == "VerifyTests":
            return Result(status="ok", code=0, data={"verification": queue.pop(0)})
        return Result(status="ok", code=0)

    return respond


def step_names(history: list[Interaction]) -> list[str]:
    return [interaction.step_name for interaction in history]


def history_of(session: Session) -> list[str]:
    """The session's step names, oldest first."""
    return list(session.interactions.order_by("created_at").values_list("step_name", flat=True))
