"""The values that travel between a step, the service layer and the three doors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.utils import timezone

ExecutionStrategy = Literal["sync", "async", "task"]
ResultStatus = Literal["ok", "error", "warning"]
EXECUTION_STRATEGIES: tuple[str, ...] = ("sync", "async", "task")
RESULT_STATUSES: tuple[str, ...] = ("ok", "error", "warning")


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
