"""JSON values every supported database can store and every client can read back."""

from __future__ import annotations

import math
from typing import Any

NUL_IN_STRING = "JSON strings cannot contain the NUL character (\\u0000)."
LONE_SURROGATE = "JSON strings cannot contain unpaired surrogates (\\ud800-\\udfff)."
NOT_FINITE = "JSON numbers must be finite."


def _has_lone_surrogate(text: str) -> bool:
    # Unpaired surrogates are the only str contents that strict UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_reason(value: Any) -> str | None:
    """Why a parsed JSON document cannot be stored, or None. Walks without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return NUL_IN_STRING
            if _has_lone_surrogate(item):
                return LONE_SURROGATE
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NOT_FINITE
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None
