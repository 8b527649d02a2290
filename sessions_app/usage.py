"""What an agent step cost: the ``data.usage`` a result may carry, checked, and the run's
budget texts. Pure values; the service stores a step's usage in its interaction's columns and
sums them with queries."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# The steps that call the coding agent (and cost money).
AGENT_STEPS = ("GenerateTestsAndFixtures", "FixCompilationErrors", "ImproveTests")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
COUNT_FIELDS = (*TOKEN_FIELDS, "turns")
FIELDS = ("cost_usd", *COUNT_FIELDS, "model", "conversation_id")
# Beyond these no real step goes: a larger value is a wrapper's bug, refused with a reason.
MAX_COST_USD = Decimal("1000000")
MAX_COUNT = 10**15
MODEL_MAX_LENGTH = 200
CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
COST_PLACES = Decimal("0.000001")

BUDGET_SPENT = "Run budget spent: ${spent} of ${limit}"


class Malformed(ValueError):
    """``data.usage`` cannot be stored: ``field`` (under ``usage.``) and why."""

    def __init__(self, field: str, reason: str) -> None:
        self.text = f"usage.{field} {reason}" if field else f"usage {reason}"
        super().__init__(self.text)


@dataclass(frozen=True)
class Usage:
    cost_usd: Decimal | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    turns: int | None = None
    model: str = ""
    conversation_id: str | None = None

    def columns(self) -> dict[str, Any]:
        """The interaction's columns this usage fills."""
        return {
            "cost_usd": self.cost_usd,
            **{name: getattr(self, name) for name in COUNT_FIELDS},
            "model": self.model,
        }


def _cost(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed("cost_usd", "must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise Malformed("cost_usd", "must be a finite number.")
    cost = Decimal(str(value))
    if cost < 0:
        raise Malformed("cost_usd", "must be at least 0.")
    if cost > MAX_COST_USD:
        raise Malformed("cost_usd", f"must be at most {MAX_COST_USD}.")
    return cost.quantize(COST_PLACES, rounding=ROUND_HALF_UP)


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(field, "must be an integer.")
    if value < 0:
        raise Malformed(field, "must be at least 0.")
    if value > MAX_COUNT:
        raise Malformed(field, f"must be at most {MAX_COUNT}.")
    return value


def read(value: Any) -> Usage:
    """``data.usage`` as reported, checked; every field may be left out (or null)."""
    if not isinstance(value, Mapping):
        raise Malformed("", "must be an object.")
    unknown = sorted(str(key) for key in value if key not in FIELDS)
    if unknown:
        raise Malformed(unknown[0], f"is not a usage field (known: {', '.join(FIELDS)}).")
    cost = value.get("cost_usd")
    counts = {
        field: _count(value[field], field) if value.get(field) is not None else None
        for field in COUNT_FIELDS
    }
    model = value.get("model")
    if model is not None and (
        not isinstance(model, str) or len(model) > MODEL_MAX_LENGTH or not model.isprintable()
    ):
        raise Malformed("model", f"must be a printable string of at most {MODEL_MAX_LENGTH}.")
    conversation = value.get("conversation_id")
    if conversation is not None and (
        not isinstance(conversation, str) or not CONVERSATION_ID.fullmatch(conversation)
    ):
        raise Malformed("conversation_id", "must be 1 to 200 letters, digits, '-' and '_'.")
    return Usage(
        cost_usd=_cost(cost) if cost is not None else None,
        model=model or "",
        conversation_id=conversation,
        **counts,
    )


def of_result_data(data: Any) -> Usage | None:
    """The usage a result's ``data`` carries, checked; None when it carries none."""
    if not isinstance(data, Mapping) or data.get("usage") is None:
        return None
    return read(data["usage"])


def is_conversation_id(value: Any) -> bool:
    return isinstance(value, str) and CONVERSATION_ID.fullmatch(value) is not None


def dollars(value: Decimal | float | int) -> str:
    """Two decimals, rounded half up: ``1.005`` -> ``1.01``."""
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def budget_spent_text(spent: Decimal, limit: Decimal) -> str:
    return BUDGET_SPENT.format(spent=dollars(spent), limit=dollars(limit))


def as_number(value: Decimal | None) -> float | None:
    """A cost as a JSON number (costs are numbers in every answer)."""
    return None if value is None else float(value)
