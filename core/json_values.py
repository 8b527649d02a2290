"""JSON values every supported database can store and every client can read back."""

from __future__ import annotations

import math
from typing import Any

# Deep enough for any real state or result (the workflows write two levels), shallow enough
# that every recursive walk over a stored value (serializers, ``copy.deepcopy``, the JSON
# encoder, the admin's pages) stays far from Python's recursion limit.
MAX_DEPTH = 32

NUL_IN_STRING = "JSON strings cannot contain the NUL character (\\u0000)."
LONE_SURROGATE = "JSON strings cannot contain unpaired surrogates (\\ud800-\\udfff)."
NOT_FINITE = "JSON numbers must be finite."
TOO_DEEP = f"JSON values cannot be nested more than {MAX_DEPTH} levels deep."


def _has_lone_surrogate(text: str) -> bool:
    # Unpaired surrogates are the only str contents that strict UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_reason(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a parsed JSON document cannot be stored, or None. Walks without recursion.

    Depth counts containers: ``{}`` and ``[]`` are one level, ``{"a": [1]}`` two, a scalar
    none."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return NUL_IN_STRING
            if _has_lone_surrogate(item):
                return LONE_SURROGATE
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NOT_FINITE
        elif isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return TOO_DEEP
            members = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((member, depth + 1) for member in members)
    return None
