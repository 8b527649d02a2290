"""Errors a user can cause, each carrying the exact text to show; the API maps each class to
its HTTP status (422, 404, 409, 400)."""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    """An error a user can cause; ``message`` is the exact text shown to them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StepError(ServiceError):
    """The step cannot proceed (HTTP 422)."""


class NotFound(ServiceError):
    """The object does not exist in the caller's scope (HTTP 404)."""


class Conflict(ServiceError):
    """The request contradicts the current state (HTTP 409)."""


class InvalidInput(ServiceError):
    """The request is malformed (HTTP 400). ``errors`` maps fields to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


CANNOT_CHANGE = "This field cannot be changed."


def refuse_unchangeable(message: str, changes: Iterable[str], changeable: Iterable[str]) -> None:
    """Raise ``InvalidInput`` (``message``) naming each of ``changes`` outside ``changeable``
    with ``CANNOT_CHANGE``: a change that is not allowed is refused, never dropped. The API's
    update serializers answer the same text for the same keys (``unknown_field_message``)."""
    unknown = sorted(set(changes) - set(changeable))
    if unknown:
        raise InvalidInput(message, {name: [CANNOT_CHANGE] for name in unknown})
