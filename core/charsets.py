"""The one character set requests are read in."""

from __future__ import annotations

import codecs
import json

NOT_UTF8 = "Requests are read as UTF-8 only; charset {charset} is not accepted."


def is_utf8(charset: str) -> bool:
    """Whether ``charset`` names UTF-8 under any of its aliases (``utf8``, ``UTF-8``, ...)."""
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


def not_utf8(charset: str) -> str:
    """The refusal of a request that names ``charset``, quoted and cut short for display."""
    return NOT_UTF8.format(charset=json.dumps(charset[:40]))
