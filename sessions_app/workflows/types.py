"""The values that travel between a step, the service layer and the three doors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from components_app.models import Project

ExecutionStrategy = Literal["sync", "async", "task"]
ResultStatus = Literal["ok", "error", "warning"]
EXECUTION_STRATEGIES: tuple[str, ...] = ("sync", "async", "task")
RESULT_STATUSES: tuple[str, ...] = ("ok", "error", "warning")


@dataclass(frozen=True)
class Scope:
    """Who acts, and in which project. Nothing outside ``project`` is visible to a service."""

    user: AbstractBaseUser
    project: Project

    @property
    def project_id(self):
        return self.project.pk


@dataclass
class Command:
    module: str
    command: str
    metadata: dict[str, Any] = field(default_factory=dict)
    execution_strategy: ExecutionStrategy = "sync"
    timestamp: datetime = field(default_factory=timezone.now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "command": self.command,
            "metadata": self.metadata,
            "execution_strategy": self.execution_strategy,
            "timestamp": self.timestamp.isoformat(),
        }


@dataclass
class Result:
    status: ResultStatus
    data: Any = None
    code: int | None = None
    error_message: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    duration_ms: int | None = None
    timestamp: datetime = field(default_factory=timezone.now)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["timestamp"] = self.timestamp.isoformat()
        return values

    def with_error(self, message: str) -> Result:
        return dataclasses.replace(self, status="error", error_message=message)

    def with_ok(self) -> Result:
        return dataclasses.replace(self, status="ok", error_message=None)


@dataclass
class StepOutcome:
    """What a step's result handling decided: session updates and the final result."""

    session_updates: dict[str, Any]
    result: Result


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
