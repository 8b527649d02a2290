"""What an agent step cost, as the runner reports it in ``data.usage``: read from the JSON
result Claude Code prints with ``--output-format json``, or from a file any agent or wrapper
writes at ``$SPAWNCTL_USAGE_FILE``. Only well-formed fields are sent: the server refuses a
malformed ``usage`` whole, and with it the step's result, so a field that would not pass is
left out (and said) here instead.

The file's shape (every field optional)::

    {"cost_usd": 0.0421, "input_tokens": 1200, "output_tokens": 3400,
     "cache_read_tokens": 50000, "cache_creation_tokens": 8000, "turns": 7,
     "model": "claude-sonnet-4-5", "conversation_id": "5f0c9b3e-..."}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

USAGE_FILE_ENV = "SPAWNCTL_USAGE_FILE"
COUNT_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
MAX_COST_USD = 1_000_000
MAX_COUNT = 10**15
MAX_FILE_BYTES = 64_000
CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# Claude Code's result fields, by ours.
CLAUDE_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_creation_tokens": "cache_creation_input_tokens",
}


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def _cost(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if 0 <= value <= MAX_COST_USD else None


def clean(reported: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``reported`` the server takes, and the names of those left out."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    checks = {
        "cost_usd": _cost,
        **dict.fromkeys((*COUNT_FIELDS, "turns"), _count),
        "model": lambda v: v if isinstance(v, str) and len(v) <= 200 and v.isprintable() else None,
        "conversation_id": lambda v: (
            v if isinstance(v, str) and CONVERSATION_ID.fullmatch(v) else None
        ),
    }
    for name, value in reported.items():
        check = checks.get(name)
        if value is None:
            continue
        checked = check(value) if check is not None else None
        if checked is None:
            dropped.append(str(name))
        else:
            kept[name] = checked
    return kept, dropped


def _last_json_object(text: str) -> Mapping[str, Any] | None:
    """The last line of ``text`` that is a JSON object (Claude Code prints its result as
    one line at the end), else the whole text as one."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def from_claude_output(stdout: str) -> dict[str, Any] | None:
    """What Claude Code's ``--output-format json`` result on ``stdout`` says a call cost, in
    ``data.usage``'s fields; None when no such result is there."""
    result = _last_json_object(stdout or "")
    if result is None or result.get("type") != "result":
        return None
    found: dict[str, Any] = {}
    cost = result.get("total_cost_usd", result.get("cost_usd"))
    if cost is not None:
        found["cost_usd"] = cost
    tokens = result.get("usage")
    if isinstance(tokens, Mapping):
        for ours, theirs in CLAUDE_USAGE.items():
            if tokens.get(theirs) is not None:
                found[ours] = tokens[theirs]
    if result.get("num_turns") is not None:
        found["turns"] = result["num_turns"]
    models = result.get("modelUsage")
    if isinstance(models, Mapping) and models:
        found["model"] = next(iter(models))
    elif isinstance(result.get("model"), str):
        found["model"] = result["model"]
    if result.get("session_id") is not None:
        found["conversation_id"] = result["session_id"]
    return found


def from_file(path: Path) -> dict[str, Any] | str | None:
    """The usage an agent wrote at ``path``: None when it wrote nothing, the text of the
    problem when the file is not a JSON object."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot read {path.name}: {error.strerror}"
    if len(raw) > MAX_FILE_BYTES:
        return f"{path.name} is larger than {MAX_FILE_BYTES} bytes"
    try:
        found = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return f"{path.name} is not JSON"
    if not isinstance(found, dict):
        return f"{path.name} is not a JSON object"
    return found
