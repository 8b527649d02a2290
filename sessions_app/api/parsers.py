"""The one request parser the API takes: JSON that every supported database can store."""

from __future__ import annotations

import codecs
import math
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

NUL_IN_STRING = "JSON strings cannot contain the NUL character (\\u0000)."
LONE_SURROGATE = "JSON strings cannot contain unpaired surrogates (\\ud800-\\udfff)."
NOT_FINITE = "JSON numbers must be finite."
TOO_DEEP = "JSON is nested too deeply."


def _has_lone_surrogate(text: str) -> bool:
    # Unpaired surrogates are the only str contents that strict UTF-8 cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _rejection(value: Any) -> str | None:
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


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, minus what it lets through that a database or the renderer would
    choke on later as a 500: NUL characters and unpaired surrogates (PostgreSQL and UTF-8
    refuse them), numbers that overflow to infinity, and nesting deep enough to exhaust the
    stack. (Bodies past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` never get here: DRF reads JSON
    through ``request.body``, which enforces it.)"""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.decode(stream.read(), encoding)
            data = json.loads(text, parse_constant=json.strict_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        problem = _rejection(data)
        if problem is not None:
            raise ParseError(problem)
        return data
